/**
 * Two deciders of one input on a real nats-server: a leader paused between deciding and appending
 * (its lease lost meanwhile) and the new leader that decided the redelivered input at another
 * time. Event ids match (message id and position) but content does not (timestamps, the run id in
 * every dispatch id): the stale one must not take the other's events for its own.
 */
import { describe, expect, it } from 'vitest';
import { Planner } from '../../src/actors/planner.js';
import { SessionRepository } from '../../src/actors/sessionRepository.js';
import { silentLogger } from '../../src/observability/logger.js';
import { JetStreamEventStore } from '../../src/persistence/jetstream/index.js';
import type { OutboxCommand } from '../../src/protocol/commands.js';
import { defaultDecideDeps } from '../../src/runtime/embeddedRuntime.js';
import { natsTestEnv } from '../support/natsTestEnv.js';
import { uniqueName } from '../support/natsServer.js';

const env = natsTestEnv();
const INPUT = { type: 'SubmitInput' as const, text: '- Fetch the data' };
const META = { messageId: 'm1', streamSequence: 7 };

async function deciders() {
  const options = { streamName: uniqueName('S'), subjectPrefix: uniqueName('p') };
  const [storeA, storeB] = [await JetStreamEventStore.create(await env.conn(), options), await JetStreamEventStore.create(await env.conn(), options)];
  const planner = (store: JetStreamEventStore, out: OutboxCommand[], now: number) =>
    new Planner({
      store, repository: new SessionRepository({ store }), decideDeps: defaultDecideDeps(),
      effects: { perform: (c) => void out.push(...c) }, clock: () => now, newId: () => 'x', logger: silentLogger,
    });
  // A decides, then stalls before its append until released.
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let decided!: () => void;
  const aDecided = new Promise<void>((r) => (decided = r));
  const append = storeA.appendToStream.bind(storeA);
  storeA.appendToStream = async (id, events, o) => {
    decided();
    await released;
    return append(id, events, o);
  };
  const outA: OutboxCommand[] = [];
  const outB: OutboxCommand[] = [];
  return { storeA, storeB, outA, outB, release, aDecided, A: planner(storeA, outA, 1_000), B: planner(storeB, outB, 40_000) };
}

const dispatched = (events: Array<{ type: string; data: unknown }>) =>
  events.filter((e) => e.type === 'TaskDispatched').map((e) => (e.data as { dispatchId: string }).dispatchId);

describe('a stale decider of an input another leader decided', () => {
  it('is refused (its duplicates differ) and publishes only what the log holds', async () => {
    const w = await deciders();
    const a = w.A.handle('s1', INPUT, META).then(() => undefined, (e: unknown) => e);
    await w.aDecided;
    await w.B.handle('s1', INPUT, META); // the redelivery, on the new leader
    w.release();
    await a;
    const log = (await w.storeB.readStream('s1')).events;
    expect(dispatched(log)).toHaveLength(1);
    for (const c of [...w.outA, ...w.outB]) expect(c.id).toBe(dispatched(log)[0]);
    expect(log.map((e) => e.sequence)).toEqual(log.map((_, i) => i + 1));
  });

  it('does not carry on after the other leader\'s first event when that one stopped there', async () => {
    const w = await deciders();
    const a = w.A.handle('s1', INPUT, META).then(() => undefined, (e: unknown) => e);
    await w.aDecided;
    // B lands only its SessionStarted (it died after): the same id as A's first event.
    const appendB = w.storeB.appendToStream.bind(w.storeB);
    w.storeB.appendToStream = (id, events, o) => appendB(id, events.slice(0, 1), o);
    await w.B.handle('s1', INPUT, META);
    w.storeB.appendToStream = appendB;
    w.release();
    await a;
    const log = (await w.storeB.readStream('s1')).events;
    // A took nothing of B's as its own: reloaded, it finished B's decision (a cut-short one), at
    // B's time and in B's run, rather than put a dispatch of its own run on B's start.
    expect(log.map((e) => e.type)).toEqual(['SessionStarted', 'TasksPlanned', 'TaskDispatched']);
    const runId = (log[0]!.data as { runId: string }).runId;
    expect(dispatched(log)[0]).toContain(`.${runId}.`);
    expect(w.outA.map((c) => c.id)).toEqual(dispatched(log));
    expect(log.every((e) => e.timestamp === 40_000)).toBe(true);
  });
});
