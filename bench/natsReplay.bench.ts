/**
 * Replay and recovery from JetStream, against the raw ordered-consumer read rate (`raw`, from
 * benchJetStreamRaw): every session rebuilt with one read each, what a new leader's recovery
 * costs, every session rebuilt in one pass over the log, and one ~1,200-event session.
 */
import type { RetryScheduler } from '../src/actors/retryScheduler.js';
import { SessionRepository } from '../src/actors/sessionRepository.js';
import { silentLogger } from '../src/observability/logger.js';
import type { JetStreamEventStore } from '../src/persistence/jetstream/index.js';
import { recoverSessions } from '../src/service/recovery.js';
import { round } from './stats.js';

const REPLAY_CONCURRENCY = 64;

export async function benchNatsReplay(store: JetStreamEventStore, raw: Record<string, number>): Promise<Record<string, number>> {
  const results: Record<string, number> = {};
  const repository = new SessionRepository({ store });
  {
    const ids = (await store.listStreams()).filter((id) => id !== 'big-0');
    let next = 0;
    let events = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: REPLAY_CONCURRENCY }, async () => {
        while (next < ids.length) {
          const { state } = await repository.rebuild(ids[next++]!);
          events += state.version;
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    results['replay_all_sessions'] = ids.length;
    results['replay_all_events'] = events;
    results['replay_all_concurrency'] = REPLAY_CONCURRENCY;
    results['replay_all_events_per_s'] = Math.round(events / seconds);
  }
  {
    // What a new leader does first: recover every session (all ended here, so each is one
    // read of its latest event rather than a fold of its log).
    const t0 = performance.now();
    const recovered = await recoverSessions({
      store, repository: new SessionRepository({ store }), clock: Date.now, logger: silentLogger,
      effects: { perform: () => {} },
      retries: { watch: () => {} } as unknown as RetryScheduler,
    });
    results['recovery_sessions'] = recovered.ended + recovered.sessions;
    results['recovery_ms'] = Math.round(performance.now() - t0);
  }
  {
    // The same sessions (and the big one) rebuilt in one pass over the log.
    const t0 = performance.now();
    const all = await repository.rebuildAll();
    const seconds = (performance.now() - t0) / 1000;
    let events = 0;
    for (const { state } of all.values()) events += state.version;
    results['replay_bulk_sessions'] = all.size;
    results['replay_bulk_events'] = events;
    results['replay_bulk_events_per_s'] = Math.round(events / seconds);
  }
  {
    const rates: number[] = [];
    let events = 0;
    for (let run = 0; run < 3; run++) {
      const t0 = performance.now();
      const { state } = await repository.rebuild('big-0');
      const elapsed = performance.now() - t0;
      events = state.version;
      rates.push((events / elapsed) * 1000);
    }
    results['replay_big_events'] = events;
    results['replay_big_first_events_per_s'] = Math.round(rates[0]!);
    results['replay_big_events_per_s'] = Math.round(Math.max(...rates));
    const rawRead = raw['orderedConsumer_msgs_per_s'];
    if (rawRead) {
      results['replay_big_vs_raw_read_ratio'] = round(Math.max(...rates) / rawRead);
      results['replay_all_vs_raw_read_ratio'] = round(results['replay_all_events_per_s']! / rawRead);
      results['replay_bulk_vs_raw_read_ratio'] = round(results['replay_bulk_events_per_s']! / rawRead);
    }
  }
  return results;
}
