/** `jetplan purge` on the data dir (the NATS deployment's is in natsCommands.int.test.ts). */
import { appendFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseAge } from '../../src/cli/commands/purge.js';
import { run, tempDir } from './fakeIo.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => ({ dir, cleanup } = await tempDir()));
afterEach(() => cleanup());

describe('jetplan purge (data dir)', () => {
  it('lists, then removes the ended sessions older than the age; a later replay finds none', async () => {
    expect((await run(['demo', 'Summarise the results.', '--session', 'old', '--data-dir', dir])).code).toBe(0);
    const kept = await run(['purge', '--data-dir', dir, '--older-than', '30d']);
    expect([kept.code, kept.io.stdoutText]).toEqual([0, `purged 0 session(s) (ended, or never started) from ${dir}: 0 log entries, 0 snapshot(s), 0 executor inbox records; kept 1 too recent, 0 still open\n`]);
    const dry = await run(['purge', '--data-dir', dir, '--older-than', '0s', '--dry-run']);
    expect(dry.io.stdoutText).toBe(`old\nwould purge 1 session(s) (ended, or never started) from ${dir}; kept 0 too recent, 0 still open\n`);
    const purged = await run(['purge', '--data-dir', dir, '--older-than', '0s', '--json']);
    expect(purged.code).toBe(0);
    expect(JSON.parse(purged.io.stdoutText)).toMatchObject({ sessions: ['old'], executions: 1, recent: 0, open: 0 });
    const replay = await run(['replay', 'old', '--data-dir', dir]);
    expect([replay.code, replay.io.stderrLines]).toEqual([1, ['jetplan: unknown session old']]);
  });

  it('a dry run changes nothing, not even a torn tail, and says so; the purge sets it aside and says so', async () => {
    expect((await run(['demo', 'Summarise the results.', '--session', 'old', '--data-dir', dir])).code).toBe(0);
    const log = join(dir, 'events.log');
    await appendFile(log, 'GARBAGE');
    const size = (await stat(log)).size;
    const dry = await run(['purge', '--data-dir', dir, '--older-than', '0s', '--dry-run']);
    expect(dry.code).toBe(0);
    expect(dry.io.stderrLines).toEqual([`jetplan: note: the last 7 bytes of ${dir}/events.log are incomplete (being written, or damaged) and were left out`]);
    expect((await stat(log)).size).toBe(size);
    const purged = await run(['purge', '--data-dir', dir, '--older-than', '0s']);
    expect(purged.io.stderrLines).toEqual([`jetplan: note: the last 7 bytes of ${dir}/events.log are incomplete (being written, or damaged) and were set aside in ${dir}/events.log.tail-*`]);
    expect((await readdir(dir)).filter((f) => f.startsWith('events.log.tail-'))).toHaveLength(1);
  });

  it('refuses a data dir that is a file, in one line', async () => {
    const file = join(dir, 'afile');
    await writeFile(file, 'hi');
    const r = await run(['purge', '--data-dir', file, '--older-than', '0s']);
    expect([r.code, r.io.stderrLines]).toEqual([1, [`jetplan: ${file} is not a directory`]]);
  });

  it('reads ages in ms, s, m, h and d, and refuses anything else in one line', async () => {
    expect([parseAge('older-than', '500ms'), parseAge('older-than', '90s'), parseAge('older-than', '45m')]).toEqual([500, 90_000, 2_700_000]);
    expect([parseAge('older-than', '12h'), parseAge('older-than', ' 30d ')]).toEqual([43_200_000, 2_592_000_000]);
    for (const bad of ['', '30', '-1d', '1.5h', '1w', '99999999999999999d']) {
      expect(() => parseAge('older-than', bad)).toThrow(`--older-than expects an age such as 30d, 12h, 45m, 90s or 500ms, got ${JSON.stringify(bad)}`);
    }
    const missing = await run(['purge', '--data-dir', dir]);
    expect([missing.code, missing.io.stderrLines]).toEqual([2, ['jetplan: purge needs --older-than <age> (e.g. 30d); nothing was removed (see jetplan help)']]);
  });
});
