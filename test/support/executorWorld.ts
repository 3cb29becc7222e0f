/**
 * One isolated world per executor test: a stream, subject prefix and inbox bucket of its own on
 * the file's nats-server, executors started on it (stopped after the file's tests), and readers
 * of what they reported.
 */
import { executorNames } from '../../src/protocol/deploymentNames.js';
import { jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { createExecutor, type Executor, type ExecutorKind, type ExecutorOptions } from '../../src/nats/executor.js';
import type { TaskHandler } from '../../src/executors/report.js';
import { ensureStream } from '../../src/persistence/jetstream/index.js';
import { uniqueName } from './natsServer.js';
import type { NatsTestEnv } from './natsTestEnv.js';

export async function executorWorld(env: NatsTestEnv, kinds: ExecutorKind[] = ['ToolCall', 'Processing']) {
  const nc = await env.conn();
  const streamName = uniqueName('JPX');
  const subjectPrefix = uniqueName('jpx');
  const inboxBucket = uniqueName('inbox');
  await ensureStream(nc, { streamName, subjectPrefix });
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);

  /** An executor of `kinds` on this world's stream and inbox (`extra` overrides). */
  const start = async (handler: TaskHandler, extra: Partial<ExecutorOptions> = {}): Promise<Executor> =>
    env.track(await createExecutor({ nc, kinds, handler, streamName, subjectPrefix, inboxBucket, ...extra }));

  /** Waits until `n` reports are stored on `<prefix>.in.>` and returns them (reads the stream). */
  const reports = async (n: number): Promise<Array<{ data: Record<string, unknown>; msg: JsMsg }>> => {
    const consumer = await js.consumers.get(streamName, { filter_subjects: `${subjectPrefix}.in.>` });
    const messages = await consumer.consume({ max_messages: 64 });
    const out: Array<{ data: Record<string, unknown>; msg: JsMsg }> = [];
    try {
      for await (const m of messages) {
        out.push({ data: m.json<Record<string, unknown>>(), msg: m });
        if (out.length >= n) break;
      }
    } finally {
      await messages.close();
    }
    return out;
  };

  /** How many reports the stream holds now. */
  const storedReports = async (): Promise<number> => {
    const info = await jsm.streams.info(streamName, { subjects_filter: `${subjectPrefix}.in.>` });
    return Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
  };

  const consumerInfo = (kind = 'toolcall') => jsm.consumers.info(streamName, `${executorNames(streamName, subjectPrefix).durablePrefix}-${kind}`);
  const kv = (bucket: string) => new Kvm(nc).open(bucket);

  return { nc, streamName, subjectPrefix, inboxBucket, js, jsm, start, reports, storedReports, consumerInfo, kv };
}
