/**
 * Executors over JetStream. One durable pull consumer per kind (nats-server 2.9 takes one filter
 * subject per consumer) on `<prefix>.exec.<kind>.>`, explicit acks. Each ExecuteTask runs its
 * handler at most once per dispatch id: the report is recorded in a KV inbox before it is published
 * (with Nats-Msg-Id `report.<dispatchId>`) and before the command is acked, so a redelivery — after
 * a crash, an ack lost, or a duplicate publish — re-sends the recorded report instead of running
 * the task again. Long tasks stay leased with `working()` progress acks every ackWait/3.
 */
import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  JetStreamApiCodes,
  JetStreamApiError,
  type ConsumerMessages,
  type JsMsg,
} from '@nats-io/jetstream';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { ExecuteTask } from '../protocol/commands.js';
import { DEFAULT_STREAM_NAME, DEFAULT_SUBJECT_PREFIX, ensureStream } from '../persistence/jetstream/streamConfig.js';
import { HEADER_CAUSATION_ID, HEADER_CORRELATION_ID } from '../persistence/jetstream/headers.js';
import { silentLogger } from '../observability/logger.js';
import { checkedReport, runHandler, type ExecutorReport, type TaskHandler } from '../executors/report.js';
import { DEFAULT_EXEC_INBOX_BUCKET, KvExecutorInbox } from './executorInbox.js';
import { DEFAULT_EXEC_CLAIMS_BUCKET, KvClaims } from './executorClaims.js';
import { publishReport } from './executorPublish.js';

export type ExecutorKind = 'ToolCall' | 'Processing';

export interface ExecutorOptions {
  nc: NatsConnection;
  kinds: ExecutorKind[];
  handler: TaskHandler;
  streamName?: string;
  subjectPrefix?: string;
  /** Durable consumer names are `<durablePrefix>-<kind>` (default 'jetplan-exec'). */
  durablePrefix?: string;
  /** KV bucket of recorded reports (default 'jetplan_exec_inbox'). */
  inboxBucket?: string;
  /**
   * Forget recorded reports after this long (ms), when this executor creates the inbox bucket.
   * Default: keep them. Keep them longer than a session can wait on a command (its retries).
   */
  inboxTtlMs?: number;
  /** KV bucket of claims on running dispatches (default `<inboxBucket>_claims`, or 'jetplan_exec_claims'). */
  claimsBucket?: string;
  /** Consumer ack wait, ms (default 30_000); progress acks go out every ackWait/3. */
  ackWaitMs?: number;
  /** Handlers running at once per kind in this process (default 4). */
  concurrency?: number;
  logger?: Logger;
  /**
   * Test hook: runs after a report is recorded in the inbox and before it is published and the
   * command acked. A crash here is the case the inbox exists for.
   */
  afterRecord?: (task: ExecuteTask, report: ExecutorReport) => void | Promise<void>;
}

export interface Executor {
  /** Stops taking messages, waits for running handlers to finish and report, then returns. */
  stop(): Promise<void>;
  /** Handler invocations that finished in this process. */
  readonly executed: number;
  /** Commands answered from the inbox without running the handler. */
  readonly replayed: number;
  readonly inbox: KvExecutorInbox;
}

const kindToken = (kind: ExecutorKind): 'toolcall' | 'processing' => (kind === 'ToolCall' ? 'toolcall' : 'processing');

/** Starts an executor. Resolves once its consumers are bound and taking messages. */
export async function createExecutor(options: ExecutorOptions): Promise<Executor> {
  const { nc, handler } = options;
  const streamName = options.streamName ?? DEFAULT_STREAM_NAME;
  const prefix = options.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX;
  const durablePrefix = options.durablePrefix ?? 'jetplan-exec';
  const ackWaitMs = options.ackWaitMs ?? 30_000;
  const concurrency = Math.max(1, options.concurrency ?? 4);
  const logger = options.logger ?? silentLogger;
  const kinds = [...new Set(options.kinds)];
  if (kinds.length === 0) throw new Error('executor: at least one kind is needed');

  const jsm = await jetstreamManager(nc);
  try {
    await jsm.streams.info(streamName);
  } catch (err) {
    if (!(err instanceof JetStreamApiError) || err.code !== JetStreamApiCodes.StreamNotFound) throw err;
    // Started before the planner: create the stream as the planner would.
    await ensureStream(nc, { streamName, subjectPrefix: prefix });
  }
  const inbox = await KvExecutorInbox.open(nc, {
    bucket: options.inboxBucket ?? DEFAULT_EXEC_INBOX_BUCKET,
    ...(options.inboxTtlMs !== undefined ? { ttlMs: options.inboxTtlMs } : {}),
  });
  // A claim outlives a few missed refreshes (one per ackWait/3), not a dead executor.
  const claims = await KvClaims.open(nc, {
    bucket: options.claimsBucket ?? (options.inboxBucket ? `${options.inboxBucket}_claims` : DEFAULT_EXEC_CLAIMS_BUCKET),
    ttlMs: Math.max(3 * ackWaitMs, 10_000),
  });
  const owner = `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  const js = jetstream(nc);

  const state = { executed: 0, replayed: 0, stopping: false };
  /** Work under way by dispatch id: a duplicate delivery waits for it instead of running again. */
  const inFlight = new Map<string, Promise<void>>();
  const running = new Set<Promise<void>>();
  const loops: Array<Promise<void>> = [];
  const iterators: ConsumerMessages[] = [];

  for (const kind of kinds) {
    const durable = `${durablePrefix}-${kindToken(kind)}`;
    const filter = `${prefix}.exec.${kindToken(kind)}.>`;
    await ensureConsumer(jsm, streamName, durable, filter, ackWaitMs, logger);
    const consumer = await js.consumers.get(streamName, durable);
    const messages = await consumer.consume({ max_messages: concurrency });
    iterators.push(messages);
    const slots = new Semaphore(concurrency);
    loops.push(
      (async () => {
        for await (const m of messages) {
          // Progress acks from receipt: a message waiting for a free slot must not be redelivered.
          const keepAlive = setInterval(() => m.working(), Math.max(50, Math.floor(ackWaitMs / 3)));
          await slots.acquire();
          if (state.stopping) {
            clearInterval(keepAlive);
            slots.release();
            m.nak(); // let another executor take it now rather than after ackWait
            continue;
          }
          const work = processMessage(m).finally(() => {
            clearInterval(keepAlive);
            slots.release();
          });
          running.add(work);
          void work.finally(() => running.delete(work));
        }
      })().catch((err: unknown) => logger.error({ err, durable }, 'executor consumer stopped')),
    );
    logger.info({ durable, filter, stream: streamName }, 'executor consuming');
  }

  async function processMessage(m: JsMsg): Promise<void> {
    let json: unknown;
    try {
      json = m.json<unknown>();
    } catch {
      json = undefined;
    }
    const parsed = ExecuteTask.safeParse(json);
    if (!parsed.success) {
      logger.error({ subject: m.subject, seq: m.seq, issue: parsed.error.issues[0]?.message }, 'invalid ExecuteTask; terminated');
      m.term(); // no reason: nats-server 2.9 only understands a bare +TERM
      return;
    }
    const task = parsed.data;
    const previous = inFlight.get(task.dispatchId);
    if (previous) await previous.catch(() => undefined);
    const done = handleTask(m, task);
    inFlight.set(task.dispatchId, done);
    try {
      await done;
    } finally {
      if (inFlight.get(task.dispatchId) === done) inFlight.delete(task.dispatchId);
    }
  }

  async function handleTask(m: JsMsg, task: ExecuteTask): Promise<void> {
    const log = { sessionId: task.sessionId, taskId: task.taskId, dispatchId: task.dispatchId, redelivered: m.redelivered };
    try {
      const report = (await recorded(task, log)) ?? (await execute(task, log));
      if (!report) {
        // Another executor process is running this dispatch: come back for its report.
        m.nak(Math.min(ackWaitMs, 5_000));
        return;
      }
      await publishReport(js, prefix, task, report, {
        [HEADER_CORRELATION_ID]: m.headers?.get(HEADER_CORRELATION_ID) || task.sessionId,
        [HEADER_CAUSATION_ID]: m.headers?.get('Nats-Msg-Id') || task.dispatchId,
      });
      await m.ackAck().catch(() => m.ack());
    } catch (err) {
      logger.error({ ...log, err }, 'command not completed; it will be redelivered');
      if (!nc.isClosed()) m.nak(Math.min(ackWaitMs, 1_000));
    }
  }

  /** The report recorded for this dispatch by any executor, if there is one. */
  async function recorded(task: ExecuteTask, log: object): Promise<ExecutorReport | undefined> {
    const report = await inbox.get(task.dispatchId);
    if (report) {
      state.replayed++;
      logger.info(log, 'command already executed; re-sending the recorded report');
    }
    return report;
  }

  /** Runs the handler under the dispatch's claim; undefined when another process holds it. */
  async function execute(task: ExecuteTask, log: object): Promise<ExecutorReport | undefined> {
    const claim = await claims.take(task.dispatchId, owner);
    if (!claim) {
      logger.info(log, 'dispatch claimed by another executor; waiting for its report');
      return undefined;
    }
    const refresh = setInterval(() => {
      claim.refresh().catch((err: unknown) => logger.warn({ ...log, err }, 'claim not refreshed'));
    }, Math.max(50, Math.floor(ackWaitMs / 3)));
    try {
      // The holder of a claim released just now may have recorded the report meanwhile.
      const earlier = await recorded(task, log);
      if (earlier) return earlier;
      const outcome = await runHandler(handler, task, new AbortController().signal);
      state.executed++;
      const report = checkedReport(task, outcome);
      await inbox.put(task.dispatchId, report);
      if (options.afterRecord) await options.afterRecord(task, report);
      logger.info({ ...log, report: report.type }, 'task executed');
      return report;
    } finally {
      clearInterval(refresh);
      await claim.release().catch(() => undefined);
    }
  }

  return {
    get executed() {
      return state.executed;
    },
    get replayed() {
      return state.replayed;
    },
    inbox,
    async stop() {
      if (state.stopping) {
        await Promise.allSettled([...running, ...loops]);
        return;
      }
      state.stopping = true;
      for (const messages of iterators) messages.stop();
      await Promise.allSettled(loops);
      while (running.size > 0) await Promise.allSettled([...running]);
    },
  };
}

async function ensureConsumer(
  jsm: Awaited<ReturnType<typeof jetstreamManager>>,
  stream: string,
  durable: string,
  filter: string,
  ackWaitMs: number,
  logger: Logger,
): Promise<void> {
  const config = {
    durable_name: durable,
    filter_subject: filter,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(ackWaitMs),
    max_deliver: -1,
  };
  try {
    const info = await jsm.consumers.info(stream, durable);
    if (info.config.filter_subject !== filter) {
      throw new Error(`consumer ${durable} on ${stream} filters ${info.config.filter_subject ?? '(nothing)'}, expected ${filter}`);
    }
    if (info.config.ack_wait !== config.ack_wait) {
      await jsm.consumers.update(stream, durable, { ack_wait: config.ack_wait });
      logger.info({ durable, ackWaitMs }, 'consumer ack wait updated');
    }
  } catch (err) {
    if (!(err instanceof JetStreamApiError) || err.code !== JetStreamApiCodes.ConsumerNotFound) throw err;
    try {
      await jsm.consumers.add(stream, config);
    } catch (addErr) {
      // Another executor created it first.
      if (!(addErr instanceof JetStreamApiError)) throw addErr;
      await jsm.consumers.info(stream, durable);
    }
  }
}

/** A counting semaphore. */
class Semaphore {
  #free: number;
  readonly #waiters: Array<() => void> = [];
  constructor(n: number) {
    this.#free = n;
  }
  async acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return;
    }
    await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }
  release(): void {
    const next = this.#waiters.shift();
    if (next) next();
    else this.#free++;
  }
}
