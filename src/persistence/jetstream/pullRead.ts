/**
 * A read of the messages on one filter subject through a pull consumer of its own, with pulls
 * bounded in bytes as well as in messages (see {@link PullRead}): what the session and whole-log
 * reads of jetStreamReads.ts run on.
 */
import { AckPolicy, DeliverPolicy, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { createInbox, nanos, nuid, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { StoreUnavailableError } from '../../errors.js';
import type { ConnectionGate } from './connectionGate.js';
import { retryTransient } from './jetStreamErrors.js';

/** What the reads need from the store that runs them. */
export interface ReadContext {
  js: JetStreamClient;
  /** The connection under `js`: the reads' pulls are published and answered on it. */
  nc: NatsConnection;
  /** Creates and deletes the reads' consumers. */
  jsm: JetStreamManager;
  gate: ConnectionGate;
  streamName: string;
  /** How long to wait for a reconnect before creating a consumer, ms. */
  retryForMs: number;
  /**
   * How long a read that waits for its next message waits before it fails, ms; default
   * {@link READ_IDLE_MS}.
   */
  readIdleMs?: number;
}

/**
 * The most message bytes one pull asks for (its `max_bytes`), 4 MiB. The server writes what a pull
 * asks for to the connection as fast as it reads it from the store, holding what the socket has not
 * taken yet in the connection's outbound buffer, and past the connection's max_pending (64 MiB by
 * default) it drops the messages as a slow consumer. A pull of 4,096 events asked for up to 800 MB
 * once events were 200 KB (60 KB inputs): the server dropped messages, nats.js's ordered consumer
 * reset and stalled ~30 s per reset, and one read of the whole log ended short without an error.
 * A read has one pull open at a time and pulls nothing more while its reader is this far behind, so
 * one read keeps at most a pull's worth in the server's buffer; the connection (shared by all the
 * process's reads, publishes and subscriptions) stays under the limit with a dozen reads at once,
 * while 4 MiB still takes longer to send than a pull's round trip costs.
 */
export const PULL_MAX_BYTES = 4 * 1024 * 1024;

/**
 * The most messages one pull asks for, 16,384: about {@link PULL_MAX_BYTES} of small events
 * (~256 bytes each), so that a pull ends on its bytes unless its events are smaller than that.
 * What the server buffers is bounded by the bytes; the count only sets how often a read of small
 * events stops for a pull's round trip, during which nothing arrives (one pull open at a time): at
 * 1,024 a replay of a 6,000-event session (2.3 MB) stopped six times, 1–17 ms each on a loaded
 * 2-core machine, a third of its time; now it pulls once.
 */
export const PULL_MAX_MESSAGES = 16_384;

/**
 * How long a read waits for its next message before it fails, ms, by default. A healthy server
 * answers a pull in milliseconds, and a pull lost on the way is noticed sooner, by its missing
 * heartbeats; this bounds the rest: a server that answers but has nothing more for the read
 * (messages removed during the read, which nats-server 2.9 still counts as pending), or one that
 * cannot be reached.
 */
export const READ_IDLE_MS = 30_000;

/** How long a read's consumer outlives its last pull, ms (nats.js's ordered consumers take 5 min). */
const CONSUMER_INACTIVE_MS = 5 * 60_000;

/** How long a pull waits at the server for messages (then it ends with a 408 and is made again). */
const PULL_EXPIRES_MS = 10_000;

/**
 * How often the server sends a heartbeat on a pull that has nothing to deliver, ms, and how often a
 * read checks that its open pull still hears from the server. A pull can be lost without a word: a
 * pull sent as its consumer (or stream) is being deleted, or one of a connection that dropped.
 */
const PULL_HEARTBEAT_MS = 1_000;

/** Checks in a row without a message or heartbeat after which a read looks its pull up. */
const SILENT_CHECKS = 3;

/** A message delivered to a read. */
export interface Delivery {
  /** Its stream sequence. */
  seq: number;
  data: Uint8Array;
  /** The messages on the read's filter after it when it was sent (the consumer's num_pending). */
  pending: number;
  /** When the server stored it, ms since the epoch. */
  storedAt: number;
  /** The message itself, for what else a read needs of it (its subject, its headers). */
  msg: Msg;
}

/** How a read delivers: every message (default), or only each subject's last, bodies or headers only. */
export interface PullReadOptions {
  /** Take at most this many (default: all there are at the start). */
  most?: number;
  /** `last_per_subject`: the last message of each subject on the filter (2.9 has it). Default `all`. */
  deliver?: typeof DeliverPolicy.All | typeof DeliverPolicy.LastPerSubject;
  /**
   * Headers only (the consumer's `headers_only`; 2.9 has it): messages come with their headers and
   * an empty body, so each is small and pulls are bounded by count alone, without `max_bytes`.
   * With `last_per_subject`, nats-server 2.9.10 loses the message a pull ends on for its bytes
   * (the 409 "Message Size Exceeds MaxBytes"): a scan of 200 subjects pulled 10 KB at a time
   * delivered 193; of 10,000 sessions' latest events in 4 MiB pulls, 9,999.
   */
  headersOnly?: boolean;
  /** Only the messages from this stream sequence on (with `deliver` `all`). */
  fromSeq?: number;
}

/** Messages a headers-only pull asks for: a few hundred bytes each, so well under {@link PULL_MAX_BYTES}. */
const HEADERS_PULL_MESSAGES = 1_024;

/**
 * The stream sequence, the consumer's delivery sequence and its pending count of a delivered
 * message, from its reply subject: `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>`,
 * or the newer form with `<domain>.<account hash>` after `ACK` and a token at the end.
 */
function deliveryOf(reply: string | undefined): { seq: number; delivery: number; pending: number; storedAt: number } | undefined {
  // Read in place (no split: this runs for every message a read takes).
  if (reply === undefined || !reply.startsWith('$JS.ACK.')) return undefined;
  let tokens = 1;
  for (let dot = reply.indexOf('.'); dot !== -1; dot = reply.indexOf('.', dot + 1)) tokens++;
  if (tokens !== 9 && tokens < 11) return undefined;
  const at = tokens === 9 ? 0 : 2;
  // Tokens 5 (sseq), 6 (dseq), 7 (ts) and 8 (pending) after `at`, in one pass over the dots.
  let start = 0;
  for (let k = 0; k < 5 + at; k++) start = reply.indexOf('.', start) + 1;
  const seqEnd = reply.indexOf('.', start);
  const deliveryEnd = reply.indexOf('.', seqEnd + 1);
  const pendingStart = reply.indexOf('.', deliveryEnd + 1) + 1;
  const pendingEnd = reply.indexOf('.', pendingStart);
  const seq = Number(reply.slice(start, seqEnd));
  const delivery = Number(reply.slice(seqEnd + 1, deliveryEnd));
  const pending = Number(pendingEnd === -1 ? reply.slice(pendingStart) : reply.slice(pendingStart, pendingEnd));
  // Nanoseconds: past 2^53, so not exact as a number, but exact enough for milliseconds.
  const storedAt = Number(reply.slice(deliveryEnd + 1, pendingStart - 1)) / 1e6;
  return Number.isSafeInteger(seq) && Number.isSafeInteger(delivery) && Number.isSafeInteger(pending) ? { seq, delivery, pending, storedAt } : undefined;
}

/**
 * A read of the messages on one filter subject through a pull consumer of its own (ephemeral, in
 * memory, no acks), which the read pulls from itself: one pull open at a time, each bounded by
 * {@link PULL_MAX_BYTES} as well as by {@link PULL_MAX_MESSAGES} (a headers-only read: by
 * {@link HEADERS_PULL_MESSAGES} alone), and none while the reader has
 * {@link PULL_MAX_BYTES} or more still to take. Not nats.js's consume(): its `max_messages` and
 * `max_bytes` are exclusive, and with `max_bytes` (and 100 messages a pull) it stops pulling when
 * its pulls end with a "409 Message Size Exceeds MaxBytes" (a large message after small ones) and
 * waits for missed heartbeats, 30 s or more, before it pulls again (a read of 150,400 events, 400
 * of them 200 KB, stopped at the 1,128th for 2 min). The server (2.9 too) ends a pull
 * whose next message would pass its `max_bytes` with that 409; a message larger than a whole pull's
 * bytes is pulled alone without a byte limit (one message cannot pass max_pending: max_payload is
 * 64 MB at most).
 *
 * Takes the first `total` messages: the consumer's pending count at its creation, or fewer if the
 * caller wants fewer. {@link take} fails with a StoreUnavailableError when a message is lost on the
 * way (a gap in the consumer's delivery sequence), when the server refuses a pull, when the
 * connection closes, when the open pull stops hearing from the server and its consumer is gone or
 * cannot be looked up (a pull lost while the consumer stays is made again), or when no message
 * comes for the context's `readIdleMs` while it waits.
 */
export class PullRead {
  /** How many messages the read takes, at most. */
  readonly total: number;
  readonly #ctx: ReadContext;
  readonly #nc: NatsConnection;
  readonly #filter: string;
  readonly #consumer: string;
  readonly #idleMs: number;
  /** Headers only: pulls bounded by count alone ({@link PullReadOptions.headersOnly}). */
  readonly #headersOnly: boolean;
  /** Each pull's reply subject is this and the pull's number: a status names the pull it is about. */
  readonly #inbox = createInbox();
  readonly #sub: Subscription;
  readonly #checks: ReturnType<typeof setInterval>;
  #queue: Delivery[] = [];
  #queuedBytes = 0;
  /** The consumer's delivery sequence of the last message delivered: how many came. */
  #delivered = 0;
  /** The open pull: its reply subject, and how many messages it may still bring and has brought. */
  #pull: { subject: string; left: number; got: number } | undefined;
  #pulls = 0;
  /** The next message is larger than a pull's bytes: the next pull asks for it alone. */
  #alone = false;
  /** Counts what the server sent for the open pull (messages, heartbeats), for the checks. */
  #heard = 0;
  #heardAtCheck = 0;
  #silentChecks = 0;
  #lookingUp = false;
  #failure: Error | undefined;
  #closed = false;
  /** Wakes a {@link take} that waits for a message. */
  #wake: (() => void) | undefined;

  /**
   * Creates the read's consumer on `filter`, from the filter's first message; with `deliver`
   * `last_per_subject` (2.9 has it), the last message of each subject on it, in stream order,
   * `total` then being the number of subjects (after them the consumer would go on with the
   * messages stored since, which the read does not take).
   */
  static async open(ctx: ReadContext, filter: string, options: PullReadOptions = {}): Promise<PullRead> {
    const { most = Number.POSITIVE_INFINITY, deliver = DeliverPolicy.All, headersOnly = false, fromSeq } = options;
    const { nc } = ctx;
    // Named once: a create that timed out may have been made, and made again with the same name
    // and config it is the same consumer, not a second one. Resent while the server is busy or
    // restarting (a timeout, no responders), as the store's other requests are.
    const name = nuid.next();
    const retry = { gate: ctx.gate, retryForMs: ctx.retryForMs, isClosed: () => nc.isClosed() };
    const info = await retryTransient(retry, () => ctx.jsm.consumers.add(ctx.streamName, {
      // Named, so created as nats.js's ordered consumers were ($JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>).
      name,
      filter_subject: filter, // a single filter subject, which 2.9 understands
      ...(fromSeq === undefined ? { deliver_policy: deliver } : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: fromSeq }),
      ...(headersOnly ? { headers_only: true } : {}),
      ack_policy: AckPolicy.None,
      mem_storage: true,
      num_replicas: 1,
      // Removed by the server once no pull has been open for this long: after a reader that
      // crashed, or one that spent longer than this over what it was given (the read opens no
      // pull while its reader is behind).
      inactive_threshold: nanos(CONSUMER_INACTIVE_MS),
    }));
    try {
      return new PullRead(ctx, nc, filter, info.name, Math.min(most, info.num_pending), headersOnly);
    } catch (err) {
      ctx.jsm.consumers.delete(ctx.streamName, info.name).catch(() => undefined);
      throw err;
    }
  }

  private constructor(ctx: ReadContext, nc: NatsConnection, filter: string, consumer: string, total: number, headersOnly: boolean) {
    this.#ctx = ctx;
    this.#nc = nc;
    this.#filter = filter;
    this.#consumer = consumer;
    this.total = total;
    this.#idleMs = ctx.readIdleMs ?? READ_IDLE_MS;
    this.#headersOnly = headersOnly;
    this.#sub = nc.subscribe(`${this.#inbox}.*`, { callback: (err, msg) => this.#onMessage(err, msg) });
    // Closed by the connection closing (not by close()): nothing more can come.
    void this.#sub.closed.then(() => this.#fail('the connection closed'), (err: unknown) => this.#fail('the subscription failed', err));
    // Not a reason to keep the process alive by itself (the connection and a waiting take() are).
    this.#checks = setInterval(() => this.#check(), PULL_HEARTBEAT_MS).unref();
  }

  /**
   * The messages delivered since the last call, in stream order, once there is at least one;
   * empty once all `total` have been taken. Rejects with what failed the read.
   */
  async take(): Promise<Delivery[]> {
    for (;;) {
      if (this.#failure) throw this.#failure;
      if (this.#queue.length > 0) {
        const batch = this.#queue;
        this.#queue = [];
        this.#queuedBytes = 0;
        this.#pullMore();
        return batch;
      }
      if (this.#closed || this.#delivered >= this.total) return [];
      this.#pullMore();
      await new Promise<void>((resolve) => {
        const idle = setTimeout(() => this.#fail(`no message came for ${this.#idleMs} ms`), this.#idleMs);
        this.#wake = () => {
          clearTimeout(idle);
          this.#wake = undefined;
          resolve();
        };
      });
    }
  }

  /** Ends the read: no more pulls, the consumer deleted (not waited for). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#checks);
    this.#sub.unsubscribe();
    this.#wake?.();
    this.#ctx.jsm.consumers.delete(this.#ctx.streamName, this.#consumer).catch(() => undefined);
  }

  /** Opens a pull unless one is open, all are delivered, the reader is behind, or the read is over. */
  #pullMore(): void {
    if (this.#pull !== undefined || this.#failure || this.#closed) return;
    const wanted = this.total - this.#delivered;
    if (wanted <= 0 || this.#queuedBytes >= PULL_MAX_BYTES) return;
    const subject = `${this.#inbox}.${++this.#pulls}`;
    const [expires, idle_heartbeat] = [nanos(PULL_EXPIRES_MS), nanos(PULL_HEARTBEAT_MS)];
    const request = this.#headersOnly
      ? { batch: Math.min(wanted, HEADERS_PULL_MESSAGES), expires, idle_heartbeat }
      : this.#alone
        ? { batch: 1, expires, idle_heartbeat }
        : { batch: Math.min(wanted, PULL_MAX_MESSAGES), max_bytes: PULL_MAX_BYTES, expires, idle_heartbeat };
    this.#alone = false;
    this.#pull = { subject, left: request.batch, got: 0 };
    this.#silentChecks = 0;
    try {
      this.#nc.publish(`${this.#ctx.js.apiPrefix}.CONSUMER.MSG.NEXT.${this.#ctx.streamName}.${this.#consumer}`, JSON.stringify(request), {
        reply: subject,
      });
    } catch (err) {
      this.#fail('a pull could not be sent', err);
    }
  }

  #onMessage(err: Error | null, msg: Msg): void {
    if (this.#closed || this.#failure) return;
    if (err) return this.#fail('the subscription failed', err);
    // The delivery info first: a message with it is one delivered (a status has no reply), and the
    // subject, which nats.js decodes on first use, is then not needed.
    const info = deliveryOf(msg.reply);
    if (info === undefined) {
      if (msg.subject.startsWith(this.#inbox)) return this.#onStatus(msg);
      return this.#fail(`a message on ${msg.subject} came without JetStream delivery info`);
    }
    this.#heard++;
    if (info.delivery !== this.#delivered + 1) {
      return this.#fail(`messages were lost on the way: delivery ${info.delivery} (stream sequence ${info.seq}) came after ${this.#delivered}`);
    }
    this.#delivered = info.delivery;
    this.#queue.push({ seq: info.seq, data: msg.data, pending: info.pending, storedAt: info.storedAt, msg });
    this.#queuedBytes += msg.data.length;
    const pull = this.#pull;
    if (pull !== undefined) {
      pull.got++;
      if (--pull.left === 0) {
        this.#pull = undefined; // the pull is complete (the server says nothing more of it)
        this.#pullMore();
      }
    }
    this.#wake?.();
  }

  /** A status from the server about a pull (its reply subject names which). */
  #onStatus(msg: Msg): void {
    const pull = this.#pull;
    if (msg.subject !== pull?.subject) return; // about an earlier pull: it is over already
    this.#heard++;
    const code = msg.headers?.code ?? 0;
    const description = msg.headers?.description ?? '';
    if (code === 100) return; // a heartbeat
    const bytesUsedUp = code === 409 && description.toLowerCase() === 'message size exceeds maxbytes';
    if (code === 408 || bytesUsedUp) {
      // The pull is over: it expired (the server had no more messages meanwhile), or the next
      // message would pass its byte limit; one that passed it alone is pulled by itself next.
      this.#alone = bytesUsedUp && pull.got === 0;
      this.#pull = undefined;
      this.#pullMore();
      return;
    }
    this.#fail(`the server refused a pull: ${code} ${description}`);
  }

  /**
   * Every {@link PULL_HEARTBEAT_MS}: an open pull that has heard nothing (no message, no heartbeat)
   * for {@link SILENT_CHECKS} checks in a row is looked up by its consumer. The lookup's answer
   * comes after whatever the server sent before it, so a pull only late (an event loop that was
   * busy) is not taken for lost. A consumer that is gone, or cannot be looked up, fails the read;
   * a pull lost while its consumer stays (it died with a dropped connection) is made again, and a
   * message the server sent into the dropped connection shows as a gap.
   */
  #check(): void {
    const pull = this.#pull;
    if (pull === undefined || this.#heard !== this.#heardAtCheck || this.#lookingUp) {
      this.#heardAtCheck = this.#heard;
      this.#silentChecks = 0;
      return;
    }
    if (++this.#silentChecks < SILENT_CHECKS) return;
    this.#lookingUp = true;
    const heard = this.#heard;
    this.#ctx.jsm.consumers
      .info(this.#ctx.streamName, this.#consumer)
      .then(
        () => {
          if (this.#pull !== pull || this.#heard !== heard) return; // it was only late
          this.#pull = undefined;
          this.#pullMore();
        },
        (err: unknown) => this.#fail(`its pull went unanswered for ${SILENT_CHECKS * PULL_HEARTBEAT_MS} ms and its consumer could not be looked up`, err),
      )
      .finally(() => {
        this.#lookingUp = false;
        this.#silentChecks = 0;
      });
  }

  #fail(why: string, cause?: unknown): void {
    if (this.#closed || this.#failure) return;
    const reason = cause instanceof Error ? `${why}: ${cause.message}` : why;
    this.#failure = new StoreUnavailableError(
      `JetStream ${this.#ctx.streamName}: the read of ${this.#filter} failed after ${this.#delivered} of ${this.total} messages: ${reason}`,
      cause === undefined ? undefined : { cause },
    );
    this.#wake?.();
  }
}
