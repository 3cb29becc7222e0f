/**
 * JetStreamEventStore.latestEvents: one consumer delivering the headers of the last message of
 * each session subject, read exactly as far as the sessions it counted at its creation, failing as
 * readAll does.
 */
import { randomUUID } from 'node:crypto';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { isCorruptLogError, isStoreUnavailableError } from '../../src/errors.js';
import type { NewEvent } from '../../src/protocol/events.js';
import type { LatestEvent } from '../../src/persistence/eventStore.js';
import { JetStreamEventStore } from '../../src/persistence/jetstream/index.js';
import { ConnectionGate } from '../../src/persistence/jetstream/connectionGate.js';
import { readLatestEvents, type ReadContext } from '../../src/persistence/jetstream/jetStreamReads.js';
import { uniqueName } from '../support/natsServer.js';
import { natsTestEnv } from '../support/natsTestEnv.js';

const env = natsTestEnv();

async function openStore() {
  const nc = await env.conn();
  const opts = { streamName: uniqueName('JP'), subjectPrefix: uniqueName('jp') };
  const store = env.track(await JetStreamEventStore.create(nc, opts));
  return { nc, opts, store };
}

/** What `events` gives, or what it failed with. */
async function scan(events: AsyncIterable<LatestEvent>): Promise<{ events: LatestEvent[]; failure?: unknown }> {
  const all: LatestEvent[] = [];
  try {
    for await (const e of events) all.push(e);
    return { events: all };
  } catch (failure) {
    return { events: all, failure };
  }
}

/** `count` sessions of two events each (`data` bytes of payload each); resolves their ids and each one's last event type. */
async function fill(store: JetStreamEventStore, count: number, data = 0): Promise<Map<string, string>> {
  const last = new Map<string, string>();
  for (let i = 0; i < count; i += 100) {
    await Promise.all(
      Array.from({ length: Math.min(100, count - i) }, async (_, k) => {
        const id = `s${i + k}`;
        const events = [newEvent(id, 'SessionCancelled', data), newEvent(id, 'InputRejected', data)];
        await store.appendToStream(id, events, { expectedVersion: 0 });
        last.set(id, events[1]!.type);
      }),
    );
  }
  return last;
}

/**
 * The scan outside the store, with `afterCreate` run once its consumer exists and before anything
 * is pulled: what the stream does then happens during the scan, deterministically.
 */
async function scanWith(nc: NatsConnection, streamName: string, prefix: string, afterCreate: () => Promise<void>) {
  const jsm = await jetstreamManager(nc);
  const add = jsm.consumers.add.bind(jsm.consumers);
  const consumers = Object.create(jsm.consumers) as JetStreamManager['consumers'];
  consumers.add = async (...args: Parameters<typeof add>) => {
    const info = await add(...args);
    await afterCreate();
    return info;
  };
  const gate = new ConnectionGate(nc);
  const ctx: ReadContext = {
    nc, js: jetstream(nc), jsm: Object.assign(Object.create(jsm) as JetStreamManager, { consumers }), gate, streamName, retryForMs: 1_000, readIdleMs: 1_000,
  };
  try {
    return await scan(readLatestEvents(ctx, `${prefix}.ev.>`));
  } finally {
    gate.stop();
  }
}

describe('JetStreamEventStore.latestEvents', () => {
  it('reads only the sessions and events stored when it started: one event per session, not those appended meanwhile', async () => {
    const { nc, opts, store } = await openStore();
    // More sessions than one pull takes (1,024), so the scan pulls again after the appends.
    const last = await fill(store, 1_100);
    const { events, failure } = await scanWith(nc, opts.streamName, opts.subjectPrefix, async () => {
      await store.appendToStream('s0', [newEvent('s0', 'SessionCompleted')], { expectedVersion: 2 });
      await store.appendToStream('s1099', [newEvent('s1099', 'SessionCompleted')], { expectedVersion: 2 });
      await store.appendToStream('new', [newEvent('new')], { expectedVersion: 0 });
    });
    expect(failure).toBeUndefined();
    expect(events).toHaveLength(1_100);
    // The latest events as they were at the start: the consumer's list was made at its creation.
    expect(new Map(events.map((e) => [e.streamId, e.type]))).toEqual(last);
  }, 60_000);

  it('scans latest events larger in all than a pull of bodies would take (4 MiB) without losing one', async () => {
    // nats-server 2.9.10 loses the message a last_per_subject pull ends on for its max_bytes: a
    // scan of bodies lost one a pull. Headers alone are pulled by count.
    const { store } = await openStore();
    const last = await fill(store, 1_100, 5_000);
    const started = Date.now();
    const { events, failure } = await scan(store.latestEvents());
    expect(failure).toBeUndefined();
    expect(new Map(events.map((e) => [e.streamId, e.type]))).toEqual(last);
    // The server's time of storing each: before the scan, and not long before.
    for (const e of events) expect(started - e.timestamp).toBeGreaterThanOrEqual(-1_000);
    for (const e of events) expect(started - e.timestamp).toBeLessThan(60_000);
  }, 60_000);

  it('a session whose latest event is removed during the scan, with events appended meanwhile, fails it rather than give a session twice', async () => {
    const { nc, opts, store } = await openStore();
    await fill(store, 1_100);
    const jsm = await jetstreamManager(nc);
    const { events, failure } = await scanWith(nc, opts.streamName, opts.subjectPrefix, async () => {
      await jsm.streams.purge(opts.streamName, { filter: `${opts.subjectPrefix}.ev.s1050` });
      await store.appendToStream('s0', [newEvent('s0')], { expectedVersion: 2 });
    });
    // nats-server 2.9, missing a message of its list, goes on with every message after it: a
    // session's earlier event, then its latest, or the one appended meanwhile.
    expect(failure).toSatisfy(isStoreUnavailableError);
    expect((failure as Error).message).toMatch(/ gave session \w+ twice: messages were removed during the read$/);
    expect(new Set(events.map((e) => e.streamId)).size).toBe(events.length);
  }, 60_000);

  it('a stream gone from the server fails it as a StoreUnavailableError naming the stream', async () => {
    const { nc, opts, store } = await openStore();
    await store.appendToStream('s1', [newEvent('s1')], { expectedVersion: 0 });
    await (await jetstreamManager(nc)).streams.delete(opts.streamName);
    const { failure } = await scan(store.latestEvents());
    expect(failure).toSatisfy(isStoreUnavailableError);
    expect((failure as Error).message).toMatch(new RegExp(`^JetStream ${opts.streamName}: .*stream not found`));
  });

  it('a latest message without the event type header (not written by jetplan) fails it as a CorruptLogError', async () => {
    const { nc, opts, store } = await openStore();
    await store.appendToStream('s1', [newEvent('s1')], { expectedVersion: 0 });
    await jetstream(nc).publish(`${opts.subjectPrefix}.ev.s1`, '{not json');
    const { failure } = await scan(store.latestEvents());
    expect(failure).toSatisfy(isCorruptLogError);
    expect((failure as Error).message).toMatch(/the latest event of session s1 has no Jetplan-Type header$/);
  });
});

function newEvent(sessionId: string, type: 'SessionCancelled' | 'SessionCompleted' | 'InputRejected' = 'SessionCancelled', bytes = 0): NewEvent {
  const envelope = { id: randomUUID(), version: 1, sessionId, timestamp: Date.now(), causationId: 'cause', correlationId: `corr-${sessionId}` };
  if (type === 'SessionCompleted') return { ...envelope, type, data: { tasks: 1 } };
  if (type === 'InputRejected') return { ...envelope, type, data: { reason: 'x'.repeat(bytes + 1), inputType: 'SubmitInput' } };
  return { ...envelope, type, data: { reason: 'x'.repeat(bytes + 1) } };
}
