/**
 * JetStreamEventStore.readAll fails with the store's errors, as readStream and listStreams do; it
 * and readStream read a log of large events whole, and a read the server stops feeding fails
 * instead of ending short or waiting for good.
 */
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { describe, expect, it, vi } from 'vitest';
import { isCorruptLogError, isStoreUnavailableError } from '../../src/errors.js';
import { connectNats } from '../../src/nats/connect.js';
import type { NewEvent } from '../../src/protocol/events.js';
import { JetStreamEventStore } from '../../src/persistence/jetstream/index.js';
import { ConnectionGate } from '../../src/persistence/jetstream/connectionGate.js';
import { PULL_MAX_BYTES, readAllEvents, type ReadContext } from '../../src/persistence/jetstream/jetStreamReads.js';
import { startNatsServer, uniqueName } from '../support/natsServer.js';
import { natsTestEnv } from '../support/natsTestEnv.js';
import { tempDirs } from '../support/tempDirs.js';

const env = natsTestEnv();
const tempDir = tempDirs('maxpayload');

async function openStore() {
  const nc = await env.conn();
  const opts = { streamName: uniqueName('JP'), subjectPrefix: uniqueName('jp') };
  const store = env.track(await JetStreamEventStore.create(nc, opts));
  return { nc, opts, store };
}

/** Reads the whole log; resolves what it failed with (undefined if it did not). */
async function readAllFailure(store: JetStreamEventStore): Promise<unknown> {
  try {
    for await (const e of store.readAll()) void e;
    return undefined;
  } catch (err) {
    return err;
  }
}

describe('JetStreamEventStore.readAll', () => {
  it('a stream gone from the server fails the read as a StoreUnavailableError naming the stream, with the broker error as cause', async () => {
    const { nc, opts, store } = await openStore();
    await store.appendToStream('s1', [newEvent('s1')], { expectedVersion: 0 });
    await (await jetstreamManager(nc)).streams.delete(opts.streamName);
    const failure = await readAllFailure(store);
    expect(failure).toSatisfy(isStoreUnavailableError);
    expect((failure as Error).message).toMatch(new RegExp(`^JetStream ${opts.streamName}: .*stream not found`));
    expect((failure as Error).cause).toBeInstanceOf(Error);
  });

  it('a stream deleted in the middle of a read fails it rather than leaving it waiting', async () => {
    const { nc, opts, store } = await openStore();
    // More than the read's first pull can take (~6 MB, past its PULL_MAX_BYTES), so that the read
    // needs the stream again. (The padding is not part of an envelope: a read drops it.)
    const js = jetstream(nc);
    const body = JSON.stringify({ ...newEvent('s1'), sequence: 1, padding: 'x'.repeat(1_200) });
    expect(5_000 * body.length).toBeGreaterThan(PULL_MAX_BYTES);
    for (let i = 0; i < 5_000; i += 500) {
      await Promise.all(Array.from({ length: 500 }, (_, k) => js.publish(`${opts.subjectPrefix}.ev.s${i + k}`, body.replaceAll('"s1"', `"s${i + k}"`))));
    }
    const read = store.readAll()[Symbol.asyncIterator]();
    expect((await read.next()).done).toBe(false);
    await (await jetstreamManager(nc)).streams.delete(opts.streamName);
    const failure = await (async () => {
      try {
        while (!(await read.next()).done);
        return undefined;
      } catch (err) {
        return err;
      }
    })();
    expect(failure).toSatisfy(isStoreUnavailableError);
  }, 60_000);

  it('a message that is not an event still fails it as a CorruptLogError', async () => {
    const { nc, opts, store } = await openStore();
    await jetstream(nc).publish(`${opts.subjectPrefix}.ev.s1`, '{not json');
    expect(await readAllFailure(store)).toSatisfy(isCorruptLogError);
  });
});

describe('reads of large events', () => {
  // 400 events of 200 KB (80 MB) in one session, with small events of other sessions between
  // them: more than the server lets a connection fall behind by (64 MiB), which one pull of up to
  // 4,096 events asked for. Before pulls were bounded in bytes, readAll stopped for good after 274
  // of these events (the server cut the reader off as a slow consumer).
  const BIG = 400;
  const BIG_BYTES = 200 * 1024;

  /** Fills the store's stream; resolves the ids in stream order and those of session `big`. */
  async function fillLarge(store: JetStreamEventStore): Promise<{ all: string[]; big: string[] }> {
    const pad = 'x'.repeat(BIG_BYTES);
    const all: string[] = [];
    const big: string[] = [];
    for (let v = 0; v < BIG; v += 20) {
      const events = Array.from({ length: 20 }, () => newEvent('big', pad));
      await store.appendToStream('big', events, { expectedVersion: v });
      all.push(...events.map((e) => e.id));
      big.push(...events.map((e) => e.id));
      const small = newEvent(`small${v % 3}`);
      await store.appendToStream(small.sessionId, [small], { expectedVersion: 'any' });
      all.push(small.id);
    }
    return { all, big };
  }

  it('readAll and readStream read 80 MB of 200 KB events whole, in stream order', async () => {
    const { store } = await openStore();
    const { all, big } = await fillLarge(store);
    const read: string[] = [];
    const versions = new Map<string, number>();
    for await (const e of store.readAll()) {
      read.push(e.id);
      expect(e.sequence).toBe((versions.get(e.sessionId) ?? 0) + 1); // each session in order
      versions.set(e.sessionId, e.sequence);
    }
    expect(read).toHaveLength(all.length);
    expect(read).toEqual(all);
    const session = await store.readStream('big');
    expect(session.currentVersion).toBe(BIG);
    expect(session.events.map((e) => e.id)).toEqual(big);
    expect(session.events.map((e) => e.sequence)).toEqual(Array.from({ length: BIG }, (_, i) => i + 1));
    // A range from the middle, which the read starts at event 1 for.
    const range = await store.readStream('big', { from: 101, to: 300 });
    expect(range.events.map((e) => e.id)).toEqual(big.slice(100, 300));
  }, 60_000);

  it('an event larger than a pull\'s byte limit is pulled by itself (a server with a larger max_payload)', async () => {
    const dir = await tempDir();
    const config = join(dir, 'nats.conf');
    await writeFile(config, 'max_payload: 8388608\n');
    const server = await startNatsServer({ args: ['-c', config] });
    let nc: NatsConnection | undefined;
    try {
      nc = await connectNats({ url: server.url });
      const store = await JetStreamEventStore.create(nc, { streamName: uniqueName('JP'), subjectPrefix: uniqueName('jp') });
      const sized = (bytes: number) => newEvent('s1', 'y'.repeat(bytes));
      const events = [sized(10), sized(PULL_MAX_BYTES + 1_024 * 1_024), sized(10), sized(PULL_MAX_BYTES + 2 * 1_024 * 1_024), sized(10)];
      for (const [i, event] of events.entries()) await store.appendToStream('s1', [event], { expectedVersion: i });
      const read: string[] = [];
      for await (const e of store.readAll()) read.push(e.id);
      expect(read).toEqual(events.map((e) => e.id));
      expect((await store.readStream('s1')).events.map((e) => e.id)).toEqual(events.map((e) => e.id));
      await store.close();
    } finally {
      await nc?.close();
      await server.cleanup();
    }
  }, 60_000);

  /** A whole-log read with a short idle bound, outside the store. */
  async function lowLevelRead(nc: NatsConnection, opts: { streamName: string; subjectPrefix: string }) {
    const gate = new ConnectionGate(nc);
    const ctx: ReadContext = {
      nc, js: jetstream(nc), jsm: await jetstreamManager(nc), gate, streamName: opts.streamName, retryForMs: 1_000, readIdleMs: 1_000,
    };
    const read = readAllEvents(ctx, `${opts.subjectPrefix}.ev.>`)[Symbol.asyncIterator]();
    expect((await read.next()).done).toBe(false);
    /** Reads on; resolves how many more events came and what the read failed with. */
    const rest = async () => {
      let count = 0;
      try {
        while (!(await read.next()).done) count++;
        return { count, failure: undefined };
      } catch (failure) {
        return { count, failure };
      } finally {
        gate.stop();
      }
    };
    return rest;
  }

  it('a read whose last messages are removed while it runs fails instead of ending short', async () => {
    const { nc, opts, store } = await openStore();
    const { all } = await fillLarge(store);
    const rest = await lowLevelRead(nc, opts);
    // The read holds what it pulled (a few MB) until its reader takes it: the log's tail is not
    // pulled yet. nats-server 2.9 leaves the consumer's pending count as it was, so the read only
    // learns that nothing more comes by waiting (its idle bound).
    const jsm = await jetstreamManager(nc);
    const { state } = await jsm.streams.info(opts.streamName);
    for (let seq = state.last_seq - 9; seq <= state.last_seq; seq++) await jsm.streams.deleteMessage(opts.streamName, seq);
    const { count, failure } = await rest();
    expect(failure).toSatisfy(isStoreUnavailableError);
    expect((failure as Error).message).toMatch(
      new RegExp(`^JetStream ${opts.streamName}: the read of ${opts.subjectPrefix}\\.ev\\.> failed after ${count + 1} of ${all.length} messages: no message came for 1000 ms$`),
    );
    expect(count + 1).toBe(all.length - 10);
  }, 60_000);

  it('a read whose messages are removed while others are appended fails, rather than make up the count with new ones', async () => {
    const { nc, opts, store } = await openStore();
    const { all } = await fillLarge(store);
    const rest = await lowLevelRead(nc, opts);
    // A purge removes the tail the read has not pulled yet, while the service goes on appending.
    const jsm = await jetstreamManager(nc);
    const { state } = await jsm.streams.info(opts.streamName);
    for (let seq = state.last_seq - 9; seq <= state.last_seq; seq++) await jsm.streams.deleteMessage(opts.streamName, seq);
    for (let v = 0; v < 20; v++) await store.appendToStream('late', [newEvent('late')], { expectedVersion: v });
    const { count, failure } = await rest();
    expect(failure).toSatisfy(isStoreUnavailableError);
    expect((failure as Error).message).toMatch(/stored after the read began, came first: messages were removed during the read$/);
    expect(count + 1).toBe(all.length - 10);
  }, 60_000);

  it('a read whose consumer create times out (a busy server) sends it again rather than fail', async () => {
    const { nc, opts, store } = await openStore();
    for (const id of ['a', 'b']) await store.appendToStream(id, [newEvent(id)], { expectedVersion: 0 });
    const jsm = await jetstreamManager(nc);
    const add = jsm.consumers.add.bind(jsm.consumers);
    let creates = 0;
    jsm.consumers.add = async (stream, config) => {
      // The first create is made on the server but its answer is lost.
      const made = await add(stream, config);
      if (++creates === 1) throw Object.assign(new Error('timeout'), { name: 'TimeoutError' });
      return made;
    };
    const gate = new ConnectionGate(nc);
    const ctx: ReadContext = { nc, js: jetstream(nc), jsm, gate, streamName: opts.streamName, retryForMs: 5_000 };
    const read: string[] = [];
    try {
      for await (const e of readAllEvents(ctx, `${opts.subjectPrefix}.ev.>`)) read.push(e.sessionId);
    } finally {
      gate.stop();
    }
    expect(read).toEqual(['a', 'b']);
    expect(creates).toBe(2);
    // Made again under the same name: one consumer, not two, and the read's close removes it.
    await vi.waitFor(async () => expect((await jsm.consumers.list(opts.streamName).next()).length).toBe(0));
  });

  it('a read whose server goes away fails after its idle bound instead of waiting for it', async () => {
    const { nc, opts, store } = await openStore();
    const { all } = await fillLarge(store);
    const rest = await lowLevelRead(nc, opts);
    const server = env.server();
    await server.kill();
    try {
      const { count, failure } = await rest();
      expect(failure).toSatisfy(isStoreUnavailableError);
      expect((failure as Error).message).toMatch(/failed after \d+ of \d+ messages: no message came for 1000 ms$/);
      expect(count + 1).toBeLessThan(all.length);
    } finally {
      await server.restart();
    }
  }, 60_000);
});

function newEvent(sessionId: string, reason = 'r'): NewEvent {
  return {
    id: randomUUID(), type: 'SessionCancelled' as const, version: 1, sessionId, timestamp: Date.now(),
    causationId: 'cause', correlationId: `corr-${sessionId}`, data: { reason },
  };
}
