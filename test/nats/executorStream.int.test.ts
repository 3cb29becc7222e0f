/**
 * The executor on a stream it did not make: one missing jetplan's subjects is widened (as the
 * planner service widens it), one with other storage or retention is refused in one line, a
 * consumer the server refuses is named with the server's reason, and executors starting at once
 * with the planner service on the same stream all start.
 */
import { executorNames } from '../../src/protocol/deploymentNames.js';
import { jetstream, jetstreamManager, RetentionPolicy, StorageType, type JsMsg } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { createExecutor, type Executor, type ExecutorOptions } from '../../src/nats/executor.js';
import { ensureStream } from '../../src/persistence/jetstream/index.js';
import type { ExecuteTask } from '../../src/protocol/commands.js';
import type { TaskHandler } from '../../src/executors/report.js';
import { uniqueName } from '../support/natsServer.js';
import { natsTestEnv } from '../support/natsTestEnv.js';
import { executeTask } from '../support/executeTask.js';
import { fakeIo, run } from '../cli/fakeIo.js';
import { main } from '../../src/cli/main.js';

const env = natsTestEnv();
const conn = env.conn;

/** An isolated stream name, prefix and inbox bucket; the stream is made by each test. */
async function world() {
  const nc = await conn();
  const streamName = uniqueName('JPS');
  const subjectPrefix = uniqueName('jps');
  const inboxBucket = uniqueName('inbox');
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const calls: ExecuteTask[] = [];
  const handler: TaskHandler = async (t) => {
    calls.push(t);
    return { type: 'completed', output: `ran ${t.taskId}` };
  };
  const start = async (extra: Partial<ExecutorOptions> = {}): Promise<Executor> => {
    const ex = await createExecutor({ nc: extra.nc ?? nc, kinds: ['ToolCall', 'Processing'], handler, streamName, subjectPrefix, inboxBucket, ...extra });
  env.track(ex);
    return ex;
  };
  /** Publishes one command and waits for its report on `<prefix>.in.>`. */
  const roundTrip = async (): Promise<Record<string, unknown>> => {
    await js.publish(`${subjectPrefix}.exec.toolcall.s1`, JSON.stringify(executeTask()), { msgID: 's1.t1.1' });
    const messages = await (await js.consumers.get(streamName, { filter_subjects: `${subjectPrefix}.in.>` })).consume();
    try {
      for await (const m of messages as AsyncIterable<JsMsg>) return m.json<Record<string, unknown>>();
    } finally {
      await messages.close();
    }
    throw new Error('no report');
  };
  const durables = async (): Promise<string[]> =>
    (await jsm.consumers.list(streamName).next()).map((c) => c.config.durable_name ?? '').filter((n) => n).sort();
  return { nc, jsm, streamName, subjectPrefix, inboxBucket, calls, start, roundTrip, durables };
}

const wanted = (prefix: string) => [`${prefix}.in.>`, `${prefix}.ev.>`, `${prefix}.exec.>`];

describe('the executor on an existing stream', () => {
  it('widens a stream that lacks the exec subjects, as the planner service does, and runs commands', async () => {
    const w = await world();
    await w.jsm.streams.add({ name: w.streamName, subjects: [`${w.subjectPrefix}.in.>`, 'extra.>'], duplicate_window: 60_000_000_000 });
    await w.start();
    const { config } = await w.jsm.streams.info(w.streamName);
    expect([...config.subjects].sort()).toEqual([...wanted(w.subjectPrefix), 'extra.>'].sort()); // the operator's subject kept
    expect(config.duplicate_window).toBe(120_000 * 1_000_000);
    expect(await w.durables()).toEqual([`${executorNames(w.streamName, w.subjectPrefix).durablePrefix}-processing`, `${executorNames(w.streamName, w.subjectPrefix).durablePrefix}-toolcall`]);
    expect(await w.roundTrip()).toMatchObject({ type: 'TaskCompleted', dispatchId: 's1.t1.1', output: 'ran t1' });
    expect(w.calls).toHaveLength(1);
  });

  it('jetplan executor starts on such a stream and stops cleanly', async () => {
    const w = await world();
    await w.jsm.streams.add({ name: w.streamName, subjects: [`${w.subjectPrefix}.in.>`] });
    const io = fakeIo();
    const argv = ['executor', 'echo', '--nats', env.server().url, '--stream', w.streamName, '--prefix', w.subjectPrefix, '--inbox-bucket', w.inboxBucket];
    const done = main(argv, io);
    await Promise.race([io.waitForOut('taking'), done.then((code) => Promise.reject(new Error(`exited ${code}: ${io.err.join('')}`)))]);
    io.signal('SIGTERM');
    expect(await done).toBe(0);
    // Only the executor's info logs on stderr: no error line, no warning.
    const problems = io.stderrLines.filter((line) => !line.startsWith('{') || (JSON.parse(line) as { level: number }).level >= 40);
    expect(problems).toEqual([]);
    expect([...(await w.jsm.streams.info(w.streamName)).config.subjects].sort()).toEqual(wanted(w.subjectPrefix).sort());
  });

  it.each([
    ['memory storage', { storage: StorageType.Memory }, 'memory storage and limits retention'],
    ['work-queue retention', { retention: RetentionPolicy.Workqueue }, 'file storage and workqueue retention'],
  ])('refuses a stream with %s in one line, as serve does, and makes nothing on it', async (_what, config, found) => {
    const w = await world();
    // With all of jetplan's subjects too: the storage alone is reason to refuse.
    await w.jsm.streams.add({ name: w.streamName, subjects: wanted(w.subjectPrefix), ...config });
    const message = `stream ${w.streamName} exists with ${found}; jetplan needs file storage and limits retention`;
    await expect(w.start()).rejects.toThrow(message);
    expect(await w.durables()).toEqual([]);

    const { code, io } = await run(['executor', 'echo', '--nats', env.server().url, '--stream', w.streamName, '--prefix', w.subjectPrefix, '--inbox-bucket', w.inboxBucket]);
    expect(io.stderrLines).toEqual([`jetplan: ${message}`]);
    expect(code).toBe(2);
  });

  it('refuses a memory stream that also lacks the exec subjects with the same line, not "consumer not found"', async () => {
    const w = await world();
    await w.jsm.streams.add({ name: w.streamName, subjects: [`${w.subjectPrefix}.in.>`], storage: StorageType.Memory });
    await expect(w.start()).rejects.toThrow(`stream ${w.streamName} exists with memory storage and limits retention`);
  });

  it('names the consumer and the server\'s reason when the server refuses to create it', async () => {
    const w = await world();
    await w.jsm.streams.add({ name: w.streamName, subjects: wanted(w.subjectPrefix), max_consumers: 1 });
    await w.jsm.consumers.add(w.streamName, { durable_name: 'someone-else', ack_policy: 'explicit' as const });
    await expect(w.start({ kinds: ['ToolCall'] })).rejects.toThrow(
      new RegExp(`^cannot create consumer ${executorNames(w.streamName, w.subjectPrefix).durablePrefix}-toolcall on stream ${w.streamName} \\(filter ${w.subjectPrefix}\\.exec\\.toolcall\\.>\\): .*maximum consumers`),
    );
  });

  it('executors and the planner service starting at once on a stream that lacks the exec subjects all start', async () => {
    const w = await world();
    await w.jsm.streams.add({ name: w.streamName, subjects: [`${w.subjectPrefix}.in.>`] });
    const [ncServe, ncA, ncB, ncC] = await Promise.all([conn(), conn(), conn(), conn()]);
    // The race as it was seen: the planner service widens the stream just as the executors create
    // their consumers. Its ensureStream starts when the first consumer create request goes out.
    const watch = w.nc.subscribe('$JS.API.CONSUMER.>');
    await w.nc.flush();
    const firstCreate = (async () => {
      for await (const m of watch) if (m.subject.includes(`CREATE.${w.streamName}`)) return;
    })();
    const serving = firstCreate.then(() => ensureStream(ncServe, { streamName: w.streamName, subjectPrefix: w.subjectPrefix }));
    const started = await Promise.allSettled([
      // Two executors of one fleet (one durable prefix) and one of another, each widening too.
      w.start({ nc: ncA }),
      w.start({ nc: ncB }),
      w.start({ nc: ncC, durablePrefix: 'other-fleet', inboxBucket: uniqueName('inbox') }),
    ]);
    watch.unsubscribe();
    await serving;
    expect(started.map((s) => (s.status === 'rejected' ? String(s.reason) : 'ok'))).toEqual(['ok', 'ok', 'ok']);
    expect([...(await w.jsm.streams.info(w.streamName)).config.subjects].sort()).toEqual(wanted(w.subjectPrefix).sort());
    expect(await w.durables()).toEqual([`${executorNames(w.streamName, w.subjectPrefix).durablePrefix}-processing`, `${executorNames(w.streamName, w.subjectPrefix).durablePrefix}-toolcall`, 'other-fleet-processing', 'other-fleet-toolcall']);
    expect(await w.roundTrip()).toMatchObject({ type: 'TaskCompleted', dispatchId: 's1.t1.1' });
  });
});
