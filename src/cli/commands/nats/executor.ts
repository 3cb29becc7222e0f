import { setTimeout as sleep } from 'node:timers/promises';
import { demoHandler } from '../../../executors/demoExecutor.js';
import type { TaskHandler } from '../../../executors/report.js';
import { createShellHandler } from '../../../executors/shellExecutor.js';
import { isShellConfigError } from '../../../errors.js';
import { createExecutor, MAX_ACK_WAIT_MS, type ExecutorKind } from '../../../nats/executor.js';
import { boolFlag, numberFlag, stringFlag, type ParsedArgs } from '../../args.js';
import { UsageError } from '../../cliErrors.js';
import type { Command, CliContext } from '../../command.js';
import { demoDelay } from '../../executor.js';
import { connectFromArgs, CONNECTION_FLAGS, CONNECTION_USAGE, streamOptionsFrom } from './connection.js';
import { closeConnection, reportConnection, untilSignalOrClosed } from './lifecycle.js';

const USAGE = `Usage: jetplan executor <echo|shell> [flags]
Runs an executor on NATS JetStream: takes ExecuteTask commands, runs each dispatch once (recorded
in a KV inbox) and reports back into the session. SIGTERM/SIGINT abort running tasks (an outcome
a handler still returns is reported; one that gives up is handed back to run elsewhere), then exit.
  echo                        the demo executor (asks before deploy/publish/delete…, fails flaky tasks once)
  shell                       runs a ToolCall's \`command\` without a shell, if its program is allowed
  --allow <prog,prog>         programs the shell executor may run, by name (found on PATH at start)
                              or exact absolute path (required for shell); programs that can run
                              others (sh, env, xargs, find, sed, awk, tar, git, python…) are refused
  --allow-exec-capable        shell: accept such programs anyway; they make the allow-list moot, so
                              only inside a sandbox (container, VM) that limits what a command can do
  --timeout-ms <ms>           shell: kill a command (its whole process group) after this long
                              (default 10000, at most 2147483647)
  --max-output-bytes <n>      shell: keep at most this much stdout+stderr (default 65536)
  --kinds <toolcall,processing>  which task kinds to take (default both)
  --ack-wait-ms <ms>          consumer ack wait; progress acks every third of it (default 30000,
                              at most ${MAX_ACK_WAIT_MS}: claims last 3x as long)
  --concurrency <n>           tasks at once per kind (default 4)
  --inbox-bucket <name>       KV bucket of recorded reports (default jetplan_exec_inbox; its own for
                              another --stream or --prefix)
  --inbox-ttl-ms <ms>         forget recorded reports after this long (when the bucket is created;
                              default: keep them; at least 60000, at most 315360000000 = 10 years)
  --durable-prefix <name>     durable consumer names <name>-<kind> (default jetplan-exec; its own for
                              another --prefix); executors of different kinds of work (echo and
                              shell) need their own
  --stale-after-ms <ms>       a command stored longer ago than this runs only if its session still
                              waits on it (one read of the session); default 30000, 0 = always check
Shell commands run with only PATH (the allowed programs' directories), HOME and LANG set.
Environment: JETPLAN_DEMO_DELAY_MS=<ms> delays each echo execution (demo/testing knob).
${CONNECTION_USAGE}`;

/** The longest delay a Node timer takes: beyond it Node fires after 1 ms instead. */
const MAX_TIMER_MS = 2_147_483_647;
/** The longest inbox TTL: 10 years, well inside JetStream's nanosecond max_age. */
const MAX_INBOX_TTL_MS = 315_360_000_000;


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
    for (const flag of ['allow', 'allow-exec-capable', 'timeout-ms', 'max-output-bytes']) {
      if (args.flags[flag] !== undefined) throw new UsageError(`--${flag} only applies to the shell executor`);
    }
    return { name: 'echo', handler: delayed(demoHandler, demoDelay(ctx.io.env)) };
  }
  if (type === 'shell') {
    const allow = (stringFlag(args, 'allow') ?? '').split(',').map((p) => p.trim()).filter((p) => p.length > 0);
    if (allow.length === 0) throw new UsageError('the shell executor needs --allow <prog,prog>');
    const timeoutMs = numberFlag(args, 'timeout-ms');
    const maxOutputBytes = numberFlag(args, 'max-output-bytes');
    const allowExecCapable = boolFlag(args, 'allow-exec-capable');
    return {
      name: `shell (allow: ${allow.join(', ')}${allowExecCapable ? '; exec-capable programs accepted' : ''})`,
      handler: shellHandler({
        allow,
        allowExecCapable,
        ...(timeoutMs !== undefined ? { timeoutMs } : {}),
        ...(maxOutputBytes !== undefined ? { maxOutputBytes } : {}),
      }),
    };
  }
  throw new UsageError(`unknown executor ${type} (expected echo or shell)`);
}

/** The shell handler; an allow-list it refuses (missing or exec-capable program) is a usage error. */
function shellHandler(options: Parameters<typeof createShellHandler>[0]): TaskHandler {
  try {
    return createShellHandler(options);
  } catch (err) {
    if (isShellConfigError(err)) throw new UsageError(`--allow: ${err.message}`);
    throw err;
  }
}

/** `jetplan executor <echo|shell>`: an executor process. */
export const executorCommand: Command = {
  summary: 'run an executor (echo or shell) on NATS',
  usage: USAGE,
  flags: {
    ...CONNECTION_FLAGS,
    allow: 'string',
    'allow-exec-capable': 'boolean',
    'timeout-ms': { min: 1, max: MAX_TIMER_MS },
    'max-output-bytes': 'positive',
    kinds: 'string',
    'ack-wait-ms': { min: 100, max: MAX_ACK_WAIT_MS },
    concurrency: 'positive',
    'inbox-bucket': 'string',
    'inbox-ttl-ms': { min: 60_000, max: MAX_INBOX_TTL_MS },
    'durable-prefix': 'string',
    'stale-after-ms': { min: 0, max: MAX_INBOX_TTL_MS },
  },
  async run(args, ctx) {
    const { name, handler } = handlerFrom(args, ctx);
    const kinds = parseKinds(stringFlag(args, 'kinds'));
    const ackWaitMs = numberFlag(args, 'ack-wait-ms');
    const concurrency = numberFlag(args, 'concurrency');
    const inboxBucket = stringFlag(args, 'inbox-bucket');
    const inboxTtlMs = numberFlag(args, 'inbox-ttl-ms');
    const durablePrefix = stringFlag(args, 'durable-prefix');
    const staleAfterMs = numberFlag(args, 'stale-after-ms');
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
        ...(staleAfterMs !== undefined ? { staleAfterMs } : {}),
      });
    } catch (err) {
      await nc.close().catch(() => undefined);
      throw err;
    }
    ctx.out(`jetplan executor: ${name} taking ${kinds.join(', ')} tasks from ${nc.getServer()}`);
    reportConnection(ctx, nc, 'jetplan executor');
    const why = await untilSignalOrClosed(ctx, nc);
    // An unexpected close is an error: one line on stderr, exit 1.
    if (why === 'closed') ctx.err(`jetplan executor: the NATS connection closed`);
    else ctx.out(`jetplan executor: ${why}, stopping running tasks`);
    await executor.stop();
    await closeConnection(nc);
    ctx.out(`jetplan executor: stopped after ${executor.executed} executions`);
    return why === 'closed' ? 1 : 0;
  },
};
