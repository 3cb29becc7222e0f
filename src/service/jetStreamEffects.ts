/**
 * The planner's act step over JetStream: ExecuteTask commands are published (with a PubAck) to
 * `<prefix>.exec.<toolcall|processing>.<sessionId>`, `Nats-Msg-Id` = dispatch id, so the same
 * attempt published twice within the stream's duplicate window is stored once. Questions publish
 * nothing: over NATS the ClarificationRequested event on `<prefix>.ev.<sessionId>` is the question.
 */
import { headers as natsHeaders } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Effects } from '../actors/planner.js';
import type { OutboxCommand } from '../protocol/commands.js';
import { HEADER_CAUSATION_ID, HEADER_CORRELATION_ID, HEADER_EVENT_TYPE } from '../persistence/jetstream/headers.js';
import { isPermanentPublishError } from '../persistence/jetstream/jetStreamErrors.js';
import type { PubAckMux } from '../persistence/jetstream/pubAckMux.js';

/** Options of {@link JetStreamEffects}. */
export interface JetStreamEffectsOptions {
  /** Publishes with a PubAck (the service's {@link PubAckMux}); closed by its owner, not here. */
  publisher: Pick<PubAckMux, 'publish'>;
  /** Whether the connection is closed for good (then retrying is pointless). */
  isClosed: () => boolean;
  subjectPrefix: string;
  logger: Logger;
  /** PubAck timeout per attempt, ms (default 5000). */
  timeoutMs?: number;
  /** Backoff between attempts: first delay and cap, ms (default 100 and 5000). */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** After close() is called, how long publishes under way keep retrying, ms (default 10000). */
  closeGraceMs?: number;
}

const HEADER_LINE = (value: string) => value.replace(/[\r\n]+/g, ' ');

/**
 * Publishes ExecuteTask commands, retrying with exponential backoff until the stream acks them.
 * A command that is never acked (the service stopped first) is not lost: it is derived again from
 * session state (`outstanding`) and republished by the next leader's recovery.
 */
export class JetStreamEffects implements Effects {
  private readonly inFlight = new Set<Promise<void>>();
  /** Dispatch ids given up on at shutdown, for close() to report in one line. */
  private readonly unsent: string[] = [];
  private closingSince: number | undefined;
  /** Commands acked since start (tests, logs). */
  published = 0;

  constructor(private readonly o: JetStreamEffectsOptions) {}

  perform(commands: OutboxCommand[]): void {
    for (const entry of commands) {
      if (entry.command.type !== 'ExecuteTask') continue;
      const run = this.deliver(entry);
      this.inFlight.add(run);
      void run.finally(() => this.inFlight.delete(run));
    }
  }

  /** Waits for publishes in flight (each gives up `closeGraceMs` after close at the latest). */
  async close(): Promise<void> {
    this.closingSince ??= Date.now();
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    if (this.unsent.length > 0) {
      // One line for all of them: a shutdown cut short can leave thousands.
      const { length } = this.unsent;
      this.o.logger.warn({ commands: length, dispatchIds: this.unsent.slice(0, 10) }, 'ExecuteTask commands not published before shutdown; the next leader republishes them');
      this.unsent.length = 0;
    }
  }

  /** The subject an ExecuteTask goes to. */
  subjectOf(entry: OutboxCommand): string {
    const c = entry.command;
    if (c.type !== 'ExecuteTask' || c.kind === 'Clarification') {
      throw new Error(`command ${entry.id} does not go to executors`);
    }
    return `${this.o.subjectPrefix}.exec.${c.kind.toLowerCase()}.${c.sessionId}`;
  }

  private async deliver(entry: OutboxCommand): Promise<void> {
    const subject = this.subjectOf(entry);
    const body = JSON.stringify(entry.command);
    const base = this.o.baseDelayMs ?? 100;
    for (let attempt = 1; ; attempt++) {
      try {
        const h = natsHeaders();
        h.set(HEADER_EVENT_TYPE, entry.command.type);
        h.set(HEADER_CORRELATION_ID, HEADER_LINE(entry.correlationId));
        h.set(HEADER_CAUSATION_ID, HEADER_LINE(entry.causationId));
        const ack = await this.o.publisher.publish(subject, body, { msgID: entry.id, headers: h, timeout: this.o.timeoutMs ?? 5_000 });
        this.published++;
        this.o.logger.debug({ dispatchId: entry.id, seq: ack.seq, duplicate: ack.duplicate }, 'ExecuteTask published');
        return;
      } catch (err) {
        if (isPermanentPublishError(err)) return await this.refused(entry, body, err);
        if (this.givingUp() || this.o.isClosed()) {
          this.o.logger.debug({ dispatchId: entry.id, err }, 'ExecuteTask not published before shutdown; the next leader republishes it');
          this.unsent.push(entry.id);
          return;
        }
        const delay = Math.min(this.o.maxDelayMs ?? 5_000, base * 2 ** (attempt - 1));
        this.o.logger.warn({ dispatchId: entry.id, attempt, delay, err }, 'ExecuteTask not acked; retrying');
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  /**
   * A command the server will never take (too large): stop retrying it, and report the attempt
   * failed (not retryable) into its session, as an executor would, so the session fails with the
   * reason in its log instead of waiting for a task that never runs. The report's message id makes
   * a second refusal (after a recovery republished the command) a duplicate.
   */
  private async refused(entry: OutboxCommand, body: string, err: unknown): Promise<void> {
    const c = entry.command;
    if (c.type !== 'ExecuteTask') return;
    const bytes = Buffer.byteLength(body);
    this.o.logger.error(
      { sessionId: entry.sessionId, taskId: c.taskId, dispatchId: entry.id, bytes, err },
      'ExecuteTask refused by NATS (too large for max_payload or the stream\'s max_msg_size); not retried, the task is reported failed',
    );
    const report = {
      type: 'TaskFailed',
      taskId: c.taskId,
      dispatchId: c.dispatchId,
      error: `ExecuteTask of ${bytes} bytes refused by NATS (over max_payload or the stream's max_msg_size)`,
      retryable: false,
    };
    await this.o.publisher
      .publish(`${this.o.subjectPrefix}.in.${entry.sessionId}`, JSON.stringify(report), {
        msgID: `refused.${c.dispatchId}`,
        timeout: this.o.timeoutMs ?? 5_000,
      })
      .catch((reportErr: unknown) => {
        this.o.logger.error({ err: reportErr, dispatchId: entry.id }, 'refused ExecuteTask not reported; the next recovery tries again');
      });
  }

  private givingUp(): boolean {
    if (this.closingSince === undefined) return false;
    return Date.now() - this.closingSince >= (this.o.closeGraceMs ?? 10_000);
  }
}
