import { sessionIdArg, stringFlag } from '../../args.js';
import type { Command } from '../../command.js';
import { CONNECTION_FLAGS, CONNECTION_USAGE, withClient } from './connection.js';
import { assertCancellable } from './preflight.js';

const USAGE = `Usage: jetplan cancel <session> [--reason <text>]
Cancels a session on NATS. Refuses (exit 1) a session that is unknown, ended, or has not started
with no input waiting (every input so far rejected).
  --reason <text>      why, recorded in SessionCancelled (default "cancelled"; may be empty)
  --message-id <id>    idempotency key (Nats-Msg-Id); a retry with it succeeds
${CONNECTION_USAGE}`;

/** \`jetplan cancel\`: publish a CancelSession. */
export const cancelCommand: Command = {
  summary: 'cancel a session on NATS',
  usage: USAGE,
  flags: { ...CONNECTION_FLAGS, reason: 'text', 'message-id': 'string' },
  async run(args, ctx) {
    const sessionId = sessionIdArg(args);
    const messageId = stringFlag(args, 'message-id');
    const published = await withClient(args, ctx, async (client) => {
      await assertCancellable(client, sessionId, messageId);
      return client.cancel(sessionId, stringFlag(args, 'reason'), messageId ? { messageId } : {});
    });
    if (ctx.json) ctx.out(JSON.stringify(published));
    else ctx.out(`cancel requested for ${sessionId}`);
    return 0;
  },
};
