import { performance } from 'node:perf_hooks';
import { decide, type DecideDeps } from '../src/machines/decide.js';
import { fold, initialSessionState, type SessionState } from '../src/machines/sessionState.js';
import { currentTask } from '../src/machines/sessionQueries.js';
import type { DomainEvent } from '../src/protocol/events.js';
import { defaultDecideDeps } from '../src/runtime/embeddedRuntime.js';
import { round, summarize } from './stats.js';

const TASKS = 20;
const TEXT = Array.from({ length: TASKS }, (_, i) => `- Process item number ${i + 1} of the batch`).join('\n');

/** Runs one whole session through decide, timing every step (report in → next dispatch out). */
function runSession(deps: DecideDeps, sessionId: string, samples: number[] | null, events: DomainEvent[]): void {
  let n = 0;
  const meta = () => ({ messageId: `${sessionId}-m${++n}`, now: 1_000 + n });
  let state: SessionState = initialSessionState(sessionId);
  let d = decide(state, { type: 'SubmitInput', text: TEXT }, meta(), deps);
  events.push(...d.events);
  state = d.state;
  for (let task = currentTask(state); task?.status === 'Running'; task = currentTask(state)) {
    const input = { type: 'TaskCompleted' as const, taskId: task.id, dispatchId: task.dispatchId!, output: 'ok' };
    const t0 = performance.now();
    d = decide(state, input, meta(), deps);
    const t1 = performance.now();
    samples?.push(t1 - t0);
    events.push(...d.events);
    state = d.state;
  }
}

/** Varied words from a seeded generator (a vocabulary of 3,000, some far more frequent). */
function wordsFrom(seed: number): () => string {
  let x = seed;
  const rand = () => (x = (x * 48_271) % 2_147_483_647) / 2_147_483_647;
  const syllables = ['ka', 'lo', 'mi', 'ter', 'san', 'vor', 'el', 'qui', 'dra', 'po', 'nex', 'ul', 'ri', 'bas', 'to', 'fen'];
  const vocabulary = Array.from({ length: 3_000 }, () => Array.from({ length: 1 + Math.floor(rand() * 3) }, () => syllables[Math.floor(rand() * 16)]).join(''));
  const common = ['the', 'a', 'of', 'to', 'and', 'check', 'update', 'review', 'build', 'report', 'data', 'file'];
  return () => (rand() < 0.35 ? common[Math.floor(rand() * common.length)]! : vocabulary[Math.floor(vocabulary.length * rand() ** 2)]!);
}

/** An input of `entries` list entries of ~35 words (one task each). */
function largeInput(entries: number, word: () => string): string {
  return Array.from({ length: entries }, () => `- ${Array.from({ length: 35 }, word).join(' ')}.`).join('\n');
}

/**
 * Steps of a session whose context is much larger than its budget, scaled down from the soak
 * session that took 5–9 s a step (150 inputs of 60 KB, tokenBudget 100,000) to run in seconds:
 * 12 inputs of ~20 KB (100 tasks each), tokenBudget 20,000, 25 reports after each input. Every
 * few steps compact the context, against up to ~1,000 open tasks.
 */
function largeContext(deps: DecideDeps): { steps: number[]; compactions: number[] } {
  const word = wordsFrom(7);
  let n = 0;
  let state: SessionState = initialSessionState('large');
  const steps: number[] = [];
  const compactions: number[] = [];
  const step = (input: Parameters<typeof decide>[1]) => {
    const t0 = performance.now();
    const d = decide(state, input, { messageId: `large-m${++n}`, now: n }, deps);
    const ms = performance.now() - t0;
    steps.push(ms);
    if (d.events.some((e) => e.type === 'ContextCompacted')) compactions.push(ms);
    state = d.state;
  };
  for (let i = 0; i < 12; i++) {
    step({ type: 'SubmitInput', text: largeInput(100, word), ...(i === 0 ? { config: { tokenBudget: 20_000 } } : {}) });
    for (let r = 0; r < 25; r++) {
      const task = currentTask(state);
      if (task?.status !== 'Running') break;
      step({ type: 'TaskCompleted', taskId: task.id, dispatchId: task.dispatchId!, output: `processed: ${task.description}` });
    }
  }
  return { steps, compactions };
}

/** Step latency of the pure planner (decide + evolve of every event it makes), and replay rate. */
export async function benchInProcess(): Promise<Record<string, number>> {
  const deps = defaultDecideDeps();
  for (let i = 0; i < 200; i++) runSession(deps, `warm${i}`, null, []);
  const samples: number[] = [];
  const events: DomainEvent[] = [];
  for (let i = 0; i < 1_000; i++) runSession(deps, `s${i}`, samples, events);
  const step = summarize(samples);

  // Replay: fold every stored event of every session from scratch, as the repository does.
  const bySession = new Map<string, DomainEvent[]>();
  for (const e of events) (bySession.get(e.sessionId) ?? bySession.set(e.sessionId, []).get(e.sessionId)!).push(e);
  // Five passes (a pass is ~0.1 s, short enough for one GC or a busy neighbour to skew it): the
  // median is the figure, the slowest is kept beside it.
  let folded = 0;
  const rates: number[] = [];
  for (let pass = 0; pass < 5; pass++) {
    const t0 = performance.now();
    folded = 0;
    for (const [id, list] of bySession) {
      fold(initialSessionState(id), list);
      folded += list.length;
    }
    rates.push(folded / ((performance.now() - t0) / 1000));
  }
  rates.sort((a, b) => a - b);
  const large = largeContext(defaultDecideDeps());
  const [largeStep, largeCompaction] = [summarize(large.steps), summarize(large.compactions)];
  return {
    step_p50_ms: round(step.p50, 4),
    step_p99_ms: round(step.p99, 4),
    step_max_ms: round(step.max, 3),
    step_samples: step.n,
    replay_events: folded,
    replay_events_per_s: Math.round(rates[2]!),
    replay_slowest_pass_events_per_s: Math.round(rates[0]!),
    large_context_step_p50_ms: round(largeStep.p50, 3),
    large_context_step_p99_ms: round(largeStep.p99, 2),
    large_context_step_max_ms: round(largeStep.max, 2),
    large_context_compaction_p50_ms: round(largeCompaction.p50, 2),
    large_context_compactions: largeCompaction.n,
  };
}
