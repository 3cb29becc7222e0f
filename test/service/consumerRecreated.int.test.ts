import { jetstreamManager } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { INBOX_WINDOW } from '../../src/machines/sessionState.js';
import { has, isolation, publishInput, serverEnv, waitForEvents } from './harness.js';
import { plannerDurable } from './harness.js';

const { env } = serverEnv();

describe('planner service: its durable input consumer deleted', () => {
  it('is created again, delivers the stream from its start, and no input is applied twice', async () => {
    const iso = isolation();
    const service = await env.service(iso);
    await service.whenLeader;
    const nc = await env.connect();
    const store = await env.store(iso);
    await publishInput(nc, iso, 'long', { type: 'SubmitInput', text: 'Run `npm test`.' }, 'submit-1');
    await waitForEvents(store, 'long', has('TaskDispatched'));
    // More inputs than the session's inbox window remembers by id: the submit falls out of it.
    const answers = INBOX_WINDOW + 20;
    await Promise.all(
      Array.from({ length: answers }, (_, i) => publishInput(nc, iso, 'long', { type: 'ProvideClarification', taskId: 'nope', answer: 'x' }, `a-${i}`)),
    );
    const before = await waitForEvents(store, 'long', (ev) => ev.filter((e) => e.type === 'InputRejected').length === answers, 60_000);
    expect(before.every((e) => typeof e.inputSequence === 'number')).toBe(true);

    await (await jetstreamManager(nc)).consumers.delete(iso.streamName, plannerDurable(iso));
    // Applied after every input before it (per-session order), the replayed ones included.
    await publishInput(nc, iso, 'long', { type: 'CancelSession', reason: 'done' }, 'cancel-1');
    const after = await waitForEvents(store, 'long', has('SessionCancelled'), 60_000);
    expect(after.slice(0, before.length)).toEqual(before);
    expect(after.slice(before.length).map((e) => e.type)).toEqual(['SessionCancelled']);
  }, 120_000);
});
