import { executorNames } from '../../src/protocol/deploymentNames.js';
import { headers } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createExecutor } from '../../src/nats/executor.js';
import type { ExecuteTask } from '../../src/protocol/commands.js';
import type { HandlerOutcome, TaskHandler } from '../../src/executors/report.js';
import { executorWorld } from '../support/executorWorld.js';
import { executeTask } from '../support/executeTask.js';
import { natsTestEnv } from '../support/natsTestEnv.js';
import { aborted, until, latch } from '../support/waiting.js';

const env = natsTestEnv();
const conn = env.conn;

/** One isolated world per test (executorWorld), with ExecuteTask fixtures published to it. */
async function world() {
  const w = await executorWorld(env);
  const { js, subjectPrefix } = w;
  const task = (n: number, over: Partial<ExecuteTask> = {}): ExecuteTask =>
    executeTask({ taskId: `t${n}`, dispatchId: `s1.t${n}.1`, description: `do thing ${n}`, ...over });

  const publishTask = async (t: ExecuteTask | object, msgID: string, kind = 'toolcall', session = 's1') => {
    const h = headers();
    h.set('Jetplan-Correlation-Id', 'corr-1');
    await js.publish(`${subjectPrefix}.exec.${kind}.${session}`, JSON.stringify(t), { msgID, headers: h });
  };

  return { ...w, task, publishTask };
}

function counting(outcome: (t: ExecuteTask) => HandlerOutcome = (t) => ({ type: 'completed', output: `ran ${t.description}` })) {
  const calls: ExecuteTask[] = [];
  const handler: TaskHandler = async (t) => {
    calls.push(t);
    return outcome(t);
  };
  return { calls, handler };
}

describe('createExecutor', () => {
  it('runs a command once, records it, reports it into the session and acks', async () => {
    const w = await world();
    const { calls, handler } = counting();
    const ex = await w.start(handler);
    await w.publishTask(w.task(1), 'd1');

    const [report] = await w.reports(1);
    expect(report!.data).toEqual({ type: 'TaskCompleted', taskId: 't1', dispatchId: 's1.t1.1', output: 'ran do thing 1' });
    expect(report!.msg.subject).toBe(`${w.subjectPrefix}.in.s1`);
    expect(report!.msg.headers?.get('Nats-Msg-Id')).toBe('report.s1.t1.1');
    expect(report!.msg.headers?.get('Jetplan-Type')).toBe('TaskCompleted');
    expect(report!.msg.headers?.get('Jetplan-Correlation-Id')).toBe('corr-1');
    expect(calls).toHaveLength(1);
    expect(await ex.inbox.get('s1.t1.1')).toEqual(report!.data);
    await until(async () => (await w.consumerInfo()).num_ack_pending === 0, 'the ack');
    expect(ex.executed).toBe(1);
  });

  it('routes by kind: a ToolCall-only executor never sees processing work', async () => {
    const w = await world();
    const { calls, handler } = counting();
    await w.start(handler, { kinds: ['ToolCall'] });
    await w.publishTask(w.task(1, { kind: 'Processing' }), 'p1', 'processing');
    await w.publishTask(w.task(2), 't2');
    await w.reports(1);
    expect(calls.map((c) => c.taskId)).toEqual(['t2']);
    const infos = await w.jsm.consumers.list(w.streamName).next();
    const durables = infos.filter((i) => i.config.durable_name);
    expect(durables.map((i) => [i.config.durable_name, i.config.filter_subject])).toEqual([
      [`${executorNames(w.streamName, w.subjectPrefix).durablePrefix}-toolcall`, `${w.subjectPrefix}.exec.toolcall.>`],
    ]);
  });

  it('answers a redelivered (re-published) command from the inbox without calling the handler', async () => {
    const w = await world();
    const { calls, handler } = counting();
    const ex = await w.start(handler);
    await w.publishTask(w.task(1), 'first');
    await w.reports(1);
    await w.publishTask(w.task(1), 'second'); // same dispatch id, different message id
    await until(() => ex.replayed === 1, 'the duplicate to be answered');
    await until(async () => (await w.consumerInfo()).num_ack_pending === 0, 'both acks');
    expect(calls).toHaveLength(1);
    // The re-sent report carries the same Nats-Msg-Id, so the stream keeps one copy.
    expect(await w.storedReports()).toBe(1);
  });

  it('a crash after the report is recorded but before the ack never runs the task again', async () => {
    const w = await world();
    const { calls, handler } = counting();
    const ncA = await conn();
    const crashed = latch();
    const a = await createExecutor({
      nc: ncA,
      kinds: ['ToolCall'],
      handler,
      streamName: w.streamName,
      subjectPrefix: w.subjectPrefix,
      inboxBucket: w.inboxBucket,
      ackWaitMs: 1_000,
      // The process "dies" here: its connection goes, so no report is published and no ack sent.
      afterRecord: async () => {
        await ncA.close();
        crashed.release();
        throw new Error('crash');
      },
    });
    await w.publishTask(w.task(1), 'd1');
    await crashed.promise;
    await a.stop();
    expect(await w.storedReports()).toBe(0);

    const b = await w.start(handler, { kinds: ['ToolCall'], ackWaitMs: 1_000 });
    const [report] = await w.reports(1); // redelivered after ackWait, answered by b from the inbox
    expect(report!.data).toMatchObject({ type: 'TaskCompleted', dispatchId: 's1.t1.1' });
    expect(calls).toHaveLength(1);
    expect(b.executed).toBe(0);
    expect(b.replayed).toBe(1);
  });

  it('acks a command only once its report is published: a report whose publish failed is published from the inbox at the redelivery', async () => {
    const w = await world();
    const { calls, handler } = counting();
    const { config } = await w.jsm.streams.info(w.streamName);
    const inSubject = `${w.subjectPrefix}.in.>`;
    const setSubjects = (subjects: string[]) => w.jsm.streams.update(w.streamName, { subjects });
    let broke = false;
    let restored: Promise<unknown> | undefined;
    // The fault ends once the executor has seen the publish fail (it logs that it redelivers).
    const logger = pino({ level: 'error' }, {
      write: (line: string) => {
        if ((JSON.parse(line) as { msg: string }).msg === 'command not completed; it will be redelivered') restored ??= setSubjects(config.subjects);
      },
    });
    await w.start(handler, {
      kinds: ['ToolCall'],
      ackWaitMs: 1_000,
      logger,
      // Once the report is recorded, the session's input subject stops being stored for a while
      // (an operator's mistake, a stream being moved): the report's publish fails.
      afterRecord: async () => {
        if (broke) return;
        broke = true;
        await setSubjects(config.subjects.filter((s) => s !== inSubject));
      },
    });
    await w.publishTask(w.task(1), 'd1');
    // The command comes back (it was nak'd, not acked) and is answered from the inbox.
    const [report] = await w.reports(1);
    expect(report!.data).toMatchObject({ type: 'TaskCompleted', dispatchId: 's1.t1.1', output: 'ran do thing 1' });
    expect(broke).toBe(true);
    await restored;
    expect(calls).toHaveLength(1);
    await until(async () => (await w.consumerInfo()).num_ack_pending === 0, 'the command acked');
    expect((await w.consumerInfo()).num_pending).toBe(0);
    expect(await w.storedReports()).toBe(1);
  });

  it('never runs a dispatch another executor process has claimed; answers it from that one\'s report', async () => {
    const w = await world();
    const { calls, handler } = counting();
    // Another process is running s1.t1.1: it holds the claim.
    const claims = await new Kvm(w.nc).create(`${w.inboxBucket}_claims`, { history: 1, ttl: 60_000 });
    const revision = await claims.create('s1.t1.1', 'other-process');
    const ex = await w.start(handler, { ackWaitMs: 1_000 });
    await w.publishTask(w.task(1), 'm1');
    await until(async () => (await w.consumerInfo()).num_redelivered > 0, 'the claimed dispatch to be handed back');
    expect(calls.length).toBe(0);
    // The other process records its report and releases the claim: the redelivery replays it.
    const inbox = await w.kv(w.inboxBucket);
    await inbox.put('s1.t1.1', JSON.stringify({ type: 'TaskCompleted', taskId: 't1', dispatchId: 's1.t1.1', output: 'by the other' }));
    await claims.delete('s1.t1.1', { previousSeq: revision });
    const [report] = await w.reports(1);
    expect(report!.data).toMatchObject({ type: 'TaskCompleted', output: 'by the other' });
    expect(calls.length).toBe(0);
    expect(ex.replayed).toBe(1);
  });

  it('creates the inbox with the TTL asked for', async () => {
    const w = await world();
    const { handler } = counting();
    await w.start(handler, { inboxTtlMs: 3_600_000 });
    expect((await (await w.kv(w.inboxBucket)).status()).ttl).toBe(3_600_000);
  });

  it('keeps a long task leased past ackWait with progress acks', async () => {
    const w = await world();
    const gate = latch();
    let calls = 0;
    const handler: TaskHandler = async () => {
      calls++;
      await gate.promise;
      return { type: 'completed', output: 'slow done' };
    };
    // Two executors on the same durable: a lapsed lease would hand the task to the other one.
    await w.start(handler, { ackWaitMs: 1_000 });
    await w.start(handler, { ackWaitMs: 1_000 });
    await w.publishTask(w.task(1), 'd1');
    await until(() => calls === 1, 'the handler to start');
    // The one inherent delay: the task outlives ackWait (1 s) by 2.5x, kept alive only by working().
    setTimeout(gate.release, 2_500);
    const [report] = await w.reports(1);
    expect(report!.data).toMatchObject({ type: 'TaskCompleted', output: 'slow done' });
    const info = await w.consumerInfo();
    expect(info.delivered.consumer_seq).toBe(1); // delivered once: never redelivered
    expect(calls).toBe(1);
  });

  it('keeps commands waiting for a free slot leased: none is redelivered', async () => {
    const w = await world();
    let calls = 0;
    // Each task outlives ackWait (1 s): the one inherent delay, as in the test above.
    const handler: TaskHandler = async (t) => {
      calls++;
      await new Promise((r) => setTimeout(r, 1_500));
      return { type: 'completed', output: `slow ${t.taskId}` };
    };
    const ex = await w.start(handler, { kinds: ['ToolCall'], ackWaitMs: 1_000, concurrency: 2 });
    for (let n = 1; n <= 6; n++) await w.publishTask(w.task(n), `d${n}`);
    expect(await w.reports(6)).toHaveLength(6);
    await until(async () => (await w.consumerInfo()).num_ack_pending === 0, 'the acks');
    // Every delivery counts here, redeliveries too (num_redelivered only counts unacked ones).
    expect((await w.consumerInfo()).delivered.consumer_seq).toBe(6);
    expect(ex.replayed).toBe(0);
    expect(calls).toBe(6);
  });

  it('makes its consumer again when it is deleted under it, and runs the commands that come after', async () => {
    const w = await world();
    const { calls, handler } = counting();
    await w.start(handler, { kinds: ['ToolCall'] });
    const before = await w.consumerInfo();
    await w.jsm.consumers.delete(w.streamName, before.name);
    await w.publishTask(w.task(1), 'after-delete');
    await w.reports(1);
    expect(calls.map((c) => c.taskId)).toEqual(['t1']);
    expect((await w.consumerInfo()).created).not.toBe(before.created);
  });

  it('terminates an invalid command without calling the handler', async () => {
    const w = await world();
    const { calls, handler } = counting();
    await w.start(handler);
    await w.publishTask({ type: 'ExecuteTask', sessionId: 's1' }, 'bad');
    // Whole but for a session id that is no subject token: its report could never be published.
    for (const sessionId of ['', 'a b', 'x.>y']) await w.publishTask({ ...w.task(3), sessionId, dispatchId: `bad-session-${sessionId.length}` }, `bad-${sessionId.length}`);
    await w.publishTask(w.task(2), 'good');
    await w.reports(1);
    await until(async () => (await w.consumerInfo()).num_ack_pending === 0, 'the term');
    expect(calls.map((c) => c.taskId)).toEqual(['t2']);
    expect((await w.consumerInfo()).num_redelivered).toBe(0);
  });

  it('records a throwing handler as a retryable failure, and cuts an oversized output to fit the planner input limit', async () => {
    const w = await world();
    const handler: TaskHandler = async (t) => {
      if (t.taskId === 't1') throw new Error('boom');
      return { type: 'completed', output: 'x'.repeat(70_000) };
    };
    await w.start(handler);
    await w.publishTask(w.task(1), 'd1');
    await w.publishTask(w.task(2), 'd2');
    const got = (await w.reports(2)).map((r) => r.data).sort((a, b) => String(a['taskId']).localeCompare(String(b['taskId'])));
    expect(got[0]).toMatchObject({ type: 'TaskFailed', taskId: 't1', error: 'executor error: boom', retryable: true });
    expect(got[1]).toMatchObject({ type: 'TaskCompleted', taskId: 't2', output: expect.stringMatching(/… \[truncated: \d+ of 70000 bytes\]$/) });
  });

  it("aborts a running handler when its session ends, reports nothing and acks the command; another session's end does not", async () => {
    const w = await world();
    const started = latch();
    const reasons: unknown[] = [];
    const handler: TaskHandler = async (_t, { signal }) => {
      started.release();
      await aborted(signal);
      reasons.push(signal.reason);
      return { type: 'completed', output: 'done all the same' }; // ignored: the session has ended
    };
    const ex = await w.start(handler);
    await w.publishTask(w.task(1), 'd1');
    await started.promise;
    const end = async (session: string, type: string) => {
      const h = headers();
      h.set('Jetplan-Type', type);
      await w.js.publish(`${w.subjectPrefix}.ev.${session}`, JSON.stringify({ type }), { headers: h });
    };
    // In order on one connection: had either of the first two aborted it, the reason would name it.
    await end('s2', 'SessionCancelled'); // another session
    await end('s1', 'TaskCompleted'); // not an end
    await end('s1', 'SessionFailed');
    await until(() => reasons.length === 1, 'the handler aborted');
    expect(String((reasons[0] as Error).message)).toBe('session ended (SessionFailed)');
    await until(async () => (await w.consumerInfo()).num_ack_pending === 0, 'the command acked');
    expect((await w.consumerInfo()).num_pending).toBe(0);
    expect(await w.storedReports()).toBe(0);
    expect(ex.executed).toBe(1);
  });

  it('stop() takes no new work and waits for running handlers to report', async () => {
    const w = await world();
    const gate = latch();
    const started = latch();
    const handler: TaskHandler = async () => {
      started.release();
      await gate.promise;
      return { type: 'completed', output: 'finished during stop' };
    };
    const ex = await w.start(handler);
    await w.publishTask(w.task(1), 'd1');
    await started.promise;
    let stopped = false;
    const stopping = ex.stop().then(() => (stopped = true));
    await w.publishTask(w.task(2), 'd2'); // arrives after stop: not taken
    expect(stopped).toBe(false);
    gate.release();
    await stopping;
    const [report] = await w.reports(1);
    expect(report!.data).toMatchObject({ taskId: 't1', output: 'finished during stop' });
    expect(ex.executed).toBe(1);
    expect(await w.storedReports()).toBe(1);
    expect((await w.consumerInfo()).num_pending).toBe(1); // t2 waits for the next executor
  });
});
