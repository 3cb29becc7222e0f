/**
 * Raw JetStream numbers against a running server, and the JetStreamEventStore read path on top.
 * Plain code (no vitest): `benchJetStreamRaw('nats://127.0.0.1:4222')` resolves to a flat record.
 * Works on nats-server 2.9 (single-filter ordered consumers, expected-last-subject-sequence).
 */
import { randomUUID } from 'node:crypto';
import { DeliverPolicy, jetstream, jetstreamManager, type PubAck } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { SessionRepository } from '../src/actors/sessionRepository.js';
import { JetStreamEventStore, PubAckMux } from '../src/persistence/jetstream/index.js';
import { sessionLog } from './sessionLog.js';

const SEQUENTIAL = 2_000;
const PIPELINED = 20_000;
const WINDOW = 256;
/** Events of the session read back: a realistic log of ~3,000 tasks (sessionLog). */
const READ = 6_000;
/** Measured rounds of the read variants (after one warm-up round). */
const READ_RUNS = 5;

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

const round = (n: number, digits = 3) => Number(n.toFixed(digits));

/** Keeps up to `window` publishes in flight until `total` have been acknowledged. */
async function pipelined(total: number, window: number, publish: (i: number) => Promise<PubAck>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < total) {
      const i = next++;
      await publish(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(window, total) }, worker));
}

function body(sessionId: string, sequence: number): string {
  return JSON.stringify({
    id: randomUUID(),
    type: 'SessionCancelled',
    version: 1,
    sessionId,
    timestamp: Date.now(),
    causationId: 'bench',
    correlationId: 'bench',
    data: { reason: 'bench' },
    sequence,
  });
}

export async function benchJetStreamRaw(url: string): Promise<Record<string, number>> {
  // As the service's connections: no async stack trace captured per request (see src/nats/connect.ts).
  const nc = await connect({ servers: url, noAsyncTraces: true });
  const suffix = `${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  const streamName = `JPBENCH_${suffix}`;
  const subjectPrefix = `jpbench_${suffix}`;
  const results: Record<string, number> = {};
  try {
    const store = await JetStreamEventStore.create(nc, { streamName, subjectPrefix });
    const js = jetstream(nc);

    // (a) sequential appends, each expecting the previous one's stream sequence on one subject.
    {
      const subject = `${subjectPrefix}.ev.seq`;
      const latencies: number[] = [];
      let last = 0;
      const t0 = performance.now();
      for (let i = 0; i < SEQUENTIAL; i++) {
        const start = performance.now();
        const ack = await js.publish(subject, body('seq', i + 1), {
          msgID: randomUUID(),
          expect: { lastSubjectSequence: last },
        });
        latencies.push(performance.now() - start);
        last = ack.seq;
      }
      const elapsed = performance.now() - t0;
      latencies.sort((a, b) => a - b);
      results['seqAppend_n'] = SEQUENTIAL;
      results['seqAppend_p50_ms'] = round(percentile(latencies, 50));
      results['seqAppend_p99_ms'] = round(percentile(latencies, 99));
      results['seqAppend_msgs_per_s'] = Math.round((SEQUENTIAL / elapsed) * 1000);
    }

    // (b) pipelined publishes to distinct subjects, WINDOW in flight, no expectation: through
    // nats.js's js.publish and through the PubAckMux the service publishes with. The raw limit is
    // the faster of the two, so jetplan's cheaper publish path does not flatter its ratio.
    {
      const rate = async (publish: (subject: string, data: string) => Promise<PubAck>) => {
        const t0 = performance.now();
        await pipelined(PIPELINED, WINDOW, (i) =>
          publish(`${subjectPrefix}.ev.p${i % 1_000}`, body(`p${i % 1_000}`, Math.floor(i / 1_000) + 1)),
        );
        return Math.round((PIPELINED / (performance.now() - t0)) * 1000);
      };
      const mux = new PubAckMux(nc);
      const viaJs = await rate((subject, data) => js.publish(subject, data, { msgID: randomUUID() }));
      const viaMux = await rate((subject, data) => mux.publish(subject, data, { msgID: randomUUID(), timeout: 5_000 }));
      mux.close();
      results['pipelined_n'] = PIPELINED;
      results['pipelined_window'] = WINDOW;
      results['pipelined_js_publish_msgs_per_s'] = viaJs;
      results['pipelined_mux_msgs_per_s'] = viaMux;
      results['pipelined_msgs_per_s'] = Math.max(viaJs, viaMux);
    }

    // Load one session subject with READ events in the store's body format (sequence 1..READ).
    const readSession = 'big';
    const readSubject = `${subjectPrefix}.ev.${readSession}`;
    const log = sessionLog(readSession, READ);
    {
      // Publishes on one connection reach the server in call order, so chunks of concurrent
      // publishes keep stream order = sequence order.
      const chunk = WINDOW;
      for (let i = 0; i < READ; i += chunk) {
        await Promise.all(log.slice(i, i + chunk).map((event) => js.publish(readSubject, JSON.stringify(event))));
      }
    }
    // (c) the raw read limit: an ordered consumer (one filter subject) reading the READ messages,
    // through nats.js's async iterator and through a callback (no promise per message), the faster
    // counting; (d) JetStreamEventStore.readStream of the same session (tip lookup, ordered
    // consumer, decode); (e) jetplan's replay of it: read, upcast and fold as the events arrive
    // (SessionRepository.rebuild). One warm-up round, then READ_RUNS rounds with the four
    // interleaved, so that no variant gets a warmer JIT or a quieter machine than another; best of
    // the rounds for each.
    const orderedRead = async (callback: boolean) => {
      const consumer = await js.consumers.get(streamName, { filter_subjects: readSubject, deliver_policy: DeliverPolicy.All });
      let count = 0;
      if (callback) {
        let finish!: () => void;
        const finished = new Promise<void>((resolve) => (finish = resolve));
        const messages = await consumer.consume({
          max_messages: 4_096,
          callback: (m) => {
            void m.data;
            if (++count === READ) finish();
          },
        });
        await finished;
        await messages.close();
      } else {
        const messages = await consumer.consume({ max_messages: 4_096 });
        for await (const m of messages) {
          void m.data;
          if (++count >= READ) break;
        }
        await messages.close();
      }
      await consumer.delete().catch(() => undefined);
      return count;
    };
    const variants: [string, () => Promise<number>][] = [
      ['orderedConsumer_iterator_msgs_per_s', () => orderedRead(false)],
      ['orderedConsumer_callback_msgs_per_s', () => orderedRead(true)],
      ['readStream_events_per_s', async () => (await store.readStream(readSession)).events.length],
      ['replay_contiguous_events_per_s', async () => (await new SessionRepository({ store }).rebuild(readSession)).state.version],
    ];
    const best = new Map<string, number>();
    for (let round = 0; round <= READ_RUNS; round++) {
      for (const [name, read] of variants) {
        const t0 = performance.now();
        const n = await read();
        const rate = (READ / (performance.now() - t0)) * 1000;
        if (n !== READ) throw new Error(`${name}: read ${n} of ${READ}`);
        if (round > 0) best.set(name, Math.max(best.get(name) ?? 0, Math.round(rate)));
      }
    }
    results['read_n'] = READ;
    results['read_rounds'] = READ_RUNS;
    for (const [name, rate] of best) results[name] = rate;
    const rawRead = Math.max(best.get('orderedConsumer_iterator_msgs_per_s')!, best.get('orderedConsumer_callback_msgs_per_s')!);
    results['orderedConsumer_msgs_per_s'] = rawRead;
    results['readStream_vs_raw_read_ratio'] = round(best.get('readStream_events_per_s')! / rawRead);
    results['replay_contiguous_vs_raw_read_ratio'] = round(best.get('replay_contiguous_events_per_s')! / rawRead);
    await store.close();
  } finally {
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.delete(streamName);
    } catch {
      /* stream may not exist if create failed */
    }
    await nc.close();
  }
  return results;
}
