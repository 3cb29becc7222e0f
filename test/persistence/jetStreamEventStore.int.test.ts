import { randomUUID } from 'node:crypto';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isConcurrencyError, isCorruptLogError, isStoreUnavailableError, isValidationError } from '../../src/errors.js';
import type { NewEvent } from '../../src/protocol/events.js';
import {
  ensureStream,
  HEADER_CAUSATION_ID,
  HEADER_CORRELATION_ID,
  HEADER_EVENT_TYPE,
  JetStreamEventStore,
  KvSnapshotStore,
  subjects,
} from '../../src/persistence/jetstream/index.js';
import { ConnectionGate } from '../../src/persistence/jetstream/connectionGate.js';
import { readRange } from '../../src/persistence/jetstream/jetStreamReads.js';
import { covers } from '../../src/persistence/jetstream/streamConfig.js';
import { startNatsServer, uniqueName, type NatsServerHandle } from '../support/natsServer.js';
import { runEventStoreContract } from './eventStoreContract.js';
import { wireBytes } from './fixtures.js';
import { eventBody } from '../../src/persistence/jetstream/jetStreamAppends.js';

let server: NatsServerHandle;
const connections: NatsConnection[] = [];

async function connectTo(): Promise<NatsConnection> {
  const nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  connections.push(nc);
  return nc;
}

function isolation() {
  return { streamName: uniqueName('JP'), subjectPrefix: uniqueName('jp') };
}

function event(sessionId: string, reason = 'r'): NewEvent {
  return {
    id: randomUUID(),
    type: 'SessionCancelled',
    version: 1,
    sessionId,
    timestamp: Date.now(),
    causationId: `cause-${reason}`,
    correlationId: `corr-${sessionId}`,
    data: { reason },
  };
}

beforeAll(async () => {
  server = await startNatsServer();
});

afterAll(async () => {
  await Promise.all(connections.map((nc) => nc.close().catch(() => undefined)));
  await server?.cleanup();
});

// The shared contract, on one server: each test gets its own stream and subject prefix.
runEventStoreContract('JetStreamEventStore', async () => {
  const nc = await connectTo();
  const opts = isolation();
  const store = await JetStreamEventStore.create(nc, opts);
  return {
    store,
    cleanup: async () => {
      await store.close();
      const jsm = await jetstreamManager(nc);
      await jsm.streams.delete(opts.streamName).catch(() => undefined);
    },
  };
});

describe('startNatsServer', () => {
  it('gives a reachable server with its own store directory', async () => {
    const nc = await connectTo();
    expect(server.url).toBe(`nats://127.0.0.1:${server.port}`);
    expect(server.dir).toMatch(/jetplan-nats-/);
    const jsm = await jetstreamManager(nc);
    const info = await jsm.getAccountInfo();
    expect(info).toBeDefined();
  });

  it('uniqueName gives distinct stream-safe names', () => {
    const a = uniqueName('X');
    const b = uniqueName('X');
    expect(a).not.toBe(b);
    expect(a).toMatch(/^X_[A-Za-z0-9_]+$/);
  });
});

describe('ensureStream', () => {
  it('creates the stream with jetplan config, idempotently', async () => {
    const nc = await connectTo();
    const opts = isolation();
    const first = await ensureStream(nc, opts);
    await ensureStream(nc, opts);
    await Promise.all([ensureStream(nc, opts), ensureStream(nc, opts)]);
    expect(first.duplicateWindowMs).toBeGreaterThanOrEqual(120_000);
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(opts.streamName);
    expect(info.config.storage).toBe('file');
    expect(info.config.retention).toBe('limits');
    expect([...info.config.subjects].sort()).toEqual(
      [`${opts.subjectPrefix}.ev.>`, `${opts.subjectPrefix}.exec.>`, `${opts.subjectPrefix}.in.>`].sort(),
    );
    expect(info.config.duplicate_window).toBeGreaterThanOrEqual(120_000 * 1_000_000);
    await jsm.streams.delete(opts.streamName);
  });

  it('updates an existing stream to the wanted config', async () => {
    const nc = await connectTo();
    const opts = isolation();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: opts.streamName, subjects: [`${opts.subjectPrefix}.ev.>`] });
    await ensureStream(nc, { ...opts, duplicateWindowMs: 300_000 });
    const info = await jsm.streams.info(opts.streamName);
    expect(info.config.subjects).toHaveLength(3);
    expect(info.config.duplicate_window).toBe(300_000 * 1_000_000);
    await jsm.streams.delete(opts.streamName);
  });

  it('only widens an operator-tuned stream: longer window, extra subjects and replicas are kept', async () => {
    const nc = await connectTo();
    const opts = isolation();
    const jsm = await jetstreamManager(nc);
    await ensureStream(nc, { ...opts, duplicateWindowMs: 3_600_000 });
    await jsm.streams.update(opts.streamName, { subjects: [`${opts.subjectPrefix}.in.>`, `${opts.subjectPrefix}.ev.>`, `${opts.subjectPrefix}.exec.>`, `${opts.subjectPrefix}.audit.>`] });
    await ensureStream(nc, opts); // defaults: a 2-minute window, no replica count asked for
    const info = await jsm.streams.info(opts.streamName);
    expect(info.config.duplicate_window).toBe(3_600_000 * 1_000_000);
    expect(info.config.subjects).toContain(`${opts.subjectPrefix}.audit.>`);
    expect(info.config.num_replicas).toBe(1);
    await jsm.streams.delete(opts.streamName);
  });

  it('takes a stream whose wider subject already covers jetplan\'s (<prefix>.>) as it is', async () => {
    expect(covers('jp.>', 'jp.in.>')).toBe(true);
    expect(covers('jp.*.>', 'jp.ev.>')).toBe(true);
    expect(covers('jp.in.*', 'jp.in.>')).toBe(false);
    expect(covers('jp.in.>', 'jp.>')).toBe(false);
    expect(covers('jp.ev.>', 'jp.ev')).toBe(false);
    expect(covers('jp.ev.s1', 'jp.ev.s1')).toBe(true);
    const nc = await connectTo();
    const opts = isolation();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: opts.streamName, subjects: [`${opts.subjectPrefix}.>`] });
    await ensureStream(nc, opts); // the server would refuse the narrower subjects as overlapping
    expect((await jsm.streams.info(opts.streamName)).config.subjects).toEqual([`${opts.subjectPrefix}.>`]);
    const store = await JetStreamEventStore.create(nc, opts);
    await store.appendToStream('w', [event('w')], { expectedVersion: 0 });
    expect((await store.readStream('w')).currentVersion).toBe(1);
    await store.close();
    await jsm.streams.delete(opts.streamName);
  });

  it('names the stream whose subjects overlap, and what to do, when another stream takes the prefix', async () => {
    const nc = await connectTo();
    const opts = isolation();
    const other = uniqueName('OTHER');
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: other, subjects: [`${opts.subjectPrefix}.in.>`] });
    const err = await ensureStream(nc, opts).catch((e: unknown) => e);
    expect(isValidationError(err)).toBe(true);
    expect((err as Error).message).toBe(
      `the subjects ${opts.subjectPrefix}.in.>, ${opts.subjectPrefix}.ev.>, ${opts.subjectPrefix}.exec.> overlap those of stream ${other}: give this deployment another prefix (--prefix) or use that stream (--stream)`,
    );
    await jsm.streams.delete(other);
  });

  it('readAll of a stream without events ends at once', async () => {
    const nc = await connectTo();
    const store = await JetStreamEventStore.create(nc, isolation());
    const seen: unknown[] = [];
    for await (const e of store.readAll()) seen.push(e);
    expect(seen).toEqual([]);
  });

  it('a store that must not change the stream refuses a missing one in one clear error', async () => {
    const nc = await connectTo();
    const opts = isolation();
    await expect(JetStreamEventStore.create(nc, { ...opts, ensureStream: false })).rejects.toThrow(
      `stream ${opts.streamName} does not exist (start jetplan serve first)`,
    );
    const jsm = await jetstreamManager(nc);
    await expect(jsm.streams.info(opts.streamName)).rejects.toThrow();
    // A stream of another prefix, or one that does not take all of jetplan's subjects: named as such.
    await ensureStream(nc, opts);
    await expect(JetStreamEventStore.create(nc, { ...opts, subjectPrefix: 'other', ensureStream: false })).rejects.toSatisfy(isValidationError);
    await jsm.streams.update(opts.streamName, { subjects: [`${opts.subjectPrefix}.ev.>`] });
    await expect(JetStreamEventStore.create(nc, { ...opts, ensureStream: false })).rejects.toThrow(
      `stream ${opts.streamName} does not take ${opts.subjectPrefix}.in.>, ${opts.subjectPrefix}.exec.> (its subjects: ${opts.subjectPrefix}.ev.>)`,
    );
    await jsm.streams.update(opts.streamName, { subjects: [`${opts.subjectPrefix}.>`] });
    await (await JetStreamEventStore.create(nc, { ...opts, ensureStream: false })).close(); // a wider subject covers them
  });

  it('rejects a duplicate window under two minutes', async () => {
    const nc = await connectTo();
    await expect(ensureStream(nc, { ...isolation(), duplicateWindowMs: 1_000 })).rejects.toSatisfy(isValidationError);
  });

  it('builds subjects', () => {
    const s = subjects('p');
    expect(s.events('abc')).toBe('p.ev.abc');
    expect(s.input('abc')).toBe('p.in.abc');
    expect(s.exec('toolcall', 'abc')).toBe('p.exec.toolcall.abc');
    expect(s.exec('processing', 'abc')).toBe('p.exec.processing.abc');
    expect(s.allEvents).toBe('p.ev.>');
    expect(s.allInputs).toBe('p.in.>');
    expect(() => s.events('a.b')).toThrow();
    expect(() => s.events('*')).toThrow();
  });
});

describe('JetStreamEventStore (JetStream specifics)', () => {
  const stores: JetStreamEventStore[] = [];
  const streams: string[] = [];
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
  });
  afterAll(async () => {
    const nc = await connectTo();
    const jsm = await jetstreamManager(nc);
    await Promise.all(streams.map((name) => jsm.streams.delete(name).catch(() => undefined)));
  });

  async function newStore(opts: ReturnType<typeof isolation>, nc?: NatsConnection) {
    const store = await JetStreamEventStore.create(nc ?? (await connectTo()), opts);
    stores.push(store);
    if (!streams.includes(opts.streamName)) streams.push(opts.streamName);
    return store;
  }

  it('stores the per-session sequence in the body and the type/correlation/causation headers', async () => {
    const opts = isolation();
    const nc = await connectTo();
    const store = await newStore(opts, nc);
    // Another session interleaved, so stream sequences and session versions differ.
    await store.appendToStream('other', [event('other')], { expectedVersion: 0 });
    const e = event('s1', 'first');
    const res = await store.appendToStream('s1', [e, event('s1', 'second')], { expectedVersion: 0 });
    expect(res.nextExpectedVersion).toBe(2);

    const jsm = await jetstreamManager(nc);
    const last = await jsm.streams.getMessage(opts.streamName, { last_by_subj: `${opts.subjectPrefix}.ev.s1` });
    expect(last?.seq).toBe(3);
    const body = last!.json<Record<string, unknown>>();
    expect(body['sequence']).toBe(2);
    expect(body['sessionId']).toBe('s1');
    const first = await jsm.streams.getMessage(opts.streamName, { seq: 2 });
    expect(first!.header.get(HEADER_EVENT_TYPE)).toBe('SessionCancelled');
    expect(first!.header.get(HEADER_CORRELATION_ID)).toBe('corr-s1');
    expect(first!.header.get(HEADER_CAUSATION_ID)).toBe('cause-first');
    expect(first!.header.get('Nats-Msg-Id')).toBe(e.id);

    const read = await store.readStream('s1');
    expect(read.events.map((x) => x.sequence)).toEqual([1, 2]);
    expect(read.events[0]).toEqual({ ...e, sequence: 1 });
    expect(await store.listStreams()).toEqual(['other', 's1']);
  });

  it('two stores at the same version: one wins, the stale one gets ConcurrencyError from the server (10071)', async () => {
    const opts = isolation();
    const a = await newStore(opts);
    const b = await newStore(opts);
    // b appends first, so it caches (version 1 -> its stream sequence) ...
    await b.appendToStream('race', [event('race')], { expectedVersion: 0 });
    // ... a looks up the tip and wins at version 1 ...
    await a.appendToStream('race', [event('race', 'a')], { expectedVersion: 1 });
    const before = b.stats;
    // ... and b, whose cache still says version 1, skips the lookup: the server must reject it.
    const err = await b.appendToStream('race', [event('race', 'b')], { expectedVersion: 1 }).catch((e: unknown) => e);
    expect(isConcurrencyError(err)).toBe(true);
    const after = b.stats;
    expect(after.cacheHits).toBe(before.cacheHits + 1);
    expect(after.serverConflicts).toBe(before.serverConflicts + 1);
    expect(((err as Error).cause as { code?: number }).code).toBe(10071);
    // After the server's rejection the store looks the tip up, to report the actual version.
    expect(after.lookups).toBe(before.lookups + 1);
    expect(err).toMatchObject({ expectedVersion: 1, actualVersion: 2 });

    const read = await a.readStream('race');
    expect(read.currentVersion).toBe(2);
    expect(read.events.map((x) => (x.data as { reason: string }).reason)).toEqual(['r', 'a']);
    // b's cache was invalidated: its next append at the right version works.
    await expect(b.appendToStream('race', [event('race')], { expectedVersion: 2 })).resolves.toEqual({
      nextExpectedVersion: 3,
    });
  });

  it('concurrent appends at the same version from two connections: exactly one wins', async () => {
    const opts = isolation();
    const a = await newStore(opts);
    const b = await newStore(opts);
    await a.appendToStream('c', [event('c')], { expectedVersion: 0 });
    await b.appendToStream('c', [event('c')], { expectedVersion: 1 });
    await a.appendToStream('c', [event('c')], { expectedVersion: 2 }).catch(() => undefined);
    const current = (await a.readStream('c')).currentVersion;
    const results = await Promise.allSettled([
      a.appendToStream('c', [event('c', 'a1'), event('c', 'a2')], { expectedVersion: current }),
      b.appendToStream('c', [event('c', 'b1'), event('c', 'b2')], { expectedVersion: current }),
    ]);
    const ok = results.filter((r) => r.status === 'fulfilled');
    const failed = results.filter((r) => r.status === 'rejected');
    expect(ok).toHaveLength(1);
    expect(failed).toHaveLength(1);
    expect(isConcurrencyError((failed[0] as PromiseRejectedResult).reason)).toBe(true);
    const read = await a.readStream('c');
    expect(read.currentVersion).toBe(current + 2);
    expect(read.events.map((x) => x.sequence)).toEqual(Array.from({ length: current + 2 }, (_, i) => i + 1));
  });

  it('a retried append after a lost ack is deduplicated by Nats-Msg-Id, not stored twice', async () => {
    const opts = isolation();
    const nc = await connectTo();
    const sender = await newStore(opts, nc);
    const other = await newStore(opts);
    await sender.appendToStream('dup', [event('dup')], { expectedVersion: 0 });
    const batch = [event('dup', 'x'), event('dup', 'y')];
    // The first attempt lands (sent here through another store), but the sender never saw its acks.
    await other.appendToStream('dup', batch, { expectedVersion: 1 });
    // The sender retries the same events at the same version, with its (now stale) cached tip:
    // the server answers duplicate: true for each, at the positions the retry meant.
    const res = await sender.appendToStream('dup', batch, { expectedVersion: 1 });
    expect(res.nextExpectedVersion).toBe(3);
    expect(sender.stats.duplicates).toBe(2);

    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(opts.streamName);
    expect(info.state.messages).toBe(3);
    const read = await sender.readStream('dup');
    expect(read.events.map((e) => e.id)).toEqual([read.events[0]!.id, batch[0]!.id, batch[1]!.id]);

    // The raw broker behaviour the store relies on.
    const js = jetstream(nc);
    const ack = await js.publish(`${opts.subjectPrefix}.ev.dup`, 'ignored', { msgID: batch[1]!.id });
    expect(ack.duplicate).toBe(true);
    expect((await jsm.streams.info(opts.streamName)).state.messages).toBe(3);

    // A retry after a fresh lookup (no cache) is recognised from the stored tip, without publishing.
    const fresh = await newStore(opts);
    await expect(fresh.appendToStream('dup', batch, { expectedVersion: 1 })).resolves.toEqual({
      nextExpectedVersion: 3,
    });
    expect((await jsm.streams.info(opts.streamName)).state.messages).toBe(3);
    // But different events at a stale version are a conflict.
    await expect(fresh.appendToStream('dup', [event('dup')], { expectedVersion: 1 })).rejects.toSatisfy(
      isConcurrencyError,
    );
  });

  it('recovers from a wrong cached position when the session is at the expected version', async () => {
    const opts = isolation();
    const nc = await connectTo();
    const a = await newStore(opts, nc);
    await a.appendToStream('w', [event('w')], { expectedVersion: 0 }); // a caches version 1 at seq 1
    // The stream is recreated: version 1 of 'w' now sits at another stream sequence.
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(opts.streamName);
    const b = await newStore(opts);
    await b.appendToStream('other', [event('other')], { expectedVersion: 0 });
    await b.appendToStream('w', [event('w')], { expectedVersion: 0 });
    await expect(a.appendToStream('w', [event('w')], { expectedVersion: 1 })).resolves.toEqual({
      nextExpectedVersion: 2,
    });
    expect(a.stats.serverConflicts).toBe(1);
    expect((await a.readStream('w')).events.map((e) => e.sequence)).toEqual([1, 2]);
  });

  it("an id of an earlier event of the stream is the caller's error (ValidationError), not success or a conflict", async () => {
    const opts = isolation();
    const store = await newStore(opts);
    const e = event('p');
    await store.appendToStream('p', [e], { expectedVersion: 0 });
    await store.appendToStream('p', [event('p')], { expectedVersion: 1 });
    // Reusing e's id at version 3: the server dedups it, but it is stored as version 1. A conflict
    // would send the caller round a reload-and-retry loop that can never succeed.
    await expect(store.appendToStream('p', [{ ...e }], { expectedVersion: 2 })).rejects.toThrow(
      /^stream p: event id "[^"]+" is already event 1 of this stream; event ids must be unique; nothing was appended$/,
    );
    expect((await store.readStream('p')).currentVersion).toBe(2);
  });

  it("an event id another session's message has is the caller's error (ValidationError), not a conflict", async () => {
    const opts = isolation();
    const store = await newStore(opts);
    const e = event('p');
    await store.appendToStream('p', [e], { expectedVersion: 0 });
    // Event ids are Nats-Msg-Ids, deduplicated stream-wide: retrying would never help.
    for (const expectedVersion of [0, 'any'] as const) {
      const err = await store.appendToStream('q', [{ ...e, sessionId: 'q' }], { expectedVersion }).catch((x: unknown) => x);
      expect(isValidationError(err)).toBe(true);
      expect((err as Error).message).toMatch(/event id "[^"]+" is already the message id of stream sequence 1 \(\S+\.ev\.p\).*nothing was appended$/);
    }
    expect((await store.readStream('q')).exists).toBe(false);
  });

  it("expectedVersion 'any' appends at the tip, also under contention", async () => {
    const opts = isolation();
    const a = await newStore(opts);
    const b = await newStore(opts);
    await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        (i % 2 ? a : b).appendToStream('any', [event('any', String(i))], { expectedVersion: 'any' }),
      ),
    );
    const read = await a.readStream('any');
    expect(read.currentVersion).toBe(10);
    expect(read.events.map((e) => e.sequence)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('survives a server restart between appends', async () => {
    const opts = isolation();
    const nc = await connectTo();
    const store = await newStore(opts, nc);
    await store.appendToStream('r', [event('r'), event('r')], { expectedVersion: 0 });
    await server.restart();
    const res = await store.appendToStream('r', [event('r')], { expectedVersion: 2 });
    expect(res.nextExpectedVersion).toBe(3);
    const read = await store.readStream('r');
    expect(read.events.map((e) => e.sequence)).toEqual([1, 2, 3]);
    // Data written before the restart is on disk, seen by a new connection too.
    const other = await newStore(opts);
    expect((await other.readStream('r')).currentVersion).toBe(3);
  });

  it('keeps acknowledged events across a server crash (SIGKILL)', async () => {
    const opts = isolation();
    const nc = await connectTo();
    const store = await newStore(opts, nc);
    await store.appendToStream('k', [event('k'), event('k')], { expectedVersion: 0 });
    await server.kill();
    await server.restart();
    await expect(store.appendToStream('k', [event('k')], { expectedVersion: 2 })).resolves.toEqual({
      nextExpectedVersion: 3,
    });
    expect((await store.readStream('k')).events.map((e) => e.sequence)).toEqual([1, 2, 3]);
  });

  it('reads ranges of a 10,000-event session', async () => {
    const opts = isolation();
    const nc = await connectTo();
    const store = await newStore(opts, nc);
    // Bulk-load through the raw client (pipelined), in the store's body format.
    const js = jetstream(nc);
    const subject = `${opts.subjectPrefix}.ev.big`;
    const n = 10_000;
    for (let i = 0; i < n; i += 500) {
      await Promise.all(
        Array.from({ length: Math.min(500, n - i) }, (_, j) =>
          js.publish(subject, JSON.stringify({ ...event('big'), sequence: i + j + 1 })),
        ),
      );
    }
    const all = await store.readStream('big');
    expect(all.events).toHaveLength(n);
    expect(all.currentVersion).toBe(n);
    expect(all.events.map((e) => e.sequence)).toEqual(Array.from({ length: n }, (_, i) => i + 1));

    const some = await store.readStream('big', { from: 10, to: 19 });
    expect(some.events.map((e) => e.sequence)).toEqual([10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
    expect(some.currentVersion).toBe(n);
    const tip = await store.readStream('big', { from: n });
    expect(tip.events.map((e) => e.sequence)).toEqual([n]);
    expect((await store.readStream('big', { from: n + 1 })).events).toEqual([]);
    expect(await store.readStream('missing')).toEqual({ events: [], currentVersion: 0, exists: false });
    // Appends continue from the bulk-loaded tip (lookup maps version n to its stream sequence).
    await expect(store.appendToStream('big', [event('big')], { expectedVersion: n })).resolves.toEqual({
      nextExpectedVersion: n + 1,
    });
  });

  it('a damaged session log is a CorruptLogError naming where, not a hang or a partial read', async () => {
    const opts = isolation();
    const nc = await connectTo();
    const store = await newStore(opts, nc);
    const js = jetstream(nc);
    const put = (session: string, body: string) => js.publish(`${opts.subjectPrefix}.ev.${session}`, body);
    const stored = (session: string, sequence: number) => JSON.stringify({ ...event(session), sequence });
    await put('garbage', stored('garbage', 1));
    const bad = await put('garbage', '{not json');
    await put('garbage', stored('garbage', 2));
    await put('gap', stored('gap', 1));
    await put('gap', stored('gap', 3));
    await put('late', stored('late', 2));
    await put('late', stored('late', 3));
    const failure = (session: string) => store.readStream(session).then(() => undefined, (err: unknown) => err as Error);
    const garbage = await failure('garbage');
    expect(garbage).toSatisfy(isCorruptLogError);
    expect(garbage?.message).toBe(`stream ${opts.streamName} seq ${bad.seq}: not JSON`);
    expect((await failure('gap'))?.message).toMatch(/^session subject .*\.ev\.gap: expected event 2 at stream sequence \d+, found 3$/);
    expect((await failure('late'))?.message).toMatch(/expected event 1 at stream sequence \d+, found 2$/);
    // A read told of a tip that is no longer there (messages removed after the lookup) ends when
    // the subject has nothing more, as a CorruptLogError, instead of waiting for events forever.
    await put('short', stored('short', 1));
    const tip = await put('short', stored('short', 2));
    const gate = new ConnectionGate(nc);
    const ctx = { nc, js, jsm: await jetstreamManager(nc), gate, streamName: opts.streamName, retryForMs: 1_000 };
    const seen: number[] = [];
    await expect(readRange(ctx, `${opts.subjectPrefix}.ev.short`, tip.seq + 10, 1, 5, (e) => seen.push(e.sequence))).rejects.toThrow(
      /read 2 events, expected 5$/,
    );
    expect(seen).toEqual([1, 2]);
    // Nothing left at all (the subject purged after the lookup): no message comes to end the read.
    await expect(readRange(ctx, `${opts.subjectPrefix}.ev.purged`, tip.seq, 1, 3, () => undefined)).rejects.toThrow(/read 0 events, expected 3$/);
    gate.stop();
    // The tip alone is still readable, and a healthy session beside them reads whole.
    expect((await store.readStream('gap', { from: 3 })).events.map((e) => e.sequence)).toEqual([3]);
    await store.appendToStream('fine', [event('fine'), event('fine')], { expectedVersion: 0 });
    expect((await store.readStream('fine')).events.map((e) => e.sequence)).toEqual([1, 2]);
  });

  it('an append with an event larger than the stream takes fails whole, as a ValidationError, and nothing is stored', async () => {
    const opts = isolation();
    const nc = await connectTo();
    const jsm = await jetstreamManager(nc);
    const s = subjects(opts.subjectPrefix);
    const limit = async (max_msg_size: number) => {
      const { config } = await jsm.streams.info(opts.streamName);
      await jsm.streams.update(opts.streamName, { ...config, max_msg_size });
    };
    // An operator's stream with a small max_msg_size, which jetplan keeps (it only widens).
    await jsm.streams.add({ name: opts.streamName, subjects: [`${opts.subjectPrefix}.in.>`, s.allEvents, s.allExec], max_msg_size: 2_048 });
    const store = await newStore(opts, nc);
    const version = async () => (await store.readStream('big')).currentVersion;
    // (event() repeats the reason in the causation id header: a short one keeps the size to the body.)
    const sized = (reason: string): NewEvent => ({ ...event('big', reason), causationId: 'cause' });

    const refused = await store.appendToStream('big', [event('big'), sized('x'.repeat(3_000))], { expectedVersion: 0 }).catch((e: unknown) => e);
    expect(refused).toSatisfy(isValidationError);
    expect((refused as Error).message).toMatch(/event SessionCancelled would be a message of \d+ bytes, over the 2048 bytes/);
    expect(await store.readStream('big')).toMatchObject({ exists: false, currentVersion: 0 });

    // Counted as the server counts (headers and body): exactly the limit is stored, a byte more refused.
    const probe = sized('');
    const room = 2_048 - wireBytes(probe, eventBody(probe, 1), 0);
    await expect(store.appendToStream('big', [sized('x'.repeat(room + 1))], { expectedVersion: 0 })).rejects.toThrow(/a message of 2049 bytes/);
    await store.appendToStream('big', [sized('x'.repeat(room))], { expectedVersion: 0 });
    expect(await version()).toBe(1);

    // Raised by the operator (the runbook's fix): read again before refusing, so it is taken.
    await limit(8_192);
    await store.appendToStream('big', [sized('x'.repeat(3_000))], { expectedVersion: 1 });
    // Lowered while the store runs: the server refuses (10054). The first event: nothing stored,
    // still the input's fault.
    await limit(512);
    await expect(store.appendToStream('big', [sized('y'.repeat(600))], { expectedVersion: 2 })).rejects.toSatisfy(isValidationError);
    expect(await version()).toBe(2);
    // A later event of the append, after the first was stored: not the input's fault any more
    // (giving up would drop the rest of a decision), an outage to retry.
    await limit(8_192);
    await store.appendToStream('big', [sized('x'.repeat(3_000))], { expectedVersion: 2 });
    await limit(1_024);
    const cut = await store.appendToStream('big', [event('big'), sized('z'.repeat(3_000))], { expectedVersion: 3 }).catch((e: unknown) => e);
    expect(cut).toSatisfy(isStoreUnavailableError);
    expect((cut as Error).message).toMatch(/after 1 event\(s\) of the append were stored/);
    expect(await version()).toBe(4);
  });

  it('rejects unusable session ids and works after close only on a new store', async () => {
    const opts = isolation();
    const nc = await connectTo();
    const store = await newStore(opts, nc);
    await expect(store.appendToStream('a.b', [event('a.b')], { expectedVersion: 0 })).rejects.toSatisfy(
      isValidationError,
    );
    await store.close();
    await expect(store.readStream('x')).rejects.toSatisfy(isStoreUnavailableError);
    // close() leaves the caller's connection open.
    expect(nc.isClosed()).toBe(false);
  });
});

describe('KvSnapshotStore', () => {
  it('saves and loads snapshots', async () => {
    const nc = await connectTo();
    const bucket = uniqueName('snap');
    const store = await KvSnapshotStore.create(nc, { bucket });
    expect(await store.load('s1')).toBeUndefined();
    const snapshot = { streamId: 's1', version: 7, schema: 2, state: { tasks: [{ id: 't1' }], n: 1 } };
    await store.save(snapshot);
    expect(await store.load('s1')).toEqual(snapshot);
    await store.save({ ...snapshot, version: 9 });
    expect((await store.load('s1'))?.version).toBe(9);
    // A second store on the same bucket sees it.
    const again = await KvSnapshotStore.create(nc, { bucket });
    expect((await again.load('s1'))?.version).toBe(9);
    await store.close();
    await again.close();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(`KV_${bucket}`);
  });
});
