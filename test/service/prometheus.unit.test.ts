import { describe, expect, it } from 'vitest';
import { Metrics, STEP_BUCKETS_MS } from '../../src/observability/metrics.js';
import { renderPrometheus } from '../../src/service/prometheus.js';

describe('renderPrometheus', () => {
  it('renders the step histogram in seconds, cumulative, with sum and count', () => {
    const m = new Metrics(() => 0);
    for (const ms of [0.05, 0.3, 0.3, 7, 5_000]) m.observeStep(ms);
    const text = renderPrometheus(m, { consumerPending: 3, leader: true });
    const buckets = [...text.matchAll(/^jetplan_step_latency_seconds_bucket\{le="([^"]+)"\} (\d+)$/gm)].map((r) => [r[1], Number(r[2])]);
    expect(buckets.map((b) => b[0])).toEqual([...STEP_BUCKETS_MS.map((ms) => String(ms / 1000)), '+Inf']);
    expect(buckets[0]).toEqual(['0.0001', 1]);
    expect(buckets[2]).toEqual(['0.0005', 3]);
    expect(buckets[6]).toEqual(['0.01', 4]);
    expect(buckets.at(-2)).toEqual(['1', 4]); // 5 s is above every finite bucket
    expect(buckets.at(-1)).toEqual(['+Inf', 5]);
    expect(text).toContain('jetplan_step_latency_seconds_sum 5.00765\n');
    expect(text).toContain('jetplan_step_latency_seconds_count 5\n');
    expect(text).toContain('# TYPE jetplan_step_latency_seconds histogram\n');
  });

  it('renders the counters and gauges', () => {
    const m = new Metrics(() => 0);
    Object.assign(m, { tasksCompleted: 7, tasksFailed: 2, clarifications: 1, inputsRejected: 4 });
    const text = renderPrometheus(m, { consumerPending: 12, leader: false });
    for (const line of [
      '# TYPE jetplan_tasks_completed_total counter', 'jetplan_tasks_completed_total 7',
      'jetplan_tasks_failed_total 2', 'jetplan_clarifications_total 1', 'jetplan_inputs_rejected_total 4',
      '# TYPE jetplan_consumer_pending gauge', 'jetplan_consumer_pending 12',
      '# TYPE jetplan_leader gauge', 'jetplan_leader 0',
    ]) {
      expect(text.split('\n')).toContain(line);
    }
    expect(text.endsWith('\n')).toBe(true);
    expect(text.split('\n').filter((l) => l.startsWith('# HELP'))).toHaveLength(7);
  });
});
