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
  return {
    step_p50_ms: round(step.p50, 4),
    step_p99_ms: round(step.p99, 4),
    step_max_ms: round(step.max, 3),
    step_samples: step.n,
    replay_events: folded,
    replay_events_per_s: Math.round(rates[2]!),
    replay_slowest_pass_events_per_s: Math.round(rates[0]!),
  };
}
