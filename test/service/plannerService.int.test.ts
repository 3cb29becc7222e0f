/** What a closed planner service leaves on the connection it was given (and does not own). */
import { describe, expect, it } from 'vitest';
import { isolation, serverEnv } from './harness.js';
import { until } from '../support/waiting.js';
import { statusListeners } from '../support/statusListeners.js';

const { env } = serverEnv();

describe('planner service close', () => {
  it('leaves no status listener on the caller’s connection, with or without its HTTP port', async () => {
    const nc = await env.connect();
    const before = statusListeners(nc);
    // A process that restarts its service on one long-lived connection would pile them up.
    for (const httpPort of [0, 0, undefined]) {
      const service = await env.service(isolation(), { nc, ...(httpPort === undefined ? {} : { httpPort }) });
      await service.whenLeader;
      expect(statusListeners(nc)).toBeGreaterThan(before);
      await service.close();
    }
    await until(() => statusListeners(nc) === before, () => `${statusListeners(nc) - before} listener(s) left`, 2_000);
  });
});
