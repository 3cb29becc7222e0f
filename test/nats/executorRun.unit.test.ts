import { describe, expect, it, vi } from 'vitest';
import { recordReport, runClaimed, type ClaimedRunContext } from '../../src/nats/executorRun.js';
import type { ExecutorReport } from '../../src/executors/report.js';
import { silentLogger } from '../../src/observability/logger.js';
import { executeTask } from '../support/executeTask.js';

describe('recordReport', () => {
  it('tries again after failures and succeeds', async () => {
    let calls = 0;
    const failures: number[] = [];
    const put = async () => {
      calls++;
      if (calls < 3) throw new Error('timeout');
    };
    expect(await recordReport(put, 4, 0, (_err, attempt) => failures.push(attempt))).toBe(true);
    expect(calls).toBe(3);
    expect(failures).toEqual([1, 2]);
  });

  it('gives up after the last attempt', async () => {
    let calls = 0;
    const put = async () => {
      calls++;
      throw new Error('timeout');
    };
    expect(await recordReport(put, 3, 0, () => undefined)).toBe(false);
    expect(calls).toBe(3);
  });
});

/**
 * A run whose claim, inbox and session watch are in memory; `movedOn` as given, and the inbox
 * holding `recorded` (a report recorded by the claim's previous holder) if given.
 */
function runWith(movedOn: (end: (type: string) => void) => Promise<boolean>, recorded?: ExecutorReport, stopping = new AbortController().signal) {
  const calls: string[] = [];
  let onEnded: ((type: string) => void) | undefined;
  const ctx: ClaimedRunContext = {
    claims: { ttlMs: 30_000, take: async () => ({ refresh: async () => {}, release: async () => void calls.push('released') }) } as never,
    inbox: { get: async () => recorded, put: async () => void calls.push('recorded') } as never,
    handler: async () => {
      calls.push('handler');
      return { type: 'completed', output: 'done' };
    },
    owner: 'me',
    refreshMs: 10_000,
    stopping,
    logger: silentLogger,
    watchSession: (_sessionId, ended) => {
      onEnded = ended;
      return () => void calls.push('unwatched');
    },
    movedOn: () => movedOn((type) => onEnded!(type)),
  };
  return { calls, run: () => runClaimed(executeTask(), ctx, {}) };
}

describe('runClaimed: a session that moved on before the handler starts', () => {
  it('runs the handler while the session waits on the dispatch', async () => {
    const { calls, run } = runWith(async () => false);
    expect(await run()).toMatchObject({ type: 'report', ran: true, recorded: true });
    expect(calls).toEqual(['handler', 'recorded', 'unwatched', 'released']);
  });

  it('does not start it when the read finds the session moved on, or the watch sees its end during the read', async () => {
    for (const movedOn of [async () => true, async (end: (type: string) => void) => (end('SessionCancelled'), false)]) {
      const { calls, run } = runWith(movedOn);
      expect(await run()).toEqual({ type: 'abandoned', reason: 'session ended', ran: false });
      expect(calls).toEqual(['unwatched', 'released']);
    }
  });
});

describe('runClaimed: a report recorded by the claim\'s previous holder', () => {
  it('answers from the inbox read under the claim and never runs the handler again', async () => {
    // The race it guards: the executor read the inbox (nothing yet), then the holder of the claim
    // recorded its report and released the claim, then this process took the claim.
    const recorded = { type: 'TaskCompleted', taskId: 't1', dispatchId: 's1.t1.1', output: 'done by the first holder' } as const;
    const { calls, run } = runWith(async () => false, recorded);
    expect(await run()).toEqual({ type: 'report', report: recorded, ran: false, recorded: true });
    expect(calls).toEqual(['unwatched', 'released']);
  });
});

describe('runClaimed: an executor stopped before the handler starts', () => {
  it('starts nothing, and hands the command back with its claim released', async () => {
    const stop = new AbortController();
    // The stop comes while the run reads whether the session moved on.
    const { calls, run } = runWith(async () => {
      stop.abort();
      return false;
    }, undefined, stop.signal);
    expect(await run()).toEqual({ type: 'abandoned', reason: 'stopped', ran: false });
    expect(calls).toEqual(['unwatched', 'released']);
  });
});

describe('runClaimed: claim refreshes that hang', () => {
  it('aborts the handler before the claim can expire on the server, a refresh under way or not', async () => {
    vi.useFakeTimers();
    try {
      const ttlMs = 1_000;
      const refreshMs = 100;
      const hung = { refresh: () => new Promise<void>(() => undefined), release: async () => undefined };
      const ctx: ClaimedRunContext = {
        claims: { ttlMs, take: async () => hung } as never,
        inbox: { get: async () => undefined, put: async () => undefined } as never,
        handler: async (_t, { signal }) => {
          await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
          return { type: 'failed', error: 'aborted', retryable: true, aborted: true };
        },
        owner: 'me',
        refreshMs,
        stopping: new AbortController().signal,
        logger: silentLogger,
      };
      const t0 = Date.now();
      const run = runClaimed(executeTask(), ctx, {});
      await vi.advanceTimersByTimeAsync(ttlMs);
      expect(await run).toEqual({ type: 'abandoned', reason: 'claim lost', ran: true });
      // Aborted at the tick from which the next could come after the TTL, not after it.
      expect(Date.now() - t0).toBeLessThanOrEqual(ttlMs);
    } finally {
      vi.useRealTimers();
    }
  });
});
