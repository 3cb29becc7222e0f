/**
 * The running executor that createExecutor (executor.ts) returns once its consumers are bound: it
 * pulls their commands, runs each ExecuteTask at most once per dispatch id (inbox, then claim) and
 * publishes its report before acking the command; see executor.ts for the whole design.
 */
import type { Consumer, JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { TaskHandler } from '../executors/report.js';
import { HEADER_CAUSATION_ID, HEADER_CORRELATION_ID, HEADER_EVENT_TYPE } from '../persistence/jetstream/headers.js';
import { ExecuteTask } from '../protocol/commands.js';
import type { KvClaims } from './executorClaims.js';
import type { KvExecutorInbox } from './executorInbox.js';
import type { Executor, ExecutorOptions } from './executorOptions.js';
import { publishReport } from './executorPublish.js';
import { PullLoop } from './executorPull.js';
import { runClaimed, type ClaimedRun } from './executorRun.js';
import type { StaleCheck } from './executorStale.js';

/** The events that end a session: a task of it still running is aborted. */
const SESSION_ENDS = new Set(['SessionCancelled', 'SessionFailed', 'SessionCompleted']);

/** What a NatsExecutor works with: createExecutor's options, resolved, and what it opened. */
export interface NatsExecutorParts {
  /** createExecutor's options: maxReportBytes and afterRecord are read from them at each use. */
  options: ExecutorOptions;
  nc: NatsConnection;
  js: JetStreamClient;
  handler: TaskHandler;
  streamName: string;
  prefix: string;
  ackWaitMs: number;
  concurrency: number;
  logger: Logger;
  inbox: KvExecutorInbox;
  claims: KvClaims;
  staleCheck: StaleCheck;
}

/** A consumer bound by createExecutor, to be pulled from by `start`. */
export interface BoundConsumer {
  consumer: Consumer;
  durable: string;
  filter: string;
  /** Makes the consumer again if it is gone (deleted by hand) and binds to it anew. */
  rebind: () => Promise<Consumer>;
}

/** An executor over bound consumers; `start` begins pulling. See the Executor interface. */
export class NatsExecutor implements Executor {
  readonly inbox: KvExecutorInbox;
  readonly #parts: NatsExecutorParts;
  readonly #owner = `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  readonly #refreshMs: number;
  readonly #counts = { executed: 0, replayed: 0, skipped: 0 };
  readonly #stopping = new AbortController();
  /** Work under way by dispatch id: a duplicate delivery waits for it instead of running again. */
  readonly #inFlight = new Map<string, Promise<void>>();
  readonly #loops: PullLoop[] = [];

  constructor(parts: NatsExecutorParts) {
    // Each task under way listens on it (its handler is aborted when the executor stops): more than
    // Node's default 10 is normal at a concurrency above 10, not a leak (each removes its own).
    setMaxListeners(0, this.#stopping.signal);
    this.#parts = parts;
    this.inbox = parts.inbox;
    this.#refreshMs = Math.max(50, Math.floor(parts.ackWaitMs / 3));
  }

  get executed(): number {
    return this.#counts.executed;
  }

  get replayed(): number {
    return this.#counts.replayed;
  }

  get skipped(): number {
    return this.#counts.skipped;
  }

  /** Starts one pull loop per bound consumer. */
  start(bound: BoundConsumer[]): void {
    const { nc, concurrency, ackWaitMs, logger, streamName } = this.#parts;
    for (const { consumer, durable, filter, rebind } of bound) {
      const handle = (m: JsMsg) => this.#processMessage(m);
      this.#loops.push(new PullLoop({ consumer, concurrency, ackWaitMs, handle, isClosed: () => nc.isClosed(), logger, durable, rebind }));
      logger.info({ durable, filter, stream: streamName }, 'executor consuming');
    }
  }

  async stop(): Promise<void> {
    if (!this.#stopping.signal.aborted) {
      for (const loop of this.#loops) loop.stop();
      this.#stopping.abort();
    }
    await Promise.allSettled(this.#loops.map((loop) => loop.drained()));
    await this.#parts.staleCheck.close();
  }

  /**
   * Follows a session's events (a core subscription: the stream's messages reach subscribers too)
   * while its task runs, and calls `onEnded` when one ends it. Only the type header is read.
   */
  #watchSession(sessionId: string, onEnded: (eventType: string) => void): () => void {
    const sub = this.#parts.nc.subscribe(`${this.#parts.prefix}.ev.${sessionId}`, {
      callback: (_err, msg) => {
        const type = msg.headers?.get(HEADER_EVENT_TYPE);
        if (type && SESSION_ENDS.has(type)) onEnded(type);
      },
    });
    return () => sub.unsubscribe();
  }

  async #processMessage(m: JsMsg): Promise<void> {
    let json: unknown;
    try {
      json = m.json<unknown>();
    } catch {
      json = undefined;
    }
    const parsed = ExecuteTask.safeParse(json);
    if (!parsed.success) {
      this.#parts.logger.error({ subject: m.subject, seq: m.seq, issue: parsed.error.issues[0]?.message }, 'invalid ExecuteTask; terminated');
      m.term(); // no reason: nats-server 2.9 only understands a bare +TERM
      return;
    }
    const task = parsed.data;
    const previous = this.#inFlight.get(task.dispatchId);
    if (previous) await previous.catch(() => undefined);
    const done = this.#handleTask(m, task);
    this.#inFlight.set(task.dispatchId, done);
    try {
      await done;
    } finally {
      if (this.#inFlight.get(task.dispatchId) === done) this.#inFlight.delete(task.dispatchId);
    }
  }

  async #handleTask(m: JsMsg, task: ExecuteTask): Promise<void> {
    const { nc, js, prefix, ackWaitMs, logger, options, staleCheck } = this.#parts;
    const log = { sessionId: task.sessionId, taskId: task.taskId, dispatchId: task.dispatchId, redelivered: m.redelivered };
    try {
      // A stale command is judged from its session's log now. Every command, stale or fresh, is
      // judged again once its run follows the session's events (see #settle): an end that came
      // after the first read (a cancel while the claim was taken) is then not missed.
      if (staleCheck.isStale(m) && (await staleCheck.notAwaited(m, task, log))) {
        this.#counts.skipped++;
        await m.ackAck().catch(() => m.ack());
        return;
      }
      const run = await this.#settle(task, log, () => staleCheck.movedOn(task, log));
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

  /** The recorded report of this dispatch, or what came of running it under its claim. */
  async #settle(task: ExecuteTask, log: object, movedOn?: () => Promise<boolean>): Promise<ClaimedRun> {
    const { inbox, claims, handler, logger, options } = this.#parts;
    const known = await inbox.get(task.dispatchId);
    const run: ClaimedRun = known
      ? { type: 'report', report: known, ran: false, recorded: true }
      : await runClaimed(task, {
          claims, inbox, handler, owner: this.#owner, refreshMs: this.#refreshMs, stopping: this.#stopping.signal, logger,
          maxReportBytes: options.maxReportBytes, watchSession: (sessionId, onEnded) => this.#watchSession(sessionId, onEnded),
          ...(movedOn ? { movedOn } : {}),
        }, log);
    if (run.type === 'busy') logger.info(log, 'dispatch claimed by another executor; waiting for its report');
    if (run.type !== 'busy' && run.ran) this.#counts.executed++;
    if (run.type === 'abandoned' && !run.ran) this.#counts.skipped++;
    if (run.type === 'abandoned' && run.reason === 'session ended') {
      if (run.ran) logger.info(log, 'handler aborted as its session ended; nothing reported');
    }
    else if (run.type === 'abandoned') logger.warn({ ...log, reason: run.reason }, 'handler outcome not reported; command handed back');
    if (run.type !== 'report') return run;
    if (!run.ran) {
      this.#counts.replayed++;
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
}
