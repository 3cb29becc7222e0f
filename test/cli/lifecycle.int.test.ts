/** Closing a long-running command's NATS connection at shutdown, whatever state NATS is in. */
import { connect } from '@nats-io/transport-node';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { boundedShutdown, closeConnection } from '../../src/cli/commands/nats/lifecycle.js';
import type { CliContext } from '../../src/cli/command.js';
import { main } from '../../src/cli/main.js';
import { fakeIo } from './fakeIo.js';
import { startNatsServer, uniqueName, type NatsServerHandle } from '../support/natsServer.js';

const servers: NatsServerHandle[] = [];
afterAll(async () => {
  for (const s of servers) await s.cleanup();
});

describe('closeConnection', () => {
  it('closes a connection whose server is away (a drain fails at once, and a reconnecting connection would keep the process alive)', async () => {
    const server = await startNatsServer();
    servers.push(server);
    const nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 50 });
    nc.subscribe('x.>', { callback: () => undefined });
    await nc.flush();
    await server.kill();
    expect(await closeConnection(nc)).toBe(false); // not drained: serve says so
    expect(nc.isClosed()).toBe(true);
  });

  it('drains a connected one: what was published before is delivered', async () => {
    const server = await startNatsServer();
    servers.push(server);
    const nc = await connect({ servers: server.url });
    const other = await connect({ servers: server.url });
    const got: string[] = [];
    other.subscribe('x', { callback: (_e, m) => void got.push(m.string()) });
    await other.flush();
    nc.publish('x', 'last words');
    expect(await closeConnection(nc)).toBe(true);
    expect(nc.isClosed()).toBe(true);
    await other.flush();
    await other.close();
    expect(got).toEqual(['last words']);
  });
});

describe('boundedShutdown', () => {
  const ctxOf = (io = fakeIo()) => ({ ctx: { io } as unknown as CliContext, io });

  it('waits for a shutdown that ends, failed or not', async () => {
    expect(await boundedShutdown(ctxOf().ctx, Promise.resolve())).toBe('done');
    expect(await boundedShutdown(ctxOf().ctx, Promise.reject(new Error('x')))).toBe('done');
  });

  it('gives way when it takes too long, or at a second signal', async () => {
    const never = new Promise<void>(() => undefined);
    expect(await boundedShutdown(ctxOf().ctx, never, 20)).toBe('timeout');
    const { ctx, io } = ctxOf();
    const cut = boundedShutdown(ctx, never);
    io.signal('SIGTERM');
    expect(await cut).toBe('SIGTERM');
  });
});

describe('jetplan serve stopped while NATS is away', () => {
  /** `jetplan serve` on a nats-server of its own, once it leads. */
  async function leadingServe(...flags: string[]) {
    const server = await startNatsServer();
    servers.push(server);
    const io = fakeIo();
    const conn = ['--nats', server.url, '--stream', uniqueName('JPLC'), '--prefix', uniqueName('jplc'), '--lease-bucket', uniqueName('lease')];
    const done = main(['serve', ...conn, ...flags], io);
    await Promise.race([io.waitForOut('leader, consuming inputs'), done.then((code) => Promise.reject(new Error(`serve exited ${code}: ${io.err.join('')}`)))]);
    return { server, io, done };
  }

  it('exits 0 and says that its connection was closed without a drain', async () => {
    const { server, io, done } = await leadingServe();
    await server.kill();
    io.signal('SIGTERM');
    expect(await done).toBe(0);
    expect(io.stdoutText).toContain('jetplan serve: SIGTERM, shutting down\n');
    expect(io.err.filter((line) => !line.startsWith('{'))).toEqual([
      expect.stringMatching(/^jetplan serve: NATS disconnected \(\S+\); reconnecting, work waits\n$/),
      'jetplan serve: the connection was closed without a drain (NATS away?); unacknowledged inputs are redelivered\n',
    ]);
  });

  it('says when NATS goes away and when it is back, once each', async () => {
    const { server, io, done } = await leadingServe();
    await server.restart();
    await io.waitForOut('jetplan serve: reconnected to ');
    io.signal('SIGTERM');
    expect(await done).toBe(0);
    expect(io.err.filter((line) => line.includes('NATS disconnected'))).toHaveLength(1);
  });

  it('says when it loses the leader lease in an outage and when it leads again', async () => {
    const { server, io, done } = await leadingServe('--lease-ttl-ms', '300');
    await server.kill();
    const lost = 'jetplan serve: lost the leader lease (NATS away?); standby, not consuming inputs\n';
    await vi.waitFor(() => expect(io.err).toContain(lost), { timeout: 10_000 });
    await server.restart();
    await vi.waitFor(() => expect(io.stdoutText.split('leader, consuming inputs')).toHaveLength(3), { timeout: 10_000 });
    io.signal('SIGTERM');
    expect(await done).toBe(0);
    expect(io.err.filter((line) => line === lost)).toHaveLength(1);
  });
});
