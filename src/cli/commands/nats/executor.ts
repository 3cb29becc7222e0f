import { setTimeout as sleep } from 'node:timers/promises';
import { demoHandler } from '../../../executors/demoExecutor.js';
import type { TaskHandler } from '../../../executors/report.js';
import { createShellHandler } from '../../../executors/shellExecutor.js';
import { createExecutor, type ExecutorKind } from '../../../nats/executor.js';
import { numberFlag, stringFlag, type ParsedArgs } from '../../args.js';
import { UsageError } from '../../cliErrors.js';
import type { Command, CliContext } from '../../command.js';
import { demoDelay } from '../../executor.js';
import { connectFromArgs, CONNECTION_FLAGS, CONNECTION_USAGE, streamOptionsFrom } from './connection.js';
import { untilSignalOrClosed } from './lifecycle.js';

const USAGE = `Usage: jetplan executor <echo|shell> [flags]
Runs an executor on NATS JetStream: takes ExecuteTask commands, runs each dispatch once (recorded
in a KV inbox) and reports back into the session. SIGTERM/SIGINT finish running tasks, then exit.
  echo                        the demo executor (asks before deploy/publish/delete…, fails flaky tasks once)
  shell                       runs a ToolCall's \`command\` without a shell, if its program is allowed
  --allow <prog,prog>         programs the shell executor may run, by name (found on PATH) or exact
                              absolute path (required for shell); never list env, xargs, sh or find
  --timeout-ms <ms>           shell: kill a command after this long (default 10000)
  --max-output-bytes <n>      shell: keep at most this much stdout+stderr (default 65536)
  --kinds <toolcall,processing>  which task kinds to take (default both)
  --ack-wait-ms <ms>          consumer ack wait; progress acks every third of it (default 30000)
  --concurrency <n>           tasks at once per kind (default 4)
  --inbox-bucket <name>       KV bucket of recorded reports (default jetplan_exec_inbox)
  --inbox-ttl-ms <ms>         forget recorded reports after this long (when the bucket is created;
                              default: keep them)
  --durable-prefix <name>     durable consumer names <name>-<kind> (default jetplan-exec)
Environment: JETPLAN_DEMO_DELAY_MS=<ms> delays each echo execution (demo/testing knob).
${CONNECTION_USAGE}`;

function parseKinds(value: string | undefined): ExecutorKind[] {
  if (value === undefined) return ['ToolCall', 'Processing'];
  const kinds = value.split(',').map((k) => k.trim().toLowerCase()).filter((k) => k.length > 0);
  if (kinds.length === 0) throw new UsageError('--kinds needs at least one of toolcall, processing');
  return [...new Set(kinds)].map((k) => {
    if (k === 'toolcall') return 'ToolCall';
    if (k === 'processing') return 'Processing';
    throw new UsageError(`unknown kind ${k} (expected toolcall or processing)`);
  });
}

function delayed(handler: TaskHandler, ms: number): TaskHandler {
  if (ms === 0) return handler;
  return async (task, tools) => {
    await sleep(ms, undefined, { signal: tools.signal });
    return handler(task, tools);
  };
}

function handlerFrom(args: ParsedArgs, ctx: CliContext): { name: string; handler: TaskHandler } {
  if (args.positionals.length === 0) throw new UsageError('executor needs a type: echo or shell');
  if (args.positionals.length > 1) throw new UsageError(`unexpected argument ${args.positionals[1]}`);
  const type = args.positionals[0]!;
  if (type === 'echo') {
    for (const flag of ['allow', 'timeout-ms', 'max-output-bytes']) {
      if (args.flags[flag] !== undefined) throw new UsageError(`--${flag} only applies to the shell executor`);
    }
    return { name: 'echo', handler: delayed(demoHandler, demoDelay(ctx.io.env)) };
  }
  if (type === 'shell') {
    const allow = (stringFlag(args, 'allow') ?? '').split(',').map((p) => p.trim()).filter((p) => p.length > 0);
    if (allow.length === 0) throw new UsageError('the shell executor needs --allow <prog,prog>');
    const timeoutMs = numberFlag(args, 'timeout-ms');
    const maxOutputBytes = numberFlag(args, 'max-output-bytes');
    if (timeoutMs === 0) throw new UsageError('--timeout-ms must be at least 1');
    if (maxOutputBytes === 0) throw new UsageError('--max-output-bytes must be at least 1');
    return {
      name: `shell (allow: ${allow.join(', ')})`,
      handler: createShellHandler({
        allow,
        ...(timeoutMs !== undefined ? { timeoutMs } : {}),
        ...(maxOutputBytes !== undefined ? { maxOutputBytes } : {}),
      }),
    };
  }
  throw new UsageError(`unknown executor ${type} (expected echo or shell)`);
}

/** `jetplan executor <echo|shell>`: an executor process. */
export const executorCommand: Command = {
  summary: 'run an executor (echo or shell) on NATS',
  usage: USAGE,
  flags: {
    ...CONNECTION_FLAGS,
    allow: 'string',
    'timeout-ms': 'number',
    'max-output-bytes': 'number',
    kinds: 'string',
    'ack-wait-ms': 'number',
    concurrency: 'number',
    'inbox-bucket': 'string',
    'inbox-ttl-ms': 'number',
    'durable-prefix': 'string',
  },
  async run(args, ctx) {
    const { name, handler } = handlerFrom(args, ctx);
    const kinds = parseKinds(stringFlag(args, 'kinds'));
    const ackWaitMs = numberFlag(args, 'ack-wait-ms');
    const concurrency = numberFlag(args, 'concurrency');
    if (ackWaitMs !== undefined && ackWaitMs < 100) throw new UsageError('--ack-wait-ms must be at least 100');
    if (concurrency === 0) throw new UsageError('--concurrency must be at least 1');
    const inboxBucket = stringFlag(args, 'inbox-bucket');
    const inboxTtlMs = numberFlag(args, 'inbox-ttl-ms');
    if (inboxTtlMs !== undefined && inboxTtlMs < 60_000) throw new UsageError('--inbox-ttl-ms must be at least 60000');
    const durablePrefix = stringFlag(args, 'durable-prefix');
    // A service logs at info by default (debug with --verbose), through the CLI's stderr.
    const logger = ctx.verbose ? ctx.logger : ctx.logger.child({}, { level: 'info' });
    const nc = await connectFromArgs(args, ctx, 'jetplan-executor');
    let executor;
    try {
      executor = await createExecutor({
        nc,
        kinds,
        handler,
        logger,
        ...streamOptionsFrom(args),
        ...(ackWaitMs !== undefined ? { ackWaitMs } : {}),
        ...(concurrency !== undefined ? { concurrency } : {}),
        ...(inboxBucket ? { inboxBucket } : {}),
        ...(inboxTtlMs !== undefined ? { inboxTtlMs } : {}),
        ...(durablePrefix ? { durablePrefix } : {}),
      });
    } catch (err) {
      await nc.close().catch(() => undefined);
      throw err;
    }
    ctx.out(`jetplan executor: ${name} taking ${kinds.join(', ')} tasks from ${nc.getServer()}`);
    const why = await untilSignalOrClosed(ctx, nc);
    // An unexpected close is an error: one line on stderr, exit 1.
    if (why === 'closed') ctx.err(`jetplan executor: the NATS connection closed`);
    else ctx.out(`jetplan executor: ${why}, finishing running tasks`);
    await executor.stop();
    if (!nc.isClosed()) await nc.drain().catch(() => undefined);
    ctx.out(`jetplan executor: stopped after ${executor.executed} executions`);
    return why === 'closed' ? 1 : 0;
  },
};
