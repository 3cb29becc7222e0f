/**
 * The guard against running old commands that their session no longer waits on. A durable
 * consumer made under a new durable prefix starts at the beginning of the stream, and with a new
 * inbox bucket it has no record of earlier reports: without this guard a new executor fleet would
 * run every ExecuteTask ever published again, those of sessions that ended and those of open
 * sessions that were already reported or superseded by a later attempt alike. A command older than
 * `staleAfterMs` (by the time the stream stored it) is run only if its session, rebuilt from its
 * log, is still waiting on exactly that dispatch (`outstanding(state).command` is an ExecuteTask
 * with its dispatch id); any other is acknowledged without running it. That costs one read of the
 * session's log per stale command. Fresh commands are not looked up: a session rarely moves on
 * between the dispatch of a command and its delivery, and if it does the planner ignores the late
 * report.
 */
import type { JsMsg } from '@nats-io/jetstream';
import type { SessionRepository } from '../actors/sessionRepository.js';
import { outstanding, statusOf } from '../machines/sessionQueries.js';
import type { ExecuteTask } from '../protocol/commands.js';

/**
 * Default age (ms) from which a command's session is looked up: the default ack wait. Commands
 * normally reach a free executor within milliseconds of their dispatch; one older than this has
 * waited in a backlog (no executor running, all busy) or is being delivered again (a redelivery, a
 * new consumer reading from the start), which is when its session may have moved on meanwhile.
 */
export const DEFAULT_STALE_AFTER_MS = 30_000;

/** When the stream stored `m` (ms since the epoch, by the server's clock). */
export function storedAtMs(m: JsMsg): number {
  return Number(m.timestampNanos / 1_000_000n);
}

/** How long ago (ms) the stream stored `m`, by this process's clock. */
export function messageAgeMs(m: JsMsg, now: number = Date.now()): number {
  return now - Number(m.timestampNanos / 1_000_000n);
}

/**
 * What to do with a stale command, from its session's log:
 * - `run`: the session waits on exactly this dispatch (`outstanding`), or has no events at all
 *   (`unknown session`: nothing tells the command is not wanted, so it runs as before);
 * - `skip`: the session ended (`completed`, `failed`, `cancelled`), or it is open and waits on
 *   something else (`superseded`): `waitingOn` is the dispatch id it waits on now, or null when it
 *   waits on no dispatch (a question, a retry timer, a task not dispatched yet, nothing at all).
 */
export type StaleVerdict =
  | { action: 'run'; reason: 'outstanding' | 'unknown session' }
  | { action: 'skip'; reason: 'completed' | 'failed' | 'cancelled' }
  | { action: 'skip'; reason: 'superseded'; waitingOn: string | null };

/**
 * Whether the session of `task` still waits on its dispatch: the session is rebuilt from its log
 * alone, one read of the log. Not from a remembered state: a session's log can be replaced (purged
 * and written again under the same id, restored from a backup), and a remembered state would then
 * skip the dispatch the new log waits on. Rejects when the read or the fold fails (the caller then
 * runs the command).
 */
export async function staleVerdict(repository: SessionRepository, task: ExecuteTask): Promise<StaleVerdict> {
  const { state, exists } = await repository.rebuild(task.sessionId);
  if (!exists) return { action: 'run', reason: 'unknown session' };
  const status = statusOf(state);
  if (status === 'completed' || status === 'failed' || status === 'cancelled') return { action: 'skip', reason: status };
  const { command } = outstanding(state);
  const waitingOn = command?.type === 'ExecuteTask' ? command.dispatchId : null;
  if (waitingOn === task.dispatchId) return { action: 'run', reason: 'outstanding' };
  return { action: 'skip', reason: 'superseded', waitingOn };
}
