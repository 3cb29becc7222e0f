/**
 * A typed client of a jetplan NATS deployment: publishes inputs into sessions (JetStream publish
 * with a Nats-Msg-Id, so a retried call is deduplicated) and reads sessions back from the stream,
 * which is the event store.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { SessionRepository } from '../actors/sessionRepository.js';
import { SessionNotFoundError, ValidationError } from '../errors.js';
import { isProcessed } from '../machines/decide.js';
import { toPlannerState } from '../machines/sessionQueries.js';
import { SessionFold, initialSessionState } from '../machines/sessionState.js';
import { JetStreamEventStore } from '../persistence/jetstream/jetStreamEventStore.js';
import { DEFAULT_STREAM_NAME, DEFAULT_SUBJECT_PREFIX, existingStream } from '../persistence/jetstream/streamConfig.js';
import { HEADER_CORRELATION_ID, HEADER_EVENT_TYPE } from '../persistence/jetstream/headers.js';
import { SessionId, type PlannerConfigInput, type PlannerState } from '../protocol/domain.js';
import type { DomainEvent } from '../protocol/events.js';
import { reservedMessageIdProblem, type SessionInput } from '../protocol/inputs.js';
import { MAX_INPUT_BYTES as DEFAULT_MAX_INPUT_BYTES } from '../protocol/parseInput.js';
import { checkConnectionOption, checkIntegerOption } from '../shared/optionChecks.js';
import { watchSessionEvents } from './sessionWatch.js';

export interface ClientOptions {
  streamName?: string;
  subjectPrefix?: string;
  /**
   * The service's limit of an input's JSON body, bytes (its `maxInputBytes`, default 64 KiB): a
   * larger input is refused here with a ValidationError instead of being published and rejected.
   */
  maxInputBytes?: number;
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

/**
 * A message id is an idempotency key: an empty one (JetStream treats it as none) would make every
 * submit that gives it name the same derived session.
 */
function checkMessageId(messageId: unknown): void {
  if (messageId !== undefined && (typeof messageId !== 'string' || messageId === '')) {
    throw new ValidationError(`invalid message id ${JSON.stringify(messageId)}: a non-empty string, or leave it out for a random one`);
  }
}

/**
 * Creates a client of the deployment on `nc` (the stream and prefix of `options`).
 * @throws ValidationError when `nc` is not a NATS connection or `maxInputBytes` not a positive integer.
 */
export function createClient(nc: NatsConnection, options: ClientOptions = {}): JetplanClient {
  return new NatsClient(nc, options);
}

/** The JetplanClient over one NATS connection. */
class NatsClient implements JetplanClient {
  readonly streamName: string;
  readonly subjectPrefix: string;
  readonly #maxInputBytes: number;
  readonly #nc: NatsConnection;
  readonly #js: JetStreamClient;
  #store: Promise<JetStreamEventStore> | undefined;

  constructor(nc: NatsConnection, options: ClientOptions) {
    // Before jetstream(nc), which reads the connection: a bad one must fail here, as a ValidationError.
    checkConnectionOption('nc', nc);
    checkIntegerOption('maxInputBytes', options.maxInputBytes, 1);
    this.#nc = nc;
    this.#js = jetstream(nc);
    this.streamName = options.streamName ?? DEFAULT_STREAM_NAME;
    this.subjectPrefix = options.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX;
    this.#maxInputBytes = options.maxInputBytes ?? DEFAULT_MAX_INPUT_BYTES;
  }

  store(): Promise<JetStreamEventStore> {
    this.#store ??= JetStreamEventStore.create(this.#nc, { streamName: this.streamName, subjectPrefix: this.subjectPrefix, ensureStream: false });
    return this.#store;
  }

  async publishInput(sessionId: string, input: SessionInput, o: PublishOptions = {}): Promise<Published> {
    checkSessionId(sessionId);
    checkMessageId(o.messageId);
    const reserved = o.messageId === undefined ? undefined : reservedMessageIdProblem(o.messageId, input);
    if (reserved !== undefined) throw new ValidationError(reserved); // the service would reject it
    const h = natsHeaders();
    h.set(HEADER_EVENT_TYPE, input.type);
    h.set(HEADER_CORRELATION_ID, o.correlationId ?? sessionId);
    const body = JSON.stringify(input);
    // The limit is on the body's bytes, not the text's characters: JSON escapes a control character
    // to 6 bytes and UTF-8 takes up to 4 per character, so a text within 64 Ki characters can be over.
    const size = Buffer.byteLength(body);
    if (size > this.#maxInputBytes) {
      throw new ValidationError(`the ${input.type} is ${size} bytes as JSON, over the service's limit of ${this.#maxInputBytes}; nothing was published`);
    }
    const msgID = o.messageId ?? `${input.type}.${sessionId}.${randomUUID()}`;
    const subject = `${this.subjectPrefix}.in.${sessionId}`;
    const ack = await this.#js.publish(subject, body, { msgID, headers: h, expect: { streamName: this.streamName } }).catch(async (err: unknown) => {
      // No stream takes the subject: nats.js says "jetstream is not enabled"; say what is missing.
      await existingStream(await jetstreamManager(this.#nc), { streamName: this.streamName, subjectPrefix: this.subjectPrefix });
      throw err;
    });
    if (ack.duplicate) await this.#assertSameInput(ack.seq, subject, body, msgID);
    return { sessionId, seq: ack.seq, duplicate: ack.duplicate, messageId: msgID };
  }

  /**
   * A duplicate PubAck says only that the message id was seen (stream-wide, within the duplicate
   * window): the input is dropped. That is the point of a retry of the same input, but a message
   * id reused for another input (another session, type or text) would be lost without a word.
   */
  async #assertSameInput(seq: number, subject: string, body: string, msgID: string): Promise<void> {
    const original = await (await jetstreamManager(this.#nc)).streams.getMessage(this.streamName, { seq });
    if (original === null || (original.subject === subject && original.string() === body)) return;
    throw new ValidationError(
      `message id ${msgID} was already used for another input (${original.subject}, stream sequence ${seq}); nothing was published`,
    );
  }

  async submit(text: string, o: SubmitOptions = {}): Promise<Published> {
    checkMessageId(o.messageId); // before a session id is derived from it
    const sessionId = o.sessionId ?? newSessionId(o.messageId);
    const input: SessionInput = { type: 'SubmitInput', text, ...(o.config ? { config: o.config as SubmitConfig } : {}) };
    return this.publishInput(sessionId, input, o);
  }

  answer(sessionId: string, taskId: string, answer: string, o: PublishOptions = {}): Promise<Published> {
    return this.publishInput(sessionId, { type: 'ProvideClarification', taskId, answer }, o);
  }

  cancel(sessionId: string, reason?: string, o: PublishOptions = {}): Promise<Published> {
    return this.publishInput(sessionId, { type: 'CancelSession', ...(reason !== undefined ? { reason } : {}) }, o);
  }

  async status(sessionId: string): Promise<PlannerState> {
    return toPlannerState(await this.#rebuild(sessionId));
  }

  async hasInput(sessionId: string): Promise<boolean> {
    return (await this.lastInputSequence(sessionId)) !== undefined;
  }

  async lastInputSequence(sessionId: string): Promise<number | undefined> {
    checkSessionId(sessionId);
    const jsm = await jetstreamManager(this.#nc);
    return (await jsm.streams.getMessage(this.streamName, { last_by_subj: `${this.subjectPrefix}.in.${sessionId}` }))?.seq;
  }

  async replay(sessionId: string, o: { until?: number } = {}): Promise<{ state: PlannerState; events: DomainEvent[] }> {
    const state = await this.#rebuild(sessionId, o.until);
    // Read exactly the events the state was built from.
    const { events } = await (await this.store()).readStream(sessionId, { to: state.version });
    return { state: toPlannerState(state), events };
  }

  async sessions(): Promise<SessionSummary[]> {
    // One pass over the whole log, not one read per session.
    const all = await new SessionRepository({ store: await this.store() }).rebuildAll();
    return [...all.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([sessionId, { state, lastTimestamp }]) => {
        const view = toPlannerState(state);
        const done = view.tasks.filter((t) => t.status === 'Completed').length;
        return { sessionId, status: view.status, phase: view.phase, done, total: view.tasks.length, version: view.version, lastEventAt: lastTimestamp };
      });
  }

  watch(sessionId: string, o: WatchOptions = {}): EventWatch {
    checkSessionId(sessionId);
    return watchSessionEvents(this.#js, this.streamName, `${this.subjectPrefix}.ev.${sessionId}`, o);
  }

  async outcome(published: Published, o: { signal?: AbortSignal } = {}): Promise<InputOutcome> {
    const { sessionId, messageId, seq } = published;
    const meta = { messageId, streamSequence: seq };
    // The session's version now: once the watch has caught up with it, the folded state tells
    // whether the input was (or will be) dropped as processed, which no event of its own shows.
    const tip = (await (await this.store()).readStream(sessionId, { last: 1 })).currentVersion;
    const watch = this.watch(sessionId, { fromStart: true });
    const onAbort = () => void watch.close();
    o.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      if (o.signal?.aborted) throw o.signal.reason;
      const folding = new SessionFold(initialSessionState(sessionId));
      for await (const event of watch) {
        const own = ownOutcome(published, event);
        if (own) return own;
        // A later input decided while the state already held this one as processed: it was
        // dropped then. (A later input decided first is no sign: a handover can reorder inputs.)
        if ((event.inputSequence ?? 0) > seq && isProcessed(folding.state, meta)) return { status: 'unchanged' };
        folding.add(event);
        if (event.sequence >= tip && isProcessed(folding.state, meta)) return { status: 'unchanged' };
      }
      throw o.signal?.reason ?? new Error(`stopped following session ${published.sessionId}`);
    } finally {
      o.signal?.removeEventListener('abort', onAbort);
      await watch.close();
    }
  }

  async close(): Promise<void> {
    if (this.#store) await (await this.#store.catch(() => undefined))?.close();
    this.#store = undefined;
  }

  async #rebuild(sessionId: string, until?: number) {
    checkSessionId(sessionId);
    const { state, exists } = await new SessionRepository({ store: await this.store() }).rebuild(sessionId, until);
    if (!exists) throw new SessionNotFoundError(sessionId);
    return state;
  }
}

/**
 * The outcome `event` tells of `published` if it is the input's own: the first event it caused
 * carries its stream sequence (`inputSequence`); events stored before inputSequence existed are
 * matched by causation id.
 */
function ownOutcome(published: Published, event: DomainEvent): InputOutcome | undefined {
  const own = event.inputSequence === undefined ? event.causationId === published.messageId : event.inputSequence === published.seq;
  if (!own) return undefined;
  if (event.type === 'InputRepeated') return { status: 'unchanged' };
  return event.type === 'InputRejected' ? { status: 'rejected', reason: event.data.reason, event } : { status: 'applied', event };
}
