/**
 * Reports larger than the planner's input limit, over JetStream: the executor fits them, so the
 * planner service takes them and the session goes on (it used to reject them as "oversized body",
 * leaving the task Running for good).
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { demoHandler } from '../../src/executors/demoExecutor.js';
import type { ExecutorReport, TaskHandler } from '../../src/executors/report.js';
import { createShellHandler } from '../../src/executors/shellExecutor.js';
import { createExecutor } from '../../src/nats/executor.js';
import { publishReport } from '../../src/nats/executorPublish.js';
import type { DomainEvent } from '../../src/protocol/events.js';
import { MAX_INPUT_BYTES, parseInput } from '../../src/protocol/parseInput.js';
import { uniqueName } from '../support/natsServer.js';
import { executeTask } from '../support/executeTask.js';
import { ensureStream } from '../../src/persistence/jetstream/index.js';
import { has, isolation, publishInput, serverEnv, serviceOnLimitedStream, waitForEvents } from '../service/harness.js';

const { env } = serverEnv();
const MARKER = /… \[truncated: \d+ of \d+ bytes\]$/;

/** A planner service and an executor running `handler`, on a stream of their own. */
async function plannerWithExecutor(handler: TaskHandler) {
  const iso = isolation();
  const service = await env.service(iso);
  await service.whenLeader;
  const nc = await env.connect();
  const executor = await createExecutor({ nc, kinds: ['ToolCall', 'Processing'], handler, ...iso, inboxBucket: uniqueName('inbox') });
  env.stops.push(() => executor.stop());
  return { iso, nc, store: await env.store(iso) };
}

const ended = (events: DomainEvent[]) => has('SessionCompleted')(events) || has('SessionFailed')(events) || has('InputRejected')(events);

describe('executor reports over the planner input limit', () => {
  it('shell executor: the report of `seq 1 30000` is cut to fit and the session completes', async () => {
    const { iso, nc, store } = await plannerWithExecutor(createShellHandler({ allow: ['seq'] }));
    await publishInput(nc, iso, 'seq', { type: 'SubmitInput', text: 'Run `seq 1 30000`.' });
    const events = await waitForEvents(store, 'seq', ended);
    expect(events.filter((e) => e.type === 'InputRejected')).toEqual([]);
    expect(has('SessionCompleted')(events)).toBe(true);
    const done = events.find((e) => e.type === 'TaskCompleted')!.data as { output: string };
    expect(done.output).toMatch(/^1\n2\n3\n/);
    expect(done.output).toMatch(MARKER);
  });

  it('echo executor: "processed: <text>" of a maximal SubmitInput is cut to fit and the session completes', async () => {
    const { iso, nc, store } = await plannerWithExecutor(demoHandler);
    const text = 'a'.repeat(MAX_INPUT_BYTES - Buffer.byteLength(JSON.stringify({ type: 'SubmitInput', text: '' })));
    await publishInput(nc, iso, 'echo', { type: 'SubmitInput', text });
    const events = await waitForEvents(store, 'echo', ended);
    expect(events.filter((e) => e.type === 'InputRejected')).toEqual([]);
    expect(has('SessionCompleted')(events)).toBe(true);
    expect((events.find((e) => e.type === 'TaskCompleted')!.data as { output: string }).output).toMatch(MARKER);
  });
});

describe('publishReport', () => {
  it("fits reports to the stream's message limit when that is below the input limit: the session completes", async () => {
    const iso = isolation();
    const { nc } = await serviceOnLimitedStream(env, iso, 20_000);
    const executor = await createExecutor({ nc, kinds: ['ToolCall', 'Processing'], handler: async () => ({ type: 'completed', output: '1\n'.repeat(30_000) }), ...iso, inboxBucket: uniqueName('inbox') });
    env.stops.push(() => executor.stop());
    const store = await env.store(iso);
    await publishInput(nc, iso, 'small', { type: 'SubmitInput', text: 'Summarise the numbers.' });
    const events = await waitForEvents(store, 'small', ended);
    expect(events.at(-1)?.type).toBe('SessionCompleted');
    const completed = events.find((e) => e.type === 'TaskCompleted')!.data as { output: string };
    expect(completed.output).toMatch(MARKER);
  });

  it('fits a report recorded over the limit before publishing it, to the limit it is given', async () => {
    const iso = isolation();
    const nc = await env.connect();
    await ensureStream(nc, iso);
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    const body = async (seq: number) => (await jsm.streams.getMessage(iso.streamName, { seq }))!.data;
    const big: ExecutorReport = { type: 'TaskCompleted', taskId: 't1', dispatchId: 's1.t1.1', output: '1\n'.repeat(40_000) };

    const first = await body((await publishReport(js, iso.subjectPrefix, executeTask(), big)).seq);
    const task2 = executeTask({ dispatchId: 's1.t1.2' });
    const second = await body((await publishReport(js, iso.subjectPrefix, task2, { ...big, dispatchId: 's1.t1.2' }, {}, 4_096)).seq);

    expect(first.byteLength).toBeLessThanOrEqual(MAX_INPUT_BYTES);
    expect(second.byteLength).toBeLessThanOrEqual(4_096);
    expect(parseInput(first)).toMatchObject({ ok: true, input: { type: 'TaskCompleted', output: expect.stringMatching(MARKER) } });
    expect(parseInput(second, 4_096)).toMatchObject({ ok: true, input: { dispatchId: 's1.t1.2', output: expect.stringMatching(MARKER) } });
  });
});
