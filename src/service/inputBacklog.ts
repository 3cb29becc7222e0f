/**
 * The inputs a previous leader may have left unapplied: delivered by the durable consumer, not
 * acked, and waiting out a nak delay. A new leader has no memory of which session was blocked
 * behind which of them, and the consumer redelivers them by their own delays, so a session's later
 * input could come back first. Reading them at start lets the consumer hold each session's later
 * inputs until the earlier ones are applied, as one leader does.
 */
import { reservedMessageIdProblem } from '../protocol/inputs.js';
import { DeliverPolicy, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { isSessionId } from './decodeInput.js';
import { sessionOfInputSubject } from '../protocol/subjects.js';

/** One input above the consumer's ack floor: its stream sequence and message id. */
export interface BacklogInput {
  seq: number;
  messageId: string;
}

/** How long the backlog read may wait for its next message before it gives up, ms. */
const READ_IDLE_MS = 10_000;

/**
 * A retry timer's input may be applied without a trace in the log (not due yet, session ended), so
 * it cannot be told apart from one never applied: it holds nothing.
 */
export function bodyOf(data: Uint8Array): { type: string; dispatchId?: string } | undefined {
  try {
    const body = JSON.parse(new TextDecoder().decode(data)) as { type?: unknown; dispatchId?: unknown };
    if (typeof body?.type !== 'string') return undefined;
    return typeof body.dispatchId === 'string' ? { type: body.type, dispatchId: body.dispatchId } : { type: body.type };
  } catch {
    return undefined;
  }
}

/**
 * The message id an input is known by: its `Nats-Msg-Id`, else its stream sequence. An id with a
 * reserved prefix is not used (the input is rejected under `in.<seq>`): `in.<n>` of a client could
 * otherwise make a later input without an id at sequence n look like a repeat of it.
 */
export const inputMessageId = (msgId: string | undefined, seq: number, input?: { type: string; dispatchId?: string }): string =>
  msgId && reservedMessageIdProblem(msgId, input) === undefined ? msgId : `in.${seq}`;

/**
 * The inputs between the durable consumer's ack floor and the last message it delivered, by
 * session, in stream order. Some of them may be acked already (acks above the floor are not
 * listed by the server); the caller tells those by the session's applied input ids.
 */
export async function readInputBacklog(
  js: JetStreamClient,
  jsm: JetStreamManager,
  o: { streamName: string; subjectPrefix: string; durableName: string },
): Promise<Map<string, BacklogInput[]>> {
  const backlog = new Map<string, BacklogInput[]>();
  const info = await jsm.consumers.info(o.streamName, o.durableName);
  const floor = info.ack_floor.stream_seq;
  const last = info.delivered.stream_seq;
  if (last <= floor) return backlog;
  const consumer = await js.consumers.get(o.streamName, {
    filter_subjects: `${o.subjectPrefix}.in.>`, // one filter subject: nats-server 2.9
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: floor + 1,
  });
  try {
    if ((await consumer.info(true)).num_pending === 0) return backlog; // purged meanwhile
    const messages = await consumer.consume({ max_messages: 1_024 });
    // Messages purged during the read would leave it waiting: it gives up when none comes for a
    // while, and throws (the caller reads again) rather than return part of the backlog as all of
    // it, which would leave the sessions in the unread part unheld. A long backlog that keeps
    // coming is read to its end, however long that takes.
    let stalled = false;
    const idle = setTimeout(() => {
      stalled = true;
      void messages.close().catch(() => undefined);
    }, READ_IDLE_MS);
    let seen = floor;
    try {
      for await (const m of messages) {
        idle.refresh(); // the same timer re-armed: nothing allocated per message
        seen = m.seq;
        if (m.seq > last) break;
        const sessionId = sessionOfInputSubject(o.subjectPrefix, m.subject);
        const body = bodyOf(m.data);
        if (isSessionId(sessionId) && body?.type !== 'RetryDue') {
          const list = backlog.get(sessionId) ?? [];
          list.push({ seq: m.seq, messageId: inputMessageId(m.headers?.get('Nats-Msg-Id'), m.seq, body) });
          backlog.set(sessionId, list);
        }
        if (m.seq >= last || m.info.pending === 0) break;
      }
    } finally {
      clearTimeout(idle);
    }
    await messages.close().catch(() => undefined);
    if (stalled) throw new Error(`the input backlog read stalled at stream sequence ${seen} of ${last}`);
  } finally {
    await consumer.delete().catch(() => undefined);
  }
  return backlog;
}


/** What a session has applied (see decide's isProcessed), and an input it has not finished. */
export interface AppliedInputs {
  recentInputs: readonly string[];
  inputSequenceFloor: number;
  /**
   * The input whose events end the log, if its decision was cut short (the session does not rest):
   * it holds the session like an unapplied one, so that it is finished before any later input. Its
   * stream sequence, when its events carry one, tells it from other copies of the same message id
   * (an original applied and acked long ago is never redelivered: it must not hold the session).
   */
  unfinished?: { messageId: string; inputSequence?: number | undefined } | undefined;
}

/** Whether the backlog input `seq`/`messageId` is the unfinished input of `applied`. */
function isUnfinished(applied: AppliedInputs, seq: number, messageId: string): boolean {
  const unfinished = applied.unfinished;
  if (unfinished?.messageId !== messageId) return false;
  return unfinished.inputSequence === undefined || unfinished.inputSequence === seq;
}

/**
 * The backlog inputs (session, stream sequence) their sessions have not applied, or not finished:
 * what must hold each session's later inputs. A session whose applied inputs cannot be loaded
 * counts none as applied: holding all its backlog is safe (a hold ends after a while), counting it
 * as applied could reorder its inputs.
 */
export async function unappliedOf(
  backlog: Map<string, BacklogInput[]>,
  appliedInputs: (sessionId: string) => Promise<AppliedInputs>,
  logger: Logger,
): Promise<Array<[string, number]>> {
  const unapplied: Array<[string, number]> = [];
  const sessions = [...backlog];
  // A few sessions at a time: each is a load (snapshot plus tail) before consuming can start.
  await Promise.all(
    Array.from({ length: Math.min(16, sessions.length) }, async () => {
      for (let next = sessions.pop(); next; next = sessions.pop()) {
        const [sessionId, inputs] = next;
        const applied = await appliedInputs(sessionId).catch((err: unknown) => {
          logger.warn({ err, sessionId }, 'applied inputs not loaded; holding the session behind all its backlog');
          return { recentInputs: [], inputSequenceFloor: 0 } as AppliedInputs;
        });
        const recent = new Set(applied.recentInputs);
        for (const { seq, messageId } of inputs) {
          const done = (seq <= applied.inputSequenceFloor || recent.has(messageId)) && !isUnfinished(applied, seq, messageId);
          if (!done) unapplied.push([sessionId, seq]);
        }
      }
    }),
  );
  return unapplied;
}
