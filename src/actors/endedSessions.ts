/**
 * Which sessions a retention purge may remove: those that have ended, or never started (every input
 * rejected: logs of bad inputs), and whose last event is old enough. Shared by the NATS purge and
 * the data dir's.
 */
import { SessionRepository } from './sessionRepository.js';
import { isCorruptLogError } from '../errors.js';
import { ENDING_EVENT_TYPES, statusOf } from '../machines/sessionQueries.js';
import type { EventStore, LatestEvent, LatestEvents } from '../persistence/eventStore.js';

/** Events that may follow a session's end (a late input's answer): the fold tells. */
const TRAILING = new Set(['InputRejected', 'ReportIgnored', 'InputRepeated']);

/** Options of {@link endedSessions}. */
export interface EndedSessionsOptions {
  /**
   * Whether the log of a session that cannot be folded was cut at the front (its first event is
   * not version 1) by a purge that did not finish. Such a session is removed, not an error that
   * stops every later purge. Without it, an unreadable log fails the scan.
   */
  cutAtFront?: (sessionId: string) => Promise<boolean>;
}

/** A session that never started: its id, its version (at which a purge fences it) and its latest event's time. */
export interface NeverStarted {
  id: string;
  version: number;
  timestamp: number;
}

/** The sessions a purge removes (`ids`, sorted) and those it keeps: ended too recently, open. */
export interface EndedSessions {
  ids: string[];
  /** Those of `ids` that never started, with their versions: a later SubmitInput would start them. */
  neverStarted: NeverStarted[];
  recent: number;
  open: number;
}

type Verdict = { kind: 'open' } | { kind: 'ended' } | { kind: 'neverStarted'; version: number };

/**
 * Whether the session whose latest event is `latest` has ended or never started (folds it only when
 * that event does not tell). A later input to a removed one that never started starts it as it
 * would have anyway.
 */
async function verdictOf(store: EventStore, latest: LatestEvent, o: EndedSessionsOptions): Promise<Verdict> {
  if (ENDING_EVENT_TYPES.has(latest.type)) return { kind: 'ended' };
  if (!TRAILING.has(latest.type)) return { kind: 'open' };
  try {
    const { state } = await new SessionRepository({ store }).rebuild(latest.streamId);
    const status = statusOf(state);
    if (status === 'idle') return { kind: 'neverStarted', version: state.version };
    return { kind: ['completed', 'failed', 'cancelled'].includes(status) ? 'ended' : 'open' };
  } catch (err) {
    // Only an ended session's log loses its front: a purge deletes it oldest first.
    if (isCorruptLogError(err) && o.cutAtFront && (await o.cutAtFront(latest.streamId))) return { kind: 'ended' };
    throw err;
  }
}

/** The ended sessions of `store` whose last event is at or before `cutoff` (ms since the epoch). */
export async function endedSessions(store: EventStore & LatestEvents, cutoff: number, o: EndedSessionsOptions = {}): Promise<EndedSessions> {
  // Collected first: folding a session while the scan's reader waits would hold it open.
  const latest: LatestEvent[] = [];
  for await (const event of store.latestEvents()) latest.push(event);
  const ids: string[] = [];
  const neverStarted: NeverStarted[] = [];
  let recent = 0;
  let open = 0;
  for (const event of latest) {
    const verdict = await verdictOf(store, event, o);
    if (verdict.kind === 'open') open++;
    else if (event.timestamp > cutoff) recent++;
    else {
      ids.push(event.streamId);
      if (verdict.kind === 'neverStarted') neverStarted.push({ id: event.streamId, version: verdict.version, timestamp: event.timestamp });
    }
  }
  return { ids: ids.sort(), neverStarted, recent, open };
}
