/** Retention of the embedded store: purgeDataDir removes ended sessions from a data dir, and only them. */
import { access, appendFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Commit } from '../../src/actors/planner.js';
import { isStoreUnavailableError, isValidationError } from '../../src/errors.js';
import { startBusExecutor } from '../../src/executors/busExecutor.js';
import { demoHandler } from '../../src/executors/demoExecutor.js';
import type { ExecutorReport } from '../../src/executors/report.js';
import { FileSnapshotStore } from '../../src/persistence/fileSnapshotStore.js';
import { FileInbox } from '../../src/persistence/inbox.js';
import type { DomainEvent } from '../../src/protocol/events.js';
import { createEmbeddedRuntime, type EmbeddedRuntime } from '../../src/runtime/embeddedRuntime.js';
import { purgeDataDir } from '../../src/runtime/purgeDataDir.js';
import { tempDirs } from '../support/tempDirs.js';

const tempDir = tempDirs('purge');
const HOUR = 3_600_000;
const later = { olderThanMs: HOUR / 2, now: Date.now() + HOUR };
const QUESTION = '- Which format do you want?';
const TASK = '- Summarise the results';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

/** A runtime on `dir` with the demo executor, its inbox where the CLI keeps it. */
async function runtime(dir: string): Promise<{ rt: EmbeddedRuntime; stop: () => Promise<void> }> {
  const rt = await createEmbeddedRuntime({ dataDir: dir, fsync: false });
  const inbox = await FileInbox.open<ExecutorReport>(join(dir, 'executions.log'));
  const stopExecutor = startBusExecutor({ bus: rt.bus, subjects: rt.subjects, handler: demoHandler, inbox, logger: rt.logger });
  return { rt, stop: async () => { await stopExecutor(); await rt.close(); } };
}

function ended(rt: EmbeddedRuntime, sessionId: string): Promise<void> {
  return new Promise((resolve) => {
    rt.planner.onCommit((c: Commit) => {
      if (c.sessionId === sessionId && c.events.some((e) => e.type === 'SessionCompleted')) resolve();
    });
  });
}

const dispatchIds = (events: readonly DomainEvent[]) =>
  events.filter((e) => e.type === 'TaskDispatched').map((e) => (e.data as { dispatchId: string }).dispatchId);

/** A data dir with `done`, `late` (completed, then an input rejected), `cancelled`, `junk` (never started) and `open` (a question waiting). */
async function dataDir(): Promise<string> {
  const dir = await tempDir();
  const { rt, stop } = await runtime(dir);
  const done = ended(rt, 'done');
  await rt.planner.handle('done', { type: 'SubmitInput', text: TASK });
  await done;
  const late = ended(rt, 'late');
  await rt.planner.handle('late', { type: 'SubmitInput', text: TASK });
  await late;
  await rt.planner.handle('late', { type: 'ProvideClarification', taskId: 'none', answer: 'x' });
  await rt.planner.handle('cancelled', { type: 'SubmitInput', text: QUESTION });
  await rt.planner.handle('cancelled', { type: 'CancelSession', reason: 'not needed' });
  await rt.planner.handle('open', { type: 'SubmitInput', text: QUESTION });
  // Never started: its only input was rejected.
  await rt.planner.handle('junk', { type: 'InvalidInput', reason: 'not JSON', inputType: 'SubmitInput' });
  await new FileSnapshotStore(dir).save({ streamId: 'done', version: 3, schema: 1, state: {}, lastEventId: 'x' });
  await stop();
  return dir;
}

describe('purgeDataDir', () => {
  it('removes ended sessions (log entries, snapshot, inbox records), keeps open ones, and a removed id starts afresh', async () => {
    const dir = await dataDir();
    const inboxPath = join(dir, 'executions.log');
    const logBefore = await readFile(join(dir, 'events.log'));
    const dry = await purgeDataDir(dir, { ...later, dryRun: true });
    expect(dry).toEqual({ sessions: ['cancelled', 'done', 'junk', 'late'], entries: 0, snapshots: 0, executions: 0, recent: 0, open: 1, tornTailBytes: 0 });
    expect(await readFile(join(dir, 'events.log'))).toEqual(logBefore);
    expect(await purgeDataDir(dir, { olderThanMs: HOUR })).toMatchObject({ sessions: [], recent: 4, open: 1 });

    const { rt: before, stop: stopBefore } = await runtime(dir);
    const openEvents = (await before.store.readStream('open')).events;
    const openPending = (await before.store.pendingCommands()).filter((c) => c.sessionId === 'open');
    const oldDispatches = dispatchIds((await before.store.readStream('done')).events);
    await stopBefore();
    // A line the purge cannot read is not its to drop (the inbox sets such a tail aside on open).
    await appendFile(inboxPath, 'not json, kept as it is\n');

    const purged = await purgeDataDir(dir, later);
    expect(purged).toMatchObject({ sessions: ['cancelled', 'done', 'junk', 'late'], snapshots: 1, executions: 2, recent: 0, open: 1 });
    expect(purged.entries).toBeGreaterThanOrEqual(6);
    expect(await new FileSnapshotStore(dir).load('done')).toBeUndefined();
    const inbox = (await readFile(inboxPath, 'utf8')).split('\n').filter(Boolean);
    expect(inbox).toEqual(['not json, kept as it is']);
    expect(await purgeDataDir(dir, later)).toEqual({ sessions: [], entries: 0, snapshots: 0, executions: 0, recent: 0, open: 1, tornTailBytes: 0 });

    const { rt, stop } = await runtime(dir);
    cleanups.push(stop);
    expect(await rt.store.listStreams()).toEqual(['open']);
    expect((await rt.store.readStream('open')).events).toEqual(openEvents);
    // The open session's undelivered question is still pending; the removed ones' commands are gone.
    expect(await rt.store.pendingCommands()).toEqual(openPending);
    const again = ended(rt, 'done');
    await rt.planner.handle('done', { type: 'SubmitInput', text: TASK });
    await again;
    const events = (await rt.store.readStream('done')).events;
    expect(events.map((e) => e.sequence)).toEqual(events.map((_, i) => i + 1));
    expect(oldDispatches).not.toContain(dispatchIds(events)[0]);
  });

  it('keeps every other inbox record whole when the file ends in a record whose newline was torn off', async () => {
    const dir = await dataDir();
    const inboxPath = join(dir, 'executions.log');
    const record = (id: string) => JSON.stringify({ id, value: { type: 'TaskCompleted', taskId: 't', dispatchId: id, output: 'ok' } });
    // A kept record, then a removed session's record whose newline never reached the disk.
    await appendFile(inboxPath, `${record('open.r.kept.1')}\n${record('done.r.torn.1')}`);
    await purgeDataDir(dir, later);
    const inbox = await FileInbox.open<ExecutorReport>(inboxPath);
    expect(await inbox.get('open.r.kept.1')).toMatchObject({ dispatchId: 'open.r.kept.1' });
  });

  it('refuses while another process uses the directory, and removes nothing', async () => {
    const dir = await dataDir();
    const { stop } = await runtime(dir);
    cleanups.push(stop);
    const err = await purgeDataDir(dir, later).catch((e: unknown) => e);
    expect(isStoreUnavailableError(err)).toBe(true);
  });

  it('finds nothing in a directory that does not exist, without creating it', async () => {
    const dir = join(await tempDir(), 'missing');
    expect(await purgeDataDir(dir, later)).toEqual({ sessions: [], entries: 0, snapshots: 0, executions: 0, recent: 0, open: 0, tornTailBytes: 0 });
    await expect(access(dir)).rejects.toThrow();
  });

  it('refuses a negative or fractional age with a ValidationError', async () => {
    for (const olderThanMs of [-1, 0.5, Number.NaN]) {
      expect(isValidationError(await purgeDataDir(await tempDir(), { olderThanMs }).catch((e: unknown) => e))).toBe(true);
    }
  });
});
