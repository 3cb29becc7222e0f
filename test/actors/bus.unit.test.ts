import { describe, expect, it, vi } from 'vitest';
import { HEADER, subjectMatches, type BusMessage } from '../../src/actors/bus.js';
import { InProcessBus, NoRouteError } from '../../src/actors/inProcessBus.js';

describe('subjectMatches', () => {
  it('matches exact subjects only token for token', () => {
    expect(subjectMatches('a.b.c', 'a.b.c')).toBe(true);
    expect(subjectMatches('a.b.c', 'a.b.d')).toBe(false);
    expect(subjectMatches('a.b', 'a.bb')).toBe(false);
  });

  it('`*` matches exactly one token', () => {
    expect(subjectMatches('a.*.c', 'a.x.c')).toBe(true);
    expect(subjectMatches('a.*', 'a.x')).toBe(true);
    expect(subjectMatches('a.*', 'a')).toBe(false);
    expect(subjectMatches('a.*', 'a.x.y')).toBe(false);
    expect(subjectMatches('*.b', 'z.b')).toBe(true);
  });

  it('`>` matches one or more trailing tokens', () => {
    expect(subjectMatches('a.>', 'a.b')).toBe(true);
    expect(subjectMatches('a.>', 'a.b.c.d')).toBe(true);
    expect(subjectMatches('a.>', 'a')).toBe(false);
    expect(subjectMatches('>', 'anything.at.all')).toBe(true);
    expect(subjectMatches('a.*.>', 'a.b')).toBe(false);
    expect(subjectMatches('a.*.>', 'a.b.c')).toBe(true);
  });

  it('rejects length mismatches', () => {
    expect(subjectMatches('a.b.c', 'a.b')).toBe(false);
    expect(subjectMatches('a.b', 'a.b.c')).toBe(false);
  });
});

describe('InProcessBus', () => {
  it('delivers to every matching subscriber and to no other', async () => {
    const bus = new InProcessBus();
    const got: string[] = [];
    bus.subscribe('x.*', (m) => void got.push(`star:${m.subject}`));
    bus.subscribe('x.>', (m) => void got.push(`gt:${m.subject}`));
    bus.subscribe('x.one', (m) => void got.push(`exact:${m.subject}`));
    bus.subscribe('y.>', (m) => void got.push(`other:${m.subject}`));
    await bus.publish('x.one', { n: 1 });
    expect(got.sort()).toEqual(['exact:x.one', 'gt:x.one', 'star:x.one']);
  });

  it('passes subject, data and headers', async () => {
    const bus = new InProcessBus();
    const seen: BusMessage[] = [];
    bus.subscribe('s', (m) => void seen.push(m));
    await bus.publish('s', { a: [1, 2] }, { [HEADER.type]: 'T', [HEADER.messageId]: 'm1' });
    expect(seen).toEqual([{ subject: 's', data: { a: [1, 2] }, headers: { 'Jetplan-Type': 'T', 'Nats-Msg-Id': 'm1' } }]);
    await bus.publish('s', 1);
    expect(seen[1]!.headers).toEqual({});
  });

  it('never runs a handler in the publisher call stack', async () => {
    const bus = new InProcessBus();
    let ran = false;
    bus.subscribe('s', () => {
      ran = true;
    });
    const p = bus.publish('s', {});
    expect(ran).toBe(false);
    await Promise.resolve();
    await Promise.resolve();
    expect(ran).toBe(false);
    await p;
    expect(ran).toBe(true);
  });

  it('resolves a publish only after every handler has finished', async () => {
    const bus = new InProcessBus();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let finished = false;
    let entered!: () => void;
    const started = new Promise<void>((r) => (entered = r));
    bus.subscribe('s', async () => {
      entered();
      await gate;
      finished = true;
    });
    bus.subscribe('s', () => {});
    let settled = false;
    const p = bus.publish('s', {}).then(() => (settled = true));
    await started;
    await new Promise<void>((r) => setImmediate(r));
    expect(settled).toBe(false);
    release();
    await p;
    expect(finished).toBe(true);
  });

  it('throws NoRouteError when nobody subscribes', async () => {
    const bus = new InProcessBus();
    bus.subscribe('other', () => {});
    const err = await bus.publish('nobody.home', {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoRouteError);
    expect(err).toMatchObject({ name: 'NoRouteError', subject: 'nobody.home', message: 'no subscriber for nobody.home' });
  });

  it('stops delivering after unsubscribe', async () => {
    const bus = new InProcessBus();
    const handler = vi.fn();
    const keep = vi.fn();
    const off = bus.subscribe('s', handler);
    bus.subscribe('s', keep);
    await bus.publish('s', 1);
    off();
    await bus.publish('s', 2);
    expect(handler).toHaveBeenCalledTimes(1);
    expect(keep).toHaveBeenCalledTimes(2);
    const offKeep = bus.subscribe('t', keep);
    offKeep();
    await expect(bus.publish('t', 3)).rejects.toBeInstanceOf(NoRouteError);
  });

  it('rejects the publish when a handler throws or rejects', async () => {
    const bus = new InProcessBus();
    bus.subscribe('sync', () => {
      throw new Error('sync boom');
    });
    bus.subscribe('async', async () => {
      throw new Error('async boom');
    });
    await expect(bus.publish('sync', {})).rejects.toThrow('sync boom');
    await expect(bus.publish('async', {})).rejects.toThrow('async boom');
  });

  it('gives each subscriber its own copy of the data and headers', async () => {
    const bus = new InProcessBus();
    const data = { nested: { n: 1 }, list: [1] };
    const headers = { h: 'v' };
    const seen: BusMessage[] = [];
    bus.subscribe('s', (m) => {
      (m.data as typeof data).nested.n = 99;
      m.headers.h = 'mutated';
      seen.push(m);
    });
    bus.subscribe('s', (m) => void seen.push(m));
    await bus.publish('s', data, headers);
    expect(data).toEqual({ nested: { n: 1 }, list: [1] });
    expect(headers).toEqual({ h: 'v' });
    expect(seen[0]!.data).not.toBe(seen[1]!.data);
    expect((seen[1]!.data as typeof data).nested.n).toBe(1);
    expect(seen[1]!.headers.h).toBe('v');
  });
});
