import { describe, expect, it, vi } from 'vitest';
import { bpeTokenCounter, createMemoTokenCounter, createRelevanceCompactor, type TokenCounter } from '../../src/compaction/index.js';
import { termsOf } from '../../src/compaction/relevance.js';
import { TaskRelevance } from '../../src/compaction/taskRelevance.js';
import { TermCache } from '../../src/compaction/termCache.js';
import { decide, type DecideDeps } from '../../src/machines/decide.js';
import { initialSessionState, type SessionState } from '../../src/machines/sessionState.js';
import { currentTask } from '../../src/machines/sessionQueries.js';
import { planText } from '../../src/planning/index.js';

// Counts how often the terms of a text are read (the compactor used to read every open task's and
// every chunk's at each compaction). Same function, observed.
vi.mock('../../src/compaction/relevance.js', async (original) => {
  const actual = await original<typeof import('../../src/compaction/relevance.js')>();
  return { ...actual, termsOf: vi.fn(actual.termsOf) };
});
const termReads = () => vi.mocked(termsOf).mock.calls.length;

/** The cl100k counter, recording the characters it is asked to count. */
function countingBpe(): { counter: TokenCounter; chars: () => number } {
  let chars = 0;
  return { counter: { countsAs: bpeTokenCounter, count: (text) => ((chars += text.length), bpeTokenCounter.count(text)) }, chars: () => chars };
}

/** Varied words from a seeded generator, so that chunks and tasks share some and not others. */
function words(seed: number): () => string {
  let x = seed;
  const vocabulary = Array.from({ length: 400 }, (_, i) => `w${(i * 7_919).toString(36)}`);
  return () => vocabulary[Math.floor(vocabulary.length * ((x = (x * 48_271) % 2_147_483_647) / 2_147_483_647) ** 2)]!;
}

/** An input of `entries` list entries of about 12 words each: one task per entry. */
function input(entries: number, seed: number): string {
  const word = words(seed);
  return Array.from({ length: entries }, () => `- ${Array.from({ length: 12 }, word).join(' ')}.`).join('\n');
}

interface StepCost {
  compacted: boolean;
  /** Characters the token counter was asked to count (memo misses), and term reads. */
  chars: number;
  termReads: number;
  /** Characters of the context before and after the step, and of the input it applied. */
  context: number;
}

/** Drives a session: `inputs` inputs of 200 entries, three reports after each; the cost of each step. */
function session(inputs: number): StepCost[] {
  const { counter, chars } = countingBpe();
  const memo = createMemoTokenCounter(counter);
  const deps: DecideDeps = { plan: (text, start) => planText(text, { startIndex: start }), compactor: createRelevanceCompactor({ counter: memo }), countTokens: (t) => memo.count(t) };
  let state: SessionState = initialSessionState('cost');
  let n = 0;
  const costs: StepCost[] = [];
  const size = () => state.snapshot.context.items.reduce((sum, item) => sum + item.text.length, 0);
  const step = (input: Parameters<typeof decide>[1], text = '') => {
    const [before, reads, was] = [chars(), termReads(), size()];
    const d = decide(state, input, { messageId: `m${++n}`, now: n }, deps);
    state = d.state;
    const context = was + size() + text.length;
    costs.push({ compacted: d.events.some((e) => e.type === 'ContextCompacted'), chars: chars() - before, termReads: termReads() - reads, context });
  };
  for (let i = 0; i < inputs; i++) {
    const text = input(200, i + 1);
    step({ type: 'SubmitInput', text, ...(i === 0 ? { config: { tokenBudget: 8_000 } } : {}) }, text);
    for (let r = 0; r < 3; r++) {
      const task = currentTask(state)!;
      step({ type: 'TaskCompleted', taskId: task.id, dispatchId: task.dispatchId!, output: `done: ${task.description}` });
    }
  }
  return costs;
}

describe('the cost of a compaction step', () => {
  it('counts about the context once, not each large item again for every chunk kept of it', () => {
    const costs = session(6);
    expect(costs.filter((c) => c.compacted).length).toBeGreaterThan(4);
    // Each new text once (a new input, the compacted items), about the context: counted afresh
    // after each chunk kept, a 16 KB input kept in ~30 chunks cost ~30 × 16 KB.
    for (const cost of costs) expect(cost.chars).toBeLessThanOrEqual(cost.context + 1_000);
  });

  it('reads the terms of a text once, not every open task and chunk at every compaction', () => {
    const costs = session(10); // up to ~2,000 open tasks
    const compactions = costs.filter((c) => c.compacted);
    expect(compactions.length).toBeGreaterThan(8);
    // At most what is new: one input's 200 tasks and the chunks of new or rewritten context.
    for (const cost of compactions.slice(1)) expect(cost.termReads).toBeLessThan(600);
    // And it does not grow with the inputs before: the last compactions read no more than the first.
    const late = Math.max(...compactions.slice(-3).map((c) => c.termReads));
    expect(late).toBeLessThanOrEqual(Math.max(...compactions.slice(1, 4).map((c) => c.termReads)) + 50);
  });

  it('compares a chunk again only with the tasks opened since, when it was scored before', () => {
    const scorer = new TaskRelevance(new TermCache());
    const open = planText(input(190, 7)).map((task) => task.description);
    const more = planText(input(190, 8)).map((task) => task.description);
    const chunks = input(60, 9).split('\n');
    const first = scorer.forOpenTasks([...open, ...more.slice(0, 100)]);
    chunks.forEach(first);
    const compared = scorer.compared;
    const second = scorer.forOpenTasks([...open.slice(20), ...more]); // 20 done, 90 new
    chunks.forEach(second);
    expect(scorer.compared - compared).toBeLessThanOrEqual(chunks.length * 90);
    const third = scorer.forOpenTasks([...open.slice(40), ...more]); // 20 more done, none new
    chunks.forEach(third);
    // Only chunks whose best task was just completed are scored again, against the open tasks.
    expect(scorer.compared - compared).toBeLessThan(chunks.length * 90 + 20 * open.length);
  });
});
