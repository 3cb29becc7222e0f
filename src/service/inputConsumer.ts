/**
 * Feeds `<prefix>.in.<sessionId>` messages into the planner from a durable pull consumer (explicit
 * ack, one filter subject: works on nats-server 2.9). A message is acked only once the planner has
 * durably appended what it caused. Each session's inputs are applied strictly in stream order;
 * sessions run concurrently.
 */
import { AckPolicy, DeliverPolicy, JetStreamApiCodes, JetStreamApiError, type ConsumerMessages, type JetStreamClient, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { KeyedQueue } from '../shared/keyedQueue.js';
import type { Planner } from '../actors/planner.js';
import type { Metrics } from '../observability/metrics.js';
import { isInputType, MAX_HEADER_ID_CHARS, overlongId, reservedMessageIdProblem, type InputMeta } from '../protocol/inputs.js';
import { HEADER_CORRELATION_ID, HEADER_EVENT_TYPE } from '../persistence/jetstream/headers.js';
import { decodeInput, isSessionId } from './decodeInput.js';
import { bodyOf, inputMessageId, readInputBacklog, unappliedOf, type AppliedInputs } from './inputBacklog.js';

export type { AppliedInputs } from './inputBacklog.js';
import { InputHolds } from './inputHolds.js';
import { sessionOfInputSubject } from '../protocol/subjects.js';
import { isConcurrencyError, isCorruptLogError, isStoreUnavailableError, isValidationError, ValidationError } from '../errors.js';
import type { PlannerInput } from '../machines/decide.js';
import { sleepUnlessAborted, unlessAborted } from '../shared/waits.js';

const STOPPED = 'input consumer stopped';

/** Options of {@link InputConsumer}. */
export interface InputConsumerOptions {
  js: JetStreamClient;
  jsm: JetStreamManager;
  streamName: string;
  subjectPrefix: string;
  durableName: string;
  planner: Planner;
  metrics: Metrics;
  clock: () => number;
  logger: Logger;
  maxInputBytes: number;
  /**
   * What a session has applied: the ids of its recent inputs (its inbox window) and the sequence
   * floor below it. With it, a new leader holds a session's later inputs until the earlier ones a
   * previous leader left unapplied are applied.
   */
  appliedInputs?: (sessionId: string) => Promise<AppliedInputs>;
}


/** Failures of one input (other than the store's) after which it is rejected instead of retried. */
export const POISON_AFTER = 3;

/** How long inputs left by a previous leader hold their sessions at most: 2 × (ack wait + max nak delay). */
const BACKLOG_HOLD_MS = 120_000;

/** Redelivery delay of a failed (or blocked) input: grows with its delivery count, capped at 30 s. */
const nakDelay = (m: JsMsg) => Math.min(30_000, 250 * 2 ** Math.min(7, m.info.deliveryCount - 1));

/**
 * Refuses a durable consumer of this name that takes another prefix's inputs: another deployment
 * on the stream. Taking it over would move its filter, and its inputs past the new position would
 * never be applied. Resolves with this deployment's filter.
 */
export async function assertOwnInputConsumer(jsm: JetStreamManager, o: Pick<InputConsumerOptions, 'streamName' | 'subjectPrefix' | 'durableName'>): Promise<string> {
  const filter = `${o.subjectPrefix}.in.>`;
  // Only "not found" means there is none: on any other failure, adding could take another's over.
  const existing = await jsm.consumers.info(o.streamName, o.durableName).catch((err: unknown) => {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound) return undefined;
    throw err;
  });
  const theirs = existing?.config.filter_subject;
  if (theirs !== undefined && theirs !== filter) {
    throw new ValidationError(
      `consumer ${o.durableName} on stream ${o.streamName} takes ${theirs}, not ${filter}: it belongs to another deployment; give this one its own durable name`,
    );
  }
  return filter;
}

/** Creates the durable consumer if missing (idempotent), or updates it to jetplan's settings. */
export async function ensureInputConsumer(jsm: JetStreamManager, o: Pick<InputConsumerOptions, 'streamName' | 'subjectPrefix' | 'durableName'>): Promise<void> {
  const settings = { ack_wait: nanos(30_000), max_ack_pending: 20_000 };
  const filter = await assertOwnInputConsumer(jsm, o);
  try {
    await jsm.consumers.add(o.streamName, {
      durable_name: o.durableName,
      filter_subject: filter,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ...settings,
    });
  } catch {
    await jsm.consumers.update(o.streamName, o.durableName, settings);
  }
}

/**
 * Runs the consume loop while started: a consume() that ends or fails (server restart, consumer
 * deleted) is recreated with backoff. `stop()` ends the iterator and waits for inputs under way.
 */
export class InputConsumer {
  private readonly queue = new KeyedQueue();
  /** Inputs that hold their sessions' later inputs back (nak'd ones, a previous leader's). */
  private readonly holds: InputHolds;
  /** Failures of an input (by stream sequence) that were not the store's: see rejectPoison. */
  private readonly failures = new Map<number, number>();
  private messages: ConsumerMessages | undefined;
  private loop: Promise<void> | undefined;
  private stopped = true;
  /** Aborted by stop(): ends the loop's waits on NATS (which, with NATS away, last a request's timeout). */
  private stopping = new AbortController();

  constructor(private readonly o: InputConsumerOptions) {
    this.holds = new InputHolds(o.clock);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.stopping = new AbortController();
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopping.abort();
    await this.messages?.close().catch(() => undefined);
    await this.loop;
    await this.queue.drain();
    this.holds.clear();
    this.failures.clear();
  }

  /**
   * Messages not yet delivered plus delivered and not acked: 0 when the consumer does not exist (yet),
   * NaN when it cannot be read (the stream or NATS away): unknown, not "none".
   */
  async pending(): Promise<number> {
    try {
      const info = await this.o.jsm.consumers.info(this.o.streamName, this.o.durableName);
      return info.num_pending + info.num_ack_pending;
    } catch (err) {
      return err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound ? 0 : NaN;
    }
  }

  private async run(): Promise<void> {
    for (let failures = 0; !this.stopped; failures++) {
      try {
        await unlessAborted(ensureInputConsumer(this.o.jsm, this.o), this.stopping.signal, STOPPED);
        await unlessAborted(this.holdBacklog(), this.stopping.signal, STOPPED);
        const consumer = await unlessAborted(this.o.js.consumers.get(this.o.streamName, this.o.durableName), this.stopping.signal, STOPPED);
        const messages = await consumer.consume({ max_messages: 256, expires: 5_000 });
        this.messages = messages;
        // Stopped while starting: stop() found no iterator to close. close() would wait for an
        // iteration that never begins, so stop it and leave.
        if (this.stopped) {
          messages.stop();
          break;
        }
        void this.watch(messages);
        failures = 0;
        for await (const m of messages) this.accept(m);
      } catch (err) {
        if (!this.stopped) this.o.logger.warn({ err }, 'input consumer failed; recreating it');
      }
      if (!this.stopped) await sleepUnlessAborted(Math.min(5_000, 100 * 2 ** Math.min(failures, 6)), this.stopping.signal);
    }
  }

  /** Ends an iterator whose consumer is gone, so the loop recreates it. */
  private async watch(messages: ConsumerMessages): Promise<void> {
    for await (const s of messages.status()) {
      if (s.type === 'consumer_deleted' || (s.type === 'consumer_not_found' && s.count > 2)) {
        this.o.logger.warn({ status: s.type }, 'input consumer missing; recreating it');
        await messages.close().catch(() => undefined);
      }
    }
  }

  /**
   * Holds each session behind the inputs above the consumer's ack floor that it has not applied
   * (inputBacklog.ts), so its inputs are applied in stream order across a leader change too. An
   * input counted as unapplied that was in fact acked (its session could not be loaded) is never
   * redelivered: after BACKLOG_HOLD_MS, by when every unacked one has come back, it holds nothing
   * any more (unless it did come back). Throws if the backlog cannot be read.
   */
  private async holdBacklog(): Promise<void> {
    if (!this.o.appliedInputs) return;
    // Stopped meanwhile (the lease lost mid-read): its holds would outlive the term in `holds`.
    const { signal } = this.stopping;
    // A failed read throws: the consume loop retries it with backoff rather than start without
    // the hold and apply a session's later input before one the previous leader left unapplied.
    const backlog = await readInputBacklog(this.o.js, this.o.jsm, this.o);
    const unapplied = await unappliedOf(backlog, this.o.appliedInputs, this.o.logger);
    if (signal.aborted) return;
    for (const [sessionId, seq] of unapplied) this.holds.holdBacklog(sessionId, seq, BACKLOG_HOLD_MS);
    if (unapplied.length > 0) this.o.logger.info({ inputs: unapplied.length }, 'holding sessions behind inputs a previous leader left unapplied');
  }

  private accept(m: JsMsg): void {
    const received = performance.now();
    const sessionId = sessionOfInputSubject(this.o.subjectPrefix, m.subject);
    if (!isSessionId(sessionId)) {
      // Nothing can be stored for an invalid session id: there is no session subject to put it on.
      this.o.logger.warn({ subject: m.subject, seq: m.seq }, 'input on an invalid session subject; terminated');
      this.respond(m, 'term'); // no reason: nats-server 2.9 does not parse '+TERM <reason>'
      return;
    }
    // Delivered now, not when its turn in the session's queue comes: a backlog hold on it must not
    // expire while it waits there behind a slow input.
    this.holds.delivered(m.seq);
    void this.queue.run(sessionId, () => this.process(sessionId, m, received)).catch((err: unknown) => {
      // process() handles its own failures; this only keeps a bug from crashing the process.
      this.o.logger.error({ err, sessionId, seq: m.seq }, 'input processing failed unexpectedly');
    });
  }

  /**
   * Acks, naks (after `delay`) or terms `m`. nats.js throws once the connection is closed or
   * draining; the server then redelivers the message after its ack wait, so this never throws.
   */
  private respond(m: JsMsg, what: 'ack' | 'nak' | 'term', delay?: number): void {
    try {
      if (what === 'nak') m.nak(delay);
      else m[what]();
    } catch (err) {
      this.o.logger.debug({ err, seq: m.seq, subject: m.subject }, `input ${what} not sent; the server redelivers it`);
    }
  }

  private async process(sessionId: string, m: JsMsg, received: number): Promise<void> {
    if (this.stopped) {
      // Stepping down or closing: leave what has not started to whoever leads next.
      this.respond(m, 'nak');
      return;
    }
    if (this.holds.isBlocked(sessionId, m.seq)) {
      this.holds.hold(sessionId, m.seq);
      this.respond(m, 'nak', nakDelay(m)); // an earlier input of this session is not applied yet
      return;
    }
    const input = refuseOverlongCorrelation(
      m.headers?.get(HEADER_CORRELATION_ID),
      refuseReservedId(m.headers?.get('Nats-Msg-Id'), withHeaderType(decodeInput(m.data, this.o.maxInputBytes), m.headers?.get(HEADER_EVENT_TYPE))),
    );
    // The ack is outside the try: an ack that cannot be sent is no failure of the input (it was
    // applied; a redelivery is dropped by the session's inbox).
    const applied = await this.apply(sessionId, m, input);
    if (applied) {
      this.respond(m, 'ack');
      this.holds.applied(sessionId, m.seq);
      this.failures.delete(m.seq);
      if (applied.events > 0) this.o.metrics.observeStep(performance.now() - received);
    }
  }

  /**
   * Hands the input to the planner. Returns what it committed, or the input's rejection (acked as
   * applied); undefined if it was nak'd for redelivery, which holds the session behind it.
   */
  private async apply(sessionId: string, m: JsMsg, input: PlannerInput): Promise<{ events: number } | undefined> {
    try {
      const commit = await this.o.planner.handle(sessionId, input, this.metaOf(m, input));
      return { events: commit.events.length };
    } catch (err) {
      if (await this.rejectPoison(sessionId, m, input, err)) return { events: 0 };
      this.holds.hold(sessionId, m.seq);
      const delay = nakDelay(m);
      // A shutdown cut short fails every input under way alike: expected, not an error each.
      if (this.stopped && isStoreUnavailableError(err)) this.o.logger.debug({ err, sessionId, seq: m.seq }, 'input not applied before shutdown; redelivered');
      else this.o.logger.error({ err, sessionId, seq: m.seq, delay }, 'input not applied; redelivering it');
      this.respond(m, 'nak', delay);
      return undefined;
    }
  }

  /**
   * An input that keeps failing for a reason of its own (a bug its content triggers, a planner
   * that throws on it) would block its session forever: after {@link POISON_AFTER} such failures
   * it is recorded as InputRejected, naming the error and its stream sequence, and acked, so the
   * inputs after it are applied. A ValidationError (e.g. events larger than the stream takes;
   * nothing of them stored) is the same every time: rejected on its first failure. True if it was
   * rejected.
   */
  private async rejectPoison(sessionId: string, m: JsMsg, input: PlannerInput, err: unknown): Promise<boolean> {
    // Not the input's fault: the store is down, a conflict outlasted the retries, or the session's
    // log is unreadable (then nothing can be recorded on it either). These wait, however long.
    if (isStoreUnavailableError(err) || isConcurrencyError(err) || isCorruptLogError(err)) return false;
    const failures = (this.failures.get(m.seq) ?? 0) + 1;
    this.failures.set(m.seq, failures);
    const message = err instanceof Error ? err.message : String(err);
    // A ValidationError says the input itself cannot be applied (e.g. its events are larger than
    // the stream takes): the same every time, so it is rejected at once.
    const invalid = isValidationError(err);
    if (!invalid && failures < POISON_AFTER) return false;
    const reason = invalid ? message : `not applied after ${failures} attempts: ${message}`;
    const inputType = input.type === 'InvalidInput' ? input.inputType : input.type;
    try {
      await this.o.planner.handle(sessionId, { type: 'InvalidInput', reason, ...(inputType ? { inputType } : {}) }, this.metaOf(m, input));
    } catch (rejectErr) {
      this.o.logger.error({ err: rejectErr, sessionId, seq: m.seq }, 'a failing input could not be rejected either');
      return false;
    }
    this.failures.delete(m.seq);
    this.o.logger.error({ err, sessionId, seq: m.seq, failures }, invalid ? 'input rejected: the store refuses it' : 'input rejected after repeated failures');
    return true;
  }

  /**
   * The input's meta; `input` as decoded. A reserved id is not the input's (it is named `in.<seq>`)
   * unless it is a report's own: judged, for a body that is no valid input, on its type and
   * dispatch id as far as they can be read, as the backlog read at start judges it.
   */
  private metaOf(m: JsMsg, input: PlannerInput): InputMeta {
    // An overlong one is left out, so the input's rejection can still be recorded.
    const header = m.headers?.get(HEADER_CORRELATION_ID);
    const correlationId = header !== undefined && header.length <= MAX_HEADER_ID_CHARS ? header : undefined;
    return {
      messageId: inputMessageId(m.headers?.get('Nats-Msg-Id'), m.seq, input.type === 'InvalidInput' ? bodyOf(m.data) : input),
      now: this.o.clock(),
      streamSequence: m.seq,
      ...(correlationId ? { correlationId } : {}),
    };
  }
}

/**
 * `input`, or its rejection when its `Nats-Msg-Id` has a prefix reserved for jetplan's own ids. A
 * body that is no valid input keeps that reason (the body is checked first): a report with its own
 * dispatch's id and a bad body must learn what is wrong with the body, not that its id is.
 */
function refuseReservedId(msgId: string | undefined, input: PlannerInput): PlannerInput {
  if (input.type === 'InvalidInput') return input;
  const problem = msgId ? reservedMessageIdProblem(msgId, input) : undefined;
  if (problem === undefined) return input;
  return { type: 'InvalidInput', reason: `Nats-Msg-Id: ${problem}`, inputType: input.type };
}

/** `input`, or its rejection when its correlation id is longer than an id may be. */
function refuseOverlongCorrelation(correlationId: string | undefined, input: PlannerInput): PlannerInput {
  if (input.type === 'InvalidInput' || correlationId === undefined || correlationId.length <= MAX_HEADER_ID_CHARS) return input;
  return { type: 'InvalidInput', reason: `${HEADER_CORRELATION_ID}: ${overlongId('correlation id', correlationId)}`, inputType: input.type };
}

/**
 * A rejection of a body that could not be read (bad JSON, oversized) names the input type its
 * `Jetplan-Type` header gives, when that is one: the publisher then sees which of its inputs it was.
 */
function withHeaderType(input: PlannerInput, headerType: string | undefined): PlannerInput {
  if (input.type !== 'InvalidInput' || input.inputType !== undefined || !headerType || !isInputType(headerType)) return input;
  return { ...input, inputType: headerType };
}
