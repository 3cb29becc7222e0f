/**
 * The connection gate's status listener: stopping the gate (closing its store) removes it from the
 * caller's connection at once, not at the next status event, which a quiet connection never sends.
 */
import { describe, expect, it } from 'vitest';
import { ConnectionGate } from '../../src/persistence/jetstream/connectionGate.js';
import { JetStreamEventStore } from '../../src/persistence/jetstream/index.js';
import { uniqueName } from '../support/natsServer.js';
import { natsTestEnv } from '../support/natsTestEnv.js';
import { until } from '../support/waiting.js';
import { statusListeners } from '../support/statusListeners.js';

const env = natsTestEnv();

describe('ConnectionGate', () => {
  it('stop() removes its status listener from a quiet connection', async () => {
    const nc = await env.conn();
    const before = statusListeners(nc);
    const gate = new ConnectionGate(nc);
    expect(statusListeners(nc)).toBe(before + 1);
    gate.stop();
    await until(() => statusListeners(nc) === before, () => `${statusListeners(nc) - before} listener(s) left`, 2_000);
    await gate.ready(10_000); // stopped: never waits
  });

  it('a closed JetStreamEventStore leaves no status listener on the caller’s connection', async () => {
    const nc = await env.conn();
    const before = statusListeners(nc);
    const store = await JetStreamEventStore.create(nc, { streamName: uniqueName('JP'), subjectPrefix: uniqueName('jp') });
    expect(statusListeners(nc)).toBeGreaterThan(before);
    await store.close();
    await until(() => statusListeners(nc) === before, () => `${statusListeners(nc) - before} listener(s) left`, 2_000);
  });
});
