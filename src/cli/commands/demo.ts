import { randomUUID } from 'node:crypto';
import { planText } from '../../planning/index.js';
import { bpeTokenCounter } from '../../compaction/index.js';
import { budgetProblem } from '../../machines/decide.js';
import { Backoff, PlannerConfig, SessionId } from '../../protocol/domain.js';
import { listFlag, numberFlag, stringFlag, type ParsedArgs } from '../args.js';
import { AnswerSource, checkedAnswers } from '../answers.js';
import { MAX_INPUT_BYTES } from '../../protocol/parseInput.js';
import { CliError, UsageError } from '../cliErrors.js';
import type { CliContext, Command } from '../command.js';
import { demoDelay } from '../executor.js';
import { readAll } from '../lines.js';
import { closeDemoRuntime, driveSession, openDemoRuntime, resumeHint } from '../session.js';
import { INSPECT_PORT } from '../inspector.js';
import { statusOf } from '../../machines/sessionQueries.js';

const USAGE = `Usage: jetplan demo ["<text>"] [flags]
Plans the text into tasks and runs the session with the built-in demo executor.
Without text, reads it from stdin (when stdin is not a terminal).
  --session <id>        session id (default: a new one)
  --answer <text>       answer to the next clarification (repeatable, used in order;
                        then answers come from stdin lines, or a prompt on a terminal)
  --config <json>       planner config (PlannerConfig fields; an unknown field is refused here as
                        a typo, while the service ignores one from a client of another version)
  --budget <n>          context token budget
  --max-attempts <n>    a failure at this attempt or later is final (default 3)
  --backoff-ms <n>      base retry delay in milliseconds
  --inspect <port>      watch the statecharts live in the Stately inspector (http://127.0.0.1:<port>, this machine only)
Environment: JETPLAN_DEMO_DELAY_MS=<ms> delays each demo execution (demo/testing knob).`;

/** Reads the flags that make up the session's PlannerConfig; invalid ones are usage errors. */
export function configFromArgs(args: ParsedArgs): Partial<PlannerConfig> {
  let config: Record<string, unknown> = {};
  const json = stringFlag(args, 'config');
  if (json !== undefined) {
    try {
      config = JSON.parse(json) as Record<string, unknown>;
    } catch {
      throw new UsageError('--config is not valid JSON');
    }
    if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new UsageError('--config must be a JSON object');
  }
  const budget = numberFlag(args, 'budget');
  const maxAttempts = numberFlag(args, 'max-attempts');
  const backoffMs = numberFlag(args, 'backoff-ms');
  if (budget !== undefined) config.tokenBudget = budget;
  if (maxAttempts !== undefined) config.maxAttempts = maxAttempts;
  if (backoffMs !== undefined) config.backoff = { ...(config.backoff as object | undefined), baseMs: backoffMs };
  // Strict, nested objects too: a misspelt key (tokenbudget, backoff.basems) must not be ignored.
  const parsed = PlannerConfig.partial().extend({ backoff: Backoff.strict().optional() }).strict().safeParse(config);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UsageError(`invalid config: ${issue?.path.join('.') || 'config'}: ${issue?.message ?? 'bad value'}`);
  }
  // The planner's own rule, checked before a session exists (else a refused session is left behind).
  const tooSmall = budgetProblem(PlannerConfig.parse(parsed.data), (text) => bpeTokenCounter.count(text));
  if (tooSmall) throw new UsageError(`invalid config: ${tooSmall}`);
  return parsed.data;
}

/** The answers given with --answer, which must not be empty or too long. */
export function answerFlags(args: ParsedArgs): string[] {
  return checkedAnswers(listFlag(args, 'answer'));
}

async function sessionText(args: ParsedArgs, ctx: CliContext): Promise<{ text: string; fromStdin: boolean }> {
  if (args.positionals.length > 0) return { text: args.positionals.join(' '), fromStdin: false };
  if (ctx.io.isTTY) throw new UsageError('demo needs the text to plan (an argument, or piped on stdin)');
  return { text: await readAll(ctx.io.stdin, MAX_INPUT_BYTES), fromStdin: true };
}

function sessionIdFrom(args: ParsedArgs): string {
  const id = stringFlag(args, 'session');
  if (id === undefined) return `s-${randomUUID().slice(0, 8)}`;
  const parsed = SessionId.safeParse(id);
  if (!parsed.success) throw new UsageError(`--session: ${parsed.error.issues[0]?.message ?? 'invalid session id'}`);
  return id;
}

/** `jetplan demo`: a whole session, start to finish, on the file store in the data dir. */
export const demoCommand: Command = {
  summary: 'plan text into tasks and run them with the demo executor',
  usage: USAGE,
  flags: { session: 'string', answer: 'strings', config: 'string', budget: 'positive', 'max-attempts': 'positive', 'backoff-ms': 'number', inspect: INSPECT_PORT },
  async run(args, ctx) {
    const config = configFromArgs(args);
    const answers = answerFlags(args);
    const delayMs = demoDelay(ctx.io.env);
    const requested = stringFlag(args, 'session') !== undefined;
    let sessionId = sessionIdFrom(args);
    const { text, fromStdin } = await sessionText(args, ctx);
    planText(text); // unusable text: a ValidationError (exit 2) before any session exists
    const demo = await openDemoRuntime(ctx, delayMs, numberFlag(args, 'inspect'));
    try {
      // A session whose every input was rejected has not started: it takes this text.
      for (let state = await demo.runtime.repository.load(sessionId); state.version > 0 && statusOf(state) !== 'idle'; state = await demo.runtime.repository.load(sessionId)) {
        if (requested) {
          // Only an open session can be continued; an ended one can be looked at.
          const next = statusOf(state) === 'active' ? `continue it with ${resumeHint(ctx, sessionId)}` : `it is ${statusOf(state)}; see jetplan replay ${sessionId}`;
          throw new CliError(`session ${sessionId} already exists (${next})`);
        }
        sessionId = sessionIdFrom(args);
      }
    } catch (error) {
      await closeDemoRuntime(demo);
      throw error;
    }
    // Named once its first input is stored (the first commit, before the driver's progress lines):
    // an id shown earlier could be one a kill at that moment leaves with nothing to resume.
    if (!ctx.json) {
      const off = demo.runtime.planner.onCommit((commit) => {
        if (commit.sessionId !== sessionId) return;
        off();
        ctx.out(`session ${sessionId}`);
      });
    }
    const source = new AnswerSource(answers, ctx.io, !fromStdin);
    return driveSession(ctx, demo, sessionId, source, async () => {
      const { events } = await demo.runtime.planner.handle(sessionId, { type: 'SubmitInput', text, config }, { correlationId: sessionId });
      // Refused as a whole (a config the planner will not start with): nothing will run, so end now.
      const rejected = events.find((e) => e.type === 'InputRejected');
      if (rejected) throw new CliError((rejected.data as { reason: string }).reason, 2);
    });
  },
};
