import { ValidationError } from '../errors.js';
import type { Attachment, PlannedTask } from '../protocol/domain.js';
import { classify } from './classify.js';
import { splitItems, type Item } from './splitItems.js';
import { findUrls, fnv1a32 } from './textSpans.js';

/** The largest input `planText` accepts, in UTF-8 bytes (64 KiB). */
export const MAX_INPUT_BYTES = 64 * 1024;
/** How many tasks `planText` produces at most unless `maxTasks` says otherwise. */
export const DEFAULT_MAX_TASKS = 200;

/** Options for {@link planText}. */
export interface PlanTextOptions {
  /** How many tasks the session already has; ids continue after it (default 0, so the first is `t1-…`). */
  startIndex?: number;
  /** The most tasks the input may yield (default 200); more is a `ValidationError`. */
  maxTasks?: number;
}

const encoder = new TextEncoder();

/**
 * Plans free text into tasks. Markdown list entries (nested ones too) are one task each, a fenced
 * code block is one `ToolCall` task, headings are skipped, and other text is split into sentences.
 * Each task gets its http(s) URLs as attachments, a kind (see `classify`), and the id
 * `t<startIndex + position>-<FNV-1a of the description>`. Pure and deterministic: the same text and
 * options always give the same tasks and ids.
 *
 * @throws ValidationError when the input is not a string, is over 64 KiB, yields no task (empty,
 * whitespace, only headings or punctuation), or yields more than `maxTasks` tasks; or when an
 * option is not a non-negative (`startIndex`) or positive (`maxTasks`) integer.
 */
export function planText(text: string, options: PlanTextOptions = {}): PlannedTask[] {
  const { startIndex = 0, maxTasks = DEFAULT_MAX_TASKS } = options;
  checkOptions(startIndex, maxTasks);
  checkInput(text);
  // NFC first, so that the same words typed with combining accents get the same description and id.
  const items = splitItems(text.normalize('NFC')).map(normalize).filter(isUsable);
  if (items.length === 0) {
    throw new ValidationError('input has no plannable text: no task found (only headings, punctuation or symbols)');
  }
  if (items.length > maxTasks) {
    throw new ValidationError(`input yields ${items.length} tasks, more than the limit of ${maxTasks} (maxTasks)`);
  }
  return items.map((item, i) => ({
    id: `t${startIndex + i + 1}-${fnv1a32(item.text)}`,
    description: item.text,
    kind: classify(item.text, item.source),
    attachments: attachmentsOf(item.text),
  }));
}

function checkOptions(startIndex: number, maxTasks: number): void {
  if (!Number.isSafeInteger(startIndex) || startIndex < 0) {
    throw new ValidationError(`startIndex must be a non-negative integer, got ${String(startIndex)}`);
  }
  if (!Number.isSafeInteger(maxTasks) || maxTasks < 1) {
    throw new ValidationError(`maxTasks must be a positive integer, got ${String(maxTasks)}`);
  }
}

function checkInput(text: unknown): asserts text is string {
  // Callers from JavaScript or JSON can hand anything in; say so rather than crash on `.split`.
  if (typeof text !== 'string') throw new ValidationError(`input must be a string, got ${typeof text}`);
  // A UTF-16 unit is at least one UTF-8 byte, so the cheap length check rules out huge strings before
  // encoding them to count bytes.
  const bytes = text.length > MAX_INPUT_BYTES ? text.length : encoder.encode(text).length;
  if (bytes > MAX_INPUT_BYTES) {
    throw new ValidationError(`input is too long: more than ${MAX_INPUT_BYTES} bytes (64 KiB)`);
  }
  if (text.trim() === '') throw new ValidationError('input has no plannable text: it is empty or whitespace only');
}

/** Prose gets trimmed with whitespace runs collapsed; code keeps its lines and indentation. */
function normalize(item: Item): Item {
  return item.source === 'code' ? item : { ...item, text: item.text.replace(/\s+/gu, ' ').trim() };
}

/** An item is a task if it has a letter or digit: "…", "---" or a lone emoji is not. */
function isUsable(item: Item): boolean {
  return item.source === 'code' ? item.text !== '' : /[\p{L}\p{N}]/u.test(item.text);
}

/** The distinct URLs of a description, in order of first appearance. */
function attachmentsOf(description: string): Attachment[] {
  const urls = [...new Set(findUrls(description).map((u) => u.url))];
  return urls.map((url) => ({ kind: 'url', url }));
}
