import { connect, type NatsConnection, type Msg } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectCoalescing, MAX_CORKED_BYTES } from '../../src/nats/coalescingTransport.js';
import { connectionOptions } from '../../src/nats/connect.js';
import { startNatsServer, uniqueName, type NatsServerHandle } from '../support/natsServer.js';

let server: NatsServerHandle;
const connections: NatsConnection[] = [];

beforeAll(async () => {
  server = await startNatsServer();
});

afterAll(async () => {
  await Promise.all(connections.map((nc) => nc.close().catch(() => undefined)));
  await server?.cleanup();
});

async function coalescing(): Promise<NatsConnection> {
  const nc = await connectCoalescing({ ...connectionOptions({ url: server.url }), reconnectTimeWait: 50 });
  connections.push(nc);
  return nc;
}

/** Collects `count` messages on `subject` (a plain connection, the other side of the wire). */
async function collector(subject: string, count: number): Promise<{ received: Promise<string[]> }> {
  const nc = await connect({ servers: server.url });
  connections.push(nc);
  const got: string[] = [];
  let done!: (v: string[]) => void;
  const received = new Promise<string[]>((resolve) => (done = resolve));
  nc.subscribe(subject, {
    callback: (_err, m: Msg) => {
      got.push(m.string());
      if (got.length === count) done(got);
    },
  });
  await nc.flush();
  return { received };
}

describe('connectCoalescing (writes coalesced per event-loop turn)', () => {
  it('delivers everything, in order: many publishes in one turn and publishes across awaits', async () => {
    const nc = await coalescing();
    const subject = uniqueName('co');
    const { received } = await collector(subject, 1_510);
    for (let i = 0; i < 1_500; i++) nc.publish(subject, `burst-${i}`); // one turn
    for (let i = 0; i < 10; i++) {
      nc.publish(subject, `chain-${i}`);
      await Promise.resolve(); // a microtask apart, as a chain of awaits publishes
    }
    expect(await received).toEqual([
      ...Array.from({ length: 1_500 }, (_, i) => `burst-${i}`),
      ...Array.from({ length: 10 }, (_, i) => `chain-${i}`),
    ]);
  });

  it('a loop of publishes that never yields to a new turn is sent as it goes, not held until it ends', async () => {
    const nc = await coalescing();
    const subject = uniqueName('loop');
    const count = 400;
    const { received } = await collector(subject, count);
    // nats.js internals, read on purpose: how much the socket holds unsent.
    const socket = (nc as unknown as { protocol: { transport: { socket: { writableLength: number } } } }).protocol.transport.socket;
    const body = 'x'.repeat(10_000);
    let most = 0;
    for (let i = 0; i < count; i++) {
      nc.publish(subject, body);
      await Promise.resolve(); // microtasks only: no check phase until the loop ends
      await Promise.resolve();
      most = Math.max(most, socket.writableLength);
    }
    expect(most).toBeGreaterThan(0); // the loop did run corked for a while
    expect(most).toBeLessThan(MAX_CORKED_BYTES + 64 * 1024);
    expect((await received).length).toBe(count);
  });

  it('does requests and JetStream publishes (PubAcks come back), also after a server restart', async () => {
    const nc = await coalescing();
    const jsm = await jetstreamManager(nc);
    const stream = uniqueName('CO');
    await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
    const js = jetstream(nc);
    const acks = await Promise.all(Array.from({ length: 200 }, (_, i) => js.publish(`${stream}.a`, `m${i}`)));
    expect(acks.map((a) => a.seq)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));

    await server.restart();
    // The reconnect builds a new transport from the factory: still ours, still working.
    const after = await js.publish(`${stream}.a`, 'after restart', { retries: 50 });
    expect(after.seq).toBe(201);
    expect((await jsm.streams.info(stream)).state.messages).toBe(201);
    // nats.js internals, read on purpose: if a nats.js upgrade stops building transports from the
    // factory on reconnect, coalescing is silently lost; this says so.
    const transport = (nc as unknown as { protocol: { transport: object } }).protocol.transport;
    expect(transport.constructor.name).toBe('CoalescingTransport');
  });

  it('a publish right before close() is sent once nats.js has handed it to the transport', async () => {
    const nc = await coalescing();
    const subject = uniqueName('close');
    const { received } = await collector(subject, 1);
    nc.publish(subject, 'last words');
    for (let i = 0; i < 5; i++) await Promise.resolve(); // nats.js flushes its buffer on a microtask
    await nc.close();
    expect(await received).toEqual(['last words']);
  });

  it('refuses a websocket URL in one clear error', async () => {
    await expect(connectCoalescing({ servers: 'ws://127.0.0.1:1' })).rejects.toThrow(/websocket/);
  });

  it('a publish right before drain() is still sent: the drain flushes what the turn corked', async () => {
    const nc = await coalescing();
    const subject = uniqueName('drain');
    const { received } = await collector(subject, 1);
    nc.publish(subject, 'last words');
    await nc.drain();
    expect(await received).toEqual(['last words']);
  });
});
