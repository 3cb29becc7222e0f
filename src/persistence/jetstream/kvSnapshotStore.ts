/**
 * Snapshots in a JetStream KV bucket: one key per session. The value is the Snapshot as JSON,
 * brotli-compressed behind a 4-byte header ({@link SNAPSHOT_HEADER}); a value without the header
 * is read as plain JSON, the format before compression.
 */
import { promisify } from 'node:util';
import { brotliCompress, brotliDecompress, constants as zlib } from 'node:zlib';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { isValidationError, StoreUnavailableError, ValidationError } from '../../errors.js';
import type { Snapshot, SnapshotStore } from '../snapshotStore.js';

export interface KvSnapshotStoreOptions {
  /** Default 'jetplan_snapshots'. */
  bucket?: string;
  /** Default 1. */
  replicas?: number;
}

export const DEFAULT_SNAPSHOT_BUCKET = 'jetplan_snapshots';

/**
 * The first bytes of a compressed snapshot: "JPS" and the format, 1 (brotli of the Snapshot's
 * JSON). No JSON text starts with "J", so a plain-JSON value (written before compression, "{…")
 * is told apart; a later format takes the next number, and a store that does not know it misses.
 */
export const SNAPSHOT_HEADER: Uint8Array = Uint8Array.of(0x4a, 0x50, 0x53, 0x01);

/** The most a compressed snapshot may expand to when read (bytes of JSON): past it, a miss. */
export const MAX_SNAPSHOT_JSON_BYTES = 256 * 1024 * 1024;

/**
 * Brotli qualities: every save compresses at FAST (about 8x on a session's JSON, a few ms a MiB);
 * one that is then over the limit, but by less than RETRY_RATIO, is compressed again at SMALL
 * (about 12x, several times slower) before it is given up. Numbers: docs/architecture.md.
 */
const FAST_QUALITY = 1;
const SMALL_QUALITY = 5;
const RETRY_RATIO = 2;

const compress = promisify(brotliCompress);
const decompress = promisify(brotliDecompress);

const KEY = /^[-/_=.a-zA-Z0-9]+$/;

function isSnapshot(value: unknown): value is Snapshot {
  const v = value as Partial<Snapshot> | null;
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof v.streamId === 'string' &&
    typeof v.version === 'number' &&
    typeof v.schema === 'number' &&
    (v.lastEventId === undefined || typeof v.lastEventId === 'string') &&
    'state' in v
  );
}

export interface EncodedSnapshot {
  /** The KV value: {@link SNAPSHOT_HEADER} and the compressed JSON. */
  value: Uint8Array;
  /** The size of the JSON it holds. */
  jsonBytes: number;
}

/**
 * A snapshot as a KV value. When `limit` (bytes) is given and the fast compression is over it, it
 * is compressed again harder, unless that cannot be enough; the value may still be over `limit`.
 * @throws TypeError when the snapshot is not JSON-serializable.
 */
export async function encodeSnapshot(snapshot: Snapshot, limit = Infinity): Promise<EncodedSnapshot> {
  const json = Buffer.from(JSON.stringify(snapshot), 'utf8');
  const at = (quality: number) =>
    compress(json, {
      params: {
        [zlib.BROTLI_PARAM_QUALITY]: quality,
        [zlib.BROTLI_PARAM_MODE]: zlib.BROTLI_MODE_TEXT,
        [zlib.BROTLI_PARAM_SIZE_HINT]: json.length,
      },
    });
  let body = await at(FAST_QUALITY);
  if (SNAPSHOT_HEADER.length + body.length > limit && SNAPSHOT_HEADER.length + body.length <= limit * RETRY_RATIO) {
    body = await at(SMALL_QUALITY);
  }
  return { value: Buffer.concat([SNAPSHOT_HEADER, body]), jsonBytes: json.length };
}

/**
 * The JSON value a KV value holds: compressed behind {@link SNAPSHOT_HEADER}, else plain JSON.
 * Undefined when it cannot be read (corrupt, truncated, another format, over `maxJsonBytes`
 * expanded, not JSON): snapshots are a cache. Callers validate the shape themselves.
 */
export async function decodeSnapshot(value: Uint8Array, maxJsonBytes = MAX_SNAPSHOT_JSON_BYTES): Promise<unknown> {
  try {
    if (!hasHeader(value)) return JSON.parse(Buffer.from(value.buffer, value.byteOffset, value.length).toString('utf8'));
    const json = await decompress(value.subarray(SNAPSHOT_HEADER.length), { maxOutputLength: maxJsonBytes });
    return JSON.parse(json.toString('utf8'));
  } catch {
    return undefined;
  }
}

function hasHeader(value: Uint8Array): boolean {
  return value.length >= SNAPSHOT_HEADER.length && SNAPSHOT_HEADER.every((byte, i) => value[i] === byte);
}

export class KvSnapshotStore implements SnapshotStore {
  readonly #kv: KV;
  readonly #nc: NatsConnection;
  readonly #maxValueSize: number;
  readonly bucket: string;
  #closed = false;

  private constructor(nc: NatsConnection, kv: KV, bucket: string, maxValueSize: number) {
    this.#nc = nc;
    this.#kv = kv;
    this.bucket = bucket;
    this.#maxValueSize = maxValueSize;
  }

  /** Creates (or opens) the bucket. The caller keeps owning `nc`. */
  static async create(nc: NatsConnection, options: KvSnapshotStoreOptions = {}): Promise<KvSnapshotStore> {
    const bucket = options.bucket ?? DEFAULT_SNAPSHOT_BUCKET;
    try {
      const kv = await new Kvm(nc).create(bucket, { history: 1, replicas: options.replicas ?? 1 });
      // An existing bucket keeps its configuration: its max value size may be set, below max_payload.
      const { maxValueSize } = await kv.status();
      return new KvSnapshotStore(nc, kv, bucket, maxValueSize > 0 ? maxValueSize : Infinity);
    } catch (err) {
      throw new StoreUnavailableError(`KV bucket ${bucket}: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * The largest value a put can carry, bytes: the server's max_payload (read from the connection,
   * which can reconnect to another server) or the bucket's max value size, whichever is lower.
   */
  get valueLimit(): number {
    const maxPayload = this.#nc.info?.max_payload;
    return Math.min(maxPayload !== undefined && maxPayload > 0 ? maxPayload : Infinity, this.#maxValueSize);
  }

  /** The latest snapshot of a session, or undefined (none, deleted, or unreadable: it is a cache). */
  async load(streamId: string): Promise<Snapshot | undefined> {
    this.#assertUsable(streamId);
    let value: Uint8Array;
    try {
      const entry = await this.#kv.get(streamId);
      if (entry === null || entry.operation !== 'PUT' || entry.length === 0) return undefined;
      value = entry.value;
    } catch (err) {
      throw new StoreUnavailableError(`KV bucket ${this.bucket}: ${(err as Error).message}`, { cause: err });
    }
    const snapshot = await decodeSnapshot(value);
    return isSnapshot(snapshot) && snapshot.streamId === streamId ? snapshot : undefined;
  }

  /**
   * @throws ValidationError, without sending it, when the snapshot is larger than a value may be
   * even compressed ({@link valueLimit}): the session then loads from an older snapshot or the log.
   */
  async save(snapshot: Snapshot): Promise<void> {
    this.#assertUsable(snapshot.streamId);
    try {
      const limit = this.valueLimit;
      const { value, jsonBytes } = await encodeSnapshot(snapshot, limit);
      if (value.length > limit) {
        throw new ValidationError(
          `KV bucket ${this.bucket}: the snapshot of session ${snapshot.streamId} at version ${snapshot.version} is ${value.length} bytes compressed (${jsonBytes} bytes of JSON), over the ${limit} bytes a value may have (the server's max_payload or the bucket's max value size); not sent, loads use an older snapshot or the log`,
        );
      }
      await this.#kv.put(snapshot.streamId, value);
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
