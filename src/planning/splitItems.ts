import { splitSentences } from './sentences.js';

/** Where an item came from: a list entry, a sentence of a paragraph, or a fenced code block. */
export type ItemSource = 'list' | 'paragraph' | 'code';

/** One candidate task before normalization: its raw text and where it came from. */
export interface Item {
  text: string;
  source: ItemSource;
}

// A list marker (bullet, `1.`, `1)`, `(1)`, `a)`, `(a)`), then the item's text. Letters take only
// `)` forms: `a.`/`A.` would turn prose such as "A. Smith wrote…" into a list. Any space may follow
// the marker: text pasted from documents often has a no-break space there.
const LIST_RE = /^([ \t]*)(?:[-*+•‣◦▪]|\d{1,9}[.)]|\(\d{1,9}\)|\(?[a-zA-Z]\))(?:[^\S\r\n]+(.*))?$/u;
const CHECKBOX_RE = /^\[[ xX]\][ \t]+/;
const FENCE_RE = /^[ \t]*(`{3,}|~{3,})(.*)$/;
const HEADING_RE = /^ {0,3}#{1,6}(?:[ \t]|$)/;
const SETEXT_RE = /^ {0,3}=+[ \t]*$/;
const BREAK_RE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE_RE = /^ {0,3}(?:>[ \t]?)+/;

interface OpenList {
  indent: number;
  lines: string[];
}
interface OpenFence {
  marker: string;
  lines: string[];
}

/**
 * Splits markdown-ish text into items, line by line. List entries (nested ones too) are one item
 * each, with indented continuation lines joined by a space; paragraph lines are joined by a space
 * and split into sentences; a fenced code block is one item; headings and rules are dropped. A
 * non-indented plain line after a list entry starts a new paragraph (not CommonMark's lazy
 * continuation): in a plan, text after a list is usually a new step, not the last entry's tail.
 */
export function splitItems(text: string): Item[] {
  const p = new Parser();
  for (const line of text.split(/\r\n|\r|\n/)) p.line(line);
  p.end();
  return p.items;
}

class Parser {
  readonly items: Item[] = [];
  private paragraph: string[] = [];
  private list: OpenList | null = null;
  private fence: OpenFence | null = null;

  line(raw: string): void {
    if (this.fence) return this.fenceLine(this.fence, raw);
    const line = raw.replace(QUOTE_RE, '');
    const fence = FENCE_RE.exec(line);
    // A backtick fence's info string holds no backticks; "```npm test```" is an inline span.
    if (fence?.[1] && !(fence[1].startsWith('`') && fence[2]?.includes('`'))) {
      this.flush();
      this.fence = { marker: fence[1], lines: [] };
    } else if (/^\s*$/u.test(line) || HEADING_RE.test(line) || BREAK_RE.test(line)) {
      this.flush();
    } else if (SETEXT_RE.test(line)) {
      // `Title` over `=====` is a heading: the paragraph above it is not a task.
      this.paragraph = [];
      this.flush();
    } else {
      this.textLine(line);
    }
  }

  end(): void {
    // An unclosed fence runs to the end of the input, as in CommonMark.
    if (this.fence) this.closeFence(this.fence);
    this.flush();
  }

  private textLine(line: string): void {
    const entry = LIST_RE.exec(line);
    if (entry) {
      this.flush();
      const body = (entry[2] ?? '').replace(CHECKBOX_RE, '');
      this.list = { indent: indentOf(entry[1] ?? ''), lines: [body] };
    } else if (this.list && indentOf(line) > this.list.indent) {
      this.list.lines.push(line);
    } else {
      this.flushList();
      this.paragraph.push(line);
    }
  }

  private fenceLine(fence: OpenFence, raw: string): void {
    const close = FENCE_RE.exec(raw.replace(QUOTE_RE, ''));
    // Closed by a bare run of the same character, at least as long as the opening one.
    const marker = close?.[1] ?? '';
    const closes = marker[0] === fence.marker[0] && marker.length >= fence.marker.length;
    if (closes && close?.[2]?.trim() === '') this.closeFence(fence);
    else fence.lines.push(raw);
  }

  private closeFence(fence: OpenFence): void {
    const code = dedent(fence.lines);
    this.fence = null;
    if (code !== '') this.items.push({ text: code, source: 'code' });
  }

  private flush(): void {
    this.flushList();
    if (this.paragraph.length === 0) return;
    for (const s of splitSentences(this.paragraph.join(' '))) this.items.push({ text: s, source: 'paragraph' });
    this.paragraph = [];
  }

  private flushList(): void {
    if (!this.list) return;
    this.items.push({ text: this.list.lines.join(' '), source: 'list' });
    this.list = null;
  }
}

/** Width of leading whitespace, a tab counting as four columns. */
function indentOf(line: string): number {
  const lead = /^[ \t]*/.exec(line)?.[0] ?? '';
  return lead.replace(/\t/g, '    ').length;
}

/**
 * Code lines without trailing spaces, leading/trailing blank lines, or the leading whitespace they
 * all share (a fence inside a list is indented). Other whitespace stays: tabs matter in a Makefile.
 */
function dedent(lines: string[]): string {
  const trimmed = lines.map((l) => l.replace(/\s+$/u, ''));
  while (trimmed[0] === '') trimmed.shift();
  while (trimmed.at(-1) === '') trimmed.pop();
  let common: string | null = null;
  for (const l of trimmed) {
    if (l === '') continue;
    const lead = /^[ \t]*/.exec(l)?.[0] ?? '';
    common = common === null ? lead : sharedPrefix(common, lead);
  }
  const cut = common?.length ?? 0;
  return trimmed.map((l) => l.slice(cut)).join('\n');
}

function sharedPrefix(a: string, b: string): string {
  let n = 0;
  while (n < a.length && a[n] === b[n]) n++;
  return a.slice(0, n);
}
