/** RetryScheduler when a RetryDue fails: how long it waits to send it again, and what it leaves armed. */
import { describe, expect, it, vi } from 'vitest';
import { Planner } from '../../src/actors/planner.js';
import { RetryScheduler } from '../../src/actors/retryScheduler.js';
import { SessionRepository } from '../../src/actors/sessionRepository.js';
import { CorruptLogError, StoreUnavailableError, ValidationError } from '../../src/errors.js';
import { dispatchIdFor } from '../../src/machines/sessionQueries.js';
import { silentLogger } from '../../src/observability/logger.js';
import { MemoryEventStore } from '../../src/persistence/memoryEventStore.js';
import { defaultDecideDeps } from '../../src/runtime/embeddedRuntime.js';
import { FakeTimers } from '../support/fakeTimers.js';

function setup() {
  let now = 1_000;
  const clock = () => now;
  const store = new MemoryEventStore();
  let n = 0;
  const planner = new Planner({
    store,
    repository: new SessionRepository({ store }),
    decideDeps: defaultDecideDeps(),
    effects: { perform: () => undefined },
    clock,
    newId: () => `m${++n}`,
    logger: silentLogger,
  });
  const timers = new FakeTimers();
  const logger = { error: vi.fn() } as unknown as typeof silentLogger;
  const scheduler = new RetryScheduler(planner, clock, logger, timers);
  /** Each session's run id, as its start drew it (part of its dispatch ids). */
  const runIds = new Map<string, string | null>();
  /** Fails the running attempt of the session's task: the session is then in backoff for the next. */
  async function fail(sessionId: string, taskId: string, attempt: number) {
    const dispatchId = dispatchIdFor(sessionId, taskId, attempt, runIds.get(sessionId));
    await planner.handle(sessionId, { type: 'TaskFailed', taskId, dispatchId, error: 'flaky' });
  }
  /** Starts a one-task session and fails its first attempt (a retry of attempt 2 due in 250 ms). */
  async function intoBackoff(sessionId = 's1'): Promise<string> {
    const start = await planner.handle(sessionId, {
      type: 'SubmitInput',
      text: '- Fetch the data',
      config: { backoff: { baseMs: 250, factor: 2, maxMs: 10_000 } },
    });
    const { taskId, dispatchId } = start.events.find((e) => e.type === 'TaskDispatched')!.data as { taskId: string; dispatchId: string };
    runIds.set(sessionId, start.state.snapshot.context.runId);
    expect(dispatchIdFor(sessionId, taskId, 1, runIds.get(sessionId))).toBe(dispatchId);
    await fail(sessionId, taskId, 1);
    return taskId;
  }
  const advance = (ms: number) => (now += ms);
  return { planner, timers, scheduler, logger, intoBackoff, fail, advance };
}

/** A promise the test settles, standing for a RetryDue the planner is still applying. */
function pendingHandle() {
  let reject!: (err: Error) => void;
  const promise = new Promise<never>((_, r) => (reject = r));
  return { promise, reject };
}

describe('RetryScheduler, a RetryDue that fails', () => {
  it('does not overwrite the timer a newer state armed meanwhile, and close() clears that timer', async () => {
    const w = setup();
    const taskId = await w.intoBackoff();
    const applying = pendingHandle();
    vi.spyOn(w.planner, 'handle').mockImplementationOnce(() => applying.promise);
    w.advance(250);
    w.timers.fireAll(); // RetryDue for attempt 2 sent; the planner has not answered yet
    // Meanwhile the session moves on (another instance's input, a recovery): attempt 2 runs and
    // fails, and the retry of attempt 3 is armed.
    await w.planner.handle('s1', { type: 'RetryDue', taskId, attempt: 2 }, { messageId: 'other' });
    await w.fail('s1', taskId, 2);
    expect(w.timers.delays()).toEqual([500]);

    applying.reject(new Error('the store was away'));
    await applying.promise.catch(() => undefined); // the scheduler's handler ran first
    // The stale attempt is not sent again over the newer retry.
    expect(w.timers.delays()).toEqual([500]);
    w.scheduler.close();
    expect(w.timers.pending.size).toBe(0);
  });

  it('a timer whose callback runs after close() sends nothing', async () => {
    const w = setup();
    await w.intoBackoff();
    const [timer] = [...w.timers.pending.values()];
    const handle = vi.spyOn(w.planner, 'handle');
    w.scheduler.close();
    w.advance(250);
    timer!.fn();
    expect(handle).not.toHaveBeenCalled();
  });

  /** Fails every RetryDue with `err` and returns the waits between the `n` attempts after the first. */
  async function waitsAfterFailures(err: Error, n: number): Promise<{ waits: number[]; logger: ReturnType<typeof setup>['logger'] }> {
    const w = setup();
    await w.intoBackoff();
    // One rejected promise for every call: awaited after a firing, the scheduler's handler has run.
    const failing = Promise.reject(err);
    failing.catch(() => undefined);
    vi.spyOn(w.planner, 'handle').mockImplementation(() => failing);
    let delay = 250;
    const waits: number[] = [];
    for (let i = 0; i < n; i++) {
      w.advance(delay);
      w.timers.fireAll();
      await failing.catch(() => undefined);
      expect(w.timers.pending.size).toBe(1);
      delay = w.timers.delays()[0]!;
      waits.push(delay);
    }
    w.scheduler.close();
    return { waits, logger: w.logger };
  }

  it('that cannot succeed (a corrupt log, an invalid input) is tried again after waits doubling up to a minute', async () => {
    const corrupt = await waitsAfterFailures(new CorruptLogError('stream seq 7: not JSON'), 8);
    expect(corrupt.waits).toEqual([2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]);
    expect(corrupt.logger.error).toHaveBeenLastCalledWith(
      expect.objectContaining({ sessionId: 's1', failures: 8, retryInMs: 60_000 }),
      'retry failed; trying again',
    );
    expect((await waitsAfterFailures(new ValidationError('bad input'), 3)).waits).toEqual([2_000, 4_000, 8_000]);
  });

  it('for a store briefly away is tried again every second', async () => {
    expect((await waitsAfterFailures(new StoreUnavailableError('NATS connection is closed'), 4)).waits).toEqual([1_000, 1_000, 1_000, 1_000]);
  });
});
