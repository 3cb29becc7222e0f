import { describe, expect, it } from 'vitest';
import type { Commit } from '../../src/actors/planner.js';
import { silentLogger } from '../../src/observability/logger.js';
import { Metrics, STEP_BUCKETS_MS } from '../../src/observability/metrics.js';
import { initialSessionState } from '../../src/machines/sessionState.js';
import type { DomainEvent } from '../../src/protocol/events.js';

function commit(...types: DomainEvent['type'][]): Commit {
  return {
    sessionId: 's1',
    events: types.map((type, i) => ({ type, sequence: i + 1 }) as unknown as DomainEvent),
    commands: [],
    state: initialSessionState('s1'),
  };
}

describe('Metrics', () => {
  it('counts what commits record', () => {
    const m = new Metrics(() => 0);
    m.record(commit('SessionStarted', 'TasksPlanned', 'TaskDispatched'));
    m.record(commit('TaskFailed', 'TaskRetryScheduled', 'TaskDispatched'));
    m.record(commit('TaskCompleted', 'ClarificationRequested', 'ClarificationProvided', 'InputRejected', 'ReportIgnored'));
    m.record(commit('TaskCompleted', 'SessionCompleted', 'ContextCompacted'));
    m.record(commit());
    expect({
      tasksCompleted: m.tasksCompleted,
      tasksFailed: m.tasksFailed,
      tasksDispatched: m.tasksDispatched,
      clarifications: m.clarifications,
      inputsRejected: m.inputsRejected,
      reportsIgnored: m.reportsIgnored,
      sessionsCompleted: m.sessionsCompleted,
    }).toEqual({
      tasksCompleted: 2,
      tasksFailed: 1,
      tasksDispatched: 2,
      clarifications: 1,
      inputsRejected: 1,
      reportsIgnored: 1,
      sessionsCompleted: 1,
    });
  });

  it('puts step latencies in the first bucket that holds them', () => {
    const m = new Metrics(() => 0);
    for (const ms of [0, 0.1, 0.2, 1, 1.01, 999, 1000, 5000]) m.observeStep(ms);
    const at = (bound: number) => m.stepBuckets[STEP_BUCKETS_MS.indexOf(bound)];
    expect(at(0.1)).toBe(2); // 0 and 0.1 (bounds are inclusive)
    expect(at(0.25)).toBe(1);
    expect(at(1)).toBe(1);
    expect(at(2.5)).toBe(1);
    expect(at(1000)).toBe(2);
    // 5000 is beyond the last bucket: counted and summed, in no bucket.
    expect(m.stepBuckets.reduce((a, b) => a + b, 0)).toBe(7);
    expect(m.stepCount).toBe(8);
    expect(m.stepSumMs).toBeCloseTo(0 + 0.1 + 0.2 + 1 + 1.01 + 999 + 1000 + 5000);
    expect(m.stepBuckets).toHaveLength(STEP_BUCKETS_MS.length);
  });

  it('computes rates over the window since start', () => {
    let now = 10_000;
    const m = new Metrics(() => now);
    expect(m.startedAt).toBe(10_000);
    expect(m.completionRate()).toBe(1); // nothing finished yet
    m.record(commit('TaskCompleted', 'TaskCompleted', 'TaskCompleted', 'TaskFailed'));
    now = 12_000;
    expect(m.tasksPerSecond()).toBe(1.5);
    expect(m.completionRate()).toBe(0.75);
    now = 10_000; // no time elapsed: the window is floored at 1 ms
    expect(m.tasksPerSecond()).toBe(3000);
    const explicit = new Metrics(() => 5_000, 1_000);
    expect(explicit.startedAt).toBe(1_000);
  });

  it('defaults to the wall clock', () => {
    const before = Date.now();
    const m = new Metrics();
    expect(m.startedAt).toBeGreaterThanOrEqual(before);
    expect(m.startedAt).toBeLessThanOrEqual(Date.now());
  });
});

describe('silentLogger', () => {
  it('writes nothing', () => {
    expect(silentLogger.level).toBe('silent');
    expect(silentLogger.isLevelEnabled('error')).toBe(false);
  });
});
