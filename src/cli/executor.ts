import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startBusExecutor } from '../executors/busExecutor.js';
import { demoHandler } from '../executors/demoExecutor.js';
import { isExecutorReport, type ExecutorReport, type TaskHandler } from '../executors/report.js';
import { FileInbox } from '../persistence/inbox.js';
import type { EmbeddedRuntime } from '../runtime/embeddedRuntime.js';
import { CliError } from './cliErrors.js';

/**
 * `JETPLAN_DEMO_DELAY_MS`: a demo/testing knob that delays each demo execution by that many
 * milliseconds, so a session runs slowly enough to be watched, interrupted or killed mid-way.
 */
export const DEMO_DELAY_ENV = 'JETPLAN_DEMO_DELAY_MS';

/** The delay the environment asks for (0 when unset); a bad value is a usage error. */
export function demoDelay(env: Record<string, string | undefined>): number {
  const raw = env[DEMO_DELAY_ENV];
  if (raw === undefined || raw === '') return 0;
  if (!/^\d+$/.test(raw)) throw new CliError(`${DEMO_DELAY_ENV} must be a non-negative integer, got "${raw}"`, 2);
  return Number(raw);
}

/**
 * Starts the built-in demo executor on the runtime's bus. Its record is a FileInbox at
 * `<dataDir>/executions.log`, one line per executed dispatch; the bus executor runs a dispatch
 * delivered twice at once only once. Returns the stop function.
 */
export async function startDemoExecutor(runtime: EmbeddedRuntime, dataDir: string, delayMs: number): Promise<() => Promise<void>> {
  const file = await FileInbox.open<ExecutorReport>(join(dataDir, 'executions.log'), { isValue: isExecutorReport });
  return startBusExecutor({
    bus: runtime.bus,
    subjects: runtime.subjects,
    handler: delayed(demoHandler, delayMs),
    inbox: file,
    logger: runtime.logger,
  });
}

/** Waits `ms` (abortable) before each execution. */
function delayed(handler: TaskHandler, ms: number): TaskHandler {
  if (ms === 0) return handler;
  return async (task, tools) => {
    await sleep(ms, undefined, { signal: tools.signal });
    return handler(task, tools);
  };
}
