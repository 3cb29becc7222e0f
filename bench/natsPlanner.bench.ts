/**
 * The planner service on NATS, end to end, against a running server (2.9+), in the same run as the
 * raw JetStream numbers it is compared with (`raw` = the result of benchJetStreamRaw).
 *
 * The service runs on a worker thread (its own connection, silent logger, no HTTP server) on a unique
 * stream, subject prefix and KV buckets, all deleted at the end. The bench is the executor and the
 * observer on a second connection: a plain core subscription on `<prefix>.exec.>` sees every
 * ExecuteTask the service publishes; for each new dispatch the bench at once publishes
 * TaskCompleted (msg id `report.<dispatchId>`).
 *
 *  - step latency: PubAck of the report (t0) → the session's next ExecuteTask received (t1), at
 *    1 (sessions one after another), 100 and 1,000 concurrent sessions whose executor reports at
 *    once (saturation: latency is then queueing, concurrency / throughput), and at 100 sessions
 *    whose executor takes 50–150 ms per task (busy, not saturated);
 *  - persisted events/s: events appended during the 1,000-session run (stream subject counts)
 *    over its wall time (first SubmitInput published → last SessionCompleted committed);
 *  - recovery and replay from the stream: natsReplay.bench.ts.
 */
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { performance } from 'node:perf_hooks';
import { JetStreamEventStore } from '../src/persistence/jetstream/index.js';
import { planText } from '../src/planning/index.js';
import { startService, withTimeout, type ServiceHandle } from './benchService.js';
import { benchNatsReplay } from './natsReplay.bench.js';
import { round, summarize } from './stats.js';

/** Steps of the 1-session run: SEQUENTIAL sessions of TASKS tasks, one after another. */
const SEQUENTIAL = 30;
const TASKS = 10;
const TASKS_1000 = 5;
/**
 * Tasks per session when executors take time: 30, so that ~2,900 steps give the p99 some weight
 * (the 9th-slowest of ~900 mostly measured the burst of 100 sessions starting in one millisecond).
 */
const TASKS_THINK = 30;
/** The large session: BIG_INPUTS SubmitInputs of 200 tasks (planText's per-input limit). */
const BIG_INPUTS = 3;
const PER_INPUT = 200;
/** Per phase, how long the bench's executor works on a task before reporting, ms (mean). */
const THINK_MS: Record<string, number> = { c100think: 100 };
/** A seeded generator (mulberry32), so every run draws the same think times. */
const random = (() => {
  let a = 0x9e3779b9;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
})();

const textOf = (tasks: number, offset = 0) =>
  Array.from({ length: tasks }, (_, i) => `Process item ${offset + i + 1}.`).join(' ');

/** What the bench tracks per session. */
interface Tracked {
  phase: string;
  /** PubAck time of the last report, until the next ExecuteTask arrives. */
  t0: number | undefined;
  /** A report whose PubAck is not back yet. */
  inFlight: boolean;
  /** An ExecuteTask that arrived before the previous report's PubAck (should not happen). */
  early: number | undefined;
  done: () => void;
  finished: Promise<void>;
}

function track(phase: string): Tracked {
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  return { phase, t0: undefined, inFlight: false, early: undefined, done, finished };
}

/** Events stored on `<prefix>.ev.<session>` for the sessions whose id starts with `idPrefix`. */
async function storedEvents(jsm: JetStreamManager, streamName: string, prefix: string, idPrefix: string): Promise<number> {
  const info = await jsm.streams.info(streamName, { subjects_filter: `${prefix}.ev.>` });
  let total = 0;
  for (const [subject, count] of Object.entries(info.state.subjects ?? {})) {
    if (subject.startsWith(`${prefix}.ev.${idPrefix}`)) total += count;
  }
  return total;
}

export async function benchNatsPlanner(url: string, raw: Record<string, number>): Promise<Record<string, number>> {
  for (const task of planText(textOf(TASKS))) {
    if (task.kind !== 'Processing') throw new Error(`bench text plans a ${task.kind} task: ${task.description}`);
  }
  const suffix = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
  const streamName = `BENCH_${suffix}`;
  const subjectPrefix = `bench${suffix}`;
  // The name `jetplan serve` derives for a stream other than JETPLAN, so both modes use (and delete) it.
  const snapshotBucket = `jetplan_snapshots_${streamName}`;
  const leaseBucket = `bench_lease_${suffix}`;
  const results: Record<string, number> = {};

  // The load generator: no async stack trace per request, so its own cost stays small.
  const nc: NatsConnection = await connect({ servers: url, noAsyncTraces: true });
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  let service: ServiceHandle | undefined;
  let store: JetStreamEventStore | undefined;

  try {
    service = await startService({ url, streamName, subjectPrefix, snapshotBucket, leaseBucket });
    // 0: on a worker thread of this process, 1: its own process, 2: this thread.
    results['service_mode'] = { worker: 0, process: 1, inline: 2 }[service.mode];

    const sessions = new Map<string, Tracked>();
    const samples = new Map<string, number[]>();
    const seen = new Set<string>();
    let anomalies = 0;
    let reportErrors = 0;

    // A session is finished when its terminal event is stored (seen by type header, any process).
    const finished = new Set(['SessionCompleted', 'SessionFailed', 'SessionCancelled']);
    const evSub = nc.subscribe(`${subjectPrefix}.ev.>`, {
      callback: (err, m) => {
        if (err || !finished.has(m.headers?.get('Jetplan-Type') ?? '')) return;
        sessions.get(m.subject.slice(m.subject.lastIndexOf('.') + 1))?.done();
      },
    });

    // The executor and observer: core subscription, so delivery is not gated on any consumer.
    const onExec = (m: Msg) => {
      const now = performance.now();
      const task = JSON.parse(m.string()) as { sessionId: string; taskId: string; dispatchId: string };
      if (seen.has(task.dispatchId)) return; // a republish (recovery): already reported
      seen.add(task.dispatchId);
      const s = sessions.get(task.sessionId);
      if (!s) return;
      if (s.t0 !== undefined) {
        (samples.get(s.phase) ?? samples.set(s.phase, []).get(s.phase)!).push(now - s.t0);
        s.t0 = undefined;
      } else if (s.inFlight) {
        s.early = now;
      }
      s.inFlight = true;
      const report = { type: 'TaskCompleted', taskId: task.taskId, dispatchId: task.dispatchId, output: 'ok' };
      const think = THINK_MS[s.phase];
      // Uniform in [think/2, 3·think/2): executors finishing in lockstep would report in bursts.
      if (think) setTimeout(() => publishReport(s, task, report), think * (0.5 + random()));
      else publishReport(s, task, report);
    };
    const publishReport = (s: Tracked, task: { sessionId: string; dispatchId: string }, report: object) => {
      js.publish(`${subjectPrefix}.in.${task.sessionId}`, JSON.stringify(report), { msgID: `report.${task.dispatchId}` }).then(
        () => {
          const acked = performance.now();
          s.inFlight = false;
          if (s.early !== undefined) {
            anomalies++;
            s.early = undefined;
          } else {
            s.t0 = acked;
          }
        },
        () => {
          reportErrors++;
        },
      );
    };
    const sub = nc.subscribe(`${subjectPrefix}.exec.>`, { callback: (err, m) => void (err ? undefined : onExec(m)) });
    await nc.flush();

    const submit = (sessionId: string, text: string, n = 0) =>
      js.publish(`${subjectPrefix}.in.${sessionId}`, JSON.stringify({ type: 'SubmitInput', text }), { msgID: `submit.${sessionId}.${n}` });

    /** Starts `count` sessions of `tasks` tasks at once; resolves when all completed, with the wall time. */
    const runConcurrent = async (phase: string, count: number, tasks: number): Promise<number> => {
      const text = textOf(tasks);
      const list = Array.from({ length: count }, (_, i) => {
        const id = `${phase}-${i}`;
        const t = track(phase);
        sessions.set(id, t);
        return { id, t };
      });
      const t0 = performance.now();
      await Promise.all(list.map(({ id }) => submit(id, text)));
      await withTimeout(phase, Promise.all(list.map(({ t }) => t.finished)));
      return performance.now() - t0;
    };

    const stepResults = (phase: string, label: string) => {
      const s = summarize(samples.get(phase) ?? []);
      results[`step_${label}_p50_ms`] = round(s.p50);
      results[`step_${label}_p99_ms`] = round(s.p99);
      results[`step_${label}_max_ms`] = round(s.max);
      results[`step_${label}_n`] = s.n;
    };

    // Warm-up (JIT, consumer, connections): not measured.
    await runConcurrent('warm', 50, TASKS);

    // 1 session at a time.
    for (let i = 0; i < SEQUENTIAL; i++) {
      const id = `c1-${i}`;
      const t = track('c1');
      sessions.set(id, t);
      await submit(id, textOf(TASKS));
      await withTimeout(id, t.finished);
    }
    stepResults('c1', 'c1');

    // 100 concurrent sessions.
    const wall100 = await runConcurrent('c100', 100, TASKS);
    stepResults('c100', 'c100');
    results['c100_wall_ms'] = Math.round(wall100);

    // 100 concurrent sessions whose executor takes ~THINK_MS to do a task, as real executors do:
    // the step latency of a service that is busy but not saturated.
    await runConcurrent('c100think', 100, TASKS_THINK);
    stepResults('c100think', 'c100_think100');

    // 1,000 concurrent sessions: step latency and persisted events per second. Event-loop
    // utilization of the bench and service threads says which one (if either) is saturated.
    const benchElu = performance.eventLoopUtilization();
    const serviceElu = service.elu?.();
    const wall1000 = await runConcurrent('c1000', 1_000, TASKS_1000);
    results['c1000_bench_elu'] = round(performance.eventLoopUtilization(benchElu).utilization, 2);
    if (serviceElu) results['c1000_service_elu'] = round(service.elu!(serviceElu).utilization, 2);
    stepResults('c1000', 'c1000');
    const events1000 = await storedEvents(jsm, streamName, subjectPrefix, 'c1000-');
    const eventsPerSecond = events1000 / (wall1000 / 1000);
    results['c1000_wall_ms'] = Math.round(wall1000);
    results['c1000_events'] = events1000;
    results['c1000_events_per_s'] = Math.round(eventsPerSecond);
    const rawAppend = raw['pipelined_msgs_per_s'];
    if (rawAppend) results['events_vs_raw_pipelined_ratio'] = round(eventsPerSecond / rawAppend);
    results['c1000_tasks_per_s'] = Math.round((1_000 * TASKS_1000) / (wall1000 / 1000));

    // One large session: BIG_INPUTS × 200 tasks, ~3 events per task.
    {
      const id = 'big-0';
      const t = track('big');
      sessions.set(id, t);
      const t0 = performance.now();
      for (let i = 0; i < BIG_INPUTS; i++) await submit(id, textOf(PER_INPUT, i * PER_INPUT), i);
      await withTimeout(id, t.finished);
      results['big_run_ms'] = Math.round(performance.now() - t0);
      stepResults('big', 'big');
    }

    sub.unsubscribe();
    evSub.unsubscribe();
    results['step_anomalies'] = anomalies;
    results['report_errors'] = reportErrors;

    // Replay and recovery: a fresh store on the bench connection, nothing cached.
    store = await JetStreamEventStore.create(nc, { streamName, subjectPrefix });
    Object.assign(results, await benchNatsReplay(store, raw));
  } finally {
    await store?.close().catch(() => undefined);
    await service?.close().catch(() => undefined);
    for (const name of [streamName, `KV_${snapshotBucket}`, `KV_${leaseBucket}`]) {
      await jsm.streams.delete(name).catch(() => undefined);
    }
    // `serve` as a process (JETPLAN_BENCH_SERVICE=process) names its snapshot bucket after the
    // stream and prefix (plannerNames), not as the worker is told to: that one goes too.
    for await (const name of jsm.streams.names()) {
      if (name.startsWith(`KV_${snapshotBucket}`)) await jsm.streams.delete(name).catch(() => undefined);
    }
    await nc.close().catch(() => undefined);
  }
  return results;
}
