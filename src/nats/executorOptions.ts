/** The options of createExecutor (executor.ts) and the executor it returns. */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { ExecuteTask } from '../protocol/commands.js';
import type { ExecutorReport, TaskHandler } from '../executors/report.js';
import type { ExecutorKind } from '../executors/executorChecks.js';
import type { KvExecutorInbox } from './executorInbox.js';

// The task kinds an executor can take, each with its own durable consumer; defined with the checks
// both executors share.
export type { ExecutorKind } from '../executors/executorChecks.js';

/** Options of createExecutor. */
export interface ExecutorOptions {
  nc: NatsConnection;
  kinds: ExecutorKind[];
  /**
   * Runs one task. Its `signal` aborts:
   * - when the task's session ends while it runs (completed, failed or cancelled: a
   *   SessionCompleted, SessionFailed or SessionCancelled event): then nothing is reported and the
   *   command is acked, whatever the handler returns;
   * - when its claim is lost: nothing is reported and the command is handed back;
   * - when the executor stops: see {@link Executor.stop}.
   */
  handler: TaskHandler;
  streamName?: string;
  subjectPrefix?: string;
  /**
   * Durable consumer names are `<durablePrefix>-<kind>` (default 'jetplan-exec', or for another
   * subject prefix `jetplan-exec_<prefix>_<hash>`: see executorNames); letters, digits, _ or -
   * (ValidationError otherwise). Executors sharing
   * a prefix share its consumers and split the commands between them: executors of different kinds
   * of work (a fake and a real one) each need their own prefix. A consumer made under a new prefix
   * starts at the beginning of the stream; see `staleAfterMs`.
   */
  durablePrefix?: string;
  /**
   * KV bucket of recorded reports (default 'jetplan_exec_inbox', or for another stream or prefix
   * `jetplan_exec_inbox[_<stream>][_<prefix>_<hash>]`: dispatch ids are unique only per deployment).
   * A NATS KV bucket name: letters, digits, _ or - (ValidationError otherwise).
   */
  inboxBucket?: string;
  /**
   * Forget recorded reports after this long (ms), when this executor creates the inbox bucket.
   * Default: keep them. Keep them longer than a session can wait on a command (its retries).
   */
  inboxTtlMs?: number;
  /**
   * KV bucket of claims on running dispatches (default `<inboxBucket>_claims`; 'jetplan_exec_claims'
   * for the default inbox). A NATS KV bucket name, as `inboxBucket`.
   * Created with a TTL of 3x the ack wait (at least 10 s); an existing bucket whose TTL is shorter
   * than this executor's ack wait is refused at startup.
   */
  claimsBucket?: string;
  /** Consumer ack wait, ms (default 30_000); progress acks go out every ackWait/3. */
  ackWaitMs?: number;
  /**
   * Largest report body, UTF-8 bytes of its JSON (default MAX_INPUT_BYTES, the planner's input
   * limit): a longer output, error or question is cut to fit, since the planner rejects a larger one.
   */
  maxReportBytes?: number;
  /** Handlers running at once per kind in this process (default 4). */
  concurrency?: number;
  /**
   * A command the stream stored longer ago than this (ms, by this process's clock) is run only if
   * its session still waits on exactly that dispatch: the session is rebuilt from its log first
   * (one read of it), and a command of a completed, failed or cancelled session, or one the session
   * no longer waits on (already reported, or superseded by a later attempt), is acked without
   * running the handler or publishing a report. A session with no events, or a read or fold that
   * fails, runs the command as usual. A younger command costs one read of its session's latest
   * event: if that is not the command's own TaskDispatched, the session's log is read and judged
   * likewise (see executorStale.ts). Default 30_000 (see DEFAULT_STALE_AFTER_MS); 0 reads every command's session log; an integer
   * of at least 0 (a very large one leaves only redelivered commands to the full check).
   */
  staleAfterMs?: number;
  logger?: Logger;
  /**
   * Test hook: runs after a report is recorded in the inbox and before it is published and the
   * command acked. A crash here is the case the inbox exists for.
   */
  afterRecord?: (task: ExecuteTask, report: ExecutorReport) => void | Promise<void>;
}

/** A running executor. */
export interface Executor {
  /**
   * Stops taking messages and aborts the signal of running handlers, then waits for them to return
   * and settles their commands: an outcome a handler returns is reported as usual; a handler that
   * throws after its abort has not done the task, so its command is handed back to run elsewhere.
   */
  stop(): Promise<void>;
  /** Handler invocations that finished in this process. */
  readonly executed: number;
  /** Commands answered from the inbox without running the handler. */
  readonly replayed: number;
  /**
   * Stale commands their session no longer waited on (it had ended, or waited on another dispatch
   * or on none), acked without running the handler or reporting.
   */
  readonly skipped: number;
  readonly inbox: KvExecutorInbox;
}
