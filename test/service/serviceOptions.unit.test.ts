/**
 * What startPlannerService refuses before it uses its connection: options a JavaScript caller can
 * pass although the types forbid them. A stand-in connection records any use of it; none is allowed.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { startPlannerService, type PlannerServiceOptions } from '../../src/service/plannerService.js';

/** Passes the connection check (it has `isClosed`); records every other property read. */
function standInNc(): { nc: NatsConnection; used: string[] } {
  const used: string[] = [];
  const target = { isClosed: () => false };
  const nc = new Proxy(target, {
    get: (t, p) => (p === 'isClosed' ? t.isClosed : void used.push(String(p))),
  }) as unknown as NatsConnection;
  return { nc, used };
}

describe('planner service options (no broker)', () => {
  it.each([
    [{ logger: {} }, /^logger must be a pino-like logger \(an object with methods debug, info, warn, error and isLevelEnabled\), got an object without debug/],
    [{ clock: '2024' }, /^clock must be a function, got "2024"$/],
    [{ newId: 'x' }, /^newId must be a function, got "x"$/],
    [{ decideDeps: {} }, /^decideDeps must be an object with methods plan, countTokens and compactor\.compact, got an object without plan/],
    [{ onLeadershipChange: true }, /^onLeadershipChange must be a function, got true$/],
  ])('refuses %o with a ValidationError naming it, without using the connection', async (bad, message) => {
    const { nc, used } = standInNc();
    const options = { nc, ...bad } as unknown as PlannerServiceOptions;
    await expect(startPlannerService(options)).rejects.toMatchObject({ name: 'ValidationError', message: expect.stringMatching(message) });
    expect(used).toEqual([]);
  });

  it.each([undefined, {}, 'nats://127.0.0.1:4222'])('refuses an nc of %j that is not a connection', async (nc) => {
    const options = { nc } as unknown as PlannerServiceOptions;
    await expect(startPlannerService(options)).rejects.toMatchObject({
      name: 'ValidationError',
      message: expect.stringMatching(/^nc must be a NATS connection \(an object with method isClosed\), got /),
    });
  });
});
