import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SessionNotFoundError } from '../../errors.js';
import { outstanding, statusOf } from '../../machines/sessionQueries.js';
import { HEADER } from '../../actors/bus.js';
import { numberFlag, sessionIdArg } from '../args.js';
import { AnswerSource } from '../answers.js';
import type { Command } from '../command.js';
import { CliError } from '../cliErrors.js';
import { demoDelay } from '../executor.js';
import { closeDemoRuntime, driveSession, openDemoRuntime, printFinished, type DemoRuntime } from '../session.js';
import { INSPECT_PORT } from '../inspector.js';
import { answerFlags } from './demo.js';

const USAGE = `Usage: jetplan resume <session> [--answer <text>]...
Continues a session after a crash, an interrupt or an unanswered question: work left open is
published again (executions already recorded are not run again), an open question is asked again.
  --answer <text>   answer to the next clarification (repeatable; then stdin lines or a prompt)
  --inspect <port>  watch the statecharts live in the Stately inspector (http://127.0.0.1:<port>, this machine only)`;

/** Re-asks the session's open question, if any, on the bus, as the planner asked it. */
async function reask(demo: DemoRuntime, sessionId: string): Promise<void> {
  const { runtime } = demo;
  const command = outstanding(await runtime.repository.load(sessionId)).command;
  if (command?.type !== 'RequestClarification') return;
  await runtime.bus.publish(runtime.subjects.clarify(sessionId), command, {
    [HEADER.type]: command.type,
    [HEADER.messageId]: `reask.${sessionId}.${command.taskId}`,
    [HEADER.correlationId]: sessionId,
  });
}

/** `jetplan resume <session>`: runs an open session to completion, like demo. */
export const resumeCommand: Command = {
  summary: 'continue a session (after a crash, Ctrl-C or an unanswered question)',
  usage: USAGE,
  flags: { answer: 'strings', inspect: INSPECT_PORT },
  async run(args, ctx) {
    const sessionId = sessionIdArg(args);
    const answers = answerFlags(args);
    const delayMs = demoDelay(ctx.io.env);
    // No log, no session: said without creating the directory (a mistyped --data-dir).
    if (!existsSync(join(ctx.dataDir, 'events.log'))) {
      // A data dir that is a file is a mistake of its own, not an unknown session.
      if (existsSync(ctx.dataDir) && !statSync(ctx.dataDir).isDirectory()) throw new CliError(`data directory ${ctx.dataDir} is not a directory`);
      throw new SessionNotFoundError(sessionId);
    }
    const demo = await openDemoRuntime(ctx, delayMs, numberFlag(args, 'inspect'));
    let state;
    try {
      state = await demo.runtime.repository.load(sessionId);
      if (state.version === 0) throw new SessionNotFoundError(sessionId);
    } catch (error) {
      await closeDemoRuntime(demo);
      throw error;
    }
    if (!ctx.json) ctx.out(`session ${sessionId}`);
    if (statusOf(state) !== 'active') {
      await closeDemoRuntime(demo);
      const code = printFinished(ctx, state); // as demo exits: 1 for a session that failed or was cancelled
      // Nothing will ask: say so rather than drop the answers silently.
      if (answers.length > 0) ctx.err(`jetplan: session ${sessionId} is ${statusOf(state)}; --answer not used`);
      return code;
    }
    const source = new AnswerSource(answers, ctx.io, true);
    return driveSession(ctx, demo, sessionId, source, async () => {
      await demo.runtime.recover({ sessionId });
      await reask(demo, sessionId);
    });
  },
};
