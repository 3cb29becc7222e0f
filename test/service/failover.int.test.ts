import { jetstream } from '@nats-io/jetstream';
import { describe, expect, it, vi } from 'vitest';
import type { DomainEvent } from '../../src/protocol/events.js';
import {
  serverEnv,
  startHeldExecutor,
  dispatchCounts,
  execMessages,
  gate,
  has,
  isolation,
  plannerStream,
  publishInput,
  startTestExecutor,
  waitForEvents,
} from './harness.js';

const { env } = serverEnv();

const dataOf = <T>(e: DomainEvent) => e.data as T;

describe('planner service: crashes, standbys and timers', () => {
  it('closes at once right after becoming leader', async () => {
    const service = await env.service(isolation());
    await service.whenLeader;
    await service.close(); // used to hang while the consumer was still starting
    expect(service.isLeader()).toBe(false);
  });

  it('a session whose log cannot be read is skipped by recovery; the others go on', async () => {
    const iso = isolation();
    const nc = await env.connect();
    const store = await env.store(iso); // creates the stream
    await jetstream(nc).publish(`${iso.subjectPrefix}.ev.broken`, 'not json');
    const service = await env.service(iso);
    await service.whenLeader;
    expect(service.lastRecovery()).toMatchObject({ failed: 1 });
    await publishInput(nc, iso, 'fine', { type: 'SubmitInput', text: 'Which colour?' }, 'submit-fine');
    await waitForEvents(store, 'fine', has('ClarificationRequested'));
  });


  it('a new instance after a crash republishes the running task; each dispatch runs once', async () => {
    const iso = isolation();
    const ncA = await env.connect();
    const first = await env.service(iso, { nc: ncA, leaseTtlMs: 1_500, instanceId: 'A' });
    await first.whenLeader;
    const nc = await env.connect();
    const store = await env.store(iso);
    const hold = gate();
    const executor = await startTestExecutor(nc, iso, async (task) => {
      await hold.promise;
      return { type: 'TaskCompleted', output: task.description };
    });
    env.stops.push(() => executor.stop());

    await publishInput(nc, iso, 'crash', { type: 'SubmitInput', text: 'Run `npm test`.\nSummarise the results.' }, 'submit');
    await waitForEvents(store, 'crash', has('TaskDispatched'));
    await ncA.close(); // the crash: no drain, no lease release

    const second = await env.service(iso, { leaseTtlMs: 1_500, instanceId: 'B' });
    await second.whenLeader; // after the crashed leader's lease expired
    expect(second.lastRecovery()).toEqual({ sessions: 1, republished: 1, timers: 0, failed: 0, ended: 0, deferred: [] });
    hold.open();
    const events = await waitForEvents(store, 'crash', has('SessionCompleted'));

    expect(events.filter((e) => e.type === 'TaskDispatched')).toHaveLength(2);
    expect([...executor.executions.values()]).toEqual([1, 1]);
    const exec = await execMessages(nc, iso);
    expect(exec).toHaveLength(2);
    expect([...dispatchCounts(exec).values()]).toEqual([1, 1]);
    // The crashed instance cannot renew: it steps down once a whole lease TTL passed without renewal.
    await vi.waitFor(() => expect(first.isLeader()).toBe(false), { timeout: 5_000 });
  });

  it('two instances: one leader, inputs applied in order, no dispatch twice; the standby takes over', async () => {
    const iso = isolation();
    const a = await env.service(iso, { instanceId: 'A' });
    const b = await env.service(iso, { instanceId: 'B' });
    await Promise.race([a.whenLeader, b.whenLeader]);
    expect([a.isLeader(), b.isLeader()].filter(Boolean)).toHaveLength(1);
    const [leader, standby] = a.isLeader() ? [a, b] : [b, a];

    const nc = await env.connect();
    const store = await env.store(iso);
    const { executor, hold } = await startHeldExecutor(env, nc, iso);

    const sessions = Array.from({ length: 12 }, (_, i) => `c${i}`);
    const INPUTS = 4;
    const publishAll = (from: number, to: number) =>
      Promise.all(
        sessions.map(async (s) => {
          for (let k = from; k <= to; k++) {
            await publishInput(nc, iso, s, { type: 'SubmitInput', text: `Summarise part ${k} of ${s}.` }, `${s}-in-${k}`);
          }
        }),
      );
    await publishAll(1, 2);
    for (const s of sessions) await waitForEvents(store, s, (evs) => evs.filter((e) => e.type === 'TasksPlanned').length === 2);

    await leader.close(); // releases the lease: the standby takes over at once
    await standby.whenLeader;
    expect(standby.isLeader()).toBe(true);
    await publishAll(3, INPUTS);
    hold.open();

    for (const s of sessions) {
      const events = await waitForEvents(store, s, (evs) => evs.filter((e) => e.causationId.startsWith(`${s}-in-`)).length >= INPUTS && has('SessionCompleted')(evs));
      const order = [...new Set(events.map((e) => e.causationId).filter((c) => c.startsWith(`${s}-in-`)))];
      expect(order).toEqual(Array.from({ length: INPUTS }, (_, k) => `${s}-in-${k + 1}`));
      const planned = events.filter((e) => e.type === 'TasksPlanned').map((e) => dataOf<{ input: string }>(e).input);
      expect(planned).toEqual(Array.from({ length: INPUTS }, (_, k) => `Summarise part ${k + 1} of ${s}.`));
    }
    const exec = await execMessages(nc, iso);
    expect(exec.length).toBe(sessions.length * INPUTS);
    expect([...dispatchCounts(exec).values()].every((n) => n === 1)).toBe(true);
    expect([...executor.executions.values()].every((n) => n === 1)).toBe(true);
  });

  it('retry timers survive a restart: the next instance fires a due retry', async () => {
    const iso = isolation();
    const first = await env.service(iso);
    await first.whenLeader;
    const nc = await env.connect();
    const store = await env.store(iso);
    const executor = await startTestExecutor(nc, iso, (task) =>
      task.attempt === 1 ? { type: 'TaskFailed', error: 'flaky', retryable: true } : { type: 'TaskCompleted', output: 'ok' },
    );
    env.stops.push(() => executor.stop());

    const config = { backoff: { baseMs: 1_500, factor: 2, maxMs: 30_000 } };
    await publishInput(nc, iso, 'retry', { type: 'SubmitInput', text: 'Run `flaky-job`.', config }, 'submit');
    const scheduled = await waitForEvents(store, 'retry', has('TaskRetryScheduled'));
    await first.close(); // before the retry is due
    const due = dataOf<{ dueAt: number }>(scheduled.find((e) => e.type === 'TaskRetryScheduled')!).dueAt;
    expect(due).toBeGreaterThan(Date.now());

    const second = await env.service(iso);
    await second.whenLeader;
    expect(second.lastRecovery()).toMatchObject({ sessions: 1, timers: 1 });
    const events = await waitForEvents(store, 'retry', has('SessionCompleted'));
    const retried = events.filter((e) => e.type === 'TaskDispatched')[1]!;
    expect(retried.causationId).toMatch(/^retry\.retry\./);
    expect(retried.timestamp).toBeGreaterThanOrEqual(due);
    expect([...executor.executions.values()]).toEqual([1, 1]);
  });

  it("a new leader applies a session's inputs in order although the previous one left them with different nak delays", async () => {
    const iso = isolation();
    const nc = await env.connect();
    // The stream and the input consumer as a service makes them, and a previous leader by hand.
    const { durableName } = await plannerStream(nc, iso);
    for (let k = 1; k <= 3; k++) await publishInput(nc, iso, 'ord', { type: 'SubmitInput', text: `Summarise part ${k}.` }, `ord-${k}`);
    const batch = await (await jetstream(nc).consumers.get(iso.streamName, durableName)).fetch({ max_messages: 3, expires: 5_000 });
    const delivered = [];
    for await (const m of batch) delivered.push(m);
    expect(delivered.map((m) => m.headers?.get('Nats-Msg-Id'))).toEqual(['ord-1', 'ord-2', 'ord-3']);
    // Its first input failed and waits out a nak delay; the two after it were held and nak'd at once,
    // so the consumer redelivers them first.
    delivered[0]!.nak(1_500);
    delivered[1]!.nak();
    delivered[2]!.nak();
    await nc.flush();

    const service = await env.service(iso, { durableName });
    await service.whenLeader;
    const events = await waitForEvents(await env.store(iso), 'ord', (evs) => evs.filter((e) => e.type === 'TasksPlanned').length === 3);
    expect(events.filter((e) => e.type === 'TasksPlanned').map((e) => e.causationId)).toEqual(['ord-1', 'ord-2', 'ord-3']);
  });
});
