import { describe, expect, it, vi } from 'vitest';
import { HEADER, type BusMessage } from '../../src/actors/bus.js';
import { InProcessBus } from '../../src/actors/inProcessBus.js';
import { startBusExecutor } from '../../src/executors/busExecutor.js';
import type { ExecutorReport, HandlerOutcome, TaskHandler } from '../../src/executors/report.js';
import { silentLogger } from '../../src/observability/logger.js';
import { MemoryInbox } from '../../src/persistence/inbox.js';
import type { ExecuteTask } from '../../src/protocol/commands.js';
import { MAX_INPUT_BYTES } from '../../src/protocol/parseInput.js';
import { subjectsFor } from '../../src/protocol/subjects.js';
import { executeTask } from '../support/executeTask.js';

const subjects = subjectsFor();

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((res) => (resolve = res));
  return { promise, resolve };
}

const task = executeTask;

function publishTask(bus: InProcessBus, t: ExecuteTask, headers: Record<string, string> = {}) {
  return bus.publish(subjects.exec(t.kind as 'ToolCall', t.sessionId), t, headers);
}

function setup(handler: TaskHandler, kinds?: Array<'ToolCall' | 'Processing'>) {
  const bus = new InProcessBus();
  const inbox = new MemoryInbox<ExecutorReport>();
  const reports: BusMessage[] = [];
  bus.subscribe(subjects.allInputs, (m) => void reports.push(m));
  const logger = { debug: vi.fn(), info: vi.fn(), warn: vi.fn(), error: vi.fn() } as unknown as typeof silentLogger;
  const stop = startBusExecutor({ bus, subjects, handler, inbox, logger, ...(kinds ? { kinds } : {}) });
  return { bus, inbox, reports, stop, logger };
}

describe('startBusExecutor', () => {
  it('runs a dispatch, records its report, and publishes it into the session', async () => {
    const handler = vi.fn<TaskHandler>(async (t) => ({ type: 'completed', output: `did ${t.description}` }));
    const w = setup(handler);
    await publishTask(w.bus, task(), { [HEADER.messageId]: 'cmd-1', [HEADER.correlationId]: 'corr-1' });
    expect(handler).toHaveBeenCalledTimes(1);
    expect(handler.mock.calls[0]![1]).toMatchObject({ idempotencyKey: 's1.t1.1' });
    const report = { type: 'TaskCompleted', taskId: 't1', dispatchId: 's1.t1.1', output: 'did Fetch' };
    expect(await w.inbox.get('s1.t1.1')).toEqual(report);
    await vi.waitFor(() => expect(w.reports).toHaveLength(1));
    expect(w.reports[0]).toEqual({
      subject: 'jetplan.in.s1',
      data: report,
      headers: {
        [HEADER.type]: 'TaskCompleted',
        [HEADER.messageId]: 'report.s1.t1.1',
        [HEADER.causationId]: 'cmd-1',
        [HEADER.correlationId]: 'corr-1',
      },
    });
    await w.stop();
  });

  it('runs more than 10 tasks at once without a MaxListenersExceededWarning (one stop listener each)', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => void warnings.push(w.name);
    process.on('warning', onWarning);
    const release = deferred();
    let running = 0;
    const w = setup(async () => {
      running++;
      await release.promise;
      return { type: 'completed', output: 'ok' };
    });
    const all = Array.from({ length: 12 }, (_, i) => publishTask(w.bus, task({ sessionId: `s${i}`, dispatchId: `s${i}.t1.1` })));
    await vi.waitFor(() => expect(running).toBe(12));
    release.resolve();
    await Promise.all(all);
    await w.stop();
    await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
    process.off('warning', onWarning);
    expect(warnings).not.toContain('MaxListenersExceededWarning');
  });

  it('answers a redelivered dispatch from the inbox without running it again', async () => {
    const handler = vi.fn<TaskHandler>(async () => ({ type: 'failed', error: 'nope', retryable: false }));
    const w = setup(handler);
    await publishTask(w.bus, task());
    await publishTask(w.bus, task());
    expect(handler).toHaveBeenCalledTimes(1);
    await vi.waitFor(() => expect(w.reports).toHaveLength(2));
    expect(w.reports[1]!.data).toEqual(w.reports[0]!.data);
    expect(w.reports[1]!.headers).toMatchObject({ [HEADER.messageId]: 'report.s1.t1.1', [HEADER.causationId]: 's1.t1.1', [HEADER.correlationId]: 's1' });
    expect(w.logger.debug).toHaveBeenCalledWith(expect.objectContaining({ dispatchId: 's1.t1.1' }), expect.stringContaining('duplicate'));
    // Another attempt is another dispatch: it runs.
    await publishTask(w.bus, task({ dispatchId: 's1.t1.2', attempt: 2 }));
    expect(handler).toHaveBeenCalledTimes(2);
    await w.stop();
  });

  it('runs a dispatch delivered twice at once only once', async () => {
    const release = deferred();
    const handler = vi.fn<TaskHandler>(async () => {
      await release.promise;
      return { type: 'completed', output: 'once' };
    });
    const w = setup(handler);
    const both = Promise.all([publishTask(w.bus, task()), publishTask(w.bus, task())]);
    await vi.waitFor(() => expect(handler).toHaveBeenCalled());
    release.resolve();
    await both;
    expect(handler).toHaveBeenCalledTimes(1);
    await vi.waitFor(() => expect(w.reports).toHaveLength(2));
    await w.stop();
  });

  it('takes only the kinds it was started for', async () => {
    const handler = vi.fn<TaskHandler>(async () => ({ type: 'completed', output: 'x' }));
    const w = setup(handler, ['Processing']);
    await expect(publishTask(w.bus, task())).rejects.toMatchObject({ name: 'NoRouteError' });
    await w.bus.publish(subjects.exec('Processing', 's1'), task({ kind: 'Processing' }));
    expect(handler).toHaveBeenCalledTimes(1);
    await w.stop();
  });

  it('rejects a malformed command so the publisher retries it', async () => {
    const handler = vi.fn<TaskHandler>();
    const w = setup(handler);
    await expect(w.bus.publish(subjects.exec('ToolCall', 's1'), { type: 'ExecuteTask' })).rejects.toThrow();
    expect(handler).not.toHaveBeenCalled();
    await w.stop();
  });

  it('a handler that throws has failed its attempt: reported as a retryable failure, never run again', async () => {
    let calls = 0;
    const w = setup(async () => {
      calls++;
      throw new Error('crashed');
    });
    await publishTask(w.bus, task());
    expect(await w.inbox.get('s1.t1.1')).toEqual({ type: 'TaskFailed', taskId: 't1', dispatchId: 's1.t1.1', error: 'executor error: crashed', retryable: true });
    await publishTask(w.bus, task());
    expect(calls).toBe(1);
    await w.stop();
  });

  it('turns a report the planner would reject into a non-retryable failure', async () => {
    const w = setup(async () => ({ type: 'needsClarification', question: '' }));
    await publishTask(w.bus, task());
    expect(await w.inbox.get('s1.t1.1')).toMatchObject({ type: 'TaskFailed', retryable: false, error: expect.stringMatching(/^executor produced an invalid report \(question: /) });
    await w.stop();
  });

  it('fails the attempt for good, once, when a handler returns no outcome or throws what has no text', async () => {
    const returns: Array<[() => Promise<unknown>, RegExp]> = [
      [async () => undefined, /^the handler returned an invalid outcome \(.+\)$/],
      [async () => ({ type: 'completed' }), /^the handler returned an invalid outcome \(output: .+\)$/],
      [async () => ({ type: 'done', output: 'x' }), /^the handler returned an invalid outcome \(type: .+\)$/],
    ];
    for (const [handler, error] of returns) {
      let calls = 0;
      const w = setup(async () => {
        calls++;
        return (await handler()) as HandlerOutcome;
      });
      await publishTask(w.bus, task());
      expect(await w.inbox.get('s1.t1.1')).toMatchObject({ type: 'TaskFailed', retryable: false, error: expect.stringMatching(error) });
      await publishTask(w.bus, task());
      expect(calls).toBe(1);
      await w.stop();
    }
    const w = setup(async () => {
      throw Object.create(null);
    });
    await publishTask(w.bus, task());
    expect(await w.inbox.get('s1.t1.1')).toMatchObject({ type: 'TaskFailed', retryable: true, error: 'executor error: [object Object]' });
    await w.stop();
    // A plain object thrown says what it holds.
    const plain = setup(async () => {
      throw { code: 'E42', detail: 'quota' };
    });
    await publishTask(plain.bus, task());
    expect(await plain.inbox.get('s1.t1.1')).toMatchObject({ type: 'TaskFailed', retryable: true, error: 'executor error: {"code":"E42","detail":"quota"}' });
    await plain.stop();
  });

  it('cuts an output over the report limit to fit before recording it, so a redelivery sends the same', async () => {
    const w = setup(async () => ({ type: 'completed', output: '1\n'.repeat(30_000) }));
    await publishTask(w.bus, task());
    await publishTask(w.bus, task());
    await vi.waitFor(() => expect(w.reports).toHaveLength(2));
    const recorded = await w.inbox.get('s1.t1.1');
    expect(recorded).toMatchObject({ type: 'TaskCompleted', output: expect.stringMatching(/… \[truncated: \d+ of 60000 bytes\]$/) });
    expect(Buffer.byteLength(JSON.stringify(recorded))).toBeLessThanOrEqual(MAX_INPUT_BYTES);
    expect(w.reports.map((r) => r.data)).toEqual([recorded, recorded]);
    await w.stop();
  });

  it('takes the report limit as an option, and fits a report recorded over it when re-sending it', async () => {
    const inbox = new MemoryInbox<ExecutorReport>();
    const big: ExecutorReport = { type: 'TaskFailed', taskId: 't1', dispatchId: 's1.t1.1', error: 'e'.repeat(5_000) };
    await inbox.put('s1.t1.1', big); // e.g. recorded by an executor from before the limit
    const bus = new InProcessBus();
    const reports: BusMessage[] = [];
    bus.subscribe(subjects.allInputs, (m) => void reports.push(m));
    const handler = vi.fn<TaskHandler>(async () => ({ type: 'completed', output: 'o'.repeat(5_000) }));
    const stop = startBusExecutor({ bus, subjects, handler, inbox, logger: silentLogger, maxReportBytes: 1_024 });
    await publishTask(bus, task());
    await publishTask(bus, task({ dispatchId: 's1.t1.2', attempt: 2 }));
    await vi.waitFor(() => expect(reports).toHaveLength(2));
    expect(handler).toHaveBeenCalledTimes(1);
    for (const r of reports) expect(Buffer.byteLength(JSON.stringify(r.data))).toBeLessThanOrEqual(1_024);
    expect(reports.map((r) => r.data)).toEqual([
      expect.objectContaining({ type: 'TaskFailed', error: expect.stringMatching(/truncated: \d+ of 5000 bytes\]$/) }),
      expect.objectContaining({ type: 'TaskCompleted', output: expect.stringMatching(/truncated: \d+ of 5000 bytes\]$/) }),
    ]);
    await stop();
  });

  it('gives up at once on a report no planner subscribes for (its runtime closed), keeping it in the inbox', async () => {
    const bus = new InProcessBus();
    const logger = { debug: vi.fn(), info: vi.fn(), warn: vi.fn(), error: vi.fn() } as unknown as typeof silentLogger;
    const inbox = new MemoryInbox<ExecutorReport>();
    const publish = vi.spyOn(bus, 'publish');
    const stop = startBusExecutor({ bus, subjects, handler: async () => ({ type: 'completed', output: 'x' }), inbox, logger });
    await publishTask(bus, task());
    await vi.waitFor(() =>
      expect(logger.error).toHaveBeenCalledWith(
        expect.objectContaining({ dispatchId: 's1.t1.1', attempt: 1, err: expect.objectContaining({ name: 'NoRouteError' }) }),
        expect.stringMatching(/^report not delivered: no planner takes inputs on this bus .* stays in the inbox/),
      ),
    );
    // The log is the loop's last act: one try at the report, no retry scheduled.
    expect(logger.error).toHaveBeenCalledTimes(1);
    expect(publish.mock.calls.filter(([subject]) => subject === subjects.input('s1'))).toHaveLength(1);
    expect(await inbox.get('s1.t1.1')).toMatchObject({ type: 'TaskCompleted', output: 'x' });
    await stop();
  });

  it('stop unsubscribes, aborts the signal and waits for work under way', async () => {
    const entered = deferred<AbortSignal>();
    const release = deferred();
    const handler: TaskHandler = async (_t, tools) => {
      entered.resolve(tools.signal);
      await release.promise;
      return { type: 'completed', output: 'late' } satisfies HandlerOutcome;
    };
    const w = setup(handler);
    const published = publishTask(w.bus, task());
    const signal = await entered.promise;
    expect(signal.aborted).toBe(false);
    let stopped = false;
    const stopping = w.stop().then(() => (stopped = true));
    expect(signal.aborted).toBe(true);
    await new Promise<void>((r) => setImmediate(r));
    expect(stopped).toBe(false);
    // Unsubscribed: new work is not taken.
    await expect(publishTask(w.bus, task({ dispatchId: 's1.t1.2', attempt: 2 }))).rejects.toMatchObject({ name: 'NoRouteError' });
    release.resolve();
    await stopping;
    await published;
    expect(await w.inbox.get('s1.t1.1')).toMatchObject({ output: 'late' });
  });

  it('a task failing because the executor stops is neither recorded nor reported: the dispatch stays open', async () => {
    const entered = deferred();
    // Like the demo's delay or the shell executor: the abort ends the work with an error.
    const handler = vi.fn<TaskHandler>(async (_t, tools) => {
      entered.resolve();
      await new Promise((_, reject) => tools.signal.addEventListener('abort', () => reject(new Error('The operation was aborted'))));
      return { type: 'completed', output: 'never' };
    });
    const w = setup(handler);
    const refused = publishTask(w.bus, task()).catch((e: unknown) => e);
    await entered.promise;
    await w.stop();
    // The delivery is refused, so the publisher (the outbox relay) keeps the command pending.
    expect(await refused).toMatchObject({ name: 'ExecutorStoppedError' });
    expect(await w.inbox.get('s1.t1.1')).toBeUndefined();
    expect(w.reports).toEqual([]);

    // A restarted executor runs the same dispatch.
    const again = setup(async () => ({ type: 'completed', output: 'done' }));
    await publishTask(again.bus, task());
    expect(await again.inbox.get('s1.t1.1')).toMatchObject({ type: 'TaskCompleted', output: 'done' });
    await again.stop();
  });

  it('a failure marked aborted, returned after the stop, is not recorded either', async () => {
    const entered = deferred<AbortSignal>();
    const w = setup(async (_t, tools) => {
      entered.resolve(tools.signal);
      await new Promise((resolve) => tools.signal.addEventListener('abort', resolve));
      return { type: 'failed', error: 'aborted', retryable: true, aborted: true };
    });
    const refused = publishTask(w.bus, task()).catch((e: unknown) => e);
    await entered.promise;
    await w.stop();
    expect(await refused).toMatchObject({ name: 'ExecutorStoppedError' });
    expect(await w.inbox.get('s1.t1.1')).toBeUndefined();
    expect(w.reports).toEqual([]);
  });

  it("a failure of the task's own, returned as the stop comes, is recorded and reported: run again, its command would run twice", async () => {
    const entered = deferred<AbortSignal>();
    const w = setup(async (_t, tools) => {
      entered.resolve(tools.signal);
      await new Promise((resolve) => tools.signal.addEventListener('abort', resolve));
      return { type: 'failed', error: 'exit code 3', retryable: false };
    });
    const reported = publishTask(w.bus, task());
    await entered.promise;
    await w.stop();
    await reported;
    expect(await w.inbox.get('s1.t1.1')).toMatchObject({ type: 'TaskFailed', error: 'exit code 3' });
  });
});

describe('bus executor: a report that cannot be recorded', () => {
  it('records the report it made at the redelivery instead of running the task again (a full disk)', async () => {
    const bus = new InProcessBus();
    const inbox = new MemoryInbox<ExecutorReport>();
    let full = true;
    const put = inbox.put.bind(inbox);
    inbox.put = async (id, value) => {
      if (full) throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
      return put(id, value);
    };
    const reports: unknown[] = [];
    bus.subscribe(subjects.allInputs, (m) => void reports.push(m.data));
    const handler = vi.fn<TaskHandler>(async () => ({ type: 'completed', output: 'side effect' }));
    const stop = startBusExecutor({ bus, subjects, handler, inbox, logger: silentLogger });
    const t = task();
    await expect(publishTask(bus, t)).rejects.toThrow('ENOSPC');
    await expect(publishTask(bus, t)).rejects.toThrow('ENOSPC');
    full = false;
    await publishTask(bus, t);
    expect(handler).toHaveBeenCalledTimes(1);
    expect(await inbox.get(t.dispatchId)).toMatchObject({ type: 'TaskCompleted', output: 'side effect' });
    await vi.waitFor(() => expect(reports).toHaveLength(1));
    await stop();
  });
});
