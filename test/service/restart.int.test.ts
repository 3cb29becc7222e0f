import { describe, expect, it } from 'vitest';
import { serverEnv, startHeldExecutor, dispatchCounts, execMessages, has, isolation, publishInput, waitForEvents } from './harness.js';

const { env, server } = serverEnv();

describe('planner service: nats-server restart', () => {
  it('resumes after a restart mid-session: the session completes, nothing lost or duplicated', async () => {
    const iso = isolation();
    const service = await env.service(iso, { leaseTtlMs: 10_000 });
    await service.whenLeader;
    const nc = await env.connect();
    const store = await env.store(iso);
    const { executor, hold } = await startHeldExecutor(env, nc, iso);

    await publishInput(nc, iso, 'r1', { type: 'SubmitInput', text: 'Run `npm test`.\nSummarise the results.' }, 'r1-in-1');
    await waitForEvents(store, 'r1', has('TaskDispatched'));

    await server().restart();
    await publishInput(nc, iso, 'r1', { type: 'SubmitInput', text: 'Write the release notes.' }, 'r1-in-2');
    await publishInput(nc, iso, 'r2', { type: 'SubmitInput', text: 'Summarise the changelog.' }, 'r2-in-1');
    hold.open();

    const events = await waitForEvents(store, 'r1', has('SessionCompleted'), 30_000);
    await waitForEvents(store, 'r2', has('SessionCompleted'), 30_000);
    expect(events.map((e) => e.sequence)).toEqual(events.map((_, i) => i + 1));
    expect(events.filter((e) => e.type === 'TasksPlanned')).toHaveLength(2);
    expect(events.filter((e) => e.type === 'TaskCompleted')).toHaveLength(3);
    expect(events.filter((e) => e.type === 'InputRejected' || e.type === 'ReportIgnored')).toEqual([]);
    const exec = await execMessages(nc, iso);
    expect(exec).toHaveLength(4);
    expect([...dispatchCounts(exec).values()].every((n) => n === 1)).toBe(true);
    expect([...executor.executions.values()].every((n) => n === 1)).toBe(true);
    expect(service.isLeader()).toBe(true);
  });
});
