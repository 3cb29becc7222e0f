/** Publishing an executor report into its session, idempotently (Nats-Msg-Id `report.<dispatchId>`). */
import type { JetStreamClient, PubAck } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';
import type { ExecuteTask } from '../protocol/commands.js';
import { HEADER_EVENT_TYPE } from '../persistence/jetstream/headers.js';
import type { ExecutorReport } from '../executors/report.js';
import { DEFAULT_MAX_REPORT_BYTES, fitReport } from '../executors/fitReport.js';

/** The Nats-Msg-Id of a dispatch's report. */
export const reportMessageId = (dispatchId: string): string => `report.${dispatchId}`;

/**
 * Publishes a dispatch's report into its session's input subject, idempotently. The report is
 * fitted into `maxBytes` (the planner's maxInputBytes) first: reports are fitted before they are
 * recorded, but one recorded by an older executor, or under a larger limit, may be over it, and
 * the planner would refuse it for good (its message id then used up). Fitting is deterministic,
 * so every resend of a recorded report is the same body.
 */
export async function publishReport(
  js: JetStreamClient,
  prefix: string,
  task: ExecuteTask,
  report: ExecutorReport,
  extraHeaders: Record<string, string> = {},
  maxBytes: number = DEFAULT_MAX_REPORT_BYTES,
): Promise<PubAck> {
  const h = natsHeaders();
  h.set(HEADER_EVENT_TYPE, report.type);
  for (const [k, v] of Object.entries(extraHeaders)) if (v) h.set(k, v.replace(/[\r\n]+/g, ' '));
  return js.publish(`${prefix}.in.${task.sessionId}`, JSON.stringify(fitReport(report, maxBytes)), {
    msgID: reportMessageId(task.dispatchId),
    headers: h,
  });
}
