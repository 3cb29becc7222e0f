/**
 * The checks of the options both executors take: startBusExecutor (in-process bus) and
 * createExecutor (NATS). One place, so the two refuse the same bad options with the same
 * ValidationError; each adds the checks of its own options.
 */
import type { Logger } from 'pino';
import { ValidationError } from '../errors.js';
import { checkLoggerOption } from '../shared/optionChecks.js';
import { checkMaxReportBytes } from './fitReport.js';
import type { TaskHandler } from './report.js';

/** The task kinds an executor can take (Clarification tasks go to the human, never to executors). */
export type ExecutorKind = 'ToolCall' | 'Processing';

const KINDS: readonly ExecutorKind[] = ['ToolCall', 'Processing'];

/** The options every executor takes; checked at run time too, since JavaScript callers are unchecked. */
export interface SharedExecutorOptions {
  handler: TaskHandler;
  kinds: ExecutorKind[];
  maxReportBytes?: number | undefined;
  /** Required by startBusExecutor, optional for createExecutor: checked when given. */
  logger?: Logger | undefined;
}

/**
 * Throws ValidationError (`executor: …`) unless `handler` is a function, `kinds` a non-empty array
 * of known kinds, and `maxReportBytes` and `logger` (if given) a usable limit and a pino-like
 * logger. Returns the kinds, each once: an executor subscribed twice to one kind would answer each
 * command twice.
 */
export function checkSharedOptions(o: SharedExecutorOptions): ExecutorKind[] {
  if (typeof o.handler !== 'function') throw new ValidationError('executor: handler must be a function');
  const kinds = checkKinds(o.kinds);
  checkMaxReportBytes(o.maxReportBytes);
  // Else taken, and a TypeError at the first command's log line, inside the handler's run.
  checkLoggerOption('executor: logger', o.logger);
  return kinds;
}

/** The kinds, each once; ValidationError if there are none or one is unknown. */
function checkKinds(kinds: unknown): ExecutorKind[] {
  if (!Array.isArray(kinds)) throw new ValidationError(`executor: kinds must be an array (ToolCall, Processing), got ${JSON.stringify(kinds)}`);
  const unique = [...new Set<unknown>(kinds)];
  if (unique.length === 0) throw new ValidationError('executor: at least one kind is needed');
  // Plain JavaScript (or the CLI's lowercase spelling) would otherwise subscribe to a subject no
  // command is ever published to, and the executor would take nothing.
  const unknown = unique.filter((k) => !KINDS.includes(k as ExecutorKind));
  if (unknown.length > 0) throw new ValidationError(`executor: unknown kind ${JSON.stringify(unknown[0])} (ToolCall or Processing)`);
  return unique as ExecutorKind[];
}
