/**
 * The stale-command guard: a new executor fleet (new durable prefix, so its consumers read the
 * stream from the start, and a new inbox bucket, so it knows no earlier report) must not run the
 * old commands of sessions that have ended, and must still run the outstanding ones of sessions
 * that go on. Fresh commands are run without a lookup; a failed lookup runs the command.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type JetplanClient } from '../../src/nats/client.js';
import { connectNats } from '../../src/nats/connect.js';
import { createExecutor, type Executor, type ExecutorOptions } from '../../src/nats/executor.js';
import { silentLogger } from '../../src/observability/logger.js';
import { ensureStream, JetStreamEventStore } from '../../src/persistence/jetstream/index.js';
import type { ExecuteTask } from '../../src/protocol/commands.js';
import type { DomainEvent } from '../../src/protocol/events.js';
import type { TaskHandler } from '../../src/executors/report.js';
import { startPlannerService, type PlannerService } from '../../src/service/plannerService.js';
import { startNatsServer, uniqueName, type NatsServerHandle } from '../support/natsServer.js';
import { executeTask } from '../support/executeTask.js';
import { until } from '../support/waiting.js';

let server: NatsServerHandle;
const connections: NatsConnection[] = [];
const executors: Executor[] = [];
const services: PlannerService[] = [];
const clients: JetplanClient[] = [];

beforeAll(async () => {
  server = await startNatsServer();
});
afterAll(async () => {
  await Promise.allSettled(executors.map((e) => e.stop()));
  await Promise.allSettled(services.map((s) => s.close()));
  await Promise.allSettled(clients.map((c) => c.close()));
  await Promise.all(connections.map((nc) => nc.close().catch(() => undefined)));
  await server?.cleanup();
});

async function conn(): Promise<NatsConnection> {
  const nc = await connectNats({ url: server.url });
  connections.push(nc);
  return nc;
}

/** A handler that completes every task and records the tasks it was given. */
function counting() {
  const calls: ExecuteTask[] = [];
  const handler: TaskHandler = async (t) => {
    calls.push(t);
    return { type: 'completed', output: `done: ${t.description}` };
  };
  return { calls, handler };
}

/** Log lines (parsed) of a pino logger at info. */
function capturedLogger() {
  const lines: Array<{ level: number; msg: string; sessionId?: string; session?: string }> = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { lines, logger };
}

describe('a new executor fleet and the commands of ended sessions', () => {
  it('skips every command of a completed session and runs the outstanding command of an open one', async () => {
    const streamName = uniqueName('JPST');
    const subjectPrefix = uniqueName('jpst');
    const iso = { streamName, subjectPrefix };
    const service = await startPlannerService({ nc: await conn(), ...iso, logger: silentLogger, leaseBucket: uniqueName('lease') });
    services.push(service);
    await service.whenLeader;
    const client = createClient(await conn(), iso);
    clients.push(client);
    const store = await JetStreamEventStore.create(await conn(), { ...iso, ensureStream: false });
    const events = async (sessionId: string): Promise<DomainEvent[]> => (await store.readStream(sessionId)).events;
    const waitFor = async (sessionId: string, type: string): Promise<DomainEvent[]> => {
      let seen: DomainEvent[] = [];
      await until(async () => (seen = await events(sessionId)).some((e) => e.type === type), () => `${type} in ${sessionId}: ${seen.map((e) => e.type).join(',')}`);
      return seen;
    };
    const start = async (handler: TaskHandler, extra: Partial<ExecutorOptions>): Promise<Executor> => {
      const ex = await createExecutor({ nc: await conn(), kinds: ['ToolCall', 'Processing'], handler, ...iso, ...extra });
      executors.push(ex);
      return ex;
    };
    const text = 'Fetch https://example.com/a.csv. Summarise the results. Write the report.';

    // Fleet A runs a whole session, then goes away.
    const a = counting();
    const fleetA = await start(a.handler, { durablePrefix: 'fleet-a', inboxBucket: uniqueName('inbox_a') });
    const { sessionId: done } = await client.submit(text);
    const doneEvents = await waitFor(done, 'SessionCompleted');
    const dispatched = doneEvents.filter((e) => e.type === 'TaskDispatched').length;
    expect(dispatched).toBeGreaterThanOrEqual(3);
    expect(a.calls).toHaveLength(dispatched);
    await fleetA.stop();

    // A session submitted while no executor runs: its first command waits in the stream.
    const { sessionId: open } = await client.submit(text);
    const openEvents = await waitFor(open, 'TaskDispatched');
    const outstanding = openEvents.find((e) => e.type === 'TaskDispatched')!;
    if (outstanding.type !== 'TaskDispatched') throw new Error('unreachable');

    // Fleet B: a new durable prefix (its consumers start at the beginning of the stream) and a new
    // inbox (no record of A's reports). Every command is looked up: threshold 0.
    const b = counting();
    const { lines, logger } = capturedLogger();
    const fleetB = await start(b.handler, { durablePrefix: 'fleet-b', inboxBucket: uniqueName('inbox_b'), staleAfterMs: 0, logger });
    await waitFor(open, 'SessionCompleted');
    await until(() => fleetB.skipped === dispatched, () => `B to skip ${dispatched} commands (skipped ${fleetB.skipped})`);

    expect(b.calls.filter((t) => t.sessionId === done)).toEqual([]);
    expect(b.calls[0]?.dispatchId).toBe(outstanding.data.dispatchId);
    expect(b.calls.map((t) => t.sessionId)).toEqual(Array(b.calls.length).fill(open));
    expect(fleetB.executed).toBe(b.calls.length);
    expect(fleetB.replayed).toBe(0);
    // Nothing was reported into the ended session: its log is as it was.
    expect((await events(done)).length).toBe(doneEvents.length);
    // Every command of both sessions was acked by B's consumers.
    const jsm = await jetstreamManager(await conn());
    for (const kind of ['toolcall', 'processing']) {
      await until(async () => {
        const info = await jsm.consumers.info(streamName, `fleet-b-${kind}`);
        return info.num_pending === 0 && info.num_ack_pending === 0;
      }, `fleet-b-${kind} to ack everything`);
    }
    const skippedLogs = lines.filter((l) => l.msg === 'command of an ended session; acked without running it');
    expect(skippedLogs).toHaveLength(dispatched);
    expect(skippedLogs.every((l) => l.level === 30 && l.sessionId === done && l.session === 'completed')).toBe(true);
  });
});

describe('the stale-command guard', () => {
  /** A stream whose session logs are written by hand: only their latest event matters here. */
  async function world() {
    const nc = await conn();
    const streamName = uniqueName('JPSG');
    const subjectPrefix = uniqueName('jpsg');
    await ensureStream(nc, { streamName, subjectPrefix });
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    /** Appends events of these types to the session's subject (the last one is its tip). */
    const log = async (sessionId: string, ...tips: Array<{ type: string; data: unknown } | string>) => {
      let sequence = 0;
      for (const tip of tips) {
        sequence++;
        const body =
          typeof tip === 'string'
            ? tip
            : JSON.stringify({ id: `${sessionId}/${sequence}`, version: 1, sessionId, sequence, timestamp: Date.now(), causationId: 'c', correlationId: sessionId, ...tip });
        await js.publish(`${subjectPrefix}.ev.${sessionId}`, body);
      }
    };
    const command = (sessionId: string) =>
      js.publish(`${subjectPrefix}.exec.toolcall.${sessionId}`, JSON.stringify(executeTask({ sessionId, taskId: 't1', dispatchId: `${sessionId}.t1.1` })), {
        msgID: `${sessionId}.t1.1`,
      });
    const start = async (handler: TaskHandler, extra: Partial<ExecutorOptions> = {}): Promise<Executor> => {
      const ex = await createExecutor({ nc, kinds: ['ToolCall'], handler, streamName, subjectPrefix, inboxBucket: uniqueName('inbox'), ...extra });
      executors.push(ex);
      return ex;
    };
    const drained = () =>
      until(async () => {
        const info = await jsm.consumers.info(streamName, 'jetplan-exec-toolcall');
        return info.num_pending === 0 && info.num_ack_pending === 0;
      }, 'every command to be acked');
    const reportsIn = async (sessionId: string): Promise<number> => {
      const info = await jsm.streams.info(streamName, { subjects_filter: `${subjectPrefix}.in.${sessionId}` });
      return Object.values(info.state.subjects ?? {}).reduce((n, c) => n + c, 0);
    };
    return { log, command, start, drained, reportsIn };
  }

  const planned = { type: 'TaskDispatched', data: { taskId: 't1', dispatchId: 'x', attempt: 1, kind: 'ToolCall' } };
  const ended = {
    completed: { type: 'SessionCompleted', data: { tasks: 1 } },
    failed: { type: 'SessionFailed', data: { reason: 'task t1 failed (not retryable): no' } },
    cancelled: { type: 'SessionCancelled', data: { reason: 'user' } },
    'completed, then a late input': { type: 'InputRejected', data: { reason: 'session is completed' } },
  };

  it('acks without running or reporting an old command whose session ended; runs the others, and on a failed lookup', async () => {
    const w = await world();
    const endedIds = Object.keys(ended).map((_, i) => `ended${i}`);
    for (const [i, tip] of Object.values(ended).entries()) await w.log(endedIds[i]!, planned, tip);
    await w.log('running', planned);
    await w.log('rejectedInput', planned, { type: 'InputRejected', data: { reason: 'task t9 is not waiting for clarification' } });
    await w.log('corrupt', 'not an event');
    // 'unlogged' has no events at all.
    const runIds = ['running', 'rejectedInput', 'corrupt', 'unlogged'];
    for (const id of [...endedIds, ...runIds]) await w.command(id);

    const { calls, handler } = counting();
    const { lines, logger } = capturedLogger();
    const ex = await w.start(handler, { staleAfterMs: 0, logger });
    await w.drained();
    await until(() => ex.executed === runIds.length, 'the commands to run');
    expect(calls.map((t) => t.sessionId).sort()).toEqual([...runIds].sort());
    expect(ex.skipped).toBe(endedIds.length);
    for (const id of endedIds) expect(await w.reportsIn(id)).toBe(0);
    expect(lines.filter((l) => l.msg === 'command of an ended session; acked without running it').map((l) => [l.sessionId, l.session]).sort()).toEqual(
      [['ended0', 'completed'], ['ended1', 'failed'], ['ended2', 'cancelled'], ['ended3', 'completed']],
    );
    const warned = lines.filter((l) => l.level === 40 && l.msg === 'could not look up the session of a stale command; running it');
    expect(warned.map((l) => l.sessionId)).toEqual(['corrupt']);
  });

  it('runs a fresh command without looking its session up (the default threshold is 30 s)', async () => {
    const w = await world();
    await w.log('ended', planned, ended.completed);
    await w.command('ended');
    const { calls, handler } = counting();
    const ex = await w.start(handler);
    await w.drained();
    expect(calls.map((t) => t.sessionId)).toEqual(['ended']);
    expect(ex.skipped).toBe(0);
  });

  it('refuses a negative threshold', async () => {
    const w = await world();
    await expect(w.start(counting().handler, { staleAfterMs: -1 })).rejects.toThrow('staleAfterMs must be 0 or more');
  });
});
