import type { Commit } from '../actors/planner.js';

/** Latency buckets (ms) of the step histogram, Prometheus-style cumulative. */
export const STEP_BUCKETS_MS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000];

/**
 * In-process counters fed by the planner's commits: tasks completed and failed, clarifications,
 * rejected inputs, and a step-latency histogram. Rates are over the window since `startedAt`.
 */
export class Metrics {
  tasksCompleted = 0;
  tasksFailed = 0;
  tasksDispatched = 0;
  clarifications = 0;
  inputsRejected = 0;
  reportsIgnored = 0;
  sessionsCompleted = 0;
  readonly stepBuckets = new Array<number>(STEP_BUCKETS_MS.length).fill(0);
  stepCount = 0;
  stepSumMs = 0;

  constructor(private readonly clock: () => number = Date.now, readonly startedAt = clock()) {}

  /** Counts what one commit recorded. */
  record(commit: Commit): void {
    for (const event of commit.events) {
      if (event.type === 'TaskCompleted') this.tasksCompleted++;
      else if (event.type === 'TaskFailed') this.tasksFailed++;
      else if (event.type === 'TaskDispatched') this.tasksDispatched++;
      else if (event.type === 'ClarificationRequested') this.clarifications++;
      else if (event.type === 'InputRejected') this.inputsRejected++;
      else if (event.type === 'ReportIgnored') this.reportsIgnored++;
      else if (event.type === 'SessionCompleted') this.sessionsCompleted++;
    }
  }

  /** Records one step's latency in milliseconds. */
  observeStep(ms: number): void {
    this.stepCount++;
    this.stepSumMs += ms;
    const i = STEP_BUCKETS_MS.findIndex((b) => ms <= b);
    if (i >= 0) this.stepBuckets[i]!++;
  }

  /** Completed tasks per second since start. */
  tasksPerSecond(): number {
    const seconds = Math.max(1e-3, (this.clock() - this.startedAt) / 1000);
    return this.tasksCompleted / seconds;
  }

  /** Share of finished attempts that completed (1 when none finished). */
  completionRate(): number {
    const done = this.tasksCompleted + this.tasksFailed;
    return done === 0 ? 1 : this.tasksCompleted / done;
  }
}
