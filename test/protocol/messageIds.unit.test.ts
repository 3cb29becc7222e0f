import { describe, expect, it } from 'vitest';
import { reservedMessageIdProblem } from '../../src/protocol/inputs.js';
import { inputMessageId } from '../../src/service/inputBacklog.js';

describe('message ids jetplan makes', () => {
  it('refuses in., retry. and recover. from any input', () => {
    for (const id of ['in.7', 'retry.s.t1-a.2', 'recover.s']) {
      expect(reservedMessageIdProblem(id, { type: 'SubmitInput' })).toMatch(/which is reserved for ids jetplan makes \(in\., retry\., recover\., report\., refused\.\)$/);
    }
    expect(reservedMessageIdProblem('inbound.7')).toBeUndefined();
    expect(reservedMessageIdProblem('my-retry.1')).toBeUndefined();
  });

  it('lets report. and refused. through only on a report of that very dispatch', () => {
    const report = { type: 'TaskCompleted', dispatchId: 's.t1-a.1' };
    expect(reservedMessageIdProblem('report.s.t1-a.1', report)).toBeUndefined();
    expect(reservedMessageIdProblem('refused.s.t1-a.1', { ...report, type: 'TaskFailed' })).toBeUndefined();
    expect(reservedMessageIdProblem('report.s.t1-a.1.again', report)).toBeUndefined(); // its own resend
    expect(reservedMessageIdProblem('report.s.t1-a.10', report)).toMatch(/reserved for the report of dispatch s\.t1-a\.10$/);
    // Another dispatch's, another input's, or an input not known (a body that could not be read).
    expect(reservedMessageIdProblem('report.s.t1-a.2', report)).toBe('message id "report.s.t1-a.2" starts with "report.", which is reserved for the report of dispatch s.t1-a.2');
    expect(reservedMessageIdProblem('report.s.t1-a.1', { type: 'SubmitInput' })).toMatch(/reserved for the report of dispatch s\.t1-a\.1$/);
    expect(reservedMessageIdProblem('refused.s.t1-a.1')).toMatch(/starts with "refused\."/);
  });

  it('names an input by its id, or by its sequence when it has none or a reserved one', () => {
    expect(inputMessageId('submit-1', 9)).toBe('submit-1');
    expect(inputMessageId(undefined, 9)).toBe('in.9');
    expect(inputMessageId('in.5', 9)).toBe('in.9');
    expect(inputMessageId('report.s.t1.1', 9, { type: 'TaskCompleted', dispatchId: 's.t1.1' })).toBe('report.s.t1.1');
    expect(inputMessageId('report.s.t1.1', 9, { type: 'CancelSession' })).toBe('in.9');
  });
});
