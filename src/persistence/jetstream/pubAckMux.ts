import { JetStreamApiError, PubHeaders, type ApiError, type PubAck } from '@nats-io/jetstream';
import {
  createInbox,
  errors,
  headers as natsHeaders,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type Subscription,
} from '@nats-io/transport-node';

/** What a JetStream publish takes here: the subset of nats.js's options the stores use. */
export interface PublishOptions {
  msgID?: string;
  expect?: { lastSubjectSequence?: number };
  headers?: MsgHdrs;
  /** How long to wait for the PubAck, ms. */
  timeout: number;
}

interface Pending {
  subject: string;
  resolve(ack: PubAck): void;
  reject(err: Error): void;
  deadline: number;
}

const decoder = new TextDecoder();
/** How often expired requests are failed; a timeout fires up to this much late. */
const SWEEP_MS = 50;

/**
 * JetStream publishes whose PubAcks come back on one reply subscription, matched by token.
 * Why not `js.publish`: nats.js makes each request a RequestOne with its own timer, and on every
 * reply its cancel() builds a RequestError (a stack trace) that nobody sees: 10% of the planner
 * service's CPU at 1,000 sessions. The wire protocol is the same (a publish with a reply subject);
 * replies, errors and timeouts surface as nats.js's own types, so callers translate them alike:
 * an API error is a JetStreamApiError (by code), a 503 status a RequestError that
 * isNoResponders(), no reply in time a TimeoutError.
 */
export class PubAckMux {
  readonly #nc: NatsConnection;
  readonly #prefix: string;
  readonly #pending = new Map<string, Pending>();
  readonly #sub: Subscription;
  readonly #sweeper: NodeJS.Timeout;
  #next = 0;
  #closed = false;

  constructor(nc: NatsConnection) {
    this.#nc = nc;
    this.#prefix = `${createInbox()}.`;
    this.#sub = nc.subscribe(`${this.#prefix}*`, {
      // A failed subscription gets no more replies: fail what waits and refuse further publishes.
      callback: (err, msg) => (err ? this.close(err) : this.#onReply(msg)),
    });
    this.#sweeper = setInterval(() => this.#sweep(), SWEEP_MS);
    this.#sweeper.unref();
    // A closed connection answers nothing more: fail what waits instead of letting it time out.
    void nc.closed().then(() => this.close());
  }

  /** Publishes `data` to `subject` and resolves with the stream's PubAck. */
  publish(subject: string, data: string | Uint8Array, options: PublishOptions): Promise<PubAck> {
    if (this.#closed) return Promise.reject(new errors.ClosedConnectionError());
    const h = options.headers ?? natsHeaders();
    if (options.msgID !== undefined) h.set(PubHeaders.MsgIdHdr, options.msgID);
    const last = options.expect?.lastSubjectSequence;
    if (last !== undefined) h.set(PubHeaders.ExpectedLastSubjectSequenceHdr, String(last));
    const token = (this.#next++).toString(36);
    return new Promise<PubAck>((resolve, reject) => {
      try {
        this.#nc.publish(subject, data, { reply: this.#prefix + token, headers: h });
      } catch (err) {
        reject(err as Error); // closed or draining connection, bad subject
        return;
      }
      this.#pending.set(token, { subject, resolve, reject, deadline: Date.now() + options.timeout });
    });
  }

  /** Fails every publish still waiting (with `reason`) and stops listening. */
  close(reason: Error = new errors.ClosedConnectionError()): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweeper);
    this.#sub.unsubscribe();
    this.#failAll(reason);
  }

  #onReply(msg: Msg): void {
    const token = msg.subject.slice(this.#prefix.length);
    const pending = this.#pending.get(token);
    if (!pending) return; // timed out already
    this.#pending.delete(token);
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      // As nats.js reports it: a RequestError whose cause is NoRespondersError (isNoResponders()).
      const cause = new errors.NoRespondersError(pending.subject);
      pending.reject(new errors.RequestError(cause.message, { cause }));
      return;
    }
    try {
      const reply = JSON.parse(decoder.decode(msg.data)) as PubAck & { error?: ApiError };
      if (reply.error) pending.reject(new JetStreamApiError(reply.error));
      else pending.resolve({ ...reply, duplicate: reply.duplicate === true });
    } catch (err) {
      pending.reject(err as Error);
    }
  }

  #sweep(): void {
    const now = Date.now();
    for (const [token, pending] of this.#pending) {
      if (pending.deadline > now) continue;
      this.#pending.delete(token);
      pending.reject(new errors.TimeoutError());
    }
  }

  #failAll(err: Error): void {
    for (const pending of this.#pending.values()) pending.reject(err);
    this.#pending.clear();
  }
}
