/**
 * The guard against running old commands that their session no longer waits on. A durable
 * consumer made under a new durable prefix starts at the beginning of the stream, and with a new
 * inbox bucket it has no record of earlier reports: without this guard a new executor fleet would
 * run every ExecuteTask ever published again, those of sessions that ended and those of open
 * sessions that were already reported or superseded by a later attempt alike. A command older than
 * `staleAfterMs` (by the time the stream stored it) is run only if its session, rebuilt from its
 * log, is still waiting on exactly that dispatch (`outstanding(state).command` is an ExecuteTask
 * with its dispatch id); any other is acknowledged without running it. That costs one read of the
 * session's log per stale command. A fresh command costs one read of its session's latest event
 * (see {@link StaleCheck.movedOn}): a session cancelled while its command waited for a free
 * executor must not have the command run. That event settles the verdict when it is the dispatch
 * itself, a later dispatch or the session's end ({@link tipVerdict}); after anything else the log
 * is read. StaleCheck applies the guard to each command an executor takes.
 */
import type { JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { SessionRepository } from '../actors/sessionRepository.js';
import { outstanding, statusOf } from '../machines/sessionQueries.js';
import type { SessionState } from '../machines/sessionState.js';
import { JetStreamEventStore } from '../persistence/jetstream/jetStreamEventStore.js';
import type { ExecuteTask } from '../protocol/commands.js';
import type { DomainEvent } from '../protocol/events.js';
import { decodeEvent } from '../protocol/upcasters.js';

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
  return verdictOf(state, task);
}

/** The verdict on `task` of its session in `state` (a session with at least one event). */
export function verdictOf(state: SessionState, task: ExecuteTask): StaleVerdict {
  const status = statusOf(state);
  if (status === 'completed' || status === 'failed' || status === 'cancelled') return { action: 'skip', reason: status };
  const { command } = outstanding(state);
  const waitingOn = command?.type === 'ExecuteTask' ? command.dispatchId : null;
  if (waitingOn === task.dispatchId) return { action: 'run', reason: 'outstanding' };
  return { action: 'skip', reason: 'superseded', waitingOn };
}

/**
 * The verdict on `task` that its session's latest event `tip` settles alone, exactly the one
 * {@link staleVerdict} would give from the whole log; undefined when only the log can tell.
 * - An end (SessionCompleted, SessionFailed, SessionCancelled): skipped, for that end. Whatever
 *   state it follows, a session is not active after it (an active one ends, an ended one stays
 *   so, an idle one is cancelled or stays idle), and `outstanding` names no dispatch of a session
 *   that is not active: the rebuild skips too, however the log was written. The reason is the
 *   rebuild's too, as the decider ends only active sessions.
 * - A TaskDispatched: the session waits on that dispatch, so the command runs if it is that one
 *   and is superseded by it if not. The decider appends a TaskDispatched only for the current task
 *   of a session ready to run it (`advance`, folding each event as it makes it): after it that
 *   task is Running with that dispatch id, which is what `outstanding` names. A cut append keeps
 *   a prefix of such events and the next decision starts from the log, so this holds of every log
 *   the planner writes (the check ran on its own TaskDispatched on the same grounds before).
 * Anything else leaves the session waiting on the dispatch or not according to what came before
 * (an input taken while the task runs, a report, a question, a retry timer, an input rejected
 * after the end): undefined.
 */
export function tipVerdict(tip: DomainEvent, task: ExecuteTask): StaleVerdict | undefined {
  switch (tip.type) {
    case 'SessionCompleted':
      return { action: 'skip', reason: 'completed' };
    case 'SessionFailed':
      return { action: 'skip', reason: 'failed' };
    case 'SessionCancelled':
      return { action: 'skip', reason: 'cancelled' };
    case 'TaskDispatched':
      if (tip.data.dispatchId === task.dispatchId) return { action: 'run', reason: 'outstanding' };
      return { action: 'skip', reason: 'superseded', waitingOn: tip.data.dispatchId };
    default:
      return undefined;
  }
}

/**
 * `raw`, a session's latest event as the store gives it, upcast and checked against its schema;
 * undefined when it is not a valid event of a known type. The store checks only the envelope, and
 * a verdict drawn from the event alone must not rest on fields that are not what they claim.
 */
function checkedEvent(raw: DomainEvent, where: string): DomainEvent | undefined {
  try {
    return decodeEvent(raw, where);
  } catch {
    return undefined;
  }
}

/** The longest the stale check may take before the command is run unchecked (fail-open). */
const STALE_CHECK_LIMIT_MS = 10_000;

/** What a StaleCheck reads sessions from and how it judges commands (createExecutor's options, resolved). */
export interface StaleCheckOptions {
  nc: NatsConnection;
  streamName: string;
  subjectPrefix: string;
  staleAfterMs: number;
  ackWaitMs: number;
  logger: Logger;
}

/**
 * The stale-command guard of one executor: which commands to look up, the store their sessions
 * are read through (opened on the first stale command, closed by `close`), and the time limit.
 */
export class StaleCheck {
  readonly #opts: StaleCheckOptions;
  /** When each of this executor's consumers was created (server time), by durable name. */
  readonly #consumerCreatedMs = new Map<string, number>();
  /** Sessions of stale commands are read through a store opened on the first one (no stream changes). */
  #sessions: Promise<{ store: JetStreamEventStore; repository: SessionRepository }> | undefined;

  constructor(opts: StaleCheckOptions) {
    this.#opts = opts;
  }

  /** Records when the consumer `durable` was created (server time, ms since the epoch). */
  consumerCreated(durable: string, createdMs: number): void {
    this.#consumerCreatedMs.set(durable, createdMs);
  }

  /** Whether `m` is stale: old, delivered again, or stored before its consumer existed. */
  isStale(m: JsMsg): boolean {
    // A new fleet reads the stream from its start: however recent, such a command is checked.
    const beforeConsumer = storedAtMs(m) < (this.#consumerCreatedMs.get(m.info.consumer) ?? -Infinity);
    return messageAgeMs(m) >= this.#opts.staleAfterMs || m.redelivered || beforeConsumer;
  }

  /**
   * Whether a stale command's session, rebuilt from its log, no longer waits on its dispatch. A
   * session with no events, or a read or fold that fails, counts as waiting: the command is run,
   * and the inbox and claims still keep a dispatch from running twice.
   */
  async notAwaited(m: JsMsg, task: ExecuteTask, log: object): Promise<boolean> {
    const ageMs = messageAgeMs(m);
    const verdict = await this.#judged({ ...log, ageMs }, async () => staleVerdict(await this.#sessionRepository(), task));
    if (verdict.action === 'run') return false;
    const { action: _, ...why } = verdict; // reason (completed, failed, cancelled, superseded), waitingOn
    this.#opts.logger.info({ ...log, ageMs, ...why }, 'stale command not awaited by its session; acked without running it');
    return true;
  }

  /**
   * Whether the session of a fresh command has moved on from its dispatch, cancelled say while the
   * command waited for a free executor. Called once the executor follows the session's events, so
   * that an end after this read is seen there. Fails open, as {@link notAwaited}.
   */
  async movedOn(task: ExecuteTask, log: object): Promise<boolean> {
    const verdict = await this.#judged(log, () => this.#freshVerdict(task), 'could not read the session of a command; running it');
    if (verdict.action === 'run') return false;
    const { action: _, ...why } = verdict;
    this.#opts.logger.info({ ...log, ...why }, 'command no longer awaited by its session; acked without running it');
    return true;
  }

  /**
   * The verdict on a fresh command: one message get of its session's latest event, which settles
   * it when it is the dispatch's own TaskDispatched, a later one or an end ({@link tipVerdict});
   * otherwise the session is rebuilt from its log, as for a stale command. Not a tail of the log
   * instead: the JetStream store reads any range but the latest event with an ordered consumer
   * from the session's first event (it checks the versions from 1 on), so a tail costs as many
   * messages as the whole log, and a rebuild after it would read it twice.
   */
  async #freshVerdict(task: ExecuteTask): Promise<StaleVerdict> {
    const { store, repository } = await this.#stores();
    const { events, exists } = await store.readStream(task.sessionId, { last: 1 });
    if (!exists) return { action: 'run', reason: 'unknown session' }; // as the rebuild says of it
    const tip = checkedEvent(events[0]!, `session ${task.sessionId}`);
    return (tip && tipVerdict(tip, task)) ?? staleVerdict(repository, task);
  }

  /** `judge`'s verdict within the time limit; 'run' if it fails or takes too long (fail-open). */
  async #judged(log: object, judge: () => Promise<StaleVerdict>, failure = 'could not read the session of a stale command; running it'): Promise<StaleVerdict> {
    let timer: NodeJS.Timeout | undefined;
    try {
      // Bounded: a read that never ends must not hold the command (kept leased) and its slot forever.
      const limitMs = Math.min(this.#opts.ackWaitMs / 2, STALE_CHECK_LIMIT_MS);
      const timedOut = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer from the session's log in ${limitMs} ms`)), limitMs);
      });
      return await Promise.race([judge(), timedOut]);
    } catch (err) {
      this.#opts.logger.warn({ ...log, err }, failure);
      return { action: 'run', reason: 'unknown session' };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes the store of session reads, if one was opened. */
  async close(): Promise<void> {
    const opened = this.#sessions;
    this.#sessions = undefined;
    await (await opened?.catch(() => undefined))?.store.close();
  }

  async #sessionRepository(): Promise<SessionRepository> {
    return (await this.#stores()).repository;
  }

  #stores(): Promise<{ store: JetStreamEventStore; repository: SessionRepository }> {
    const { nc, streamName, subjectPrefix } = this.#opts;
    this.#sessions ??= JetStreamEventStore.create(nc, { streamName, subjectPrefix, ensureStream: false }).then((store) => ({
      store,
      repository: new SessionRepository({ store }),
    }));
    // A store that could not be opened (NATS briefly away) is tried again for the next command.
    const opening = this.#sessions;
    opening.catch(() => {
      if (this.#sessions === opening) this.#sessions = undefined;
    });
    return opening;
  }
}
