import { randomUUID } from 'node:crypto';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileEventStore } from '../src/persistence/fileEventStore.js';
import { encodeFrame } from '../src/persistence/fileLog.js';
import { encodeAppendEntry } from '../src/persistence/logEntry.js';
import type { NewEvent } from '../src/protocol/events.js';

/**
 * Each rate is measured in ROUNDS phases of PHASE_MS, alternating with the rate it is compared
 * with, so both see the same disk and CPU conditions (a shared VM's fsync rate drifts a lot).
 */
const ROUNDS = 4;
const PHASE_MS = 500;
const CONCURRENT_SESSIONS = 100;

/** Something measured in phases: `run` works for about `ms` and returns how many operations it did. */
interface Runner {
  run(ms: number): Promise<number>;
  close(): Promise<void>;
}

function event(sessionId: string): NewEvent {
  const id = randomUUID();
  return {
    id,
    version: 1,
    sessionId,
    timestamp: Date.now(),
    causationId: `cause-${id}`,
    correlationId: `corr-${sessionId}`,
    type: 'InputRejected',
    data: { reason: 'benchmark input rejected because it is only here to take up a realistic number of bytes' },
  };
}

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'jetplan-bench-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** `sessions` sessions of one store, each appending one event at a time (continuing across phases). */
async function storeRunner(dir: string, sessions: number): Promise<Runner & { store: FileEventStore }> {
  const store = await FileEventStore.open(dir);
  const versions = new Array<number>(sessions).fill(0);
  const session = async (s: number, deadline: number): Promise<number> => {
    const sessionId = `bench-${s}`;
    let done = 0;
    while (performance.now() < deadline) {
      const { nextExpectedVersion } = await store.appendToStream(sessionId, [event(sessionId)], {
        expectedVersion: versions[s] as number,
      });
      versions[s] = nextExpectedVersion;
      done++;
    }
    return done;
  };
  return {
    store,
    run: async (ms) => {
      const deadline = performance.now() + ms;
      const counts = await Promise.all(Array.from({ length: sessions }, (_, s) => session(s, deadline)));
      return counts.reduce((a, b) => a + b, 0);
    },
    close: () => store.close(),
  };
}

/** Raw write + fdatasync of `batch` records in `batchBytes`, in a loop; counts records. */
async function rawRunner(dir: string, batch: number, batchBytes: number): Promise<Runner> {
  const fh = await open(join(dir, `raw-${batch}.log`), 'w');
  const buf = Buffer.alloc(batchBytes, 0x61);
  let position = 0;
  return {
    run: async (ms) => {
      const deadline = performance.now() + ms;
      let records = 0;
      while (performance.now() < deadline) {
        await fh.write(buf, 0, buf.length, position);
        await fh.datasync();
        position += buf.length;
        records += batch;
      }
      return records;
    },
    close: () => fh.close(),
  };
}

/** The bytes of the frame the store writes for `count` one-event appends, so raw writes match it. */
function frameBytes(count: number): number {
  const entries = Array.from({ length: count }, (_, s) => encodeAppendEntry(`bench-${s}`, 0, [event(`bench-${s}`)], []).json);
  return encodeFrame(`[${entries.join(',')}]`).length;
}

/** Runs `a` and `b` in alternating phases; returns each one's operations per second. */
async function interleave(a: Runner, b: Runner): Promise<[number, number]> {
  const totals = [0, 0];
  const seconds = [0, 0];
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, runner] of [a, b].entries()) {
      const start = performance.now();
      totals[i] = (totals[i] as number) + (await runner.run(PHASE_MS));
      seconds[i] = (seconds[i] as number) + (performance.now() - start) / 1000;
    }
  }
  return [(totals[0] as number) / (seconds[0] as number), (totals[1] as number) / (seconds[1] as number)];
}

/** Compares `sessions` concurrent sessions of the store with raw synced writes of `batch` records. */
async function compare(sessions: number, batch: number) {
  return withTempDir(async (dir) => {
    const store = await storeRunner(join(dir, 'store'), sessions);
    const raw = await rawRunner(dir, batch, frameBytes(batch));
    try {
      const [storeRate, rawRate] = await interleave(store, raw);
      const { appends, flushes } = store.store.stats;
      return { storeRate, rawRate, avgBatch: appends / flushes };
    } finally {
      await store.close();
      await raw.close();
    }
  });
}

/**
 * Benchmarks the file event store against the disk's raw write + fdatasync rate:
 * appends/s for 1 and for 100 concurrent sequential sessions, and raw records/s for
 * single-record and 100-record batches of the same record size.
 */
export async function benchFileStore(): Promise<Record<string, number>> {
  const one = await compare(1, 1);
  const many = await compare(CONCURRENT_SESSIONS, CONCURRENT_SESSIONS);
  const round = (n: number, digits = 0) => Number(n.toFixed(digits));
  return {
    file_append_1_session_per_s: round(one.storeRate),
    raw_single_fdatasync_per_s: round(one.rawRate),
    file_1_vs_raw_single_ratio: round(one.storeRate / one.rawRate, 3),
    file_append_100_sessions_per_s: round(many.storeRate),
    raw_batched_fdatasync_records_per_s: round(many.rawRate),
    file_100_vs_raw_ratio: round(many.storeRate / many.rawRate, 3),
    file_100_sessions_avg_batch: round(many.avgBatch, 1),
    raw_single_write_bytes: frameBytes(1),
    raw_batched_write_bytes: frameBytes(CONCURRENT_SESSIONS),
  };
}
