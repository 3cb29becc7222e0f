import { describe, expect, it } from 'vitest';
import {
  bpeTokenCounter,
  countItemTokens,
  createRelevanceCompactor,
  SLOT_PRIORITY,
  type CompactionRequest,
  type TokenCounter,
} from '../../src/compaction/index.js';
import { chunkText } from '../../src/compaction/chunker.js';
import { SUMMARY_ID } from '../../src/compaction/summary.js';
import type { ContextItem } from '../../src/protocol/domain.js';

const item = (id: string, slot: ContextItem['slot'], text: string, pinned = false): ContextItem => ({ id, slot, text, pinned });
const total = (items: readonly ContextItem[]): number => countItemTokens(items, bpeTokenCounter);
const SYSTEM = item('sys', 'system', 'You are jetplan, a careful planner.');
const HOTEL = 'Hotel search found three hotels near the Louvre museum in Paris with rooms available next week.';
const STOCKS = 'Stock prices rose sharply today amid optimism about quarterly earnings and interest rates.';
const WEATHER = 'The weather in Oslo will be cold and rainy, with strong winds along the fjord tonight.';

describe('bpeTokenCounter', () => {
  it('counts with the real cl100k_base tables', () => {
    expect(bpeTokenCounter.count('hello world')).toBe(2);
    expect(bpeTokenCounter.count('')).toBe(0);
    expect(bpeTokenCounter.count('Привет, мир! 你好，世界')).toBeGreaterThan(0);
  });

  it('is deterministic and counts special-token strings as plain text', () => {
    const text = 'before <|endoftext|> after';
    expect(bpeTokenCounter.count(text)).toBe(bpeTokenCounter.count(text));
    expect(bpeTokenCounter.count(text)).toBeGreaterThan(3);
  });
});

describe('SLOT_PRIORITY', () => {
  it('orders system > answer > summary > input > result', () => {
    const p = SLOT_PRIORITY;
    expect(p.system > p.answer && p.answer > p.summary && p.summary > p.input && p.input > p.result).toBe(true);
  });
});

describe('chunkText', () => {
  it('partitions text into chunks that concatenate back to it', () => {
    const text = `${HOTEL} ${STOCKS}\n\n${WEATHER}\n\n\n${'word '.repeat(200)}${'長'.repeat(300)}`;
    const chunks = chunkText(text, bpeTokenCounter, 16);
    expect(chunks.map((c) => c.text).join('')).toBe(text);
    expect(chunks.length).toBeGreaterThan(5);
    for (const c of chunks) expect(c.tokens).toBeLessThanOrEqual(16);
  });

  it('keeps leading whitespace attached and returns nothing for empty text', () => {
    expect(chunkText('', bpeTokenCounter, 8)).toEqual([]);
    const chunks = chunkText(`\n\n${HOTEL}\n\n${STOCKS}`, bpeTokenCounter, 8);
    expect(chunks[0]?.text.startsWith('\n\nHotel')).toBe(true);
    expect(chunkText('   ', bpeTokenCounter, 8).map((c) => c.text)).toEqual(['   ']);
  });

  it('makes no chunk of whitespace alone: a leading blank line goes with the chunk after it, whatever its size', () => {
    const words = 'alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu'.split(' ');
    for (let n = 1; n <= words.length; n++) {
      const para = `${words.slice(0, n).join(' ')}.`;
      const text = `\n\n${para}\n\n${para}`;
      const chunks = chunkText(text, bpeTokenCounter, 8);
      expect(chunks.map((c) => c.text).join('')).toBe(text);
      for (const c of chunks) expect(c.text.trim(), `${n} words: ${JSON.stringify(chunks.map((x) => x.text))}`).not.toBe('');
    }
  });
});

describe('createRelevanceCompactor', () => {
  const compactor = createRelevanceCompactor();

  it('returns items unchanged when under budget', () => {
    const items = [SYSTEM, item('r1', 'result', HOTEL)];
    const result = compactor.compact({ items, budget: 1000, openTasks: [] });
    expect(result.items).toEqual(items);
    expect(result.folded).toEqual([]);
    expect(result.tokensAfter).toBe(result.tokensBefore);
    expect(result.tokensBefore).toBe(total(items));
  });

  it('returns items unchanged, folding nothing, when they total exactly the budget', () => {
    // Enough context (well over 128 tokens) that a compaction would keep room for a summary.
    const items = [SYSTEM, ...Array.from({ length: 6 }, (_, i) => item(`r${i}`, 'result', `${i % 2 ? HOTEL : STOCKS} ${i % 2 ? STOCKS : HOTEL}`))];
    const budget = total(items);
    expect(budget).toBeGreaterThan(200);
    const result = compactor.compact({ items, budget, openTasks: ['Book a hotel in Paris'] });
    expect(result).toEqual({ items, folded: [], tokensBefore: budget, tokensAfter: budget });
  });

  it('keeps chunks relevant to open tasks over irrelevant, more recent ones', () => {
    const items = [SYSTEM, item('hotel', 'result', HOTEL), item('stocks', 'result', STOCKS), item('weather', 'result', WEATHER)];
    const budget = total([SYSTEM, items[1] as ContextItem]) + 2;
    const result = compactor.compact({ items, budget, openTasks: ['Book a hotel near the Louvre in Paris'] });
    expect(result.items.find((i) => i.id === 'hotel')?.text).toBe(HOTEL);
    expect(result.folded).toEqual(['stocks', 'weather']);
    expect(total(result.items)).toBeLessThanOrEqual(budget);
  });

  it('is Unicode-aware: matches CJK tasks by character bigrams', () => {
    const relevant = '东京的酒店预订已经确认，入住时间是下午三点。';
    const other = '今天股票市场大幅上涨，投资者情绪乐观向上。';
    const items = [item('a', 'result', relevant), item('b', 'result', other)];
    const budget = bpeTokenCounter.count(relevant);
    const result = compactor.compact({ items, budget, openTasks: ['确认东京酒店预订'] });
    expect(result.items.map((i) => i.id)).toEqual(['a']);
  });

  it('breaks ties by recency when nothing is relevant', () => {
    const items = [item('old', 'result', STOCKS), item('new', 'result', WEATHER)];
    const budget = bpeTokenCounter.count(WEATHER) + 1;
    const result = compactor.compact({ items, budget, openTasks: ['unrelated task about gardening'] });
    expect(result.items.map((i) => i.id)).toEqual(['new']);
    expect(result.folded).toEqual(['old']);
  });

  it('keeps pinned items unchanged and folds the rest into a counted summary', () => {
    const constraint = item('c1', 'answer', 'The total budget must stay under 1000 EUR.', true);
    const noise = Array.from({ length: 8 }, (_, k) => item(`r${k}`, 'result', `${STOCKS} ${WEATHER} Entry ${k}.`));
    const items = [SYSTEM, constraint, ...noise];
    const budget = 200;
    const result = compactor.compact({ items, budget, openTasks: [] });
    expect(result.items[0]).toBe(SYSTEM);
    expect(result.items).toContain(constraint);
    const summaries = result.items.filter((i) => i.id === SUMMARY_ID);
    expect(summaries).toHaveLength(1);
    expect(summaries[0]?.slot).toBe('summary');
    expect(summaries[0]?.text).toMatch(/^Summary of folded context:\n- r\d+: /);
    expect(result.items[1]?.id).toBe(SUMMARY_ID);
    expect(result.tokensAfter).toBe(total(result.items));
    expect(result.tokensAfter).toBeLessThanOrEqual(budget);
    expect(result.tokensBefore).toBe(total(items));
    expect(result.folded).not.toContain('c1');
  });

  it('keeps a partially kept item under its id with elision markers', () => {
    const long = Array.from({ length: 12 }, (_, k) => `Sentence ${k} talks about ${k === 5 ? 'the Louvre hotel booking' : 'stock markets'}.`).join(' ');
    const items = [item('long', 'result', long)];
    const fine = createRelevanceCompactor({ chunkTokens: 12 });
    const result = fine.compact({ items, budget: 40, openTasks: ['Louvre hotel booking'] });
    const kept = result.items.find((i) => i.id === 'long');
    expect(kept?.text).toContain('Louvre hotel booking');
    expect(kept?.text).toContain('…');
    expect(result.folded).toEqual(['long']);
    expect(total(result.items)).toBeLessThanOrEqual(40);
  });

  it('replaces a previous summary, carrying its lines forward', () => {
    const old = item(SUMMARY_ID, 'summary', 'Summary of folded context:\n- r0: earlier findings about trains');
    const items = [SYSTEM, old, ...Array.from({ length: 4 }, (_, k) => item(`r${k + 1}`, 'result', `${STOCKS} ${WEATHER} ${k}`))];
    const result = compactor.compact({ items, budget: 160, openTasks: [] });
    const summaries = result.items.filter((i) => i.slot === 'summary');
    expect(summaries).toHaveLength(1);
    expect(summaries[0]?.text).toContain('earlier findings about trains');
    expect(summaries[0]?.text).toMatch(/- r\d+: Stock prices/);
    expect(result.folded).toContain(SUMMARY_ID);
    expect(result.tokensBefore).toBeGreaterThan(160);
    expect(result.tokensAfter).toBeLessThanOrEqual(160);
  });

  it('does not emit a second item with the summary id when a pinned item owns it', () => {
    const pinnedSummary = item(SUMMARY_ID, 'summary', 'Key decision: use the train.', true);
    const items = [pinnedSummary, item('r1', 'result', STOCKS), item('r2', 'result', WEATHER)];
    const budget = total([pinnedSummary]) + 25;
    const result = compactor.compact({ items, budget, openTasks: [] });
    expect(result.items.filter((i) => i.id === SUMMARY_ID)).toEqual([pinnedSummary]);
    expect(result.tokensAfter).toBeLessThanOrEqual(budget);
  });

  it('is deterministic', () => {
    const request: CompactionRequest = {
      items: [SYSTEM, item('a', 'input', HOTEL), item('b', 'result', STOCKS), item('c', 'answer', WEATHER)],
      budget: 40,
      openTasks: ['hotel in Paris'],
    };
    expect(compactor.compact(request)).toEqual(compactor.compact(structuredClone(request)));
  });

  it('drops the system prompt when the budget is smaller than it, keeping smaller pinned items', () => {
    const small = item('c1', 'answer', 'Use trains.', true);
    const items = [SYSTEM, small, item('r', 'result', STOCKS)];
    const budget = bpeTokenCounter.count(SYSTEM.text) - 1;
    const result = compactor.compact({ items, budget, openTasks: [] });
    expect(result.items.map((i) => i.id)).not.toContain('sys');
    expect(result.items).toContain(small);
    expect(result.folded).toContain('sys');
    expect(result.tokensAfter).toBeLessThanOrEqual(budget);
    expect(compactor.compact({ items, budget: 0, openTasks: [] }).items).toEqual([]);
  });

  it('keeps the newest pinned answers when not all fit: the running task asked for the latest', () => {
    const answers = ['Use trains to Oslo.', 'Book the hotel near the Louvre.', 'Pay with the company card.'].map((text, i) => item(`a${i}`, 'answer', text, true));
    const items = [SYSTEM, ...answers];
    const budget = total([SYSTEM, answers[1]!, answers[2]!]);
    const result = compactor.compact({ items, budget, openTasks: [] });
    expect(result.items.map((i) => i.id)).toEqual(['sys', 'a1', 'a2']); // in their order, the oldest folded
    expect(result.folded).toContain('a0');
  });

  it('keeps empty items, which cost nothing', () => {
    const items = [item('empty', 'input', ''), item('r', 'result', STOCKS)];
    const result = compactor.compact({ items, budget: 5, openTasks: [] });
    expect(result.items[0]).toEqual(items[0]);
    expect(result.tokensAfter).toBeLessThanOrEqual(5);
  });

  it('accepts a custom counter and weights', () => {
    const chars: TokenCounter = { count: (text) => Array.from(text).length };
    const custom = createRelevanceCompactor({ counter: chars, recencyWeight: 0, relevanceWeight: 1, chunkTokens: 20 });
    const items = [item('hotel', 'result', HOTEL), item('stocks', 'result', STOCKS)];
    const result = custom.compact({ items, budget: HOTEL.length, openTasks: ['Paris hotel'] });
    expect(result.items.map((i) => i.id)).toContain('hotel');
    expect(countItemTokens(result.items, chars)).toBeLessThanOrEqual(HOTEL.length);
  });

  it('rejects invalid options and budgets', () => {
    expect(() => createRelevanceCompactor({ chunkTokens: 0 })).toThrow(RangeError);
    expect(() => createRelevanceCompactor({ chunkTokens: 1.5 })).toThrow(RangeError);
    expect(() => createRelevanceCompactor({ recencyWeight: -1 })).toThrow(RangeError);
    expect(() => createRelevanceCompactor({ relevanceWeight: Number.NaN })).toThrow(RangeError);
    expect(() => compactor.compact({ items: [], budget: -1, openTasks: [] })).toThrow(RangeError);
    expect(() => compactor.compact({ items: [], budget: Number.NaN, openTasks: [] })).toThrow(RangeError);
  });
});
