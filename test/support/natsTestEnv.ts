/**
 * The per-file world of the NATS integration tests: a nats-server of the file's own (started
 * before its tests), connections to it, and whatever the tests start on them, all stopped after
 * the file's tests in dependency order: executors and services, then clients, then connections.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll } from 'vitest';
import { connectNats } from '../../src/nats/connect.js';
import { startNatsServer, type NatsServerHandle } from './natsServer.js';

/** Something a test started that must be stopped after the file's tests. */
type Stoppable = { stop(): Promise<unknown> } | { close(): Promise<unknown> };

export interface NatsTestEnv {
  /** The running server (inside a test). */
  server(): NatsServerHandle;
  /** A new connection, closed after the file's tests. */
  conn(): Promise<NatsConnection>;
  /** Stops `thing` (an executor, a service, a client) after the file's tests; returns it. */
  track<T extends Stoppable>(thing: T, order?: 'first' | 'last'): T;
}

export function natsTestEnv(): NatsTestEnv {
  let server: NatsServerHandle | undefined;
  const connections: NatsConnection[] = [];
  const first: Stoppable[] = [];
  const last: Stoppable[] = [];
  const stop = (s: Stoppable) => ('stop' in s ? s.stop() : s.close());
  beforeAll(async () => {
    server = await startNatsServer();
  });
  afterAll(async () => {
    await Promise.allSettled(first.map(stop));
    await Promise.allSettled(last.map(stop));
    await Promise.all(connections.map((nc) => nc.close().catch(() => undefined)));
    await server?.cleanup();
  });
  const current = () => {
    if (!server) throw new Error('the nats-server is not started yet (use it inside a test)');
    return server;
  };
  return {
    server: current,
    async conn() {
      const nc = await connectNats({ url: current().url });
      connections.push(nc);
      return nc;
    },
    track(thing, order = 'first') {
      (order === 'first' ? first : last).push(thing);
      return thing;
    },
  };
}
