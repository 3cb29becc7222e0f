import { bpeTokenCounter, countItemTokens } from '../../../compaction/index.js';
import { sessionIdArg } from '../../args.js';
import type { Command } from '../../command.js';
import { stateLines } from '../../view.js';
import { CONNECTION_FLAGS, CONNECTION_USAGE, withClient } from './connection.js';

const USAGE = `Usage: jetplan status <session> [--json]
Prints a session's current state, rebuilt from its events on NATS JetStream.
  --json               the state as one JSON object (tasks, context, its token count)
${CONNECTION_USAGE}`;

/** \`jetplan status\`: a session's read model. */
export const statusCommand: Command = {
  summary: "print a session's state from NATS",
  usage: USAGE,
  flags: { ...CONNECTION_FLAGS },
  async run(args, ctx) {
    const sessionId = sessionIdArg(args);
    const state = await withClient(args, ctx, (client) => client.status(sessionId));
    const view = { ...state, context: { ...state.context, tokens: countItemTokens(state.context.items, bpeTokenCounter) } };
    if (ctx.json) ctx.out(JSON.stringify(view));
    else for (const line of stateLines(view)) ctx.out(line);
    return 0;
  },
};
