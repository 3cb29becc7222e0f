/** Renders the service's metrics in the Prometheus text exposition format (0.0.4). Pure. */
import { STEP_BUCKETS_MS, type Metrics } from '../observability/metrics.js';

/** Values the metrics object does not hold: read from the broker and the lease at scrape time. */
export interface ServiceGauges {
  /** Inputs not yet delivered plus delivered and not acked; NaN when it cannot be read. */
  consumerPending: number;
  leader: boolean;
}

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

type Counters = Pick<Metrics, 'tasksCompleted' | 'tasksFailed' | 'clarifications' | 'inputsRejected'>;
type Histogram = Pick<Metrics, 'stepBuckets' | 'stepCount' | 'stepSumMs'>;

/** The metrics page: the step-latency histogram in seconds, counters, and gauges. */
export function renderPrometheus(metrics: Counters & Histogram, gauges: ServiceGauges): string {
  const lines: string[] = [];
  histogram(lines, metrics);
  counter(lines, 'jetplan_tasks_completed_total', 'Tasks completed.', metrics.tasksCompleted);
  counter(lines, 'jetplan_tasks_failed_total', 'Task attempts that failed.', metrics.tasksFailed);
  counter(lines, 'jetplan_clarifications_total', 'Clarifications requested.', metrics.clarifications);
  counter(lines, 'jetplan_inputs_rejected_total', 'Inputs recorded as InputRejected.', metrics.inputsRejected);
  gauge(lines, 'jetplan_consumer_pending', 'Inputs waiting for the planner (pending plus unacked).', gauges.consumerPending);
  gauge(lines, 'jetplan_leader', '1 when this instance holds the leader lease.', gauges.leader ? 1 : 0);
  return `${lines.join('\n')}\n`;
}

function histogram(lines: string[], m: Histogram): void {
  const name = 'jetplan_step_latency_seconds';
  lines.push(`# HELP ${name} Time from an input's receipt to the commit of its events.`, `# TYPE ${name} histogram`);
  let cumulative = 0;
  STEP_BUCKETS_MS.forEach((bucketMs, i) => {
    cumulative += m.stepBuckets[i] ?? 0;
    lines.push(`${name}_bucket{le="${number(bucketMs / 1000)}"} ${cumulative}`);
  });
  lines.push(`${name}_bucket{le="+Inf"} ${m.stepCount}`);
  lines.push(`${name}_sum ${number(m.stepSumMs / 1000)}`, `${name}_count ${m.stepCount}`);
}

function counter(lines: string[], name: string, help: string, value: number): void {
  lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`, `${name} ${number(value)}`);
}

function gauge(lines: string[], name: string, help: string, value: number): void {
  lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name} ${number(value)}`);
}

/** A sample value: finite numbers without float noise (0.1 ms → 0.0001, not 0.00010000000000000002). */
function number(value: number): string {
  if (!Number.isFinite(value)) return value > 0 ? '+Inf' : value < 0 ? '-Inf' : 'NaN';
  return String(Number(value.toPrecision(12)));
}
