import { describe, expect, it } from 'vitest';
import { demoHandler } from '../../src/executors/demoExecutor.js';
import { toReport } from '../../src/executors/report.js';
import type { ExecuteTask } from '../../src/protocol/commands.js';
import { executeTask } from '../support/executeTask.js';

const task = (description: string, over: Partial<ExecuteTask> = {}): ExecuteTask => executeTask({ kind: 'Processing', description, ...over });
const tools = { signal: new AbortController().signal, idempotencyKey: 'k' };

describe('demoHandler', () => {
  it.each(['deploy', 'Publish', 'delete', 'send', 'email', 'RELEASE', 'choose'])('asks before "%s"', async (word) => {
    const outcome = await demoHandler(task(`Please ${word} the report`), tools);
    expect(outcome).toEqual({
      type: 'needsClarification',
      question: `Which target should "${word.toLowerCase()}" use for: Please ${word} the report`,
    });
  });

  it('does not ask on a word that merely contains an ask-first word', async () => {
    expect(await demoHandler(task('Redeployment notes and resending policy'), tools)).toMatchObject({ type: 'completed' });
  });

  it('acts once the context holds the answer to its question', async () => {
    const description = 'Deploy the report';
    const question = `Which target should "deploy" use for: ${description}`;
    const answered = task(description, { context: `earlier\n\nQ: ${question}\nA: prod`, attempt: 2 });
    expect(await demoHandler(answered, tools)).toEqual({ type: 'completed', output: `processed: ${description}` });
    // An answer to another question does not count.
    const other = task(description, { context: 'Q: Which format do you want?\nA: pdf' });
    expect(await demoHandler(other, tools)).toMatchObject({ type: 'needsClarification' });
  });

  it('fails the first attempt of a flaky task, retryably, and only the first', async () => {
    for (const word of ['flaky', 'Unreliable', 'retry']) {
      expect(await demoHandler(task(`Summarise the ${word} results`), tools)).toEqual({
        type: 'failed',
        error: 'transient failure (demo: first attempt of a flaky task)',
        retryable: true,
      });
      expect(await demoHandler(task(`Summarise the ${word} results`, { attempt: 2 }), tools)).toEqual({
        type: 'completed',
        output: `processed: Summarise the ${word} results`,
      });
    }
  });

  it('completes with an output derived from the description, listing URLs', async () => {
    expect(await demoHandler(task('Fetch the data', { kind: 'ToolCall' }), tools)).toEqual({ type: 'completed', output: 'ran: Fetch the data' });
    expect(await demoHandler(task('Summarise it'), tools)).toEqual({ type: 'completed', output: 'processed: Summarise it' });
    const withUrls = task('Compare a and b', {
      kind: 'ToolCall',
      attachments: [
        { kind: 'url', url: 'https://a.example/x' },
        { kind: 'url', url: 'https://b.example/y' },
      ],
    });
    expect(await demoHandler(withUrls, tools)).toEqual({
      type: 'completed',
      output: 'ran: Compare a and b [https://a.example/x, https://b.example/y]',
    });
  });
});

describe('toReport', () => {
  it('adds the task and dispatch ids to each outcome', () => {
    const t = task('x');
    const ids = { taskId: 't1', dispatchId: 's1.t1.1' };
    expect(toReport(t, { type: 'completed', output: 'o' })).toEqual({ type: 'TaskCompleted', ...ids, output: 'o' });
    expect(toReport(t, { type: 'failed', error: 'e' })).toEqual({ type: 'TaskFailed', ...ids, error: 'e' });
    expect(toReport(t, { type: 'failed', error: 'e', retryable: false })).toEqual({ type: 'TaskFailed', ...ids, error: 'e', retryable: false });
    expect(toReport(t, { type: 'needsClarification', question: 'q?' })).toEqual({ type: 'NeedsClarification', ...ids, question: 'q?' });
  });
});
