import { errors } from '@nats-io/transport-node';
import { describe, expect, it, vi } from 'vitest';
import type { ConnectionGate } from '../../src/persistence/jetstream/connectionGate.js';
import { retryTransient } from '../../src/persistence/jetstream/jetStreamErrors.js';

describe('retryTransient', () => {
  it('resends a request that times out while within retryForMs, and then gives up with its error', async () => {
    const gate = { ready: async () => undefined } as unknown as ConnectionGate;
    const request = vi.fn(async () => Promise.reject(new errors.TimeoutError()));
    // On a connection still open: only the deadline ends it (without it, the test times out).
    await expect(retryTransient({ gate, retryForMs: 200, isClosed: () => false }, request)).rejects.toMatchObject({ name: 'TimeoutError' });
    expect(request.mock.calls.length).toBeGreaterThan(1);
  });
});
