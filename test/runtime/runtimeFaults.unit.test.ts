import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startBusExecutor } from '../../src/executors/busExecutor.js';
import { demoHandler } from '../../src/executors/demoExecutor.js';
import type { ExecutorReport, TaskHandler } from '../../src/executors/report.js';
import { statusOf } from '../../src/machines/sessionQueries.js';
import { MemoryInbox } from '../../src/persistence/inbox.js';
import type { DomainEvent } from '../../src/protocol/events.js';
import { createEmbeddedRuntime, type EmbeddedRuntime, type EmbeddedRuntimeOptions, type RuntimeFault } from '../../src/runtime/embeddedRuntime.js';
import { hasLatestEvents, type EventStore, type LatestEvent, type OutboxStore } from '../../src/persistence/eventStore.js';
import { MemoryEventStore } from '../../src/persistence/memoryEventStore.js';
import { silentLogger } from '../../src/observability/logger.js';
import { Faults, faultReportingStore } from '../../src/runtime/faults.js';
import { makeEvents } from '../persistence/fixtures.js';
import { FakeTimers } from '../support/fakeTimers.js';
import { failFrameWith } from './failingLog.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'jetplan-faults-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A runtime with an executor that counts executions by dispatch id, sharing `inbox` across restarts. */
async function start(options: EmbeddedRuntimeOptions, inbox = new MemoryInbox<ExecutorReport>()) {
  const rt = await createEmbeddedRuntime(options);
  const runs = new Map<string, number>();
  const handler: TaskHandler = (task, tools) => {
    runs.set(task.dispatchId, (runs.get(task.dispatchId) ?? 0) + 1);
    return demoHandler(task, tools);
  };
  const stop = startBusExecutor({ bus: rt.bus, subjects: rt.subjects, handler, inbox, logger: rt.logger, reportBackoff: { baseMs: 1, factor: 2, maxMs: 10 } });
  const close = async () => {
    await stop();
    await rt.close();
  };
  cleanups.push(close);
  const faults: RuntimeFault[] = [];
  rt.onFault((fault) => faults.push(fault));
  return { rt, runs, inbox, faults, close };
}

function whenFinished(rt: EmbeddedRuntime, sessionId: string): Promise<DomainEvent> {
  return new Promise((resolve) => {
    rt.planner.onCommit((c) => {
      const last = c.sessionId === sessionId && c.events.find((e) => ['SessionCompleted', 'SessionFailed', 'SessionCancelled'].includes(e.type));
      if (last) resolve(last);
    });
  });
}

const nextFault = (rt: EmbeddedRuntime) => new Promise<RuntimeFault>((resolve) => rt.onFault(resolve));
const hasEvent = (type: string) => (events: ReadonlyArray<{ type: string }>) => events.some((e) => e.type === type);
const submit = { type: 'SubmitInput' as const, text: '- Fetch the data\n- Summarise the results' };

describe('embedded runtime faults', () => {
  it('a report whose append failed once is sent again: the session completes, each task ran once', async () => {
    const { rt, runs, faults } = await start({});
    const append = rt.store.appendToStream.bind(rt.store);
    let failures = 0;
    vi.spyOn(rt.store, 'appendToStream').mockImplementation(async (id, events, options) => {
      if (failures === 0 && hasEvent('TaskCompleted')(events)) {
        failures++;
        throw new Error('EIO: i/o error, write');
      }
      return append(id, events, options);
    });
    const finished = whenFinished(rt, 's1');
    await rt.planner.handle('s1', submit);
    expect((await finished).type).toBe('SessionCompleted');
    expect(failures).toBe(1);
    expect([...runs.values()]).toEqual([1, 1]);
    expect(faults).toEqual([]);
  });

  it('a poisoned log is a fault of the whole store; after a reopen the session goes on without re-running', async () => {
    const dir = await tempDir();
    const first = await start({ dataDir: dir, fsync: false });
    const spy = failFrameWith('"TaskCompleted"');
    const fault = nextFault(first.rt);
    await first.rt.planner.handle('s1', submit);
    const { error, sessionId } = await fault;
    expect(sessionId).toBeUndefined();
    expect(error).toMatchObject({ name: 'StoreUnavailableError', cause: { code: 'ENOSPC' } });
    spy.mockRestore();
    await first.close();

    const second = await start({ dataDir: dir, fsync: false }, first.inbox);
    const finished = whenFinished(second.rt, 's1');
    expect(await second.rt.recover({ sessionId: 's1' })).toMatchObject({ sessions: 1 });
    expect((await finished).type).toBe('SessionCompleted');
    expect([...first.runs.values()]).toEqual([1]);
    expect(second.runs.size).toBe(1); // only the second task: the first was answered from the inbox
  });

  it('a retry that cannot be stored is a fault, not a timer re-armed forever', async () => {
    const timers = new FakeTimers();
    let now = 1_000;
    const { rt } = await start({ dataDir: await tempDir(), fsync: false, timers, clock: () => now });
    const backoff = new Promise<void>((resolve) => rt.planner.onCommit((c) => hasEvent('TaskRetryScheduled')(c.events) && resolve()));
    await rt.planner.handle('s1', { type: 'SubmitInput', text: '- Summarise the flaky results', config: { backoff: { baseMs: 10, factor: 2, maxMs: 10 } } });
    await backoff;
    failFrameWith('"TaskDispatched"');
    const fault = nextFault(rt);
    now += 10;
    timers.fireAll();
    expect(await fault).toMatchObject({ error: { name: 'StoreUnavailableError' } });
    expect(statusOf(await rt.repository.load('s1'))).toBe('active');
  });

  it('a bus input that keeps failing is a fault of its session', async () => {
    const { rt } = await start({});
    const append = rt.store.appendToStream.bind(rt.store);
    vi.spyOn(rt.store, 'appendToStream').mockImplementation(async (id, events, options) => {
      if (hasEvent('TaskCompleted')(events)) throw new Error('EIO: i/o error, write');
      return append(id, events, options);
    });
    const fault = nextFault(rt);
    await rt.planner.handle('s1', submit);
    const { error, sessionId } = await fault;
    expect(sessionId).toBe('s1');
    expect(error.message).toMatch(/^input report\.\S+ of session s1 not applied after 5 attempts: EIO/);
  });
});

describe('faultReportingStore', () => {
  it("keeps the latest-events scan of the store it wraps (recovery's one pass), and only when that store has it", async () => {
    const memory = new MemoryEventStore();
    await memory.appendToStream('s1', makeEvents('s1', 2), { expectedVersion: 0 });
    const wrapped = faultReportingStore(memory, new Faults(silentLogger));
    expect(hasLatestEvents(wrapped)).toBe(true);
    const latest: LatestEvent[] = [];
    if (hasLatestEvents(wrapped)) for await (const e of wrapped.latestEvents()) latest.push(e);
    const [last] = (await memory.readStream('s1', { last: 1 })).events;
    expect(latest).toEqual([{ streamId: 's1', type: last!.type, timestamp: last!.timestamp }]);
    const withoutScan: EventStore & OutboxStore = {
      appendToStream: memory.appendToStream.bind(memory), readStream: memory.readStream.bind(memory),
      listStreams: memory.listStreams.bind(memory), readAll: memory.readAll.bind(memory), close: memory.close.bind(memory),
      pendingCommands: memory.pendingCommands.bind(memory), markDelivered: memory.markDelivered.bind(memory),
    };
    expect(hasLatestEvents(faultReportingStore(withoutScan, new Faults(silentLogger)))).toBe(false);
  });
});
