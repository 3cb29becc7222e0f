/**
 * The planner service around its recovery passes: a term that ends during one does not go on to
 * consume, and closing waits for a deferred pass under way before it closes what the pass uses.
 * The passes are stood in for (recoverSessions mocked) so a test can hold one open.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { RetryScheduler } from '../../src/actors/retryScheduler.js';
import { InputConsumer } from '../../src/service/inputConsumer.js';
import { JetStreamEffects } from '../../src/service/jetStreamEffects.js';
import { recoverSessions, type RecoveryResult } from '../../src/service/recovery.js';
import { latch, until } from '../support/waiting.js';
import { isolation, serverEnv } from './harness.js';

vi.mock('../../src/service/recovery.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../../src/service/recovery.js')>();
  return { ...actual, recoverSessions: vi.fn(actual.recoverSessions) };
});

const { env } = serverEnv();
const recovered = (deferred: string[] = []): RecoveryResult => ({ sessions: 0, republished: 0, timers: 0, failed: 0, ended: 0, deferred });

afterEach(() => {
  vi.restoreAllMocks();
});

describe('planner service recovery', () => {
  it('a service closed during its first recovery pass never starts consuming nor reports itself leader', async () => {
    const inPass = latch();
    const pass = latch();
    vi.mocked(recoverSessions).mockImplementationOnce(async () => {
      inPass.release();
      await pass.promise;
      return recovered();
    });
    const start = vi.spyOn(InputConsumer.prototype, 'start');
    const service = await env.service(isolation());
    let elected = false;
    void service.whenLeader.then(() => (elected = true));
    await inPass.promise;

    const closing = service.close();
    pass.release(); // the pass ends after the term did
    await closing;
    expect(start).not.toHaveBeenCalled();
    expect(elected).toBe(false);
  });

  it('closing waits for a deferred recovery pass under way before it closes the effects the pass publishes with', async () => {
    const order: string[] = [];
    const inPass = latch();
    const pass = latch();
    vi.mocked(recoverSessions)
      .mockImplementationOnce(async () => recovered(['s-slow'])) // one session deferred: retried in the background
      .mockImplementationOnce(async () => {
        order.push('pass started');
        inPass.release();
        await pass.promise;
        order.push('pass ended');
        return recovered();
      });
    const closeEffects = JetStreamEffects.prototype.close;
    vi.spyOn(JetStreamEffects.prototype, 'close').mockImplementation(function (this: JetStreamEffects) {
      order.push('effects closed');
      return closeEffects.call(this);
    });
    const closeRetries = vi.spyOn(RetryScheduler.prototype, 'close');
    const service = await env.service(isolation());
    await service.whenLeader;
    await inPass.promise; // the deferred pass comes 5 s after the first

    const closing = service.close();
    // Consuming and retrying have stopped: the close is now past its step-down.
    await until(() => closeRetries.mock.calls.length > 0, 'the term’s retry scheduler closed');
    expect(order).toEqual(['pass started']);
    pass.release();
    await closing;
    expect(order.slice(0, 3)).toEqual(['pass started', 'pass ended', 'effects closed']);
  });
});
