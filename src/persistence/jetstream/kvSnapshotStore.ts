/** Snapshots in a JetStream KV bucket: one key per session, the value is the Snapshot as JSON. */
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { isValidationError, StoreUnavailableError, ValidationError } from '../../errors.js';
import type { Snapshot, SnapshotStore } from '../snapshotStore.js';
import { readKvJson } from './kvJson.js';

export interface KvSnapshotStoreOptions {
  /** Default 'jetplan_snapshots'. */
  bucket?: string;
  /** Default 1. */
  replicas?: number;
}

export const DEFAULT_SNAPSHOT_BUCKET = 'jetplan_snapshots';

const KEY = /^[-/_=.a-zA-Z0-9]+$/;

function isSnapshot(value: unknown): value is Snapshot {
  const v = value as Partial<Snapshot> | null;
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof v.streamId === 'string' &&
    typeof v.version === 'number' &&
    typeof v.schema === 'number' &&
    'state' in v
  );
}

export class KvSnapshotStore implements SnapshotStore {
  readonly #kv: KV;
  readonly #nc: NatsConnection;
  readonly bucket: string;
  #closed = false;

  private constructor(nc: NatsConnection, kv: KV, bucket: string) {
    this.#nc = nc;
    this.#kv = kv;
    this.bucket = bucket;
  }

  /** Creates (or opens) the bucket. The caller keeps owning `nc`. */
  static async create(nc: NatsConnection, options: KvSnapshotStoreOptions = {}): Promise<KvSnapshotStore> {
    const bucket = options.bucket ?? DEFAULT_SNAPSHOT_BUCKET;
    try {
      const kv = await new Kvm(nc).create(bucket, { history: 1, replicas: options.replicas ?? 1 });
      return new KvSnapshotStore(nc, kv, bucket);
    } catch (err) {
      throw new StoreUnavailableError(`KV bucket ${bucket}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** The latest snapshot of a session, or undefined (none, deleted, or unreadable: it is a cache). */
  async load(streamId: string): Promise<Snapshot | undefined> {
    this.#assertUsable(streamId);
    try {
      const value = await readKvJson(this.#kv, streamId);
      return isSnapshot(value) && value.streamId === streamId ? value : undefined;
    } catch (err) {
      throw new StoreUnavailableError(`KV bucket ${this.bucket}: ${(err as Error).message}`, { cause: err });
    }
  }

  async save(snapshot: Snapshot): Promise<void> {
    this.#assertUsable(snapshot.streamId);
    try {
      await this.#kv.put(snapshot.streamId, JSON.stringify(snapshot));
    } catch (err) {
      if (isValidationError(err)) throw err;
      throw new StoreUnavailableError(`KV bucket ${this.bucket}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Does not close the connection (the caller owns it). */
  async close(): Promise<void> {
    this.#closed = true;
  }

  #assertUsable(streamId: string): void {
    if (this.#closed) throw new StoreUnavailableError('KV snapshot store is closed');
    if (this.#nc.isClosed()) throw new StoreUnavailableError('NATS connection is closed');
    if (!KEY.test(streamId) || streamId.startsWith('.') || streamId.endsWith('.')) {
      throw new ValidationError(`session id ${JSON.stringify(streamId)} is not a valid KV key`);
    }
  }
}
