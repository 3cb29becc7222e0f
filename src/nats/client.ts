/**
 * A typed client of a jetplan NATS deployment: publishes inputs into sessions (JetStream publish
 * with a Nats-Msg-Id, so a retried call is deduplicated) and reads sessions back from the stream,
 * which is the event store.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { DeliverPolicy, jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { SessionRepository } from '../actors/sessionRepository.js';
import { SessionNotFoundError, ValidationError } from '../errors.js';
import { toPlannerState } from '../machines/sessionQueries.js';
import { JetStreamEventStore } from '../persistence/jetstream/jetStreamEventStore.js';
import { DEFAULT_STREAM_NAME, DEFAULT_SUBJECT_PREFIX, existingStream } from '../persistence/jetstream/streamConfig.js';
import { HEADER_CORRELATION_ID, HEADER_EVENT_TYPE } from '../persistence/jetstream/headers.js';
import { SessionId, type PlannerConfigInput, type PlannerState } from '../protocol/domain.js';
import type { DomainEvent } from '../protocol/events.js';
import type { SessionInput } from '../protocol/inputs.js';
import { decodeEvent } from '../protocol/upcasters.js';

export interface ClientOptions {
  streamName?: string;
  subjectPrefix?: string;
}

export interface PublishOptions {
  /** Nats-Msg-Id of the input (default a random one); resending with the same id is a no-op. */
  messageId?: string;
  /** Jetplan-Correlation-Id (default the session id). */
  correlationId?: string;
}

export interface SubmitOptions extends PublishOptions {
  /** Default: a new random id `s-<10 chars>`. */
  sessionId?: string;
  config?: Partial<PlannerConfigInput>;
}

/** Where a published input landed. */
export interface Published {
  sessionId: string;
  /** Stream sequence of the input message (of the original one, for a duplicate). */
  seq: number;
  /** True when the server had already stored a message with this Nats-Msg-Id. */
  duplicate: boolean;
  /** The input's message id (Nats-Msg-Id). */
  messageId: string;
}

/**
 * What became of a published input once its session processed it: the first event it caused, or
 * its rejection, or nothing (an input the session had already applied under its message id).
 */
export type InputOutcome =
  | { status: 'applied'; event: DomainEvent }
  | { status: 'rejected'; reason: string; event: DomainEvent }
  | { status: 'unchanged' };

export interface SessionSummary {
  sessionId: string;
  status: PlannerState['status'];
  phase: PlannerState['phase'];
  done: number;
  total: number;
  version: number;
  lastEventAt?: number;
}

export interface WatchOptions {
  /** Deliver the session's events from its first one (default: only new events). */
  fromStart?: boolean;
}

/** Events of one session as they are stored; `close()` (or leaving a for-await loop) stops it. */
export interface EventWatch extends AsyncIterable<DomainEvent> {
  /** Resolves once the subscription is in place: events stored from then on will be delivered. */
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

export interface JetplanClient {
  readonly streamName: string;
  readonly subjectPrefix: string;
  submit(text: string, options?: SubmitOptions): Promise<Published>;
  answer(sessionId: string, taskId: string, answer: string, options?: PublishOptions): Promise<Published>;
  cancel(sessionId: string, reason?: string, options?: PublishOptions): Promise<Published>;
  /** Publishes any input (reports included) into a session. */
  publishInput(sessionId: string, input: SessionInput, options?: PublishOptions): Promise<Published>;
  /** The session's current read model; SessionNotFoundError if it has no events. */
  status(sessionId: string): Promise<PlannerState>;
  /**
   * Whether the stream holds an input for the session: one without events yet is then only
   * waiting for the service to apply it, not unknown.
   */
  hasInput(sessionId: string): Promise<boolean>;
  /** The stream sequence of the session's latest input, if the stream holds one. */
  lastInputSequence(sessionId: string): Promise<number | undefined>;
  /** The session rebuilt from its log alone (up to event `until`), with the events. */
  replay(sessionId: string, options?: { until?: number }): Promise<{ state: PlannerState; events: DomainEvent[] }>;
  sessions(): Promise<SessionSummary[]>;
  watch(sessionId: string, options?: WatchOptions): EventWatch;
  /**
   * Waits until the session has processed a published input and tells what came of it (a PubAck
   * says only that the input is stored). Reads the session's events from its start; `signal` ends
   * the wait (rejecting with its reason).
   */
  outcome(published: Published, options?: { signal?: AbortSignal }): Promise<InputOutcome>;
  /** The event store the client reads (opened on first use). */
  store(): Promise<JetStreamEventStore>;
  /** Releases the client's store; does not close `nc`. */
  close(): Promise<void>;
}

type SubmitConfig = Extract<SessionInput, { type: 'SubmitInput' }>['config'];

const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

/**
 * A new session id: `s-` and 10 characters of [a-z0-9], random, or derived from `messageId` so
 * that a retried submit (same message id, no session given) names the same session.
 */
export function newSessionId(messageId?: string): string {
  const bytes = messageId === undefined ? randomBytes(10) : createHash('sha256').update(messageId).digest().subarray(0, 10);
  let id = 's-';
  for (const b of bytes) id += ID_ALPHABET[b % ID_ALPHABET.length];
  return id;
}

function checkSessionId(sessionId: string): void {
  if (!SessionId.safeParse(sessionId).success) {
    throw new ValidationError(`invalid session id ${JSON.stringify(sessionId)} (1-64 characters of [A-Za-z0-9_-])`);
  }
}

export function createClient(nc: NatsConnection, options: ClientOptions = {}): JetplanClient {
  const streamName = options.streamName ?? DEFAULT_STREAM_NAME;
  const prefix = options.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX;
  const js: JetStreamClient = jetstream(nc);
  let storePromise: Promise<JetStreamEventStore> | undefined;

  const store = (): Promise<JetStreamEventStore> => {
    storePromise ??= JetStreamEventStore.create(nc, { streamName, subjectPrefix: prefix, ensureStream: false });
    return storePromise;
  };

  async function publishInput(sessionId: string, input: SessionInput, o: PublishOptions = {}): Promise<Published> {
    checkSessionId(sessionId);
    const h = natsHeaders();
    h.set(HEADER_EVENT_TYPE, input.type);
    h.set(HEADER_CORRELATION_ID, o.correlationId ?? sessionId);
    const body = JSON.stringify(input);
    const msgID = o.messageId ?? `${input.type}.${sessionId}.${randomUUID()}`;
    const ack = await js
      .publish(`${prefix}.in.${sessionId}`, body, {
        msgID,
        headers: h,
        expect: { streamName },
      })
      .catch(async (err: unknown) => {
        // No stream takes the subject: nats.js says "jetstream is not enabled"; say what is missing.
        await existingStream(await jetstreamManager(nc), { streamName, subjectPrefix: prefix });
        throw err;
      });
    if (ack.duplicate) await assertSameInput(ack.seq, `${prefix}.in.${sessionId}`, body, msgID);
    return { sessionId, seq: ack.seq, duplicate: ack.duplicate, messageId: msgID };
  }

  /**
   * A duplicate PubAck says only that the message id was seen (stream-wide, within the duplicate
   * window): the input is dropped. That is the point of a retry of the same input, but a message
   * id reused for another input (another session, type or text) would be lost without a word.
   */
  async function assertSameInput(seq: number, subject: string, body: string, msgID: string): Promise<void> {
    const original = await (await jetstreamManager(nc)).streams.getMessage(streamName, { seq });
    if (original === null || (original.subject === subject && original.string() === body)) return;
    throw new ValidationError(
      `message id ${msgID} was already used for another input (${original.subject}, stream sequence ${seq}); nothing was published`,
    );
  }

  async function lastInputSequence(sessionId: string): Promise<number | undefined> {
    checkSessionId(sessionId);
    const jsm = await jetstreamManager(nc);
    return (await jsm.streams.getMessage(streamName, { last_by_subj: `${prefix}.in.${sessionId}` }))?.seq;
  }

  async function rebuild(sessionId: string, until?: number) {
    checkSessionId(sessionId);
    const s = await store();
    const { state, exists } = await new SessionRepository({ store: s }).rebuild(sessionId, until);
    if (!exists) throw new SessionNotFoundError(sessionId);
    return state;
  }

  return {
    streamName,
    subjectPrefix: prefix,
    publishInput,
    store,

    submit(text, o = {}) {
      const sessionId = o.sessionId ?? newSessionId(o.messageId);
      const input: SessionInput = { type: 'SubmitInput', text, ...(o.config ? { config: o.config as SubmitConfig } : {}) };
      return publishInput(sessionId, input, o);
    },

    answer(sessionId, taskId, answer, o = {}) {
      return publishInput(sessionId, { type: 'ProvideClarification', taskId, answer }, o);
    },

    cancel(sessionId, reason, o = {}) {
      return publishInput(sessionId, { type: 'CancelSession', ...(reason !== undefined ? { reason } : {}) }, o);
    },

    async status(sessionId) {
      return toPlannerState(await rebuild(sessionId));
    },

    async hasInput(sessionId) {
      return (await lastInputSequence(sessionId)) !== undefined;
    },

    lastInputSequence,

    async replay(sessionId, o = {}) {
      const state = await rebuild(sessionId, o.until);
      // Read exactly the events the state was built from.
      const { events } = await (await store()).readStream(sessionId, { to: state.version });
      return { state: toPlannerState(state), events };
    },

    async sessions() {
      // One pass over the whole log, not one read per session.
      const all = await new SessionRepository({ store: await store() }).rebuildAll();
      return [...all.entries()]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([sessionId, { state, lastTimestamp }]) => {
          const view = toPlannerState(state);
          return {
            sessionId,
            status: view.status,
            phase: view.phase,
            done: view.tasks.filter((t) => t.status === 'Completed').length,
            total: view.tasks.length,
            version: view.version,
            lastEventAt: lastTimestamp,
          };
        });
    },

    watch(sessionId, o = {}) {
      checkSessionId(sessionId);
      return watchEvents(js, streamName, `${prefix}.ev.${sessionId}`, o);
    },

    async outcome(published, o = {}) {
      checkSessionId(published.sessionId);
      const watch = watchEvents(js, streamName, `${prefix}.ev.${published.sessionId}`, { fromStart: true });
      const onAbort = () => void watch.close();
      o.signal?.addEventListener('abort', onAbort, { once: true });
      try {
        if (o.signal?.aborted) throw o.signal.reason;
        for await (const event of watch) {
          const verdict = outcomeOf(published, event);
          if (verdict) return verdict;
        }
        throw o.signal?.reason ?? new Error(`stopped following session ${published.sessionId}`);
      } finally {
        o.signal?.removeEventListener('abort', onAbort);
        await watch.close();
      }
    },

    async close() {
      if (storePromise) await (await storePromise.catch(() => undefined))?.close();
      storePromise = undefined;
    },
  };
}

/**
 * The outcome `event` tells of `published`, if any. A session applies its inputs in stream order
 * and records each one's stream sequence on the events it causes (`inputSequence`): its first
 * event names it, and an event of a later input, before any of its own, means it caused none.
 * Events stored before inputSequence existed are matched by causation id.
 */
function outcomeOf(published: Published, event: DomainEvent): InputOutcome | undefined {
  const own = event.inputSequence === undefined ? event.causationId === published.messageId : event.inputSequence === published.seq;
  if (own) return event.type === 'InputRejected' ? { status: 'rejected', reason: event.data.reason, event } : { status: 'applied', event };
  if (event.inputSequence !== undefined && event.inputSequence > published.seq) return { status: 'unchanged' };
  return undefined;
}

function watchEvents(js: JetStreamClient, streamName: string, subject: string, o: WatchOptions): EventWatch {
  let closed = false;
  // Subscribe at once, so that events published after watch() returns and `ready` resolves are seen.
  const started = (async () => {
    const consumer = await js.consumers.get(streamName, {
      filter_subjects: subject, // one subject, as nats-server 2.9 needs
      deliver_policy: o.fromStart ? DeliverPolicy.All : DeliverPolicy.New,
      inactive_threshold: 30_000,
    });
    const messages = await consumer.consume({ max_messages: 256 });
    return { consumer, messages };
  })();
  started.catch(() => undefined); // surfaced by the iterator
  const stop = async (): Promise<void> => {
    const s = await started.catch(() => undefined);
    if (!s) return;
    // stop(), not close(): close() waits for the iterator to be drained, which never happens
    // while the generator is suspended at a yield.
    s.messages.stop();
    s.consumer.delete().catch(() => undefined);
  };
  async function* events(): AsyncGenerator<DomainEvent> {
    const { messages } = await started;
    try {
      if (closed) return;
      for await (const m of messages) {
        yield decodeEvent(m.string(), `${streamName} seq ${m.seq}`);
      }
    } finally {
      await stop();
    }
  }
  const iterable = events();
  return {
    ready: started.then(() => undefined),
    [Symbol.asyncIterator]: () => iterable,
    async close() {
      closed = true;
      await stop();
      await iterable.return(undefined).catch(() => undefined);
    },
  };
}
