import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { sleepUnlessAborted, unlessAborted, withinMs } from '../../src/shared/waits.js';

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe('waits that end early', () => {
  it('sleepUnlessAborted ends on its time or on an abort, leaving no timer', async () => {
    const stop = new AbortController();
    let slept = false;
    void sleepUnlessAborted(1_000, stop.signal).then(() => (slept = true));
    await vi.advanceTimersByTimeAsync(999);
    expect(slept).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(slept).toBe(true);
    const cut = sleepUnlessAborted(60_000, stop.signal);
    stop.abort();
    await cut;
    expect(vi.getTimerCount()).toBe(0);
    await sleepUnlessAborted(60_000, stop.signal); // already aborted: at once
  });

  it('unlessAborted settles as its work does, or rejects at once on an abort', async () => {
    const stop = new AbortController();
    await expect(unlessAborted(Promise.resolve(7), stop.signal, 'stopped')).resolves.toBe(7);
    await expect(unlessAborted(Promise.reject(new Error('no responders')), stop.signal, 'stopped')).rejects.toThrow('no responders');
    const never = unlessAborted(new Promise(() => undefined), stop.signal, 'stopped');
    stop.abort();
    await expect(never).rejects.toThrow('stopped');
    // A work that fails after the abort is not left unhandled.
    await expect(unlessAborted(Promise.reject(new Error('late')), stop.signal, 'stopped')).rejects.toThrow('stopped');
  });

  it('withinMs waits for its work at most ms, then resolves or rejects with the message', async () => {
    await expect(withinMs(Promise.reject(new Error('refused')), 10)).rejects.toThrow('refused');
    const quiet = withinMs(new Promise(() => undefined), 10);
    await vi.advanceTimersByTimeAsync(10);
    await quiet;
    const loud = withinMs(new Promise(() => undefined), 10, 'no answer');
    const seen = expect(loud).rejects.toThrow('no answer');
    await vi.advanceTimersByTimeAsync(10);
    await seen;
    expect(vi.getTimerCount()).toBe(0);
  });
});
