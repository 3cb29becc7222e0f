import { Kvm, KvWatchInclude } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../src/observability/logger.js';
import { LeaderLease } from '../../src/service/leaderLease.js';
import { startNatsServer, uniqueName, type NatsServerHandle } from '../support/natsServer.js';

let server: NatsServerHandle;
const connections: NatsConnection[] = [];
const leases: LeaderLease[] = [];

beforeAll(async () => {
  server = await startNatsServer();
});

afterAll(async () => {
  await Promise.all(leases.map((l) => l.close().catch(() => undefined)));
  await Promise.all(connections.map((nc) => nc.close().catch(() => undefined)));
  await server?.cleanup();
});

async function connectTo(): Promise<NatsConnection> {
  const nc = await connect({ servers: server.url, reconnectTimeWait: 50, maxReconnectAttempts: -1 });
  connections.push(nc);
  return nc;
}

/** A lease whose leadership changes are recorded in `log` as `<name>:<true|false>`; logging to `logger`. */
async function lease(name: string, nc: NatsConnection, spec: { bucket: string; key: string; ttlMs: number }, log: string[], logger: Logger = silentLogger) {
  let changed!: (leader: boolean) => void;
  const waiters: Array<{ leader: boolean; resolve: () => void }> = [];
  changed = (leader) => {
    log.push(`${name}:${leader}`);
    for (const w of waiters.splice(0)) (w.leader === leader ? w.resolve : () => waiters.push(w))();
  };
  const l = await LeaderLease.start({ nc, bucket: spec.bucket, key: spec.key, instanceId: name, ttlMs: spec.ttlMs, logger, onChange: (x) => changed(x) });
  leases.push(l);
  const until = (leader: boolean) =>
    l.isLeader() === leader ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ leader, resolve }));
  return { lease: l, until };
}

describe('LeaderLease', () => {
  it('a leader that cannot renew steps down before a standby can take the expired lease', async () => {
    const spec = { bucket: uniqueName('lease'), key: 'planner', ttlMs: 1_500 };
    const log: string[] = [];
    const aConn = await connectTo();
    const a = await lease('a', aConn, spec, log);
    await a.until(true);
    const b = await lease('b', await connectTo(), spec, log);
    // a loses NATS for good: its renewals fail from now on.
    await aConn.close();
    await b.until(true);
    await a.until(false);
    // Never two leaders: a stepped down (on its own deadline) before b took over.
    expect(log).toEqual(['a:true', 'a:false', 'b:true']);
  });

  it('steps down at the first renewal the key refuses (another holder took it), not at its deadline', async () => {
    // Renewals every TTL/3 (2 s), the deadline 2/3 TTL (4 s) after the last good one. Which of the
    // two made it step down is told by the reason it logs, not by when it happened.
    const spec = { bucket: uniqueName('lease'), key: 'planner', ttlMs: 6_000 };
    const log: string[] = [];
    const logger = { info: vi.fn(), warn: vi.fn(), error: vi.fn(), debug: vi.fn() };
    const a = await lease('a', await connectTo(), spec, log, logger as unknown as Logger);
    await a.until(true);
    // Another instance holds the key now (the key was deleted and taken, or the KV stream was restored).
    const kv = await new Kvm(await connectTo()).open(spec.bucket);
    await kv.put(spec.key, 'another-instance#token');
    await a.until(false);
    expect(log).toEqual(['a:true', 'a:false']);
    // On the refusal itself, once: not by its deadline after renewals refused until then.
    const stepDowns = logger.warn.mock.calls.map(([, msg]) => String(msg)).filter((msg) => msg.includes('stepping down'));
    expect(stepDowns).toEqual([expect.stringMatching(/^leader lease renewal refused: the key changed/)]);
  });

  it('a NATS outage shorter than the deadline does not cost leadership: a failed renewal is retried soon', async () => {
    // TTL 18 s: renewals every 6 s, the deadline 12 s after the last good one. NATS goes away
    // from just before a renewal for 1.5 s: that renewal fails; without retrying soon, the next
    // one would come after the deadline.
    const spec = { bucket: uniqueName('lease'), key: 'planner', ttlMs: 18_000 };
    const log: string[] = [];
    const nc = await connectTo();
    const a = await lease('a', nc, spec, log);
    await a.until(true);
    const kv = await new Kvm(await connectTo()).open(spec.bucket);
    const watch = await kv.watch({ key: spec.key, include: KvWatchInclude.UpdatesOnly });
    for await (const _ of watch) break; // a renewal just landed; the next one is due in 6 s
    // The outage itself, timed against the renewal cadence (not a wait for a condition).
    await new Promise((resolve) => setTimeout(resolve, 5_500));
    await server.kill();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await server.restart();
    const kv2 = await new Kvm(await connectTo()).open(spec.bucket);
    const renewedAgain = await kv2.watch({ key: spec.key, include: KvWatchInclude.UpdatesOnly });
    for await (const e of renewedAgain) if (e.string() === a.lease.holder) break;
    expect(log).toEqual(['a:true']);
  }, 40_000);

  it('close() stops leading at once, even while a renewal hangs', async () => {
    const spec = { bucket: uniqueName('lease'), key: 'planner', ttlMs: 3_000 };
    const log: string[] = [];
    const a = await lease('a', await connectTo(), spec, log);
    await a.until(true);
    await server.kill(); // renewals now hang until their timeout
    const closing = a.lease.close();
    expect(a.lease.isLeader()).toBe(false);
    expect(log).toEqual(['a:true', 'a:false']);
    await server.restart();
    await closing;
  });

  it('two processes started with the same instance id are two holders: only one leads', async () => {
    const spec = { bucket: uniqueName('lease'), key: 'planner', ttlMs: 3_000 };
    const log: string[] = [];
    const first = await lease('same', await connectTo(), spec, log);
    await first.until(true);
    const second = await lease('same', await connectTo(), spec, log);
    // The second campaigns (every TTL/3) and must find the key held by another holder.
    const kv = await new Kvm(await connectTo()).open(spec.bucket);
    const renewals = await kv.watch({ key: spec.key, include: KvWatchInclude.UpdatesOnly });
    let seen = 0;
    for await (const e of renewals) if (e.string() === first.lease.holder && ++seen === 3) break;
    expect(first.lease.isLeader()).toBe(true);
    expect(second.lease.isLeader()).toBe(false);
    expect(first.lease.holder).not.toBe(second.lease.holder);
  });

  it('close() releases the lease even when a renewal it did not hear of moved the key on', async () => {
    const spec = { bucket: uniqueName('lease'), key: 'planner', ttlMs: 60_000 }; // no renewal of its own meanwhile
    const a = await lease('a', await connectTo(), spec, []);
    await a.until(true);
    // As if a renewal had landed after close() stopped waiting for it.
    const kv = await new Kvm(await connectTo()).open(spec.bucket);
    await kv.put(spec.key, a.lease.holder);
    await a.lease.close();
    expect((await kv.get(spec.key))?.operation).toBe('DEL'); // a standby need not wait out the TTL
  });

  it('a renewal that was written although it failed does not make the leader step down', async () => {
    const spec = { bucket: uniqueName('lease'), key: 'planner', ttlMs: 3_000 };
    const log: string[] = [];
    const nc = await connectTo();
    const a = await lease('a', nc, spec, log);
    await a.until(true);
    // As if a renewal had landed but its reply was lost: the key moves on to a newer revision
    // that still holds a's id, so a's next renewal is refused for the revision.
    const kv = await new Kvm(await connectTo()).open(spec.bucket);
    const moved = await kv.put(spec.key, a.lease.holder);
    const renewedPast = new Promise<void>((resolve) => {
      void (async () => {
        for await (const e of await kv.watch({ key: spec.key })) if (e.revision > moved) return resolve();
      })();
    });
    await renewedPast; // a renewed again, from the adopted revision
    expect(a.lease.isLeader()).toBe(true);
    expect(log).toEqual(['a:true']);
  });
});
