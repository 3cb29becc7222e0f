/**
 * Executors over JetStream. One durable pull consumer per kind (nats-server 2.9 takes one filter
 * subject per consumer) on `<prefix>.exec.<kind>.>`, explicit acks. Each ExecuteTask runs its
 * handler at most once per dispatch id: the report is recorded in a KV inbox before it is published
 * (with Nats-Msg-Id `report.<dispatchId>`) and before the command is acked, so a redelivery — after
 * a crash, an ack lost, or a duplicate publish — re-sends the recorded report instead of running
 * the task again. Commands are pulled only into free handler slots and kept leased with `working()`
 * progress acks every ackWait/3 (executorPull.ts); handlers run under a claim (executorRun.ts).
 * At start the stream is created or widened as the planner service does (or refused, in one line,
 * if its storage or retention differ) before the consumers are made on it. A command older than
 * `staleAfterMs` is run only if its session, rebuilt from its log, still waits on exactly that
 * dispatch; any other is acked without running it (executorStale.ts). While a handler runs, the
 * executor follows its session's events: one that ends the session aborts the handler's signal.
 */
import { jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { NatsConnection } from '@nats-io/transport-node';
import { SessionRepository } from '../actors/sessionRepository.js';
import { ExecuteTask } from '../protocol/commands.js';
import { JetStreamEventStore } from '../persistence/jetstream/jetStreamEventStore.js';
import { DEFAULT_STREAM_NAME, DEFAULT_SUBJECT_PREFIX, ensureStream } from '../persistence/jetstream/streamConfig.js';
import { HEADER_CAUSATION_ID, HEADER_CORRELATION_ID, HEADER_EVENT_TYPE } from '../persistence/jetstream/headers.js';
import { silentLogger } from '../observability/logger.js';
import { DEFAULT_EXEC_INBOX_BUCKET, KvExecutorInbox } from './executorInbox.js';
import { DEFAULT_EXEC_CLAIMS_BUCKET, KvClaims } from './executorClaims.js';
import { ensureConsumer } from './executorConsumer.js';
import { publishReport } from './executorPublish.js';
import { PullLoop } from './executorPull.js';
import { runClaimed, type ClaimedRun } from './executorRun.js';
import { DEFAULT_STALE_AFTER_MS, messageAgeMs, staleVerdict, storedAtMs } from './executorStale.js';
import type { Executor, ExecutorKind, ExecutorOptions } from './executorOptions.js';

export type { Executor, ExecutorKind, ExecutorOptions } from './executorOptions.js';

/** The events that end a session: a task of it still running is aborted. */
const SESSION_ENDS = new Set(['SessionCancelled', 'SessionFailed', 'SessionCompleted']);

/** The longest the stale check may take before the command is run unchecked (fail-open). */
const STALE_CHECK_LIMIT_MS = 10_000;

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
  const staleAfterMs = options.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
  const kinds = [...new Set(options.kinds)];
  if (kinds.length === 0) throw new Error('executor: at least one kind is needed');
  if (!(staleAfterMs >= 0)) throw new Error(`executor: staleAfterMs must be 0 or more, got ${staleAfterMs}`);

  const jsm = await jetstreamManager(nc);
  const { inbox, claims } = await openStores(nc, options, ackWaitMs);
  const owner = `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  const js = jetstream(nc);
  const refreshMs = Math.max(50, Math.floor(ackWaitMs / 3));

  const state = { executed: 0, replayed: 0, skipped: 0 };
  const stopping = new AbortController();
  /** Work under way by dispatch id: a duplicate delivery waits for it instead of running again. */
  const inFlight = new Map<string, Promise<void>>();
  const loops: PullLoop[] = [];
  /** When each of this executor's consumers was created (server time), by durable name. */
  const consumerCreatedMs = new Map<string, number>();
  /** Sessions of stale commands are read through a store opened on the first one (no stream changes). */
  let sessions: Promise<{ store: JetStreamEventStore; repository: SessionRepository }> | undefined;
  const sessionRepository = async (): Promise<SessionRepository> => {
    sessions ??= JetStreamEventStore.create(nc, { streamName, subjectPrefix: prefix, ensureStream: false }).then((store) => ({
      store,
      repository: new SessionRepository({ store }),
    }));
    // A store that could not be opened (NATS briefly away) is tried again for the next command.
    const opening = sessions;
    return opening.then(
      (s) => s.repository,
      (err: unknown) => {
        if (sessions === opening) sessions = undefined;
        throw err;
      },
    );
  };

  /** Makes (or checks) the kind's durable consumer and binds to it; nothing is pulled yet. */
  const bind = async (kind: ExecutorKind) => {
    const durable = `${durablePrefix}-${kindToken(kind)}`;
    const filter = `${prefix}.exec.${kindToken(kind)}.>`;
    await ensureConsumer(jsm, streamName, durable, filter, ackWaitMs, logger);
    const consumer = await js.consumers.get(streamName, durable);
    consumerCreatedMs.set(durable, Date.parse((await consumer.info(true)).created));
    return { consumer, durable, filter };
  };
  // Every kind is bound before any loop starts: a kind that fails (its consumer refused, NATS
  // away) rejects the start with nothing pulling, so no handler runs for an executor the caller
  // never got and cannot stop. Nothing else needs releasing then: the inbox and claims are bucket
  // handles, and the store of stale checks is opened on the first command.
  const bound: Array<Awaited<ReturnType<typeof bind>>> = [];
  for (const kind of kinds) bound.push(await bind(kind));
  for (const { consumer, durable, filter } of bound) {
    loops.push(new PullLoop({ consumer, concurrency, ackWaitMs, handle: processMessage, isClosed: () => nc.isClosed(), logger, durable }));
    logger.info({ durable, filter, stream: streamName }, 'executor consuming');
  }

  /**
   * Follows a session's events (a core subscription: the stream's messages reach subscribers too)
   * while its task runs, and calls `onEnded` when one ends it. Only the type header is read.
   */
  function watchSession(sessionId: string, onEnded: (eventType: string) => void): () => void {
    const sub = nc.subscribe(`${prefix}.ev.${sessionId}`, {
      callback: (_err, msg) => {
        const type = msg.headers?.get(HEADER_EVENT_TYPE);
        if (type && SESSION_ENDS.has(type)) onEnded(type);
      },
    });
    return () => sub.unsubscribe();
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
      if (await notAwaited(m, task, log)) {
        state.skipped++;
        await m.ackAck().catch(() => m.ack());
        return;
      }
      const run = await settle(task, log);
      if (run.type === 'abandoned' && run.reason === 'session ended') {
        // Its session has ended: no one waits for the task, and a report would only be rejected.
        await m.ackAck().catch(() => m.ack());
        return;
      }
      if (run.type === 'busy' || run.type === 'abandoned') {
        // Come back for the report of the process that runs it now; on a stop, hand it over at once.
        m.nak(run.type === 'abandoned' && run.reason === 'stopped' ? undefined : Math.min(ackWaitMs, 5_000));
        return;
      }
      await publishReport(js, prefix, task, run.report, {
        [HEADER_CORRELATION_ID]: m.headers?.get(HEADER_CORRELATION_ID) || task.sessionId,
        [HEADER_CAUSATION_ID]: m.headers?.get('Nats-Msg-Id') || task.dispatchId,
      }, options.maxReportBytes);
      await m.ackAck().catch(() => m.ack());
    } catch (err) {
      logger.error({ ...log, err }, 'command not completed; it will be redelivered');
      if (!nc.isClosed()) m.nak(Math.min(ackWaitMs, 1_000));
    }
  }

  /**
   * Whether the command is stale (older than staleAfterMs) and its session, rebuilt from its log,
   * no longer waits on its dispatch; fresh commands are not looked up. A session with no events, or
   * a read or fold that fails, counts as waiting: the command is run, and the inbox and claims
   * still keep a dispatch from running twice.
   */
  async function notAwaited(m: JsMsg, task: ExecuteTask, log: object): Promise<boolean> {
    const ageMs = messageAgeMs(m);
    // Checked: an old command, one delivered again, or one stored before its consumer existed (a
    // new fleet reading the stream from its start, however recent the command).
    const beforeConsumer = storedAtMs(m) < (consumerCreatedMs.get(m.info.consumer) ?? -Infinity);
    if (ageMs < staleAfterMs && !m.redelivered && !beforeConsumer) return false;
    let timer: NodeJS.Timeout | undefined;
    try {
      // Bounded: a read that never ends must not hold the command (kept leased) and its slot forever.
      const limitMs = Math.min(ackWaitMs / 2, STALE_CHECK_LIMIT_MS);
      const timedOut = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer from the session's log in ${limitMs} ms`)), limitMs);
      });
      const verdict = await Promise.race([staleVerdict(await sessionRepository(), task), timedOut]);
      if (verdict.action === 'run') return false;
      const { action: _, ...why } = verdict; // reason (completed, failed, cancelled, superseded), waitingOn
      logger.info({ ...log, ageMs, ...why }, 'stale command not awaited by its session; acked without running it');
      return true;
    } catch (err) {
      logger.warn({ ...log, ageMs, err }, 'could not read the session of a stale command; running it');
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The recorded report of this dispatch, or what came of running it under its claim. */
  async function settle(task: ExecuteTask, log: object): Promise<ClaimedRun> {
    const known = await inbox.get(task.dispatchId);
    const run: ClaimedRun = known
      ? { type: 'report', report: known, ran: false, recorded: true }
      : await runClaimed(task, { claims, inbox, handler, owner, refreshMs, stopping: stopping.signal, logger, maxReportBytes: options.maxReportBytes, watchSession }, log);
    if (run.type === 'busy') logger.info(log, 'dispatch claimed by another executor; waiting for its report');
    if (run.type !== 'busy' && run.ran) state.executed++;
    if (run.type === 'abandoned' && run.reason === 'session ended') logger.info(log, 'handler aborted as its session ended; nothing reported');
    else if (run.type === 'abandoned') logger.warn({ ...log, reason: run.reason }, 'handler outcome not reported; command handed back');
    if (run.type !== 'report') return run;
    if (!run.ran) {
      state.replayed++;
      logger.info(log, 'command already executed; re-sending the recorded report');
    } else if (!run.recorded) {
      // The work is done: report it. Its claim is kept, so a redelivery waits out the claim's TTL.
      logger.error(log, 'report not recorded in the inbox; publishing it anyway');
    } else {
      if (options.afterRecord) await options.afterRecord(task, run.report);
      logger.info({ ...log, report: run.report.type }, 'task executed');
    }
    return run;
  }

  return {
    get executed() {
      return state.executed;
    },
    get replayed() {
      return state.replayed;
    },
    get skipped() {
      return state.skipped;
    },
    inbox,
    async stop() {
      if (!stopping.signal.aborted) {
        for (const loop of loops) loop.stop();
        stopping.abort();
      }
      await Promise.allSettled(loops.map((loop) => loop.drained()));
      const opened = sessions;
      sessions = undefined;
      await (await opened?.catch(() => undefined))?.store.close();
    },
  };
}

/**
 * Creates the stream or widens it to what jetplan needs, as the planner service does (an executor
 * may start before it, or at once on a stream made by hand), so that the consumers' filter
 * subjects exist; a stream whose storage or retention differ is refused (ValidationError, one
 * line). Then opens the inbox and claims buckets.
 */
async function openStores(
  nc: NatsConnection,
  options: ExecutorOptions,
  ackWaitMs: number,
): Promise<{ inbox: KvExecutorInbox; claims: KvClaims }> {
  await ensureStream(nc, { streamName: options.streamName ?? DEFAULT_STREAM_NAME, subjectPrefix: options.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX });
  const inbox = await KvExecutorInbox.open(nc, {
    bucket: options.inboxBucket ?? DEFAULT_EXEC_INBOX_BUCKET,
    ...(options.inboxTtlMs !== undefined ? { ttlMs: options.inboxTtlMs } : {}),
  });
  // A claim outlives a few missed refreshes (one per ackWait/3), not a dead executor. A bucket
  // made by an executor with a shorter ack wait may expire claims before we refresh them: refused.
  const claims = await KvClaims.open(nc, {
    bucket: options.claimsBucket ?? (options.inboxBucket ? `${options.inboxBucket}_claims` : DEFAULT_EXEC_CLAIMS_BUCKET),
    ttlMs: Math.max(3 * ackWaitMs, 10_000),
    minTtlMs: ackWaitMs,
  });
  return { inbox, claims };
}
