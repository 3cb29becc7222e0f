import { checkedSessionId, stringFlag } from '../../args.js';
import { UsageError } from '../../cliErrors.js';
import type { Command } from '../../command.js';
import { CONNECTION_FLAGS, CONNECTION_USAGE, withClient } from './connection.js';
import { assertAnswerable } from './preflight.js';

const USAGE = `Usage: jetplan answer <session> <taskId> "answer"
Answers a task's clarification question in a session on NATS. Refuses (exit 1) when the task
is not waiting for an answer.
  --message-id <id>    idempotency key (Nats-Msg-Id)
${CONNECTION_USAGE}`;

/** \`jetplan answer\`: publish a ProvideClarification. */
export const answerCommand: Command = {
  summary: "answer a task's question in a session on NATS",
  usage: USAGE,
  flags: { ...CONNECTION_FLAGS, 'message-id': 'string' },
  async run(args, ctx) {
    const [sessionId, taskId, ...rest] = args.positionals;
    const answer = rest.join(' ').trim();
    if (!sessionId || !taskId || answer === '') throw new UsageError('answer needs <session> <taskId> "answer"');
    checkedSessionId(sessionId);
    const messageId = stringFlag(args, 'message-id');
    const published = await withClient(args, ctx, async (client) => {
      await assertAnswerable(client, sessionId, taskId, messageId);
      return client.answer(sessionId, taskId, answer, messageId ? { messageId } : {});
    });
    if (ctx.json) ctx.out(JSON.stringify(published));
    else ctx.out(`answered ${taskId} in ${sessionId}`);
    return 0;
  },
};
