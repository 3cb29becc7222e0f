/**
 * Claims of dispatches being run, on a JetStream KV bucket: before running a handler, an executor
 * creates the dispatch's claim (atomic: fails when another process holds it) and refreshes it while
 * the handler runs. A second delivery of the same dispatch to another process (a planner failover
 * re-publishing after the duplicate window, a redelivery past the ack wait) finds the claim and
 * waits for the report instead of running the task again. The bucket's TTL frees the claim of an
 * executor that died mid-run, so its task is run again: the one case of at-least-once.
 */
import { Kvm, type KV } from '@nats-io/kv';
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { inboxKey } from './executorInbox.js';
import { executorNames } from '../protocol/deploymentNames.js';
import { DEFAULT_STREAM_NAME, DEFAULT_SUBJECT_PREFIX } from '../persistence/jetstream/streamConfig.js';

/** The claims bucket when neither a claims nor an inbox bucket is named: the default deployment's. */
export const DEFAULT_EXEC_CLAIMS_BUCKET = executorNames(DEFAULT_STREAM_NAME, DEFAULT_SUBJECT_PREFIX).claimsBucket;

/** A held claim: refresh it while running, release it once the report is recorded. */
export interface Claim {
  /** Rejects with ClaimLostError when the claim is no longer this holder's (expired, taken over). */
  refresh(): Promise<void>;
  release(): Promise<void>;
}

/** The claim was changed or removed by someone else: it is no longer held. */
export class ClaimLostError extends Error {
  constructor(dispatchId: string, options?: { cause?: unknown }) {
    super(`claim on ${dispatchId} lost: it expired or another executor took it`, options);
    this.name = 'ClaimLostError';
  }
}

/** Whether a KV write failed because the key's last revision is not the expected one. */
const wrongRevision = (err: unknown): boolean =>
  err instanceof JetStreamApiError &&
  (err.code === JetStreamApiCodes.StreamWrongLastSequence || err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown);

/** The claims bucket: take a dispatch's claim before running it. */
export class KvClaims {
  private constructor(
    private readonly kv: KV,
    /** How long a claim lives without a refresh (the bucket's TTL), ms. */
    readonly ttlMs: number,
  ) {}

  /**
   * Opens (creating with `ttlMs`) the bucket. An existing bucket keeps the TTL it was made with,
   * whoever made it: one shorter than `minTtlMs` (or none) is refused, since claims would lapse
   * between refreshes (or a dead executor's claim would never lapse).
   */
  static async open(nc: NatsConnection, options: { bucket?: string; ttlMs: number; minTtlMs?: number }): Promise<KvClaims> {
    const kvm = new Kvm(nc);
    const bucket = options.bucket ?? DEFAULT_EXEC_CLAIMS_BUCKET;
    const kv = await kvm.create(bucket, { history: 1, ttl: options.ttlMs }).catch(() => kvm.open(bucket));
    const ttlMs = (await kv.status()).ttl;
    const minTtlMs = options.minTtlMs ?? 0;
    if (ttlMs <= 0 || ttlMs < minTtlMs) {
      throw new Error(
        `claims bucket ${bucket} ${ttlMs <= 0 ? 'has no TTL' : `expires claims after ${ttlMs} ms`}, but this executor ` +
          `needs at least ${minTtlMs} ms (its ack wait) to refresh them in time. Delete the bucket (it is made again ` +
          `with 3x the ack wait of the next executor to start) or lower this executor's ack wait to ${ttlMs > 0 ? ttlMs : 'fit'} ms or less.`,
      );
    }
    return new KvClaims(kv, ttlMs);
  }

  /** Takes the dispatch's claim for `owner`, or resolves undefined when another process holds it. */
  async take(dispatchId: string, owner: string): Promise<Claim | undefined> {
    const key = inboxKey(dispatchId);
    let revision: number;
    try {
      revision = await this.kv.create(key, owner);
    } catch (err) {
      if (wrongRevision(err)) return undefined;
      throw err;
    }
    // One operation at a time, so a release follows an in-flight refresh and uses its revision.
    let last: Promise<unknown> = Promise.resolve();
    const serial = <T>(op: () => Promise<T>): Promise<T> => {
      const next = last.then(op, op);
      last = next.catch(() => undefined);
      return next;
    };
    return {
      refresh: () =>
        serial(async () => {
          try {
            revision = await this.kv.update(key, owner, revision);
          } catch (err) {
            throw wrongRevision(err) ? new ClaimLostError(dispatchId, { cause: err }) : err;
          }
        }),
      release: () => serial(() => this.kv.delete(key, { previousSeq: revision })),
    };
  }
}
