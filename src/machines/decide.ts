import { isValidationError } from '../errors.js';
import { PlannerConfig, type ContextItem, type PlannedTask } from '../protocol/domain.js';
import { EVENT_SCHEMA_VERSION, type DomainEvent, type EventData, type EventType } from '../protocol/events.js';
import type { PlannerCommand } from '../protocol/commands.js';
import type { InputMeta, SessionInput } from '../protocol/inputs.js';
import { fnv1a32 } from '../planning/textSpans.js';
import type { CompactionRequest, CompactionResult, Compactor } from '../compaction/compactor.js';
import type { z } from 'zod';
import { evolve, serializeState, step, type SessionState } from './sessionState.js';
import { currentTask, dispatchIdFor, phaseOf, statusOf, taskView } from './sessionQueries.js';
import { executeTaskFor, renderContext } from './sessionMachine.js';

/** What the decider needs besides state and input; all pure. */
export interface DecideDeps {
  /**
   * Plans text into tasks whose ids start after `startIndex` tasks. Throws ValidationError for text
   * it cannot plan (the input is rejected); any other error fails the decision, which is retried.
   */
  plan(text: string, startIndex: number): PlannedTask[];
  compactor: Compactor;
  /** Counts tokens as the compactor does (summed per item); decides whether to compact. */
  countTokens(text: string): number;
  /**
   * The largest ExecuteTask body (UTF-8 bytes of its JSON) a dispatch may carry: its context is
   * compacted further until it fits, whatever the token budget allows (a token can take up to
   * ~11 bytes of JSON). The NATS service sets it from the stream's message limit; unset, no limit.
   */
  maxCommandBytes?: number;
}

/**
 * What the decider accepts: a valid input, or one that failed validation where its bytes entered
 * (bad JSON, schema violation, oversized), which is recorded as InputRejected and nothing else.
 */
export type PlannerInput = SessionInput | { type: 'InvalidInput'; reason: string; inputType?: string };

/** The decider's output: the events to append, the state after them, the commands they emit. */
export interface Decision {
  events: DomainEvent[];
  state: SessionState;
  commands: PlannerCommand[];
}

/** Builds events with envelopes from the input's meta and folds each one as it is made. */
class Recorder {
  readonly events: DomainEvent[] = [];
  readonly commands: PlannerCommand[] = [];
  constructor(
    public state: SessionState,
    readonly input: PlannerInput,
    readonly meta: InputMeta,
  ) {}

  emit<T extends EventType>(type: T, data: z.infer<(typeof EventData)[T]>): void {
    const sequence = this.state.version + 1;
    const event = {
      // Deterministic: the same input at the same position yields the same id, so a retried
      // append is deduplicated by the store, while a different input there conflicts.
      id: `${this.meta.messageId}/${sequence}`,
      type,
      version: EVENT_SCHEMA_VERSION,
      sessionId: this.state.sessionId,
      sequence,
      timestamp: this.meta.now,
      causationId: this.meta.messageId,
      correlationId: this.meta.correlationId ?? this.state.sessionId,
      ...(this.meta.streamSequence === undefined ? {} : { inputSequence: this.meta.streamSequence }),
      data,
    } as DomainEvent;
    const result = step(this.state, event);
    this.state = result.state;
    this.events.push(event);
    this.commands.push(...result.commands);
  }

  reject(reason: string): void {
    const { messageId, streamSequence } = this.meta;
    const inputType = this.input.type === 'InvalidInput' ? this.input.inputType : this.input.type;
    this.emit('InputRejected', {
      reason,
      ...(inputType ? { inputType } : {}),
      messageId,
      ...(streamSequence ? { streamSequence } : {}),
    });
  }
}

/**
 * decide: the events an input causes in a session, computed purely from its state. An input the
 * session has already processed (its id is in the inbox window) changes nothing. Either way the
 * session is then advanced to its next resting point (dispatch, question, completion), so a
 * session whose last append was cut short resumes on any input.
 */
export function decide(state: SessionState, input: PlannerInput, meta: InputMeta, deps: DecideDeps): Decision {
  const processed = isProcessed(state, meta);
  if (processed) {
    const rest = finishCutShort(state, input, meta, deps);
    if (rest) return withCopyRecorded(rest, input, meta);
  }
  const rec = new Recorder(state, input, meta);
  if (!processed) handleInput(rec, deps);
  else if (isUnrecordedCopy(state, meta)) recordCopy(rec);
  advance(rec, deps);
  return { events: rec.events, state: rec.state, commands: rec.commands };
}

/**
 * Whether the session has processed the input already: its message id is in the inbox window, or
 * its stream sequence is at or below that of every input the window remembers (a redelivery
 * however old, e.g. when the durable consumer is created again and delivers the stream from its
 * start). An input above that floor and not in the window was never applied, even if a later one
 * was: it is applied now rather than dropped.
 */
export function isProcessed(state: SessionState, meta: Pick<InputMeta, 'messageId' | 'streamSequence'>): boolean {
  if (meta.streamSequence !== undefined && meta.streamSequence <= state.inputSequenceFloor) return true;
  return state.recentInputs.includes(meta.messageId);
}

/**
 * Whether a processed input is a copy stored under a stream sequence the session has not recorded:
 * its message id is in the window, but the broker stored it again (republished after the duplicate
 * window). Unrecorded, that sequence would look new once the id leaves the window, and a redelivery
 * from the stream's start would apply the copy a second time. An ended session needs no record:
 * it rejects every input, so a copy can change nothing there.
 */
function isUnrecordedCopy(state: SessionState, meta: InputMeta): boolean {
  const seq = meta.streamSequence;
  if (seq === undefined || seq <= state.inputSequenceFloor || state.recentSequences.includes(seq)) return false;
  const status = statusOf(state);
  return status === 'idle' || status === 'active';
}

function recordCopy(rec: Recorder): void {
  const { messageId, streamSequence } = rec.meta;
  // The first entry of the id: later ones are copies recorded before this one.
  const at = rec.state.recentInputs.indexOf(messageId);
  const applied = rec.state.recentSequences[at] ?? 0;
  rec.emit('InputRepeated', { messageId, streamSequence: streamSequence!, ...(applied > 0 ? { appliedSequence: applied } : {}) });
}

/** A finished decision, then the record of the copy that finished it if that copy is unrecorded. */
function withCopyRecorded(decision: Decision, input: PlannerInput, meta: InputMeta): Decision {
  if (!isUnrecordedCopy(decision.state, meta)) return decision;
  const rec = new Recorder(decision.state, input, meta);
  recordCopy(rec);
  return { events: [...decision.events, ...rec.events], state: rec.state, commands: [...decision.commands, ...rec.commands] };
}

/**
 * Whether the session rests: no dispatch, question or completion is due at `now`. Every whole
 * decision leaves its session so (decide advances it to its next resting point); a decision whose
 * append was cut short may not, and then the input whose events end the log must be decided again
 * before any later one (a new leader holds the session behind it).
 */
export function isAtRest(state: SessionState, now: number, deps: DecideDeps): boolean {
  // A final failure is followed by SessionFailed in the same decision: one without it was cut.
  if (statusOf(state) === 'active' && currentTask(state)?.status === 'Failed') return false;
  const rec = new Recorder(state, { type: 'InvalidInput', reason: 'rest check' }, { messageId: 'rest-check', now });
  advance(rec, deps);
  return rec.events.length === 0;
}

/**
 * The rest of a decision whose append was cut short. A store without atomic multi-event appends
 * (JetStream on nats-server 2.9) can keep the first events of a decision and lose the others when
 * the process dies or the connection fails between them; the input, never acked, comes back. It
 * then looks processed (its first event names it), so it is decided again from the state before
 * its first event, at its original time: if what landed is a strict prefix of that decision, the
 * rest is returned, with the commands of the whole (none was performed: effects follow the append;
 * their ids make a repeat harmless). Anything else (it was whole, or is decided differently now)
 * returns undefined.
 */
function finishCutShort(state: SessionState, input: PlannerInput, meta: InputMeta, deps: DecideDeps): Decision | undefined {
  const last = state.lastInput;
  if (last?.messageId !== meta.messageId) return undefined;
  // Re-decided by today's rules: an input an older version accepted (and partly stored) that a
  // newer rule rejects is not finished here (the rejection is not longer than what landed).
  // At its original time and stream sequence: a republished copy (a new sequence) finishes it alike.
  const original = { ...meta, now: last.now, correlationId: last.correlationId, streamSequence: last.inputSequence };
  const whole = decide(last.before, input, original, deps);
  const landed = state.version - last.before.version;
  if (whole.events.length <= landed) return undefined;
  const prefix = whole.events.slice(0, landed).reduce(evolve, last.before);
  const same = (s: SessionState) => JSON.stringify(serializeState(s));
  if (same(prefix) !== same(state)) return undefined;
  return { events: whole.events.slice(landed), state: whole.state, commands: whole.commands };
}

function handleInput(rec: Recorder, deps: DecideDeps): void {
  const input = rec.input;
  const status = statusOf(rec.state);
  if (input.type === 'InvalidInput') return rec.reject(input.reason);
  if (input.type === 'RetryDue') return; // advance() dispatches a due retry
  if (status !== 'idle' && status !== 'active') return rec.reject(`session is ${status}`);
  // Only a SubmitInput starts a session: a cancel, an answer or a report for an id that never
  // started must not create one (a cancel would record a session that never was).
  if (status === 'idle' && input.type !== 'SubmitInput') return rec.reject('session has not started (no SubmitInput was accepted)');
  switch (input.type) {
    case 'SubmitInput':
      return submit(rec, input, deps);
    case 'CancelSession':
      return rec.emit('SessionCancelled', { reason: input.reason ?? 'cancelled' });
    case 'ProvideClarification': {
      const task = taskView(rec.state, input.taskId);
      if (task?.status !== 'NeedsClarification') return rec.reject(`task ${input.taskId} is not waiting for clarification`);
      return rec.emit('ClarificationProvided', { taskId: input.taskId, answer: input.answer, question: task.question });
    }
    default:
      return report(rec, input, deps);
  }
}

function submit(rec: Recorder, input: Extract<SessionInput, { type: 'SubmitInput' }>, deps: DecideDeps): void {
  let tasks: PlannedTask[];
  try {
    tasks = deps.plan(input.text, rec.state.snapshot.context.order.length);
  } catch (error) {
    // Only a ValidationError says the input is at fault. Anything else (a model-backed planner's
    // outage, a bug) fails the decision: the caller retries it rather than losing the input.
    if (!isValidationError(error)) throw error;
    return rec.reject(error.message);
  }
  // A plug-in plan's ids must be new: a task id planned twice would leave the session waiting on
  // one of the two for good (later tasks never dispatched, reports taken for another dispatch).
  const planned = rec.state.snapshot.context.plan;
  const ids = new Set<string>();
  for (const task of tasks) {
    if (ids.has(task.id) || planned.get(task.id) !== undefined) return rec.reject(`the plan has task id ${task.id} twice (a planner must give each task a new id)`);
    ids.add(task.id);
  }
  if (statusOf(rec.state) === 'idle') {
    const parsed = PlannerConfig.safeParse(input.config ?? {});
    if (!parsed.success) return rec.reject(`invalid config: ${parsed.error.issues[0]?.message ?? 'bad value'}`);
    const problem = budgetProblem(parsed.data, deps.countTokens);
    if (problem) return rec.reject(`invalid config: ${problem}`);
    rec.emit('SessionStarted', { config: parsed.data, runId: runIdOf(rec.state.sessionId, rec.meta) });
  }
  rec.emit('TasksPlanned', { input: input.text, tasks });
}

/**
 * A new run's id: 8 hex digits from what only this start has, the starting input's message id, time
 * and stream sequence. Derived, not random, so deciding the same input again gives the same id.
 */
function runIdOf(sessionId: string, meta: InputMeta): string {
  return fnv1a32(`${sessionId}\n${meta.messageId}\n${meta.now}\n${meta.streamSequence ?? ''}`);
}

/**
 * What is wrong with a new session's token budget beyond its bounds, or undefined: the system prompt
 * is never compacted away, so a budget it does not fit in could hold nothing. Clients check it too,
 * with the same tokenizer, to refuse before publishing what the planner would reject.
 */
export function budgetProblem(config: Pick<PlannerConfig, 'tokenBudget' | 'systemPrompt'>, countTokens: (text: string) => number): string | undefined {
  const promptTokens = countTokens(config.systemPrompt);
  if (promptTokens <= config.tokenBudget) return undefined;
  return `tokenBudget ${config.tokenBudget} cannot hold the system prompt (${promptTokens} tokens)`;
}

type Report = Extract<SessionInput, { type: 'TaskCompleted' | 'TaskFailed' | 'NeedsClarification' }>;

function report(rec: Recorder, input: Report, deps: DecideDeps): void {
  const { taskId, dispatchId } = input;
  const task = taskView(rec.state, taskId);
  if (!task) return rec.reject(`unknown task ${taskId}`);
  const issued = Array.from({ length: task.attempts }, (_, i) => dispatchIdFor(rec.state.sessionId, taskId, i + 1, rec.state.snapshot.context.runId));
  if (!issued.includes(dispatchId)) return rec.reject(`unknown dispatch ${dispatchId} for task ${taskId}`);
  if (task.status !== 'Running' || task.dispatchId !== dispatchId) {
    const reason = `task ${taskId} is ${task.status}; report for dispatch ${dispatchId} is a duplicate or late`;
    return rec.emit('ReportIgnored', { taskId, dispatchId, report: input.type, reason });
  }
  if (input.type === 'TaskCompleted') {
    rec.emit('TaskCompleted', { taskId, dispatchId, output: input.output });
    return compact(rec, deps);
  }
  if (input.type === 'NeedsClarification') {
    return rec.emit('ClarificationRequested', { taskId, question: input.question, dispatchId });
  }
  fail(rec, input, task.attempts);
}

function fail(rec: Recorder, input: Extract<Report, { type: 'TaskFailed' }>, attempt: number): void {
  const config = rec.state.snapshot.context.config!;
  const retryable = input.retryable ?? true;
  const final = !retryable || attempt >= config.maxAttempts;
  rec.emit('TaskFailed', { taskId: input.taskId, dispatchId: input.dispatchId, error: input.error, retryable, final });
  if (final) {
    const why = retryable ? `failed after ${attempt} attempt${attempt === 1 ? '' : 's'}` : 'failed (not retryable)';
    return rec.emit('SessionFailed', { reason: `task ${input.taskId} ${why}: ${input.error}`, taskId: input.taskId });
  }
  const delay = backoffDelay(config, attempt);
  rec.emit('TaskRetryScheduled', { taskId: input.taskId, attempt: attempt + 1, dueAt: rec.meta.now + delay });
}

/** Exponential backoff before attempt `attempt + 1`. */
export function backoffDelay(config: PlannerConfig, attempt: number): number {
  const { baseMs, factor, maxMs } = config.backoff;
  return Math.min(maxMs, Math.round(baseMs * factor ** (attempt - 1)));
}

/**
 * Once over budget, compaction brings the context down to this share of it, so it runs every few
 * completed tasks rather than after each one once the context is full.
 */
export const COMPACTION_TARGET = 0.75;

function compact(rec: Recorder, deps: DecideDeps): void {
  const ctx = rec.state.snapshot.context;
  const budget = ctx.config!.tokenBudget;
  // A BPE token is at least one byte, so a context that fits in `budget` bytes fits in tokens:
  // skip the tokenizer on the hot path when it cannot matter.
  // The executor gets the items joined by blank lines (renderContext): each separator can be one
  // token more than the items' own counts, so they are counted too.
  const separators = Math.max(0, ctx.items.length - 1);
  const bytes = ctx.items.reduce((n, item) => n + Buffer.byteLength(item.text), 0) + 2 * separators;
  if (bytes <= budget) return;
  if (ctx.items.reduce((n, item) => n + deps.countTokens(item.text), 0) + separators <= budget) return;
  const target = Math.floor(budget * COMPACTION_TARGET);
  const openTasks = ctx.order.slice(ctx.cursor).map((id) => ctx.plan.get(id)!.description);
  // Pinned items (answers) are kept whole against the budget itself, not the lower target. Both
  // leave room for the separators of as many items as there are now (compaction only removes some).
  const result = compactWithin(deps, { items: ctx.items, budget: Math.max(0, target - separators), pinnedBudget: Math.max(0, budget - separators), openTasks });
  rec.emit('ContextCompacted', { budget, target, ...result });
}

/** Room in a ContextCompacted message for its envelope and the rest of its data (budgets, counts). */
const COMPACTION_EVENT_OVERHEAD = 1_024;

/**
 * The compactor's result for `request`, made smaller until the ContextCompacted event that records
 * it fits `deps.maxCommandBytes`: the event lists every item with its fields and the ids folded, so
 * it can be larger than the command whose context fits. A larger event would be refused by the
 * stream, and with it the report that caused it, leaving its task running for good.
 */
function compactWithin(deps: DecideDeps, request: CompactionRequest): CompactionResult {
  let result = deps.compactor.compact(request);
  const max = deps.maxCommandBytes;
  if (max === undefined) return result;
  for (let budget = request.budget, round = 0; round < MAX_FIT_ROUNDS; round++) {
    const bytes = Buffer.byteLength(JSON.stringify(result.items)) + Buffer.byteLength(JSON.stringify(result.folded)) + COMPACTION_EVENT_OVERHEAD;
    if (bytes <= max || budget === 0) return result;
    budget = Math.floor((budget * max * COMPACTION_TARGET) / bytes);
    result = deps.compactor.compact({ ...request, budget, pinnedBudget: Math.min(request.pinnedBudget ?? budget, Math.max(budget, systemTokens(deps, request.items))) });
  }
  return result;
}

const systemTokens = (deps: DecideDeps, items: readonly ContextItem[]): number =>
  items.filter((item) => item.slot === 'system').reduce((n, item) => n + deps.countTokens(item.text), 0);

/** JSON-escaped, a UTF-16 unit takes at most 6 bytes (`\u0001`): a bound that needs no encoding. */
const MAX_JSON_BYTES_PER_UNIT = 6;
/** Rounds of compaction a dispatch may take to fit its command: the first nearly always does. */
const MAX_FIT_ROUNDS = 4;

/**
 * Compacts the context further until the dispatch's ExecuteTask fits `maxBytes`. The compactor
 * counts tokens, so the byte room is turned into tokens at the context's own bytes per token.
 * Nothing left to drop (the task's own text alone too large): the publish refuses it, as before.
 */
function fitCommand(rec: Recorder, deps: DecideDeps, dispatch: { taskId: string; dispatchId: string; attempt: number }, maxBytes: number): void {
  for (let round = 0; round < MAX_FIT_ROUNDS; round++) {
    const ctx = rec.state.snapshot.context;
    const room = maxBytes - Buffer.byteLength(JSON.stringify(executeTaskFor(ctx, dispatch, '')));
    if (room <= 0) return; // the task alone is too large: no context can help
    const units = ctx.items.reduce((n, item) => n + item.text.length + 2, 0);
    if (units * MAX_JSON_BYTES_PER_UNIT <= room) return; // the usual case: no need to encode it
    const bytes = Buffer.byteLength(JSON.stringify(renderContext(ctx.items))) - 2;
    if (bytes <= room) return;
    const tokens = ctx.items.reduce((n, item) => n + deps.countTokens(item.text), 0);
    const fits = Math.floor((tokens * room) / bytes);
    const target = Math.floor(fits * COMPACTION_TARGET);
    const openTasks = ctx.order.slice(ctx.cursor).map((id) => ctx.plan.get(id)!.description);
    // The system prompt stays whatever it costs (compaction never removes it; a prompt too large
    // for a message fails the publish, with the reason, rather than run tasks without it).
    const system = systemTokens(deps, ctx.items);
    const result = compactWithin(deps, { items: ctx.items, budget: target, pinnedBudget: Math.max(fits, system), openTasks });
    if (result.tokensAfter >= tokens) return;
    rec.emit('ContextCompacted', { budget: ctx.config!.tokenBudget, target, ...result });
  }
}

const MAX_AUTOMATIC_STEPS = 4;

/** Moves an active session to its next resting point: dispatch, ask, or complete. */
function advance(rec: Recorder, deps: DecideDeps): void {
  for (let i = 0; i < MAX_AUTOMATIC_STEPS && statusOf(rec.state) === 'active'; i++) {
    const phase = phaseOf(rec.state);
    const task = currentTask(rec.state);
    if (phase === 'ready' && !task) {
      return rec.emit('SessionCompleted', { tasks: rec.state.snapshot.context.order.length });
    }
    if (!task || task.status !== 'Planned' || (phase !== 'ready' && phase !== 'backoff')) return;
    if (task.retryAt !== undefined && task.retryAt > rec.meta.now) return;
    if (task.kind === 'Clarification') {
      rec.emit('ClarificationRequested', { taskId: task.id, question: task.description });
      continue;
    }
    // Every dispatch carries the context: it must be inside the budget whatever grew it (a new
    // input, an answer, results), not only after a completed task.
    compact(rec, deps);
    const attempt = task.attempts + 1;
    const dispatchId = dispatchIdFor(rec.state.sessionId, task.id, attempt, rec.state.snapshot.context.runId);
    if (deps.maxCommandBytes !== undefined) fitCommand(rec, deps, { taskId: task.id, dispatchId, attempt }, deps.maxCommandBytes);
    rec.emit('TaskDispatched', { taskId: task.id, dispatchId, attempt, kind: task.kind });
  }
}
