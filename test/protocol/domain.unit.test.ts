import { describe, expect, it } from 'vitest';
import { MAX_DELAY_MS, MAX_TOKEN_BUDGET, PlannerConfig } from '../../src/protocol/domain.js';
import { parseInput } from '../../src/protocol/parseInput.js';

const submit = (config: unknown) => parseInput({ type: 'SubmitInput', text: 'Summarise the notes.', config });

describe('PlannerConfig bounds', () => {
  it('accepts the largest values it allows', () => {
    const config = PlannerConfig.parse({
      tokenBudget: MAX_TOKEN_BUDGET,
      maxAttempts: 100,
      backoff: { baseMs: MAX_DELAY_MS, factor: 10, maxMs: MAX_DELAY_MS },
    });
    expect(config.tokenBudget).toBe(MAX_TOKEN_BUDGET);
    expect(submit({ tokenBudget: MAX_TOKEN_BUDGET })).toMatchObject({ ok: true });
  });

  it('refuses a token budget whose context may not fit in one NATS message, saying why', () => {
    const parsed = submit({ tokenBudget: 10_000_000 });
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.reason).toMatch(/tokenBudget must be at most 100000 tokens: a larger context may not fit in one NATS message/);
  });

  it.each([
    [{ backoff: { baseMs: 200, factor: 2, maxMs: 2 ** 31 } }, /backoff\.maxMs must be at most 2147483647 ms/],
    [{ backoff: { baseMs: 2 ** 40, factor: 2, maxMs: 30_000 } }, /backoff\.baseMs must be at most 2147483647 ms/],
    [{ backoff: { baseMs: 0, factor: 1e308, maxMs: 30_000 } }, /backoff\.factor must be at most 10/],
    [{ maxAttempts: 5_000 }, /maxAttempts must be at most 100/],
  ])('refuses %j: a delay Node cannot wait (or a due time that overflows)', (config, reason) => {
    const parsed = submit(config);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.reason).toMatch(reason);
  });
});
