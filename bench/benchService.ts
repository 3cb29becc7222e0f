/**
 * The planner service under test, for the NATS bench: on a worker thread (default), on the
 * bench's own thread, or as its own process.
 */
import { spawn } from 'node:child_process';
import type { EventLoopUtilization } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { connectNats } from '../src/nats/connect.js';
import { silentLogger } from '../src/observability/logger.js';
import { startPlannerService } from '../src/service/plannerService.js';

const PHASE_TIMEOUT_MS = 120_000;

/** `work`, or a rejection naming `what` after `ms`. */
export async function withTimeout<T>(what: string, work: Promise<T>, ms = PHASE_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The planner service under test: in this process (default) or in its own, as deployed. */
export interface ServiceHandle {
  mode: 'worker' | 'inline' | 'process';
  /** The service thread's event-loop utilization (worker mode), as `performance.eventLoopUtilization`. */
  elu?: (previous?: EventLoopUtilization) => EventLoopUtilization;
  close(): Promise<void>;
}

export interface ServiceSpec {
  url: string;
  streamName: string;
  subjectPrefix: string;
  snapshotBucket: string;
  leaseBucket: string;
}

/**
 * Starts the service on a worker thread (default: its own event loop and connection, as deployed,
 * so the bench's load generator does not share its thread), in this thread
 * (JETPLAN_BENCH_SERVICE=inline), or with JETPLAN_BENCH_SERVICE=process as `node bin/jetplan.js
 * serve` in a child process (needs `npm run build`). Resolves once it leads.
 */
export async function startService(spec: ServiceSpec): Promise<ServiceHandle> {
  const mode = process.env.JETPLAN_BENCH_SERVICE ?? 'worker';
  if (mode === 'worker') {
    // A young generation of 96 MB (32 MB semi-spaces), as docs/deployment.md runs the service
    // (NODE_OPTIONS=--max-semi-space-size=32): fewer scavenges per step.
    const young = Number(process.env.JETPLAN_BENCH_YOUNG_MB ?? 96);
    const worker = new Worker(new URL('./serviceWorker.mjs', import.meta.url), {
      workerData: spec,
      ...(young > 0 ? { resourceLimits: { maxYoungGenerationSizeMb: young } } : {}),
    });
    const message = (want: string) =>
      new Promise<void>((resolve, reject) => {
        worker.on('message', (m) => m === want && resolve());
        worker.once('error', reject);
        worker.once('exit', (code) => reject(new Error(`service worker exited with ${code}`)));
      });
    await withTimeout('leadership', message('leader'), 30_000).catch(async (err: unknown) => {
      await worker.terminate();
      throw err;
    });
    return {
      mode: 'worker',
      elu: (previous) => worker.performance.eventLoopUtilization(previous),
      close: async () => {
        const closed = message('closed');
        worker.postMessage('close');
        await closed;
        await worker.terminate();
      },
    };
  }
  if (mode === 'inline') {
    const serviceNc = await connectNats({ url: spec.url });
    const service = await startPlannerService({
      nc: serviceNc, logger: silentLogger, streamName: spec.streamName, subjectPrefix: spec.subjectPrefix,
      snapshotBucket: spec.snapshotBucket, leaseBucket: spec.leaseBucket,
    });
    await withTimeout('leadership', service.whenLeader, 30_000);
    return { mode: 'inline', close: async () => { await service.close(); await serviceNc.close(); } };
  }
  // JETPLAN_BENCH_NODE_ARGS: extra node flags for the service process, e.g. '--cpu-prof' to profile it.
  const nodeArgs = (process.env.JETPLAN_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [
    ...nodeArgs,
    'bin/jetplan.js', 'serve', '--nats', spec.url, '--stream', spec.streamName, '--prefix', spec.subjectPrefix,
    '--lease-bucket', spec.leaseBucket,
  ], { stdio: ['ignore', 'pipe', 'ignore'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const leading = new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('leader, consuming inputs')) resolve();
    });
    void exited.then(() => reject(new Error(`jetplan serve exited: ${out.trim() || '(no output; run npm run build)'}`)));
  });
  await withTimeout('leadership', leading, 30_000);
  return {
    mode: 'process',
    close: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}
