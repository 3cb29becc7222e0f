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

export const DEFAULT_EXEC_CLAIMS_BUCKET = 'jetplan_exec_claims';

/** A held claim: refresh it while running, release it once the report is recorded. */
export interface Claim {
  refresh(): Promise<void>;
  release(): Promise<void>;
}

export class KvClaims {
  private constructor(private readonly kv: KV) {}

  /** Opens (creating) the bucket; claims not refreshed for `ttlMs` expire. */
  static async open(nc: NatsConnection, options: { bucket?: string; ttlMs: number }): Promise<KvClaims> {
    const kvm = new Kvm(nc);
    const bucket = options.bucket ?? DEFAULT_EXEC_CLAIMS_BUCKET;
    // An existing bucket made by an executor with another ack wait keeps its TTL.
    const kv = await kvm.create(bucket, { history: 1, ttl: options.ttlMs }).catch(() => kvm.open(bucket));
    return new KvClaims(kv);
  }

  /** Takes the dispatch's claim for `owner`, or resolves undefined when another process holds it. */
  async take(dispatchId: string, owner: string): Promise<Claim | undefined> {
    const key = inboxKey(dispatchId);
    let revision: number;
    try {
      revision = await this.kv.create(key, owner);
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamWrongLastSequence) return undefined;
      throw err;
    }
    return {
      refresh: async () => {
        revision = await this.kv.update(key, owner, revision);
      },
      release: () => this.kv.delete(key, { previousSeq: revision }),
    };
  }
}
