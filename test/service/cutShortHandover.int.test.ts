/**
 * A decision cut short when its leader died (nats-server 2.9 appends one event at a time), then a
 * new leader: the input must be finished before a later input of the session is applied.
 */
import { jetstream, type JsMsg } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { decide } from '../../src/machines/decide.js';
import { initialSessionState } from '../../src/machines/sessionState.js';
import { defaultDecideDeps } from '../../src/runtime/embeddedRuntime.js';
import { isolation, plannerStream, publishInput, serverEnv, waitForEvents } from './harness.js';

const { env } = serverEnv();

describe('a decision cut short, then a leader change', () => {
  it('is finished before a later input of the session, which waits for it', async () => {
    const iso = isolation();
    const nc = await env.connect();
    const { durableName } = await plannerStream(nc, iso);
    const store = await env.store(iso);
    const x = { type: 'SubmitInput' as const, text: 'Summarise part one.' };
    const xAck = await publishInput(nc, iso, 'cut', x, 'x-1');
    // The previous leader by hand: takes X, appends only the first event of its decision, naks X
    // with a delay and is gone.
    const batch = await (await jetstream(nc).consumers.get(iso.streamName, durableName)).fetch({ max_messages: 1, expires: 5_000 });
    const delivered: JsMsg[] = [];
    for await (const m of batch) delivered.push(m);
    const whole = decide(initialSessionState('cut'), x, { messageId: 'x-1', now: Date.now(), streamSequence: xAck.seq }, defaultDecideDeps());
    expect(whole.events.map((e) => e.type)).toEqual(['SessionStarted', 'TasksPlanned', 'TaskDispatched']);
    await store.appendToStream('cut', whole.events.slice(0, 1), { expectedVersion: 0 });
    delivered[0]!.nak(1_500);
    await nc.flush();
    // A later input of the session, delivered to the new leader before X comes back.
    await publishInput(nc, iso, 'cut', { type: 'SubmitInput', text: 'Summarise part two.' }, 'y-1');

    const service = await env.service(iso, { durableName });
    await service.whenLeader;
    const events = await waitForEvents(store, 'cut', (evs) => evs.filter((e) => e.type === 'TasksPlanned').length === 2, 30_000);
    expect(events.map((e) => `${e.type}<${e.causationId}>`)).toEqual([
      'SessionStarted<x-1>',
      'TasksPlanned<x-1>',
      'TaskDispatched<x-1>',
      'TasksPlanned<y-1>',
    ]);
  }, 60_000);
});
