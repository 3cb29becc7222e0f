import { JetStreamApiError, jetstreamManager } from '@nats-io/jetstream';
import { connect, headers, type NatsConnection, type RequestError } from '@nats-io/transport-node';
import { isTransient } from '../../src/persistence/jetstream/jetStreamErrors.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PubAckMux } from '../../src/persistence/jetstream/pubAckMux.js';
import { startNatsServer, uniqueName, type NatsServerHandle } from '../support/natsServer.js';

let server: NatsServerHandle;
let nc: NatsConnection;
let prefix: string;

beforeAll(async () => {
  server = await startNatsServer();
  nc = await connect({ servers: server.url });
  prefix = uniqueName('mux');
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: uniqueName('MUX'), subjects: [`${prefix}.>`], duplicate_window: 120e9 });
});

afterAll(async () => {
  await nc?.close();
  await server?.stop();
});

describe('PubAckMux', () => {
  it('resolves PubAcks of concurrent publishes, each with its own sequence; a repeated msg id is a duplicate', async () => {
    const mux = new PubAckMux(nc);
    const acks = await Promise.all(
      Array.from({ length: 50 }, (_, i) => mux.publish(`${prefix}.a`, `m${i}`, { msgID: `id-${i}`, timeout: 5_000 })),
    );
    expect(new Set(acks.map((a) => a.seq)).size).toBe(50);
    expect(acks.every((a) => a.duplicate === false)).toBe(true);
    const again = await mux.publish(`${prefix}.a`, 'm0', { msgID: 'id-0', timeout: 5_000 });
    expect(again).toMatchObject({ seq: acks[0]!.seq, duplicate: true });
    mux.close();
  });

  it('keeps caller headers and adds the expected-sequence header: a wrong one is JetStreamApiError 10071', async () => {
    const mux = new PubAckMux(nc);
    const h = headers();
    h.set('Jetplan-Type', 'X');
    const first = await mux.publish(`${prefix}.b`, 'one', { headers: h, expect: { lastSubjectSequence: 0 }, timeout: 5_000 });
    const err = await mux.publish(`${prefix}.b`, 'two', { expect: { lastSubjectSequence: first.seq + 100 }, timeout: 5_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JetStreamApiError);
    expect((err as JetStreamApiError).code).toBe(10071);
    mux.close();
  });

  it('no stream on the subject is a no-responders RequestError (transient); no reply in time a TimeoutError; close fails what waits', async () => {
    const mux = new PubAckMux(nc);
    const none = await mux.publish(uniqueName('nostream'), 'x', { timeout: 5_000 }).catch((e: unknown) => e);
    expect(isTransient(none)).toBe(true); // the store resends while the server (re)starts JetStream
    expect((none as RequestError).isNoResponders()).toBe(true);
    // A plain subscriber that never replies: the publish has a responder but gets no ack.
    const silent = uniqueName('silent');
    const sub = nc.subscribe(silent);
    await nc.flush();
    await expect(mux.publish(silent, 'x', { timeout: 100 })).rejects.toMatchObject({ name: 'TimeoutError' });
    const waiting = mux.publish(silent, 'y', { timeout: 60_000 });
    mux.close();
    await expect(waiting).rejects.toMatchObject({ name: 'ClosedConnectionError' });
    await expect(mux.publish(`${prefix}.c`, 'z', { timeout: 1_000 })).rejects.toMatchObject({ name: 'ClosedConnectionError' });
    sub.unsubscribe();
  });
});
