/**
 * Active/standby leadership through a lease in a KV bucket whose TTL is the lease time (server 2.9:
 * bucket max_age, no per-key TTL). `create` is atomic (expected last subject sequence 0), so at most
 * one instance takes a free key; the holder renews with `update(key, id, revision)` every ttl/3. A
 * renewal refused for a revision mismatch means another instance holds the key (unless the key
 * still holds this instance's id: a renewal that timed out but was written): the holder steps
 * down at once. A holder whose renewals fail (NATS unreachable, a renewal hanging) steps down 2/3
 * of a TTL after its last successful renewal began, before the key can expire and be taken. A standby polls every ttl/3 and watches the key, so a deleted lease (a clean
 * shutdown) is taken over at once and an expired one within a poll interval.
 */
import { randomUUID } from 'node:crypto';
import { Kvm, KvWatchInclude, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { withinMs } from '../shared/waits.js';

/** Options of {@link LeaderLease}. */
export interface LeaderLeaseOptions {
  nc: NatsConnection;
  /** KV bucket (default 'jetplan_leases'); its TTL is set to `ttlMs` when this creates it. */
  bucket?: string;
  /** The lease key: one per planner stream. */
  key: string;
  instanceId: string;
  ttlMs: number;
  logger: Logger;
  /** Told each time leadership is gained (true) or lost (false). */
  onChange: (leader: boolean) => void;
}

export const DEFAULT_LEASE_BUCKET = 'jetplan_leases';

/** How long close() waits for a renewal in flight, and then for the release, ms. */
const RELEASE_WAIT_MS = 2_000;

/** Holds or waits for the lease in a loop until closed. */
export class LeaderLease {
  private leader = false;
  private revision = 0;
  private closed = false;
  private wake: () => void = () => {};
  private loop: Promise<void> | undefined;
  private watcher: { stop(): void } | undefined;
  /** Steps down when no renewal succeeded in time: before the key can expire on the server. */
  private deadline: ReturnType<typeof setTimeout> | undefined;
  /** When the last good create or renewal began. */
  private renewedAt = 0;
  /** When the first renewal not yet confirmed began (undefined while the last one succeeded). */
  private unconfirmedSince: number | undefined;
  /**
   * What this process writes into the key: its instance id and a token of its own, so that a
   * second process started with the same instance id is another holder, not "us".
   */
  readonly holder: string;

  private constructor(
    private readonly o: LeaderLeaseOptions,
    private readonly kv: KV,
    /** The bucket's TTL, which rules if the bucket already existed with another one. */
    readonly ttlMs: number,
  ) {
    this.holder = `${o.instanceId}#${randomUUID()}`;
  }

  /** Opens (or creates) the bucket and starts campaigning. */
  static async start(o: LeaderLeaseOptions): Promise<LeaderLease> {
    const bucket = o.bucket ?? DEFAULT_LEASE_BUCKET;
    const kv = await new Kvm(o.nc).create(bucket, { history: 1, ttl: o.ttlMs });
    const ttl = (await kv.status()).ttl || o.ttlMs;
    if (ttl !== o.ttlMs) o.logger.warn({ bucket, ttl, wanted: o.ttlMs }, 'lease bucket exists with another TTL; using it');
    const lease = new LeaderLease(o, kv, ttl);
    await lease.watchDeletes();
    lease.loop = lease.run();
    return lease;
  }

  isLeader(): boolean {
    return this.leader;
  }

  /** Stops campaigning; a leader deletes its lease (only its own revision) so a standby takes over. */
  async close(): Promise<void> {
    this.closed = true;
    // Stop leading at once: a renewal hanging in the loop must not keep this instance leader
    // while the key expires and a standby takes it.
    const wasLeader = this.leader;
    this.setLeader(false);
    this.watcher?.stop();
    this.wake();
    // Bounded waits: with NATS away a renewal in flight and the release each take a request's
    // timeout, and an unreleased lease only costs a standby the rest of its TTL. A renewal that
    // lands after the release, or a release after a renewal, fails on the key's revision.
    if (this.loop) await withinMs(this.loop, RELEASE_WAIT_MS);
    clearTimeout(this.deadline);
    if (!wasLeader) return;
    await withinMs(this.release(), RELEASE_WAIT_MS, 'no answer').catch((err: unknown) => {
      this.o.logger.warn({ err }, 'lease not released; it expires after its TTL');
    });
  }

  /** Deletes the key at our revision, or at the one a renewal close() did not wait for moved it to. */
  private async release(): Promise<void> {
    // The revision tried, not `this.revision` later: the late renewal's reply may set that meanwhile.
    const tried = this.revision;
    try {
      await this.kv.delete(this.o.key, { previousSeq: tried });
    } catch (err) {
      const ours = await this.ourRevision();
      if (ours === undefined || ours === tried) throw err;
      await this.kv.delete(this.o.key, { previousSeq: ours });
    }
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      try {
        const ok = this.leader ? await this.renew() : await this.campaign();
        // Renewals are paced from when the last good one began (not when it ended, which a slow
        // server pushes towards the deadline); a failed one is tried again soon, well inside it.
        let pause = this.ttlMs / 3;
        if (this.leader) pause = ok ? this.renewedAt + this.ttlMs / 3 - performance.now() : Math.min(this.ttlMs / 12, 500);
        await this.pause(Math.max(0, pause));
      } catch (err) {
        this.o.logger.error({ err }, 'lease loop failed; going on');
        await this.pause(this.ttlMs / 3);
      }
    }
  }

  /** Tries to take the lease; true if this instance now leads. */
  private async campaign(): Promise<boolean> {
    const started = performance.now();
    try {
      this.revision = await this.kv.create(this.o.key, this.holder);
    } catch {
      // Held by another instance, or NATS unreachable: stay standby. Or still ours, left by a
      // step-down on the deadline while NATS was slow: then renewing it takes it back.
      const ours = await this.ourRevision();
      if (ours === undefined) return false;
      try {
        this.revision = await this.kv.update(this.o.key, this.holder, ours);
      } catch {
        return false;
      }
    }
    this.renewed(started);
    if (this.closed) {
      await this.kv.delete(this.o.key, { previousSeq: this.revision }).catch(() => undefined);
      return false;
    }
    this.o.logger.info({ instanceId: this.o.instanceId, key: this.o.key }, 'leader lease acquired');
    this.setLeader(true);
    return true;
  }

  /** Renews the lease; false if this renewal failed (the leader may still hold it). */
  private async renew(): Promise<boolean> {
    const started = performance.now();
    this.unconfirmedSince ??= started;
    try {
      // A renewal sent during an outage gets no answer: give up on it after TTL/6 (≤ 2 s), not
      // the client's 5 s request timeout, so that retries fit before the 2/3-TTL deadline.
      const timeout = Math.max(250, Math.min(2_000, this.ttlMs / 6));
      this.revision = await this.kv.update(this.o.key, this.holder, this.revision, timeout);
      this.unconfirmedSince = undefined;
      this.renewed(started);
      return true;
    } catch (err) {
      // Refused for the revision: an earlier renewal that timed out may have been written after
      // all, and then the key holds our token at a newer revision. (A renewal that timed out is
      // simply tried again soon: if it landed, that retry is refused this way.)
      const mismatch = (err as { code?: number }).code === 10071;
      if (mismatch && (await this.adoptLanded())) return true;
      if (!mismatch) {
        this.o.logger.warn({ err }, 'lease renewal failed; retrying');
        return false;
      }
      // Usually another instance took it; also a key deleted, or a KV stream gone inconsistent.
      this.o.logger.warn({ err }, 'leader lease renewal refused: the key changed (another instance took it, or it is gone); stepping down');
      this.setLeader(false);
      return false;
    }
  }

  /**
   * If a renewal of ours landed unconfirmed (the key holds this process's token at a newer
   * revision), adopts that revision and counts it as renewed when the earliest unconfirmed
   * attempt began: the write came after that, so the key lives at least until then + TTL.
   */
  private async adoptLanded(): Promise<boolean> {
    if (!(await this.stillOurs())) return false;
    const since = this.unconfirmedSince;
    if (since === undefined) return false;
    this.unconfirmedSince = undefined;
    this.renewed(since);
    return true;
  }

  /**
   * Whether the key holds this process's token at a revision other than the one we know; if so,
   * that revision is adopted. The token is unique per process, so two instances started with the
   * same instance id never take each other's lease for their own.
   */
  private async stillOurs(): Promise<boolean> {
    const revision = await this.ourRevision();
    if (revision === undefined || revision === this.revision) return false;
    this.revision = revision;
    return true;
  }

  /** The key's revision if it holds this process's token. */
  private async ourRevision(): Promise<number | undefined> {
    const entry = await this.kv.get(this.o.key).catch(() => null);
    return entry?.operation === 'PUT' && entry.string() === this.holder ? entry.revision : undefined;
  }

  /**
   * A create or update that started at `started` succeeded: the key lives until at least
   * `started` + TTL on the server. The leader steps down at `started` + 2/3 TTL unless renewed
   * again by then (renewals run every TTL/3), so it has stopped before a standby can take the
   * expired key, even while a renewal hangs for the whole request timeout.
   */
  private renewed(started: number): void {
    this.renewedAt = started;
    clearTimeout(this.deadline);
    const left = started + (this.ttlMs * 2) / 3 - performance.now();
    this.deadline = setTimeout(() => {
      if (!this.leader) return;
      this.o.logger.warn({ key: this.o.key }, 'leader lease not renewed in time; stepping down before it can expire');
      this.setLeader(false);
    }, Math.max(0, left));
    this.deadline.unref?.();
  }

  private setLeader(leader: boolean): void {
    if (this.leader === leader) return;
    this.leader = leader;
    if (!leader) {
      clearTimeout(this.deadline);
      this.unconfirmedSince = undefined; // a new term counts its renewals afresh
    }
    this.o.onChange(leader);
  }

  private pause(ms: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** A deleted lease (released by a leader that shut down) wakes a standby at once. */
  private async watchDeletes(): Promise<void> {
    const iterator = await this.kv.watch({ key: this.o.key, include: KvWatchInclude.UpdatesOnly });
    this.watcher = iterator;
    void (async () => {
      for await (const entry of iterator) {
        if (!this.leader && (entry.operation === 'DEL' || entry.operation === 'PURGE')) this.wake();
      }
    })().catch(() => undefined);
  }
}
