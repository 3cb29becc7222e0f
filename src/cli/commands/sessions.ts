import { SessionRepository } from '../../actors/sessionRepository.js';
import type { EventStore } from '../../persistence/eventStore.js';
import { noPositionals } from '../args.js';
import type { Command } from '../command.js';
import { openReadStore } from '../stores.js';
import { iso, stateView } from '../view.js';

const USAGE = `Usage: jetplan sessions [--json]
Lists the sessions in the data dir: id, status, tasks done/total, time of the last event.
  --json          print an array of {sessionId, status, done, total, lastEventAt}
  --nats <url>    read from a NATS deployment instead of the data dir`;

/** One row of the session list. */
export interface SessionRow {
  sessionId: string;
  status: string;
  done: number;
  total: number;
  lastEventAt: string;
}

/** Every session, rebuilt in one pass over the whole log (not one read per session). */
async function rows(store: EventStore): Promise<SessionRow[]> {
  const result: SessionRow[] = [];
  for (const [sessionId, { state, lastTimestamp }] of await new SessionRepository({ store }).rebuildAll()) {
    const view = stateView(state);
    const done = view.tasks.filter((t) => t.status === 'Completed').length;
    result.push({ sessionId, status: view.status, done, total: view.tasks.length, lastEventAt: iso(lastTimestamp) });
  }
  return result.sort((a, b) => a.lastEventAt.localeCompare(b.lastEventAt) || a.sessionId.localeCompare(b.sessionId));
}

/** `jetplan sessions`: every session in the store. */
export const sessionsCommand: Command = {
  summary: 'list sessions',
  usage: USAGE,
  flags: { nats: 'string' },
  async run(args, ctx) {
    noPositionals(args);
    const store = await openReadStore(args, ctx);
    let list: SessionRow[] = [];
    if (store) {
      try {
        list = await rows(store);
      } finally {
        await store.close();
      }
    }
    if (ctx.json) ctx.out(JSON.stringify(list));
    else if (list.length === 0) ctx.out('no sessions');
    else for (const r of list) ctx.out(`${r.sessionId}  ${r.status}  ${r.done}/${r.total} tasks  ${r.lastEventAt}`);
    return 0;
  },
};
