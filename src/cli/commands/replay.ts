import { SessionRepository } from '../../actors/sessionRepository.js';
import { SessionNotFoundError } from '../../errors.js';
import type { EventStore } from '../../persistence/eventStore.js';
import { numberFlag, sessionIdArg } from '../args.js';
import type { Command } from '../command.js';
import { openReadStore } from '../stores.js';
import { stateLines, stateView, timelineLine } from '../view.js';

const USAGE = `Usage: jetplan replay <session> [--until <seq>] [--json]
Rebuilds a session from its event log alone and prints its state and the timeline of its events.
  --until <seq>   stop after event <seq> (a positive integer)
  --json          print {state, events}
  --nats <url>    read from a NATS deployment instead of the data dir`;

async function rebuild(store: EventStore, sessionId: string, until: number | undefined) {
  const { state, exists } = await new SessionRepository({ store }).rebuild(sessionId, until);
  if (!exists) throw new SessionNotFoundError(sessionId);
  const { events } = await store.readStream(sessionId, until === undefined ? {} : { to: until });
  return { state: stateView(state), events };
}

/** `jetplan replay <session>`: the session as its log alone rebuilds it. */
export const replayCommand: Command = {
  summary: 'rebuild a session from its log and print its state and timeline',
  usage: USAGE,
  // Event sequences start at 1: 0, -1, 1.5 or a word are one mistake, refused alike as the flag is parsed.
  flags: { until: 'positive', nats: 'string' },
  async run(args, ctx) {
    const sessionId = sessionIdArg(args);
    const until = numberFlag(args, 'until');
    const store = await openReadStore(args, ctx);
    if (!store) throw new SessionNotFoundError(sessionId);
    let result;
    try {
      result = await rebuild(store, sessionId, until);
    } finally {
      await store.close();
    }
    if (ctx.json) {
      ctx.out(JSON.stringify({ state: result.state, events: result.events }));
      return 0;
    }
    for (const line of stateLines(result.state)) ctx.out(line);
    ctx.out(`timeline (${result.events.length} events):`);
    for (const event of result.events) ctx.out(timelineLine(event));
    return 0;
  },
};
