/**
 * Which sessions a retention purge may remove: those that have ended, or never started (every input
 * rejected: logs of bad inputs), and whose last event is old enough. Shared by the NATS purge and
 * the data dir's.
 */
import { SessionRepository } from './sessionRepository.js';
import { ENDING_EVENT_TYPES, statusOf } from '../machines/sessionQueries.js';
import type { EventStore, LatestEvent, LatestEvents } from '../persistence/eventStore.js';

/** Events that may follow a session's end (a late input's answer): the fold tells. */
const TRAILING = new Set(['InputRejected', 'ReportIgnored', 'InputRepeated']);

/**
 * Whether the session whose latest event is `latest` has ended or never started (folds it only when
 * that event does not tell). A later input to a removed one that never started starts it as it
 * would have anyway.
 */
async function hasEnded(store: EventStore, latest: LatestEvent): Promise<boolean> {
  if (ENDING_EVENT_TYPES.has(latest.type)) return true;
  if (!TRAILING.has(latest.type)) return false;
  const { state } = await new SessionRepository({ store }).rebuild(latest.streamId);
  return ['completed', 'failed', 'cancelled', 'idle'].includes(statusOf(state));
}

/** The sessions a purge removes (`ids`, sorted) and those it keeps: ended too recently, open. */
export interface EndedSessions {
  ids: string[];
  recent: number;
  open: number;
}

/** The ended sessions of `store` whose last event is at or before `cutoff` (ms since the epoch). */
export async function endedSessions(store: EventStore & LatestEvents, cutoff: number): Promise<EndedSessions> {
  // Collected first: folding a session while the scan's reader waits would hold it open.
  const latest: LatestEvent[] = [];
  for await (const event of store.latestEvents()) latest.push(event);
  const ids: string[] = [];
  let recent = 0;
  let open = 0;
  for (const event of latest) {
    if (!(await hasEnded(store, event))) open++;
    else if (event.timestamp > cutoff) recent++;
    else ids.push(event.streamId);
  }
  return { ids: ids.sort(), recent, open };
}
