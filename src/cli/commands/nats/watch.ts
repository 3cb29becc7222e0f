import { isSessionNotFoundError } from '../../../errors.js';
import { AnswerSource } from '../../answers.js';
import { listFlag, onePositional } from '../../args.js';
import type { Command } from '../../command.js';
import { timelineLine } from '../../view.js';
import { CONNECTION_FLAGS, CONNECTION_USAGE, withClient } from './connection.js';

const USAGE = `Usage: jetplan watch <session> [--answer <text>]... [--json]
Prints a session's events as they are stored on NATS (from its first event), and exits when the
session completes (0), fails or is cancelled (1), or when every input of a session that has not
started was rejected and no other waits (1). A session not started yet is waited for (on a
terminal, it says so). On a terminal, an open clarification question is
asked and the answer published; --answer gives answers in order instead. Otherwise it says on
stderr how to answer, and goes on waiting.
  --answer <text>   an answer to the next question (repeatable)
  --json            one event per line as JSON
${CONNECTION_USAGE}`;

const EXIT: Record<string, number> = { SessionCompleted: 0, SessionFailed: 1, SessionCancelled: 1 };

/** \`jetplan watch\`: follow a session live, answering its questions. */
export const watchCommand: Command = {
  summary: "follow a session's events on NATS, answering its questions",
  usage: USAGE,
  flags: { ...CONNECTION_FLAGS, answer: 'strings' },
  async run(args, ctx) {
    const sessionId = onePositional(args, 'a session id');
    const answers = listFlag(args, 'answer');
    return withClient(args, ctx, async (client) => {
      // Events up to the current version are history: only a question still open then is asked.
      let caughtUp = 0;
      try {
        caughtUp = (await client.status(sessionId)).version;
      } catch (err) {
        if (!isSessionNotFoundError(err)) throw err;
        // Not started yet: wait for it (a watcher may start before the submit, so it misses
        // nothing). On a terminal, say so, since nothing else shows until the first event.
        if (ctx.io.isTTY && !(await client.hasInput(sessionId))) ctx.out(`waiting for session ${sessionId}: it has no events or input yet`);
      }
      const source = new AnswerSource(answers, ctx.io, ctx.io.isTTY);
      const canAsk = answers.length > 0 || ctx.io.isTTY;
      const watch = client.watch(sessionId, { fromStart: true });
      let interrupted = false;
      const off = ctx.io.onSignal(() => {
        interrupted = true;
        source.close();
        void watch.close();
      });
      let open: { taskId: string; question: string; seq: number } | undefined;
      let asking: Promise<void> | undefined;
      const asked = new Set<number>();
      let code = 130;
      let lastSeq = 0;
      let done = false;
      let started = false;
      /** Whether no input newer than the one at stream sequence `seq` is waiting for the service. */
      const nothingWaits = async (seq: number | undefined): Promise<boolean> =>
        seq !== undefined && ((await client.lastInputSequence(sessionId)) ?? 0) <= seq;
      const maybeAsk = (): void => {
        if (done || !open || lastSeq < caughtUp || asked.has(open.seq) || asking) return;
        const q = open;
        asked.add(q.seq);
        if (!canAsk) {
          // Nobody here can answer (no terminal, no --answer): say how, rather than wait in silence.
          ctx.err(`jetplan: ${q.taskId} waits for an answer: jetplan answer ${sessionId} ${q.taskId} "<answer>" (or watch with --answer)`);
          return;
        }
        asking = (async () => {
          if (ctx.io.isTTY) ctx.out(`? ${q.taskId}: ${q.question}`);
          const answer = await source.next();
          if (answer !== undefined && !interrupted && !done) await client.answer(sessionId, q.taskId, answer);
        })()
          .catch((err: unknown) => ctx.err(`jetplan: answer not sent: ${(err as Error).message}`))
          .finally(() => {
            asking = undefined;
            maybeAsk(); // a question that came while this one was asked
          });
      };
      try {
        for await (const event of watch) {
          ctx.out(ctx.json ? JSON.stringify(event) : timelineLine(event));
          if (event.type === 'ClarificationRequested') open = { taskId: event.data.taskId, question: event.data.question, seq: event.sequence };
          else if (event.type === 'ClarificationProvided') open = undefined;
          const exit = EXIT[event.type];
          if (exit !== undefined) {
            code = exit;
            break;
          }
          if (event.type === 'SessionStarted') started = true;
          else if (!started && event.type === 'InputRejected' && (await nothingWaits(event.data.streamSequence))) {
            // Every input so far was rejected and none is on its way: the session cannot start.
            ctx.err(`jetplan: session ${sessionId} has not started: every input was rejected, the last with: ${event.data.reason}`);
            code = 1;
            break;
          }
          lastSeq = event.sequence;
          maybeAsk();
        }
      } finally {
        done = true;
        off();
        source.close();
        await watch.close();
        await asking;
      }
      return interrupted ? 130 : code;
    });
  },
};
