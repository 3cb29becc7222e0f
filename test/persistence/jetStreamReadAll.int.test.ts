/** JetStreamEventStore.readAll fails with the store's errors, as readStream and listStreams do. */
import { randomUUID } from 'node:crypto';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { isCorruptLogError, isStoreUnavailableError } from '../../src/errors.js';
import { JetStreamEventStore } from '../../src/persistence/jetstream/index.js';
import { uniqueName } from '../support/natsServer.js';
import { natsTestEnv } from '../support/natsTestEnv.js';

const env = natsTestEnv();

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
    // More than the read's first pull (4,096), so that the read needs the stream again.
    const js = jetstream(nc);
    const body = JSON.stringify({ ...newEvent('s1'), sequence: 1 });
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

function newEvent(sessionId: string) {
  return {
    id: randomUUID(), type: 'SessionCancelled' as const, version: 1, sessionId, timestamp: Date.now(),
    causationId: 'cause', correlationId: `corr-${sessionId}`, data: { reason: 'r' },
  };
}
