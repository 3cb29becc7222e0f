import { tempDirs } from '../support/tempDirs.js';
import { appendFile, open, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { isCorruptLogError } from '../../src/errors.js';
import { FileInbox, MemoryInbox, type Inbox } from '../../src/persistence/inbox.js';

const tempDir = tempDirs('inbox');

type Value = { n: number; tags: string[] };

const backends: Array<[string, () => Promise<Inbox<Value>>]> = [
  ['MemoryInbox', async () => new MemoryInbox<Value>()],
  ['FileInbox', async () => FileInbox.open<Value>(join(await tempDir(), 'inbox.jsonl'))],
];

describe.each(backends)('%s', (_name, open) => {
  it('returns undefined for an unknown id and the value put for a known one', async () => {
    const inbox = await open();
    expect(await inbox.get('a')).toBeUndefined();
    await inbox.put('a', { n: 1, tags: ['x'] });
    await inbox.put('b', { n: 2, tags: [] });
    expect(await inbox.get('a')).toEqual({ n: 1, tags: ['x'] });
    expect(await inbox.get('b')).toEqual({ n: 2, tags: [] });
  });

  it('a later put for the same id replaces the value', async () => {
    const inbox = await open();
    await inbox.put('a', { n: 1, tags: [] });
    await inbox.put('a', { n: 2, tags: [] });
    expect(await inbox.get('a')).toEqual({ n: 2, tags: [] });
  });
});

describe('MemoryInbox', () => {
  it('keeps its own copy of a value', async () => {
    const inbox = new MemoryInbox<Value>();
    const value = { n: 1, tags: ['x'] };
    await inbox.put('a', value);
    value.tags.push('mutated');
    expect(await inbox.get('a')).toEqual({ n: 1, tags: ['x'] });
  });
});

describe('FileInbox', () => {
  it('persists across reopen, in insertion order', async () => {
    const path = join(await tempDir(), 'nested', 'dir', 'inbox.jsonl');
    const first = await FileInbox.open<Value>(path);
    await first.put('a', { n: 1, tags: ['ü 🚀'] });
    await first.put('b', { n: 2, tags: [] });
    await first.put('a', { n: 3, tags: [] });
    const reopened = await FileInbox.open<Value>(path);
    expect(await reopened.get('a')).toEqual({ n: 3, tags: [] });
    expect(await reopened.get('b')).toEqual({ n: 2, tags: [] });
    expect(reopened.all()).toEqual([
      ['a', { n: 3, tags: [] }],
      ['b', { n: 2, tags: [] }],
    ]);
  });

  it('opens an empty inbox when the file does not exist yet', async () => {
    const inbox = await FileInbox.open<Value>(join(await tempDir(), 'inbox.jsonl'));
    expect(inbox.all()).toEqual([]);
  });

  it('cuts a torn last line, and later puts survive a reopen', async () => {
    const path = join(await tempDir(), 'inbox.jsonl');
    const first = await FileInbox.open<Value>(path);
    await first.put('a', { n: 1, tags: [] });
    // A crash in the middle of writing the next put (multi-byte text, to check byte lengths).
    await appendFile(path, '{"id":"b","value":{"n":2,"tags":["ü');
    const second = await FileInbox.open<Value>(path);
    expect(await second.get('b')).toBeUndefined();
    expect(await readFile(path, 'utf8')).toBe('{"id":"a","value":{"n":1,"tags":[]}}\n');
    expect((await readdir(dirname(path))).filter((f) => f.startsWith('inbox.jsonl.tail-'))).toHaveLength(1);
    await second.put('c', { n: 3, tags: ['é'] });
    const third = await FileInbox.open<Value>(path);
    expect(third.all()).toEqual([
      ['a', { n: 1, tags: [] }],
      ['c', { n: 3, tags: ['é'] }],
    ]);
  });

  it('cuts a damaged last line, keeps its bytes beside the file, and later puts survive a reopen', async () => {
    const dir = await tempDir();
    const path = join(dir, 'executions.log');
    await writeFile(path, '{"id":"a","value":{"n":1,"tags":[]}}\n{"id":"b","val\n');
    const inbox = await FileInbox.open<Value>(path);
    expect(inbox.all()).toEqual([['a', { n: 1, tags: [] }]]);
    expect(await readFile(path, 'utf8')).toBe('{"id":"a","value":{"n":1,"tags":[]}}\n');
    const kept = (await readdir(dir)).filter((f) => f !== 'executions.log');
    expect(kept).toEqual([expect.stringMatching(/^executions\.log\.tail-37-\d+$/)]);
    expect(await readFile(join(dir, kept[0]!), 'utf8')).toBe('{"id":"b","val\n');
    await inbox.put('c', { n: 3, tags: [] });
    expect((await FileInbox.open<Value>(path)).all()).toEqual([
      ['a', { n: 1, tags: [] }],
      ['c', { n: 3, tags: [] }],
    ]);
  });

  it('a damaged line before the last is one clear error naming the file and line', async () => {
    const path = join(await tempDir(), 'executions.log');
    const text = '{"id":"a","value":{"n":1,"tags":[]}}\n\nnot json\n{"id":"c","value":{"n":3,"tags":[]}}\n';
    await writeFile(path, text);
    const err = await FileInbox.open<Value>(path).catch((e: unknown) => e);
    expect(isCorruptLogError(err)).toBe(true);
    expect((err as Error).message).toBe(`${path} line 3 is not a valid record; restore the file from a backup or delete that line`);
    expect(await readFile(path, 'utf8')).toBe(text); // untouched
  });

  it('a line that is JSON but not a record counts as damaged', async () => {
    const path = join(await tempDir(), 'executions.log');
    await writeFile(path, '[1]\n{"id":"a","value":{"n":1,"tags":[]}}\n');
    await expect(FileInbox.open<Value>(path)).rejects.toThrow(`${path} line 1 is not a valid record`);
  });

  it('with isValue, a record whose value fails it counts as damaged (the demo executor: not a report)', async () => {
    const path = join(await tempDir(), 'executions.log');
    const isValue = (v: unknown) => typeof (v as { n?: unknown }).n === 'number';
    await writeFile(path, '{"id":"a","value":{"type":"bogus"}}\n{"id":"b","value":{"n":2,"tags":[]}}\n');
    await expect(FileInbox.open<Value>(path, { isValue })).rejects.toThrow(`${path} line 1 is not a valid record`);
    // As the last line it is cut (kept beside the file), as a torn one is.
    await writeFile(path, '{"id":"b","value":{"n":2,"tags":[]}}\n{"id":"a","value":{"type":"bogus"}}\n');
    const inbox = await FileInbox.open<Value>(path, { isValue });
    expect(await inbox.get('a')).toBeUndefined();
    expect(await inbox.get('b')).toEqual({ n: 2, tags: [] });
  });

  it('fsyncs the directory after creating the file', async () => {
    const dir = await tempDir();
    const probe = await open(join(dir, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { sync: () => Promise<void> };
    await probe.close();
    const spy = vi.spyOn(proto, 'sync');
    try {
      await FileInbox.open<Value>(join(dir, 'new', 'inbox.jsonl'));
      expect(spy).toHaveBeenCalled();
    } finally {
      spy.mockRestore();
    }
  });

  it('a file holding only a torn line opens empty', async () => {
    const path = join(await tempDir(), 'inbox.jsonl');
    await writeFile(path, '{"id":"x"');
    const inbox = await FileInbox.open<Value>(path);
    expect(inbox.all()).toEqual([]);
    await inbox.put('y', { n: 1, tags: [] });
    expect((await FileInbox.open<Value>(path)).all()).toEqual([['y', { n: 1, tags: [] }]]);
  });

  it('fails to open when the path cannot be read', async () => {
    const dir = await tempDir();
    // A directory where the file should be: not ENOENT, so the error surfaces.
    await expect(FileInbox.open(dir)).rejects.toMatchObject({ code: 'EISDIR' });
  });
});
