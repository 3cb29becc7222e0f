/** What createClient refuses at once, before it uses its connection (no broker needed). */
import type { NatsConnection } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { createClient } from '../../src/nats/client.js';
import { thrown } from '../support/thrown.js';

describe('createClient', () => {
  // Each used to fail inside nats.js with "Cannot read properties of undefined (reading 'options')".
  it.each([undefined, null, {}, 'nats://127.0.0.1:4222'])('refuses an nc of %j with a ValidationError naming it', (nc) => {
    expect(thrown(() => createClient(nc as unknown as NatsConnection))).toMatchObject({
      name: 'ValidationError',
      message: expect.stringMatching(/^nc must be a NATS connection \(an object with method isClosed\), got /),
    });
  });

  it('refuses a bad maxInputBytes before it uses the connection', () => {
    const used: string[] = [];
    const nc = new Proxy({ isClosed: () => false }, { get: (t, p) => (p === 'isClosed' ? t.isClosed : void used.push(String(p))) });
    expect(thrown(() => createClient(nc as unknown as NatsConnection, { maxInputBytes: 0 }))).toMatchObject({
      name: 'ValidationError',
      message: 'maxInputBytes must be a positive integer, got 0',
    });
    expect(used).toEqual([]);
  });
});
