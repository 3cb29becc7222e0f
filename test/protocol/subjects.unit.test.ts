import { describe, expect, it } from 'vitest';
import { commandSubject, subjectsFor } from '../../src/protocol/subjects.js';
import type { OutboxCommand } from '../../src/protocol/commands.js';

const entry = (command: OutboxCommand['command']): OutboxCommand => ({
  id: 'x',
  sessionId: 's1',
  causationId: 'c',
  correlationId: 'k',
  command,
});

describe('subjects', () => {
  it('names every subject under the prefix', () => {
    const s = subjectsFor('jp');
    expect([s.input('s1'), s.events('s1'), s.exec('ToolCall', 's1'), s.exec('Processing', 's1'), s.clarify('s1')]).toEqual([
      'jp.in.s1',
      'jp.ev.s1',
      'jp.exec.toolcall.s1',
      'jp.exec.processing.s1',
      'jp.clarify.s1',
    ]);
    expect([s.allInputs, s.allEvents, s.allExec, s.allClarify]).toEqual(['jp.in.>', 'jp.ev.>', 'jp.exec.>', 'jp.clarify.>']);
    expect(subjectsFor().input('a')).toBe('jetplan.in.a');
  });

  it('routes commands by kind and never sends a Clarification task to executors', () => {
    const s = subjectsFor();
    const task = { type: 'ExecuteTask' as const, sessionId: 's1', taskId: 't1', dispatchId: 's1.t1.1', attempt: 1, description: 'd', attachments: [], context: '' };
    expect(commandSubject(s, entry({ ...task, kind: 'ToolCall' }))).toBe('jetplan.exec.toolcall.s1');
    expect(commandSubject(s, entry({ type: 'RequestClarification', sessionId: 's1', taskId: 't1', question: 'q' }))).toBe('jetplan.clarify.s1');
    expect(() => commandSubject(s, entry({ ...task, kind: 'Clarification' }))).toThrow(/never go to executors/);
  });
});
