import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JetStreamEventStore } from '../../src/persistence/jetstream/index.js';
import { MAX_CACHED_POSITIONS } from '../../src/persistence/jetstream/jetStreamEventStore.js';
import { startNatsServer, uniqueName, type NatsServerHandle } from '../support/natsServer.js';
import { makeEvent } from './fixtures.js';

let server: NatsServerHandle;
let nc: NatsConnection;

beforeAll(async () => {
  server = await startNatsServer();
  nc = await connect({ servers: server.url });
});

afterAll(async () => {
  await nc?.close();
  await server?.cleanup();
});

describe('JetStreamEventStore: cached session positions', () => {
  it('are bounded: the least recently written session is forgotten and looked up again', async () => {
    const store = await JetStreamEventStore.create(nc, { streamName: uniqueName('JP'), subjectPrefix: uniqueName('jp') });
    await store.appendToStream('first', [makeEvent('first')], { expectedVersion: 0 });
    await store.appendToStream('kept', [makeEvent('kept')], { expectedVersion: 0 });
    // Fill the cache with other sessions; 'kept' is written again halfway, so it stays recent.
    const others = Array.from({ length: MAX_CACHED_POSITIONS - 1 }, (_, i) => `s${i}`);
    for (let i = 0; i < others.length; i += 500) {
      if (i === 5_000) await store.appendToStream('kept', [makeEvent('kept')], { expectedVersion: 1 });
      await Promise.all(others.slice(i, i + 500).map((id) => store.appendToStream(id, [makeEvent(id)], { expectedVersion: 0 })));
    }

    const kept = store.stats;
    await store.appendToStream('kept', [makeEvent('kept')], { expectedVersion: 2 });
    expect(store.stats.cacheHits).toBe(kept.cacheHits + 1);

    const before = store.stats;
    await store.appendToStream('first', [makeEvent('first')], { expectedVersion: 1 });
    expect(store.stats.lookups).toBe(before.lookups + 1); // forgotten: one lookup, and the append is right
    expect(store.stats.cacheHits).toBe(before.cacheHits);
    expect((await store.readStream('first')).events.map((e) => e.sequence)).toEqual([1, 2]);
    await store.close();
  });
});
