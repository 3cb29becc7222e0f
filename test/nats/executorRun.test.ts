import { describe, expect, it } from 'vitest';
import { recordReport } from '../../src/nats/executorRun.js';

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
