import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CorruptLogError, isCorruptLogError } from '../../src/errors.js';
import { evolve, fold, initialSessionState } from '../../src/machines/sessionState.js';
import { statusOf, toPlannerState } from '../../src/machines/sessionQueries.js';
import { EVENT_SCHEMA_VERSION, type DomainEvent, type RawEnvelope } from '../../src/protocol/events.js';
import { decodeEvent, toCurrentEvent, upcast } from '../../src/protocol/upcasters.js';

const FIXTURE = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/v0-events.jsonl');
const lines = readFileSync(FIXTURE, 'utf8').split('\n').filter((l) => l.trim() !== '');

const envelope = (overrides: Partial<RawEnvelope> = {}): RawEnvelope => ({
  id: 'e1',
  type: 'SessionCancelled',
  version: EVENT_SCHEMA_VERSION,
  sessionId: 's1',
  sequence: 1,
  timestamp: 1,
  causationId: 'c1',
  correlationId: 's1',
  data: { reason: 'stop' },
  ...overrides,
});

/** The CorruptLogError `fn` throws. */
function corrupt(fn: () => unknown): CorruptLogError {
  try {
    fn();
  } catch (error) {
    expect(isCorruptLogError(error)).toBe(true);
    expect(error).toBeInstanceOf(CorruptLogError);
    return error as CorruptLogError;
  }
  throw new Error('expected a CorruptLogError');
}

describe('upcasters', () => {
  it('decodes a version 0 session and folds it', () => {
    const events = lines.map((line, i) => decodeEvent(line, `${FIXTURE}:${i + 1}`));
    expect(events.every((e) => e.version === EVENT_SCHEMA_VERSION)).toBe(true);
    expect(events[0]!.data).toEqual({
      config: {
        systemPrompt: 'You are the prototype planner.',
        profile: 'default',
        tokenBudget: 1024,
        maxAttempts: 3,
        backoff: { baseMs: 200, factor: 2, maxMs: 30_000 },
      },
    });
    // A log from before run ids: none is made up for it, so its dispatch ids keep their form.
    expect(events[0]!.data).not.toHaveProperty('runId');
    expect(events[3]!.data).toEqual({ taskId: 't1-a', dispatchId: 'legacy-1.t1-a.1', output: '12 log lines' });
    expect(events[3]!.data).not.toHaveProperty('result');
    // A v0 event of a type that did not change passes through unchanged.
    expect(events[5]!.data).toEqual({ reason: 'unknown task t9' });

    const state = events.reduce(evolve, initialSessionState('legacy-1'));
    expect(statusOf(state)).toBe('completed');
    const view = toPlannerState(state);
    expect(view.config?.tokenBudget).toBe(1024);
    expect(view.tasks.map((t) => [t.status, t.result])).toEqual([
      ['Completed', '12 log lines'],
      ['Completed', 'the logs are fine'],
    ]);
    expect(view.context.items.map((i) => i.text)).toEqual([
      'You are the prototype planner.',
      'Fetch the logs. Summarize them.',
      '12 log lines',
      'the logs are fine',
    ]);
    expect(state.snapshot.context.rejected).toBe(1);
    expect(state.snapshot.context.runId).toBeNull();
    expect(state.version).toBe(8);
  });

  it('keeps a v0 maxAttempts, and upcasts parsed values as well as JSON text', () => {
    const raw = envelope({ type: 'SessionStarted', version: 0, data: { systemPrompt: 'p', budget: 64, maxAttempts: 7 } });
    const event = decodeEvent(raw, 'memory') as Extract<DomainEvent, { type: 'SessionStarted' }>;
    expect(event.data.config).toMatchObject({ systemPrompt: 'p', tokenBudget: 64, maxAttempts: 7 });
    expect(upcast(raw)).toMatchObject({ version: EVENT_SCHEMA_VERSION, data: { config: { maxAttempts: 7 } } });
  });

  it('reads a stored config beyond the bounds new input has (written before them): not corrupt', () => {
    const v0 = envelope({ type: 'SessionStarted', version: 0, data: { systemPrompt: 'p', budget: 128_000, maxAttempts: 500 } });
    expect((decodeEvent(v0, 'memory') as Extract<DomainEvent, { type: 'SessionStarted' }>).data.config).toMatchObject({ tokenBudget: 128_000, maxAttempts: 500 });
    const config = { systemPrompt: 'p', profile: 'default', tokenBudget: 250_000, maxAttempts: 3, backoff: { baseMs: 1, factor: 50, maxMs: 2 ** 40 } };
    const v1 = envelope({ type: 'SessionStarted', version: EVENT_SCHEMA_VERSION, data: { config } });
    expect(decodeEvent(JSON.stringify(v1), 'x')).toEqual(v1);
  });

  it('leaves current events alone', () => {
    const raw = envelope();
    expect(upcast(raw)).toEqual(raw);
    expect(decodeEvent(JSON.stringify(raw), 'x')).toEqual(raw);
  });
});

describe('toCurrentEvent', () => {
  it('passes a current event through untouched and upcasts an older one', () => {
    const current = envelope() as DomainEvent;
    expect(toCurrentEvent(current, 'store')).toBe(current);
    const old = JSON.parse(lines[3]!) as RawEnvelope;
    expect(toCurrentEvent(old, 'store')).toMatchObject({ version: EVENT_SCHEMA_VERSION, data: { output: '12 log lines' } });
    expect(() => toCurrentEvent(envelope({ version: 0, type: 'TaskCompleted', data: {} }), 'store:9')).toThrow(
      /^store:9: invalid TaskCompleted event/,
    );
  });
});

describe('decodeEvent errors', () => {
  it('rejects text that is not JSON, keeping the cause', () => {
    const error = corrupt(() => decodeEvent('{"id": ', 'log.jsonl:3'));
    expect(error.message).toBe('log.jsonl:3: stored event is not JSON');
    expect(error.cause).toBeInstanceOf(SyntaxError);
  });

  it('rejects a value that is not an event envelope', () => {
    expect(corrupt(() => decodeEvent('[1,2]', 'log:1')).message).toMatch(/^log:1: not an event envelope \(/);
    const { sequence: _, ...noSequence } = envelope();
    expect(corrupt(() => decodeEvent(noSequence, 'log:2')).message).toMatch(/^log:2: not an event envelope \(.+\)$/);
    expect(corrupt(() => decodeEvent(envelope({ sessionId: '' }), 'log:3')).message).toContain('not an event envelope');
  });

  it('rejects an event from a newer jetplan', () => {
    expect(corrupt(() => decodeEvent(envelope({ version: EVENT_SCHEMA_VERSION + 1 }), 'log:4')).message).toBe(
      `log:4: event version ${EVENT_SCHEMA_VERSION + 1} is newer than this jetplan (${EVENT_SCHEMA_VERSION})`,
    );
  });

  it('rejects invalid data, naming the type and the field', () => {
    const message = corrupt(() =>
      decodeEvent(envelope({ type: 'TaskCompleted', data: { taskId: 't1', dispatchId: 'd1', output: 42 } }), 'log:5'),
    ).message;
    expect(message).toMatch(/^log:5: invalid TaskCompleted event \(data\.output: .+\)$/);
    // A v0 TaskCompleted without `result` upcasts to one without `output`.
    expect(
      corrupt(() => decodeEvent(envelope({ type: 'TaskCompleted', version: 0, data: { taskId: 't1', dispatchId: 'd1' } }), 'log:6')).message,
    ).toContain('invalid TaskCompleted event (data.output');
  });

  it('passes on an event of a type a later version added, for readers to skip', () => {
    const later = envelope({ type: 'SomethingNew', data: { whatever: 1 } });
    expect(decodeEvent(later, 'log:7')).toMatchObject({ type: 'SomethingNew', data: { whatever: 1 } });
    // Folded as a no-op: the version moves on, nothing else.
    const before = fold(initialSessionState('s1'), []);
    const after = fold(before, [{ ...decodeEvent(later, 'log:7'), sequence: 1, sessionId: 's1' }]);
    expect(after.version).toBe(1);
    expect(after.snapshot).toEqual(before.snapshot);
    // Its envelope is still checked.
    expect(corrupt(() => decodeEvent({ ...later, sequence: 'x' }, 'log:8')).message).toMatch(/^log:8: not an event envelope/);
  });
});
