import { Kvm } from '@nats-io/kv';
import { describe, expect, it } from 'vitest';
import { ClaimLostError, KvClaims } from '../../src/nats/executorClaims.js';
import type { TaskHandler } from '../../src/executors/report.js';
import { uniqueName } from '../support/natsServer.js';
import { executorWorld } from '../support/executorWorld.js';
import { natsTestEnv } from '../support/natsTestEnv.js';
import { until, latch, aborted } from '../support/waiting.js';
import { executeTask } from '../support/executeTask.js';

const env = natsTestEnv();

/** One isolated world per test (executorWorld, ToolCall executors), with one command to publish. */
async function world() {
  const w = await executorWorld(env, ['ToolCall']);
  const task = executeTask({ description: 'do it' });
  const publishTask = (msgID: string) => w.js.publish(`${w.subjectPrefix}.exec.toolcall.s1`, JSON.stringify(task), { msgID });
  /** The bodies of the first `n` reports stored on `<prefix>.in.>`. */
  const reports = async (n: number) => (await w.reports(n)).map((r) => r.data);
  return { ...w, publishTask, reports };
}

describe('executor claims', () => {
  it('refuses at startup a claims bucket whose TTL is shorter than the ack wait', async () => {
    const w = await world();
    await new Kvm(w.nc).create(`${w.inboxBucket}_claims`, { history: 1, ttl: 10_000 });
    const handler: TaskHandler = async () => ({ type: 'completed', output: 'x' });
    await expect(w.start(handler, { ackWaitMs: 30_000 })).rejects.toThrow(/claims bucket \S+ expires claims after 10000 ms.*30000 ms/);
    await expect(w.start(handler, { ackWaitMs: 10_000 })).resolves.toBeDefined();
  });

  it('executors sharing a consumer only ever raise its ack wait, never lower it under one another', async () => {
    const w = await world();
    const handler: TaskHandler = async () => ({ type: 'completed', output: 'x' });
    await w.start(handler, { ackWaitMs: 90_000 });
    expect((await w.consumerInfo()).config.ack_wait).toBe(90_000 * 1_000_000);
    await w.start(handler, { ackWaitMs: 30_000, inboxBucket: uniqueName('inbox2') });
    expect((await w.consumerInfo()).config.ack_wait).toBe(90_000 * 1_000_000);
  });

  it('stop() aborts running handlers; one that gives up hands its command to the next executor', async () => {
    const w = await world();
    const started = latch();
    const a = await w.start(async (_t, { signal }) => {
      started.release();
      await aborted(signal);
      throw new Error('aborted');
    });
    await w.publishTask('d1');
    await started.promise;
    await a.stop();
    expect(await w.storedReports()).toBe(0);
    expect(await (await w.kv(w.inboxBucket)).get('s1.t1.1')).toBeNull();

    let calls = 0;
    await w.start(async () => {
      calls++;
      return { type: 'completed', output: 'by the next one' };
    });
    expect(await w.reports(1)).toEqual([expect.objectContaining({ type: 'TaskCompleted', output: 'by the next one' })]);
    expect(calls).toBe(1);
  });

  it('a handler that answers its abort with a failure marked aborted (as the shell handler does) hands its command back too', async () => {
    const w = await world();
    const started = latch();
    const a = await w.start(async (_t, { signal }) => {
      started.release();
      await aborted(signal);
      return { type: 'failed', error: 'aborted', retryable: true, aborted: true };
    });
    await w.publishTask('d1');
    await started.promise;
    await a.stop();
    expect(await w.storedReports()).toBe(0); // no TaskFailed: stopping costs no attempt
    expect(await (await w.kv(w.inboxBucket)).get('s1.t1.1')).toBeNull();
    await w.start(async () => ({ type: 'completed', output: 'by the next one' }));
    expect(await w.reports(1)).toEqual([expect.objectContaining({ type: 'TaskCompleted', output: 'by the next one' })]);
  });

  it("reports a failure of the task's own returned as the stop comes (handed back, its command would run twice)", async () => {
    const w = await world();
    const started = latch();
    let calls = 0;
    const a = await w.start(async (_t, { signal }) => {
      calls++;
      started.release();
      await aborted(signal);
      return { type: 'failed', error: 'exit code 3', retryable: false };
    });
    await w.publishTask('d1');
    await started.promise;
    await a.stop();
    expect(await w.reports(1)).toEqual([expect.objectContaining({ type: 'TaskFailed', error: 'exit code 3' })]);
    expect(calls).toBe(1);
  });

  it('aborts a handler whose claim is taken over and reports nothing for it', async () => {
    const w = await world();
    const started = latch();
    const gaveUp = latch();
    const ex = await w.start(
      async (_t, { signal }) => {
        started.release();
        await aborted(signal);
        gaveUp.release();
        return { type: 'completed', output: 'must not be reported' };
      },
      { ackWaitMs: 1_000 },
    );
    await w.publishTask('d1');
    await started.promise;
    // Another process holds the claim now (as after a long KV outage let it expire).
    const claims = await w.kv(`${w.inboxBucket}_claims`);
    await claims.put('s1.t1.1', 'other-process');
    await gaveUp.promise; // aborted by the next refresh
    // The other process records its report and releases: the handed-back command replays it.
    await (await w.kv(w.inboxBucket)).put('s1.t1.1', JSON.stringify({ type: 'TaskCompleted', taskId: 't1', dispatchId: 's1.t1.1', output: 'by the other' }));
    await claims.delete('s1.t1.1');
    expect(await w.reports(1)).toEqual([expect.objectContaining({ output: 'by the other' })]);
    await until(() => ex.replayed === 1, 'the replay');
    expect(await w.storedReports()).toBe(1);
  });

  it('a report the inbox cannot record is published once; its claim is kept so a redelivery does not run it again', async () => {
    const w = await world();
    let calls = 0;
    await w.start(
      async () => {
        calls++;
        return { type: 'completed', output: 'done once' };
      },
      { ackWaitMs: 1_000 },
    );
    // Every put into the inbox now fails (the report is larger than the stream allows).
    await w.jsm.streams.update(`KV_${w.inboxBucket}`, { max_msg_size: 8 });
    await w.publishTask('d1');
    expect(await w.reports(1)).toEqual([expect.objectContaining({ type: 'TaskCompleted', output: 'done once' })]);
    await until(async () => (await w.consumerInfo()).num_ack_pending === 0, 'the ack');
    expect((await (await w.kv(`${w.inboxBucket}_claims`)).get('s1.t1.1'))?.operation).toBe('PUT');

    await w.publishTask('d1-again'); // the same dispatch, past the duplicate window
    await until(async () => (await w.consumerInfo()).delivered.consumer_seq >= 3, 'the copy to be handed back');
    expect(calls).toBe(1);
    expect(await w.storedReports()).toBe(1);
  });
});

describe('KvClaims', () => {
  it('releases after an in-flight refresh, and says a refreshed claim is lost once someone else wrote it', async () => {
    const nc = await env.conn();
    const bucket = uniqueName('claims');
    const claims = await KvClaims.open(nc, { bucket, ttlMs: 10_000 });
    const kv = await new Kvm(nc).open(bucket);
    const a = (await claims.take('d.1', 'me'))!;
    const refreshing = a.refresh();
    await a.release(); // would fail with the revision from before the refresh
    await refreshing;
    expect((await kv.get('d.1'))?.operation).toBe('DEL');

    const b = (await claims.take('d.1', 'me'))!;
    await kv.put('d.1', 'other-process');
    await expect(b.refresh()).rejects.toBeInstanceOf(ClaimLostError);
    expect(await claims.take('d.1', 'me')).toBeUndefined();
  });

  it('a holder whose claim lapsed and was taken over releases nothing: the new holder keeps it', async () => {
    const nc = await env.conn();
    const bucket = uniqueName('claims');
    const claims = await KvClaims.open(nc, { bucket, ttlMs: 10_000 });
    const kv = await new Kvm(nc).open(bucket);
    const a = (await claims.take('d.1', 'executor-a'))!;
    // a's claim lapses (its process stalled past the TTL: deleted here to play the expiry) and b takes it.
    await kv.delete('d.1');
    expect(await claims.take('d.1', 'executor-b')).toBeDefined();
    // a comes back and gives up its run (stopped, or its report not recorded): its release must not
    // delete b's claim, or a third delivery would run the dispatch beside b.
    await a.release().catch(() => undefined);
    const entry = await kv.get('d.1');
    expect(entry?.operation).toBe('PUT');
    expect(entry?.string()).toBe('executor-b');
    expect(await claims.take('d.1', 'executor-c')).toBeUndefined();
  });
});
