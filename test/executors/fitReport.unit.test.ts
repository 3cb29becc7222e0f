import { describe, expect, it } from 'vitest';
import { demoHandler } from '../../src/executors/demoExecutor.js';
import { DEFAULT_MAX_REPORT_BYTES, fitReport, reportBytes, truncationMarker } from '../../src/executors/fitReport.js';
import { checkMaxReportBytes } from '../../src/executors/fitReport.js';
import { checkedReport, type ExecutorReport } from '../../src/executors/report.js';
import { MAX_INPUT_BYTES, parseInput } from '../../src/protocol/parseInput.js';
import { executeTask } from '../support/executeTask.js';

const ids = { taskId: 't1', dispatchId: 's1.t1.1' };
const completed = (output: string): ExecutorReport => ({ type: 'TaskCompleted', ...ids, output });
const MARKER = /… \[truncated: (\d+) of (\d+) bytes\]$/;

/** What `seq 1 30000` prints: 168,894 bytes, one newline (2 bytes in JSON) every few digits. */
const seqOutput = Array.from({ length: 30_000 }, (_, i) => `${i + 1}\n`).join('');

/** The text of a fitted report, checked: a prefix of the original, then a marker with true counts. */
function keptPrefix(fitted: string, original: string): string {
  const m = MARKER.exec(fitted);
  expect(m, 'truncation marker').not.toBeNull();
  const kept = fitted.slice(0, m!.index);
  expect(original.startsWith(kept)).toBe(true);
  expect(Number(m![1])).toBe(Buffer.byteLength(kept));
  expect(Number(m![2])).toBe(Buffer.byteLength(original));
  // Well-formed: no half of a surrogate pair (it would not survive a UTF-8 round trip).
  expect(Buffer.from(kept, 'utf8').toString('utf8')).toBe(kept);
  return kept;
}

/** Whether the planner would take the body as it is sent (bytes, as off the wire). */
const accepted = (report: ExecutorReport, maxBytes = MAX_INPUT_BYTES) => parseInput(new TextEncoder().encode(JSON.stringify(report)), maxBytes);

describe('fitReport', () => {
  it('defaults to the limit the planner uses', () => {
    expect(DEFAULT_MAX_REPORT_BYTES).toBe(MAX_INPUT_BYTES);
  });

  it('leaves a report that fits as it is, up to a body of exactly the limit', () => {
    const small = completed('fine');
    expect(fitReport(small)).toBe(small);
    const exact = completed('x'.repeat(MAX_INPUT_BYTES - reportBytes(completed(''))));
    expect(reportBytes(exact)).toBe(MAX_INPUT_BYTES);
    expect(fitReport(exact)).toBe(exact);
    expect(accepted(exact)).toMatchObject({ ok: true });
  });

  it('cuts an output whose JSON escapes push it over (the `seq 1 30000` report) to one the planner takes', () => {
    const capped = seqOutput.slice(0, 65_536); // what the shell executor keeps by default
    expect(reportBytes(completed(capped))).toBeGreaterThan(MAX_INPUT_BYTES);
    const fitted = fitReport(completed(capped));
    expect(accepted(fitted)).toMatchObject({ ok: true, input: { type: 'TaskCompleted' } });
    const bytes = reportBytes(fitted);
    expect(bytes).toBeLessThanOrEqual(MAX_INPUT_BYTES);
    expect(bytes).toBeGreaterThan(MAX_INPUT_BYTES - 8); // as much as fits is kept
    keptPrefix((fitted as { output: string }).output, capped);
  });

  it('counts bytes, not characters, and never cuts a character in half', () => {
    for (const unit of ['€', '😀', 'a😀', '\u0001']) {
      const text = unit.repeat(40_000);
      const fitted = fitReport(completed(text));
      expect(reportBytes(fitted)).toBeLessThanOrEqual(MAX_INPUT_BYTES);
      const kept = keptPrefix((fitted as { output: string }).output, text);
      expect(kept.length % unit.length).toBe(0);
      expect(accepted(fitted)).toMatchObject({ ok: true });
    }
  });

  it('cuts the free text of each kind of report', () => {
    const long = 'why '.repeat(20_000);
    const failed = fitReport({ type: 'TaskFailed', ...ids, error: long, retryable: false });
    expect(failed).toMatchObject({ type: 'TaskFailed', retryable: false, error: expect.stringMatching(MARKER) });
    const question = fitReport({ type: 'NeedsClarification', ...ids, question: long });
    expect(question).toMatchObject({ type: 'NeedsClarification', question: expect.stringMatching(MARKER) });
    for (const r of [failed, question]) expect(accepted(r)).toMatchObject({ ok: true });
  });

  it('takes the limit as a parameter, and is stable when applied again', () => {
    const fitted = fitReport(completed(seqOutput), 2_048);
    expect(reportBytes(fitted)).toBeLessThanOrEqual(2_048);
    expect(accepted(fitted, 2_048)).toMatchObject({ ok: true });
    expect(fitReport(fitted, 2_048)).toBe(fitted);
    expect(fitReport(completed(seqOutput), 2_048)).toEqual(fitted);
  });

  it('under a limit above 64 KiB, also keeps an output within the characters the schema takes', () => {
    const fitted = fitReport(completed('y'.repeat(200_000)), 1_000_000);
    expect((fitted as { output: string }).output.length).toBeLessThanOrEqual(64 * 1024);
    expect(accepted(fitted, 1_000_000)).toMatchObject({ ok: true });
  });

  it('marks the cut plainly', () => {
    expect(truncationMarker(10, 200)).toBe('… [truncated: 10 of 200 bytes]');
  });
});

describe('checkedReport', () => {
  it('fits an oversized output instead of failing the task', () => {
    const report = checkedReport(executeTask(), { type: 'completed', output: 'x'.repeat(70_000) });
    expect(report).toMatchObject({ type: 'TaskCompleted', output: expect.stringMatching(MARKER) });
    expect(accepted(report)).toMatchObject({ ok: true });
  });

  it('fits the echo executor\'s "processed: <text>" of a maximal SubmitInput', async () => {
    const text = 'a'.repeat(MAX_INPUT_BYTES - Buffer.byteLength(JSON.stringify({ type: 'SubmitInput', text: '' })));
    expect(accepted({ type: 'SubmitInput', text } as never)).toMatchObject({ ok: true });
    const task = executeTask({ kind: 'Processing', description: text });
    const outcome = await demoHandler(task, { signal: new AbortController().signal, idempotencyKey: task.dispatchId });
    expect(reportBytes(checkedReport(task, outcome, Number.MAX_SAFE_INTEGER))).toBeGreaterThan(MAX_INPUT_BYTES);
    expect(accepted(checkedReport(task, outcome))).toMatchObject({ ok: true, input: { type: 'TaskCompleted' } });
  });

  it('still turns an empty question into a non-retryable failure', () => {
    expect(checkedReport(executeTask(), { type: 'needsClarification', question: '' })).toMatchObject({ type: 'TaskFailed', retryable: false });
  });
});

describe('checkMaxReportBytes', () => {
  it('takes no limit, or an integer of at least MIN_MAX_REPORT_BYTES', () => {
    expect(() => checkMaxReportBytes(undefined)).not.toThrow();
    expect(() => checkMaxReportBytes(1_024)).not.toThrow();
    for (const bad of [10, 1_023, 0, -1, 2_000.5, Number.NaN]) {
      expect(() => checkMaxReportBytes(bad)).toThrow(`maxReportBytes must be an integer of at least 1024, got ${bad}`);
    }
  });
});
