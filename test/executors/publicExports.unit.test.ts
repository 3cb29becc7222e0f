/**
 * Names the executors' public signatures and docs rely on are exported from the package's entry.
 * The type import fails the typecheck (tsconfig.test.json) if ExecKind is not exported.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as jetplan from '../../src/index.js';
import type { ExecKind } from '../../src/index.js';
import { tempDirs } from '../support/tempDirs.js';

/** Every subject token of an exec kind, so that the type import above is used. */
export const EXEC_KINDS: ExecKind[] = ['toolcall', 'processing'];

const tempDir = tempDirs('exports');

describe('public API of the executors', () => {
  it('exports NoRouteError, what Bus.publish rejects with when nobody subscribes', async () => {
    const err = await new jetplan.InProcessBus().publish('nobody.here', {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(jetplan.NoRouteError);
    expect(err).toMatchObject({ name: 'NoRouteError', subject: 'nobody.here' });
    expect(jetplan.isNoRouteError(err)).toBe(true);
    expect(jetplan.isNoRouteError(new Error('no subscriber for x'))).toBe(false);
  });

  it('exports isExecutorReport, for FileInbox.open to skip records that are not reports', async () => {
    const path = join(await tempDir(), 'executions.log');
    const report = { type: 'TaskCompleted' as const, taskId: 't1', dispatchId: 's1.t1.1', output: 'done' };
    const writer = await jetplan.FileInbox.open<unknown>(path);
    await writer.put('s1.t1.1', report);
    // Last: a bad record before the last would be a CorruptLogError, not a damaged tail to cut.
    await writer.put('s1.t2.1', { not: 'a report' });
    const inbox = await jetplan.FileInbox.open<jetplan.ExecutorReport>(path, { isValue: jetplan.isExecutorReport });
    expect(await inbox.get('s1.t1.1')).toEqual(report);
    expect(await inbox.get('s1.t2.1')).toBeUndefined();
  });

  it('exports DEFAULT_MAX_REPORT_BYTES, the default of maxReportBytes: the planner input limit', () => {
    expect(jetplan.DEFAULT_MAX_REPORT_BYTES).toBe(jetplan.MAX_INPUT_BYTES);
  });
});
