/**
 * The executor's concurrency across a nats-server crash. When the server dies while a fetch is open
 * (some of its slots taken, waiting for more commands), nats.js re-pulls a whole batch within that
 * same fetch after the reconnect: the pull loop must not run more handlers than its slots, nor keep
 * the extra slots afterwards.
 */
import { executorNames } from '../../src/protocol/deploymentNames.js';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { jetstream, jetstreamManager, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNats } from '../../src/nats/connect.js';
import { createExecutor, type Executor } from '../../src/nats/executor.js';
import { ensureStream } from '../../src/persistence/jetstream/index.js';
import type { ExecuteTask } from '../../src/protocol/commands.js';
import type { TaskHandler } from '../../src/executors/report.js';
import { startNatsServer, uniqueName, type NatsServerHandle } from '../support/natsServer.js';
import { until, latch, aborted } from '../support/waiting.js';

let server: NatsServerHandle;
let nc: NatsConnection;
let jsm: JetStreamManager;
const cleanups: Array<() => void | Promise<void>> = [];

beforeAll(async () => {
  server = await startNatsServer(); // this file's own server: the test crashes it
  nc = await connectNats({ url: server.url }); // reconnects forever
  jsm = await jetstreamManager(nc);
});
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await nc?.close().catch(() => undefined);
  await server?.cleanup();
});

const CONCURRENCY = 3;
/** Commands published after the restart: several rounds of full slots. */
const AFTER_RESTART = 4 * CONCURRENCY;
const TOTAL = 1 + AFTER_RESTART;

describe('executor across a server crash', () => {
  it('never runs more handlers than its concurrency, before or after the re-pull, and reports every command once', async () => {
    const streamName = uniqueName('JPR');
    const subjectPrefix = uniqueName('jpr');
    await ensureStream(nc, { streamName, subjectPrefix });
    const js = jetstream(nc);
    const durable = `${executorNames(streamName, subjectPrefix).durablePrefix}-toolcall`;

    // Handlers hold their commands until the test opens the current gate, so that the executor
    // takes all it will take before any slot frees up; the last command opens the gate for good.
    let running = 0;
    let maxRunning = 0;
    const calls = new Map<string, number>();
    let gate = latch();
    let open = false;
    const openForGood = () => {
      open = true;
      gate.release();
    };
    const firstStarted = latch();
    const handler: TaskHandler = async (task, { signal }) => {
      calls.set(task.dispatchId, (calls.get(task.dispatchId) ?? 0) + 1);
      running++;
      maxRunning = Math.max(maxRunning, running);
      firstStarted.release();
      if (calls.size === TOTAL) openForGood();
      try {
        if (!open) await Promise.race([gate.promise, aborted(signal)]);
      } finally {
        running--;
      }
      return { type: 'completed', output: task.taskId };
    };

    const ex: Executor = await createExecutor({
      nc,
      kinds: ['ToolCall'],
      handler,
      streamName,
      subjectPrefix,
      inboxBucket: uniqueName('inbox'),
      concurrency: CONCURRENCY,
    });
    cleanups.push(async () => {
      openForGood();
      await ex.stop();
    });

    const task = (i: number): ExecuteTask => ({
      type: 'ExecuteTask',
      sessionId: 's1',
      taskId: `t${i}`,
      dispatchId: `s1.t${i}.1`,
      attempt: 1,
      kind: 'ToolCall',
      description: 'do it',
      attachments: [],
      context: '',
    });
    const publishTask = async (i: number): Promise<void> => {
      // Retried: right after a restart the first publish may not find JetStream yet.
      const deadline = Date.now() + 10_000;
      for (;;) {
        try {
          await js.publish(`${subjectPrefix}.exec.toolcall.s1`, JSON.stringify(task(i)), { msgID: `d${i}`, timeout: 2_000 });
          return;
        } catch (err) {
          if (Date.now() > deadline) throw err;
        }
      }
    };

    // One command runs: the executor's fetch stays open, waiting for the other slots' commands.
    // The crash must come once the server has written that delivery to disk: were it lost, the
    // restarted server would deliver the command again (another case, handled by the inbox).
    const consumerState = join(server.dir, 'jetstream', '$G', 'streams', streamName, 'obs', durable, 'o.dat');
    const readState = () => readFile(consumerState).catch(() => Buffer.alloc(0));
    let before = Buffer.alloc(0);
    await until(async () => (before = await readState()).length > 0, () => `the consumer state file ${consumerState}`);
    await publishTask(0);
    await firstStarted.promise;
    expect(running).toBe(1);
    await until(async () => {
      const now = await readState();
      return now.length > 0 && !now.equals(before);
    }, () => 'the delivery to be written to the consumer state file');

    // The server crashes and comes back on the same port and store; the connection reconnects.
    const reconnected = (async () => {
      for await (const s of nc.status()) if (s.type === 'reconnect') return;
    })();
    await server.kill();
    await server.restart();
    await reconnected;

    // Just enough commands for the free slots: the re-pull hands them to the open fetch, which then
    // has all its slots taken (the old loop kept it open, pulling for more).
    for (let i = 1; i < CONCURRENCY; i++) await publishTask(i);
    let last = '';
    await until(
      async () => {
        const ci = await jsm.consumers.info(streamName, durable);
        last = `running ${running}, ack pending ${ci.num_ack_pending}, undelivered ${ci.num_pending}`;
        return ci.num_pending === 0 && running === ci.num_ack_pending && running === CONCURRENCY;
      },
      () => `the re-pulled commands to run (${last})`,
    );
    // The rest: none may start before a slot frees up.
    for (let i = CONCURRENCY; i <= AFTER_RESTART; i++) await publishTask(i);

    // Rounds: wait until the executor holds all it will take (every command the server has out
    // is in a handler and no pull is waiting on the server), then let those handlers finish.
    const settled = async (): Promise<boolean> => {
      if (open) return true;
      const ci = await jsm.consumers.info(streamName, durable);
      last = `running ${running}, ack pending ${ci.num_ack_pending}, waiting pulls ${ci.num_waiting}, undelivered ${ci.num_pending}`;
      return running > 0 && running === ci.num_ack_pending && ci.num_waiting === 0;
    };
    for (let round = 1; !open; round++) {
      // Seen twice in a row: an ack just processed whose slot has not yet been pulled into is not it.
      await until(async () => (await settled()) && (await settled()), () => `round ${round} to settle (${last})`);
      expect(running, `handlers running at once in round ${round}`).toBeLessThanOrEqual(CONCURRENCY);
      const done = gate;
      gate = latch();
      done.release();
    }

    // Every command is handled and acked, and reported exactly once.
    await until(
      async () => {
        const ci = await jsm.consumers.info(streamName, durable);
        last = `ack pending ${ci.num_ack_pending}, undelivered ${ci.num_pending}`;
        return ci.num_ack_pending === 0 && ci.num_pending === 0;
      },
      () => `every command to be acked (${last})`,
    );
    const reportsStream = await js.consumers.get(streamName, { filter_subjects: `${subjectPrefix}.in.>` });
    const reported: string[] = [];
    const stored = (await jsm.streams.info(streamName, { subjects_filter: `${subjectPrefix}.in.>` })).state.subjects ?? {};
    const storedCount = Object.values(stored).reduce((a, b) => a + b, 0);
    if (storedCount > 0) {
      const messages = await reportsStream.fetch({ max_messages: storedCount, expires: 5_000 });
      for await (const m of messages as AsyncIterable<JsMsg>) reported.push(m.json<{ dispatchId: string }>().dispatchId);
    }
    const expected = Array.from({ length: TOTAL }, (_, i) => `s1.t${i}.1`);
    expect(reported.sort()).toEqual([...expected].sort());
    expect(storedCount).toBe(TOTAL);

    // No more handlers at once than slots, ever (and the slots were all used).
    expect(maxRunning).toBe(CONCURRENCY);
    expect([...calls.values()].every((n) => n === 1)).toBe(true);
    expect(calls.size).toBe(TOTAL);
  });
});
