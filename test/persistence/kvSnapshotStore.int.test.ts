/**
 * KvSnapshotStore on a nats-server of the file's own: snapshots over the server's max_payload as
 * JSON are saved compressed, values written before compression are still read, an unreadable value
 * is a miss, and one too large even compressed is not sent at all.
 */
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { brotliCompress } from 'node:zlib';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { describe, expect, it } from 'vitest';
import { sessionLog } from '../../bench/sessionLog.js';
import { isValidationError } from '../../src/errors.js';
import { fold, initialSessionState, restoreState, serializeState, STATE_SCHEMA } from '../../src/machines/sessionState.js';
import { KvSnapshotStore, SNAPSHOT_HEADER } from '../../src/persistence/jetstream/kvSnapshotStore.js';
import type { Snapshot } from '../../src/persistence/snapshotStore.js';
import { natsTestEnv } from '../support/natsTestEnv.js';
import { uniqueName } from '../support/natsServer.js';

const env = natsTestEnv();
const MiB = 1024 * 1024;
const compress = promisify(brotliCompress);

/** A store on a bucket of its own, and the bucket itself (to plant values the store did not write). */
async function open(options: { maxValueSize?: number } = {}): Promise<{ store: KvSnapshotStore; kv: KV; bucket: string }> {
  const nc = await env.conn();
  const bucket = uniqueName('snap');
  const kv = await new Kvm(nc).create(bucket, { history: 1, ...options });
  const store = env.track(await KvSnapshotStore.create(nc, { bucket }));
  return { store, kv, bucket };
}

/** What the stream of the bucket holds: how many messages were ever stored, and the last one. */
async function streamState(bucket: string): Promise<{ messages: number; lastSeq: number }> {
  const jsm = await jetstreamManager(await env.conn());
  const { state } = await jsm.streams.info(`KV_${bucket}`);
  return { messages: state.messages, lastSeq: state.last_seq };
}

const jsonBytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value));

/** A realistic long session (bench/sessionLog.ts), whose serialized state is over 1 MiB of JSON. */
function longSession(): Snapshot {
  const id = 'long-session';
  const state = fold(initialSessionState(id), sessionLog(id, 5_500));
  return { streamId: id, version: state.version, schema: STATE_SCHEMA, state: serializeState(state), lastEventId: `event-${state.version}` };
}

describe('KvSnapshotStore size and format', () => {
  it('saves and loads back a long session whose JSON is over the server max_payload', async () => {
    const { store, kv } = await open();
    const snapshot = longSession();
    const maxPayload = (await env.conn()).info!.max_payload;
    expect(maxPayload).toBe(MiB);
    expect(jsonBytes(snapshot)).toBeGreaterThan(MiB);
    await store.save(snapshot);
    const loaded = await store.load(snapshot.streamId);
    expect(loaded).toEqual(JSON.parse(JSON.stringify(snapshot)));
    expect(restoreState(loaded!.state).version).toBe(snapshot.version);
    // Stored compressed behind the format header, well under the limit.
    const stored = (await kv.get(snapshot.streamId))!.value;
    expect([...stored.subarray(0, SNAPSHOT_HEADER.length)]).toEqual([...SNAPSHOT_HEADER]);
    expect(stored.length).toBeLessThan(maxPayload / 4);
  });

  it('still loads a snapshot stored as plain JSON (before compression)', async () => {
    const { store, kv } = await open();
    const snapshot: Snapshot = { streamId: 's-old', version: 300, schema: STATE_SCHEMA, state: { tasks: [{ id: 't1', note: 'ünïcode 🚀' }] } };
    await kv.put('s-old', JSON.stringify(snapshot));
    expect(await store.load('s-old')).toEqual(snapshot);
    // and the next save replaces it with the compressed form
    await store.save({ ...snapshot, version: 400 });
    expect(await store.load('s-old')).toEqual({ ...snapshot, version: 400 });
    expect((await kv.get('s-old'))!.value[0]).toBe(SNAPSHOT_HEADER[0]);
  });

  it('treats a corrupt or foreign compressed value as a miss, not an error', async () => {
    const { store, kv } = await open();
    const snapshot: Snapshot = { streamId: 'c', version: 1, schema: STATE_SCHEMA, state: { n: 1 } };
    const valid = Buffer.concat([SNAPSHOT_HEADER, await compress(JSON.stringify(snapshot))]);
    const values: Record<string, Uint8Array> = {
      garbage: Buffer.concat([SNAPSHOT_HEADER, randomBytes(512)]),
      truncated: valid.subarray(0, valid.length - 4),
      'flipped-byte': Buffer.from(valid).fill(0x55, SNAPSHOT_HEADER.length + 2, SNAPSHOT_HEADER.length + 6),
      'not-json': Buffer.concat([SNAPSHOT_HEADER, await compress('{"streamId": ')]),
      'header-only': Buffer.from(SNAPSHOT_HEADER),
      'next-format': Buffer.concat([SNAPSHOT_HEADER.subarray(0, 3), Buffer.of(SNAPSHOT_HEADER[3]! + 1), valid.subarray(4)]),
      'gzip': Buffer.of(0x1f, 0x8b, 0x08, 0x00, 0x00),
    };
    for (const [key, value] of Object.entries(values)) {
      await kv.put(key, value);
      expect(await store.load(key), key).toBeUndefined();
    }
    // The same bytes, intact and under the key they name, are a snapshot.
    await kv.put('c', valid);
    expect(await store.load('c')).toEqual(snapshot);
  });

  it('does not send a snapshot too large even compressed: one clear error, no server error, the older one kept', async () => {
    const { store, bucket } = await open();
    const small: Snapshot = { streamId: 'huge', version: 100, schema: STATE_SCHEMA, state: { n: 1 } };
    await store.save(small);
    const before = await streamState(bucket);
    // Random bytes do not compress: about 1.5 MiB whatever the codec does.
    const huge: Snapshot = { ...small, version: 200, state: { blob: randomBytes(1.1 * MiB).toString('base64') } };
    const err = await store.save(huge).then(() => undefined, (e: unknown) => e);
    expect(isValidationError(err)).toBe(true);
    expect((err as Error).cause).toBeUndefined(); // not a NATS error wrapped
    expect((err as Error).message).toMatch(/session huge at version 200 is \d+ bytes compressed .*over the 1048576 bytes/);
    expect(await streamState(bucket)).toEqual(before); // nothing was published
    expect(await store.load('huge')).toEqual(small); // the older snapshot stays a valid cache entry
  });

  it('keeps within the bucket max value size when it is lower than max_payload', async () => {
    const { store, bucket } = await open({ maxValueSize: 4_096 });
    const snapshot: Snapshot = { streamId: 'v', version: 1, schema: STATE_SCHEMA, state: { blob: randomBytes(8_192).toString('hex') } };
    const err = await store.save(snapshot).then(() => undefined, (e: unknown) => e);
    expect(isValidationError(err)).toBe(true);
    expect((err as Error).message).toMatch(/over the 4096 bytes/);
    expect((await streamState(bucket)).lastSeq).toBe(0);
    const fits: Snapshot = { ...snapshot, state: { text: 'compressible '.repeat(2_000) } };
    expect(jsonBytes(fits)).toBeGreaterThan(4_096);
    await store.save(fits);
    expect(await store.load('v')).toEqual(fits);
  });
});
