/**
 * The options both executors take are checked alike: startBusExecutor refuses what createExecutor
 * refuses, with the same ValidationError. createExecutor checks every option before it touches
 * NATS, so a stand-in connection is enough to read its refusals.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { HEADER, type BusMessage } from '../../src/actors/bus.js';
import { InProcessBus } from '../../src/actors/inProcessBus.js';
import { isValidationError } from '../../src/errors.js';
import { startBusExecutor, type BusExecutorOptions } from '../../src/executors/busExecutor.js';
import type { ExecutorReport, TaskHandler } from '../../src/executors/report.js';
import { createExecutor, type ExecutorOptions } from '../../src/nats/executor.js';
import { KvExecutorInbox } from '../../src/nats/executorInbox.js';
import { silentLogger } from '../../src/observability/logger.js';
import { MemoryInbox } from '../../src/persistence/inbox.js';
import { subjectsFor } from '../../src/protocol/subjects.js';
import { executeTask } from '../support/executeTask.js';

const subjects = subjectsFor();
const handler: TaskHandler = async () => ({ type: 'completed', output: 'done' });
/** Passes createExecutor's connection check; anything that really used it would fail. */
const standInNc = { isClosed: () => false } as unknown as NatsConnection;

/** What startBusExecutor throws for `extra` (undefined if it starts: it is then stopped). */
async function busRefusal(extra: Partial<BusExecutorOptions>): Promise<unknown> {
  const bus = new InProcessBus();
  try {
    const stop = startBusExecutor({ bus, subjects, handler, inbox: new MemoryInbox<ExecutorReport>(), logger: silentLogger, ...extra });
    await stop();
    return undefined;
  } catch (err) {
    return err;
  }
}

/** What createExecutor rejects with for `extra`. */
const natsRefusal = (extra: Partial<ExecutorOptions>): Promise<unknown> =>
  createExecutor({ nc: standInNc, kinds: ['ToolCall'], handler, ...extra }).then(
    () => undefined,
    (err: unknown) => err,
  );

/** Bad values of the options both executors take, and what the refusal says. */
const BAD_SHARED: Array<[string, Partial<BusExecutorOptions & ExecutorOptions>, string]> = [
  ['no kinds', { kinds: [] }, 'executor: at least one kind is needed'],
  ['an unknown kind', { kinds: ['Bogus'] as unknown as ['ToolCall'] }, 'executor: unknown kind "Bogus" (ToolCall or Processing)'],
  ['a lowercase kind', { kinds: ['toolcall'] as unknown as ['ToolCall'] }, 'executor: unknown kind "toolcall" (ToolCall or Processing)'],
  ['kinds not an array', { kinds: 'Processing' as unknown as ['ToolCall'] }, 'executor: kinds must be an array (ToolCall, Processing), got "Processing"'],
  ['no handler', { handler: undefined as unknown as TaskHandler }, 'executor: handler must be a function'],
  ['a tiny maxReportBytes', { maxReportBytes: 100 }, 'executor: maxReportBytes must be an integer of at least 1024, got 100'],
  ['a fractional maxReportBytes', { maxReportBytes: 2048.5 }, 'executor: maxReportBytes must be an integer of at least 1024, got 2048.5'],
  // Used to be taken, and fail with a TypeError at the first command's log line.
  [
    'a logger that is not pino-like',
    { logger: {} as Logger },
    'executor: logger must be a pino-like logger (an object with methods debug, info, warn and error), got an object without debug, info, warn and error',
  ],
];

describe('executor options', () => {
  it.each(BAD_SHARED)('startBusExecutor refuses %s with the ValidationError createExecutor gives', async (_what, extra, message) => {
    const onBus = await busRefusal(extra);
    const onNats = await natsRefusal(extra);
    expect(isValidationError(onBus), String(onBus)).toBe(true);
    expect((onBus as Error).message).toBe(message);
    expect(isValidationError(onNats), String(onNats)).toBe(true);
    expect((onNats as Error).message).toBe(message);
  });

  it('startBusExecutor subscribes to nothing when it refuses its options', async () => {
    const bus = new InProcessBus();
    const run = vi.fn(handler);
    expect(() => startBusExecutor({ bus, subjects, handler: run, inbox: new MemoryInbox<ExecutorReport>(), logger: silentLogger, kinds: ['ToolCall', 'Bogus' as 'ToolCall'] })).toThrow(/unknown kind "Bogus"/);
    await expect(bus.publish(subjects.exec('ToolCall', 's1'), executeTask())).rejects.toMatchObject({ name: 'NoRouteError' });
    expect(run).not.toHaveBeenCalled();
  });

  it('startBusExecutor takes a kind named twice once: one report per command', async () => {
    const bus = new InProcessBus();
    const reports: BusMessage[] = [];
    bus.subscribe(subjects.allInputs, (m) => void reports.push(m));
    const stop = startBusExecutor({ bus, subjects, handler, inbox: new MemoryInbox<ExecutorReport>(), logger: silentLogger, kinds: ['ToolCall', 'ToolCall'] });
    // Resolves once every subscriber has handled the command; each hands its report to the bus.
    await bus.publish(subjects.exec('ToolCall', 's1'), executeTask());
    await stop(); // waits for reports under way
    expect(reports.map((m) => m.headers[HEADER.messageId])).toEqual(['report.s1.t1.1']);
  });

  it.each([
    ['inboxBucket', { inboxBucket: 'bad bucket!' }, 'executor: inboxBucket must be a NATS KV bucket name ([A-Za-z0-9_-]+: letters, digits, _ or -), got "bad bucket!"'],
    ['inboxBucket', { inboxBucket: '' }, 'executor: inboxBucket must be a NATS KV bucket name ([A-Za-z0-9_-]+: letters, digits, _ or -), got ""'],
    ['claimsBucket', { claimsBucket: 'a.b' }, 'executor: claimsBucket must be a NATS KV bucket name ([A-Za-z0-9_-]+: letters, digits, _ or -), got "a.b"'],
    ['afterRecord', { afterRecord: 'x' as unknown as ExecutorOptions['afterRecord'] }, 'executor: afterRecord must be a function, got "x"'],
    ['nc', { nc: {} as NatsConnection }, 'executor: nc must be a NATS connection (an object with method isClosed), got an object without isClosed'],
  ] as const)('createExecutor refuses a bad %s with a ValidationError naming it and the rule', async (_option, extra, message) => {
    const err = await natsRefusal(extra);
    expect(isValidationError(err), String(err)).toBe(true);
    expect((err as Error).message).toBe(message);
  });

  it('KvExecutorInbox.open refuses a bad bucket name with a ValidationError', async () => {
    const err = await KvExecutorInbox.open(standInNc, { bucket: 'bad bucket!' }).catch((e: unknown) => e);
    expect(isValidationError(err), String(err)).toBe(true);
    expect((err as Error).message).toMatch(/^inbox: bucket must be a NATS KV bucket name .*got "bad bucket!"$/);
  });
});
