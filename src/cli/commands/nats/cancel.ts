import { onePositional, stringFlag } from '../../args.js';
import type { Command } from '../../command.js';
import { CONNECTION_FLAGS, CONNECTION_USAGE, withClient } from './connection.js';

const USAGE = `Usage: jetplan cancel <session> [--reason <text>]
Cancels a session on NATS.
${CONNECTION_USAGE}`;

/** \`jetplan cancel\`: publish a CancelSession. */
export const cancelCommand: Command = {
  summary: 'cancel a session on NATS',
  usage: USAGE,
  flags: { ...CONNECTION_FLAGS, reason: 'string' },
  async run(args, ctx) {
    const sessionId = onePositional(args, 'a session id');
    const published = await withClient(args, ctx, (client) => client.cancel(sessionId, stringFlag(args, 'reason')));
    if (ctx.json) ctx.out(JSON.stringify(published));
    else ctx.out(`cancel requested for ${sessionId}`);
    return 0;
  },
};
