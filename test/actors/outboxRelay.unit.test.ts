import type { Timers } from '../../src/actors/timers.js';
import { FakeTimers } from '../support/fakeTimers.js';
import { describe, expect, it, vi } from 'vitest';
import { HEADER, type BusMessage } from '../../src/actors/bus.js';
import { InProcessBus, NoRouteError } from '../../src/actors/inProcessBus.js';
import { OutboxRelay } from '../../src/actors/outboxRelay.js';
import { silentLogger } from '../../src/observability/logger.js';
import { MemoryEventStore } from '../../src/persistence/memoryEventStore.js';
import type { OutboxCommand } from '../../src/protocol/commands.js';
import { subjectsFor } from '../../src/protocol/subjects.js';
import { makeEvents } from '../persistence/fixtures.js';

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((res) => (resolve = res));
  return { promise, resolve };
}

const subjects = subjectsFor();

function execute(sessionId: string, taskId = 't1', attempt = 1): OutboxCommand {
  const dispatchId = `${sessionId}.${taskId}.${attempt}`;
  return {
    id: dispatchId,
    sessionId,
    causationId: `cause-${dispatchId}`,
    correlationId: `corr-${sessionId}`,
    command: {
      type: 'ExecuteTask',
      sessionId,
      taskId,
      dispatchId,
      attempt,
      kind: 'ToolCall',
      description: 'Fetch it',
      attachments: [],
      context: '',
    },
  };
}

function ask(sessionId: string): OutboxCommand {
  return {
    id: `${sessionId}.t2.ask.7`,
    sessionId,
    causationId: 'cause-ask',
    correlationId: sessionId,
    command: { type: 'RequestClarification', sessionId, taskId: 't2', question: 'Which one?' },
  };
}

/** A memory store holding `commands` as pending outbox entries of one append. */
async function storeWith(commands: OutboxCommand[]): Promise<MemoryEventStore> {
  const store = new MemoryEventStore();
  for (const c of commands) {
    const version = (await store.readStream(c.sessionId)).currentVersion;
    await store.appendToStream(c.sessionId, makeEvents(c.sessionId, 1), { expectedVersion: version, commands: [c] });
  }
  return store;
}

describe('OutboxRelay', () => {
  it('publishes each command on its subject with its headers and marks it delivered', async () => {
    const bus = new InProcessBus();
    const got: BusMessage[] = [];
    bus.subscribe(subjects.allExec, (m) => void got.push(m));
    bus.subscribe(subjects.allClarify, (m) => void got.push(m));
    const commands = [execute('s1'), ask('s1')];
    const store = await storeWith(commands);
    expect(await store.pendingCommands()).toHaveLength(2);
    const relay = new OutboxRelay({ bus, subjects, outbox: store, logger: silentLogger, timers: new FakeTimers() });
    relay.perform(commands);
    await vi.waitFor(async () => expect(await store.pendingCommands()).toEqual([]));
    const bySubject = new Map(got.map((m) => [m.subject, m]));
    expect([...bySubject.keys()].sort()).toEqual(['jetplan.clarify.s1', 'jetplan.exec.toolcall.s1']);
    expect(bySubject.get('jetplan.exec.toolcall.s1')).toEqual({
      subject: 'jetplan.exec.toolcall.s1',
      data: commands[0]!.command,
      headers: {
        [HEADER.type]: 'ExecuteTask',
        [HEADER.correlationId]: 'corr-s1',
        [HEADER.causationId]: 'cause-s1.t1.1',
        [HEADER.messageId]: 's1.t1.1',
      },
    });
    expect(bySubject.get('jetplan.clarify.s1')!.headers).toEqual({
      'Jetplan-Type': 'RequestClarification',
      'Jetplan-Correlation-Id': 's1',
      'Jetplan-Causation-Id': 'cause-ask',
      'Nats-Msg-Id': 's1.t2.ask.7',
    });
    await relay.close();
  });

  it('delivers without an outbox store (nothing to mark)', async () => {
    const bus = new InProcessBus();
    const got = deferred<BusMessage>();
    bus.subscribe(subjects.allExec, (m) => got.resolve(m));
    const relay = new OutboxRelay({ bus, subjects, logger: silentLogger });
    relay.perform([execute('s9')]);
    expect((await got.promise).headers[HEADER.messageId]).toBe('s9.t1.1');
    await relay.close();
    expect(await relay.recover()).toBe(0);
  });

  it('retries with exponential backoff until a subscriber takes the command', async () => {
    const bus = new InProcessBus();
    const timers = new FakeTimers();
    const store = await storeWith([execute('s1')]);
    const warn = vi.spyOn(silentLogger, 'warn');
    const relay = new OutboxRelay({ bus, subjects, outbox: store, timers, logger: silentLogger });
    relay.perform([execute('s1')]);
    for (const expected of [50, 100, 200, 400]) {
      await vi.waitFor(() => expect(timers.delays()).toEqual([expected]));
      timers.fireAll();
    }
    expect(warn).toHaveBeenCalledWith(expect.objectContaining({ commandId: 's1.t1.1', attempt: 1, delay: 50, err: expect.any(NoRouteError) }), expect.any(String));
    warn.mockRestore();
    await vi.waitFor(() => expect(timers.delays()).toEqual([800]));
    expect(await store.pendingCommands()).toHaveLength(1);

    const handler = vi.fn();
    bus.subscribe(subjects.allExec, handler);
    timers.fireAll();
    await vi.waitFor(async () => expect(await store.pendingCommands()).toEqual([]));
    expect(handler).toHaveBeenCalledTimes(1);
    expect(timers.pending.size).toBe(0);
    expect(timers.history).toEqual([50, 100, 200, 400, 800]);
    await relay.close();
  });

  it('caps the backoff at maxMs and retries a handler that throws', async () => {
    const bus = new InProcessBus();
    const timers = new FakeTimers();
    let calls = 0;
    bus.subscribe(subjects.allExec, () => {
      calls++;
      if (calls < 4) throw new Error('executor busy');
    });
    const relay = new OutboxRelay({ bus, subjects, timers, logger: silentLogger, backoff: { baseMs: 10, factor: 3, maxMs: 50 } });
    relay.perform([execute('s1')]);
    for (const expected of [10, 30, 50]) {
      await vi.waitFor(() => expect(timers.delays()).toEqual([expected]));
      timers.fireAll();
    }
    await vi.waitFor(() => expect(calls).toBe(4));
    await relay.close();
    expect(timers.pending.size).toBe(0);
  });

  it('recover() publishes the commands a crash left pending', async () => {
    const bus = new InProcessBus();
    const got: string[] = [];
    bus.subscribe('jetplan.>', (m) => void got.push(m.headers[HEADER.messageId]!));
    const commands = [execute('s1'), execute('s2', 't5', 2), ask('s3')];
    const store = await storeWith(commands);
    await store.markDelivered(['s2.t5.2']); // delivered before the crash
    const relay = new OutboxRelay({ bus, subjects, outbox: store, logger: silentLogger, timers: new FakeTimers() });
    expect(await relay.recover()).toBe(2);
    await vi.waitFor(async () => expect(await store.pendingCommands()).toEqual([]));
    expect(got.sort()).toEqual(['s1.t1.1', 's3.t2.ask.7']);
    await relay.close();
  });

  it('drops (and marks delivered) a command whose session no longer needs it, e.g. after a cancel', async () => {
    const bus = new InProcessBus();
    const got: string[] = [];
    bus.subscribe('jetplan.>', (m) => void got.push(m.headers[HEADER.messageId]!));
    const store = await storeWith([execute('cancelled'), execute('live')]);
    const relay = new OutboxRelay({
      bus,
      subjects,
      outbox: store,
      logger: silentLogger,
      timers: new FakeTimers(),
      isObsolete: async (entry) => entry.sessionId === 'cancelled',
    });
    expect(await relay.recover()).toBe(2);
    await vi.waitFor(async () => expect(await store.pendingCommands()).toEqual([]));
    expect(got).toEqual(['live.t1.1']);
    await relay.close();
  });

  it('close() stops retrying, keeps the command pending and waits for publishes under way', async () => {
    const bus = new InProcessBus();
    const timers = new FakeTimers();
    const store = await storeWith([execute('s1'), execute('s2')]);
    const relay = new OutboxRelay({ bus, subjects, outbox: store, timers, logger: silentLogger });
    relay.perform([execute('s1')]);
    await vi.waitFor(() => expect(timers.pending.size).toBe(1));

    // A second command whose subscriber is still working when close() is called.
    const entered = deferred();
    const release = deferred();
    const off = bus.subscribe(subjects.exec('ToolCall', 's2'), async () => {
      entered.resolve();
      await release.promise;
      throw new Error('failed after close');
    });
    relay.perform([execute('s2')]);
    await entered.promise;
    let closed = false;
    const closing = relay.close().then(() => (closed = true));
    expect(timers.pending.size).toBe(0); // the s1 retry is cleared at once
    await new Promise<void>((r) => setImmediate(r));
    expect(closed).toBe(false);
    release.resolve();
    await closing;
    // The failure after close does not schedule a retry.
    expect(timers.pending.size).toBe(0);
    off();

    // Nothing is delivered after close, and both commands stay pending for the next run.
    const handler = vi.fn();
    bus.subscribe(subjects.allExec, handler);
    relay.perform([execute('s1')]);
    await new Promise<void>((r) => setImmediate(r));
    expect(handler).not.toHaveBeenCalled();
    expect((await store.pendingCommands()).map((c) => c.id).sort()).toEqual(['s1.t1.1', 's2.t1.1']);
  });

  it('a retry timer that fires after close does nothing', async () => {
    const bus = new InProcessBus();
    let fire: (() => void) | undefined;
    const timers: Timers = { set: (_ms, fn) => ((fire = fn), 1), clear: () => {} };
    const relay = new OutboxRelay({ bus, subjects, timers, logger: silentLogger });
    relay.perform([execute('s1')]);
    await vi.waitFor(() => expect(fire).toBeDefined());
    await relay.close();
    const handler = vi.fn();
    bus.subscribe(subjects.allExec, handler);
    fire!();
    await new Promise<void>((r) => setImmediate(r));
    expect(handler).not.toHaveBeenCalled();
  });
});
