import { describe, expect, it, vi } from 'vitest';
import { KeyedQueue } from '../../src/shared/keyedQueue.js';

/** A promise with its resolve and reject exposed. */
function deferred<T = void>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('KeyedQueue', () => {
  it('runs the tasks of one key one at a time, in order', async () => {
    const q = new KeyedQueue();
    const log: string[] = [];
    const gates = [deferred(), deferred(), deferred()];
    const results = gates.map((g, i) =>
      q.run('k', async () => {
        log.push(`start${i}`);
        await g.promise;
        log.push(`end${i}`);
        return i;
      }),
    );
    await new Promise<void>((r) => setImmediate(r));
    expect(log).toEqual(['start0']);
    // Releasing a later task first does not let it overtake.
    gates[2]!.resolve();
    gates[1]!.resolve();
    await new Promise<void>((r) => setImmediate(r));
    expect(log).toEqual(['start0']);
    gates[0]!.resolve();
    expect(await Promise.all(results)).toEqual([0, 1, 2]);
    expect(log).toEqual(['start0', 'end0', 'start1', 'end1', 'start2', 'end2']);
  });

  it('runs different keys concurrently', async () => {
    const q = new KeyedQueue();
    const a = deferred();
    const bStarted = deferred();
    const pa = q.run('a', () => a.promise.then(() => 'a'));
    const pb = q.run('b', async () => {
      bStarted.resolve();
      return 'b';
    });
    // b runs and finishes while a is still blocked.
    await bStarted.promise;
    expect(await pb).toBe('b');
    // b's key is forgotten once its queue drained; a's is still busy.
    await vi.waitFor(() => expect(q.size).toBe(1));
    a.resolve();
    expect(await pa).toBe('a');
  });

  it('a failing task rejects its own promise and does not block the next', async () => {
    const q = new KeyedQueue();
    const failed = q.run('k', async () => {
      throw new Error('boom');
    });
    const syncThrow = q.run('k', () => {
      throw new Error('sync boom');
    });
    const next = q.run('k', async () => 'next');
    await expect(failed).rejects.toThrow('boom');
    await expect(syncThrow).rejects.toThrow('sync boom');
    expect(await next).toBe('next');
  });

  it('drain waits for every queued task, including ones queued while draining', async () => {
    const q = new KeyedQueue();
    const done: string[] = [];
    const g = deferred();
    void q.run('a', async () => {
      await g.promise;
      done.push('a1');
      // queued while drain is already waiting
      void q.run('c', async () => void done.push('c1'));
    });
    void q.run('b', async () => void done.push('b1')).catch(() => {});
    let drained = false;
    const d = q.drain().then(() => (drained = true));
    await new Promise<void>((r) => setImmediate(r));
    expect(drained).toBe(false);
    g.resolve();
    await d;
    expect(done.sort()).toEqual(['a1', 'b1', 'c1']);
    expect(q.size).toBe(0);
  });

  it('drain resolves at once when empty and size returns to 0 after failures', async () => {
    const q = new KeyedQueue();
    await q.drain();
    expect(q.size).toBe(0);
    const p1 = q.run('x', async () => 1);
    const p2 = q.run('y', async () => {
      throw new Error('no');
    });
    expect(q.size).toBe(2);
    await p1;
    await p2.catch(() => {});
    await q.drain();
    expect(q.size).toBe(0);
  });
});
