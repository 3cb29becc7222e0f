/**
 * Fitting an executor report into the planner's input limit. The planner refuses a body over its
 * `maxInputBytes` (InputRejected "oversized body"), and a refused report wedges its task: the
 * report's message id (`report.<dispatchId>`) is then used up, and a redelivered command gets the
 * same report again from the executor's inbox. So the executor cuts the report's free text
 * (TaskCompleted.output, TaskFailed.error, NeedsClarification.question) before it records or
 * sends it, and says so in the text.
 */
import { ValidationError } from '../errors.js';
import { MAX_INPUT_BYTES } from '../protocol/parseInput.js';
import { TaskCompletedReport } from '../protocol/inputs.js';
import type { ExecutorReport } from './report.js';

/** The default limit of a report's body: the planner's default `maxInputBytes` (64 KiB). */
export const DEFAULT_MAX_REPORT_BYTES = MAX_INPUT_BYTES;

/**
 * The smallest limit an executor takes: room for the report's ids and a marker with some text. Below
 * it a cut report would keep nothing, and cutting it again (a report re-sent from the inbox) would
 * not come out the same.
 */
export const MIN_MAX_REPORT_BYTES = 1_024;

/** Checks an executor's `maxReportBytes` option (ValidationError, as the executors' other options). */
export function checkMaxReportBytes(maxBytes: number | undefined): void {
  if (maxBytes !== undefined && !(Number.isInteger(maxBytes) && maxBytes >= MIN_MAX_REPORT_BYTES)) {
    throw new ValidationError(`executor: maxReportBytes must be an integer of at least ${MIN_MAX_REPORT_BYTES}, got ${maxBytes}`);
  }
}

/**
 * The most UTF-16 code units the schema takes in an output (64 Ki). Read from the schema so the
 * two cannot drift; it binds only under a byte limit above 64 KiB.
 */
const MAX_OUTPUT_CHARS = TaskCompletedReport.shape.output.maxLength ?? Infinity;

/** The UTF-8 size of the JSON body a report travels as (what the planner measures). */
export function reportBytes(report: ExecutorReport): number {
  return Buffer.byteLength(JSON.stringify(report), 'utf8');
}

/** The note that ends a cut text: how much of it (UTF-8 bytes) was kept. */
export function truncationMarker(keptBytes: number, totalBytes: number): string {
  return `… [truncated: ${keptBytes} of ${totalBytes} bytes]`;
}

/** The report's free text. */
function textOf(report: ExecutorReport): string {
  if (report.type === 'TaskCompleted') return report.output;
  if (report.type === 'TaskFailed') return report.error;
  return report.question;
}

/** The report with its free text replaced. */
function withText(report: ExecutorReport, text: string): ExecutorReport {
  if (report.type === 'TaskCompleted') return { ...report, output: text };
  if (report.type === 'TaskFailed') return { ...report, error: text };
  return { ...report, question: text };
}

/** Whether the planner takes the report as far as its size goes (bytes, and characters of an output). */
function fits(report: ExecutorReport, maxBytes: number): boolean {
  if (report.type === 'TaskCompleted' && report.output.length > MAX_OUTPUT_CHARS) return false;
  return reportBytes(report) <= maxBytes;
}

/** `end`, moved back one if it would split a surrogate pair (a character outside the BMP). */
function codePointBoundary(text: string, end: number): number {
  const unit = text.charCodeAt(end - 1);
  return end > 0 && end < text.length && unit >= 0xd800 && unit <= 0xdbff ? end - 1 : end;
}

/**
 * The report itself when its JSON body is at most `maxBytes` UTF-8 bytes; otherwise the same
 * report with its free text cut to the longest prefix (never inside a character) that fits
 * together with a {@link truncationMarker}. Deterministic, so a report fitted again (a redelivery,
 * a report recorded before fitting existed) comes out the same. A limit too small for even the
 * ids and the marker yields the marker alone: the best there is.
 */
export function fitReport(report: ExecutorReport, maxBytes: number = DEFAULT_MAX_REPORT_BYTES): ExecutorReport {
  if (fits(report, maxBytes)) return report;
  const text = textOf(report);
  const totalBytes = Buffer.byteLength(text, 'utf8');
  const cut = (end: number): ExecutorReport => {
    const kept = text.slice(0, codePointBoundary(text, end));
    return withText(report, kept + truncationMarker(Buffer.byteLength(kept, 'utf8'), totalBytes));
  };
  // Binary search on the prefix length: the body grows with it (escapes and marker digits too).
  // Each code unit is at least one byte, so no prefix longer than maxBytes units can fit.
  let lo = 0;
  let hi = Math.min(text.length, maxBytes);
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(cut(mid), maxBytes)) lo = mid;
    else hi = mid - 1;
  }
  return cut(lo);
}
