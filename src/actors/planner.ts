import type { Logger } from 'pino';
import { StoreUnavailableError, ValidationError, isConcurrencyError, isValidationError } from '../errors.js';
import { SessionId } from '../protocol/domain.js';
import type { EventStore } from '../persistence/eventStore.js';
import type { DomainEvent } from '../protocol/events.js';
import type { OutboxCommand, PlannerCommand } from '../protocol/commands.js';
import { InputMetaSchema, type InputMeta } from '../protocol/inputs.js';
import { decide, type DecideDeps, type PlannerInput } from '../machines/decide.js';
import type { SessionState } from '../machines/sessionState.js';
import { outstanding } from '../machines/sessionQueries.js';
import { KeyedQueue } from '../shared/keyedQueue.js';
import { parseInput } from '../protocol/parseInput.js';
import type { SessionRepository } from './sessionRepository.js';

/** Performs the commands of an acknowledged append (the act step): a relay or a publisher. */
export interface Effects {
  perform(commands: OutboxCommand[]): void;
}

/** Told about every acknowledged append: progress displays, metrics, timers, the inspector. */
export type CommitListener = (commit: Commit) => void;

/** One acknowledged append and the state after it. */
export interface Commit {
  readonly sessionId: string;
  readonly events: readonly DomainEvent[];
  readonly commands: readonly OutboxCommand[];
  /** The session's state after the events: the planner's own, so frozen (read it, never change it). */
  readonly state: Readonly<SessionState>;
}

/** Freezes `value` and everything it holds (plain data: objects and arrays). */
function deepFreeze(value: unknown): void {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return;
  Object.freeze(value);
  for (const inner of Object.values(value)) deepFreeze(inner);
}

/**
 * A commit as listeners and callers get it, frozen: they share it with each other and with the
 * planner, whose cached state is `state`, so a listener that sorted the events or changed the
 * version would corrupt what the others see and the session's next decision. The events and
 * commands are frozen through (their data is shared with the state, and the commands are what
 * executors run); the state only at its top (the snapshot is immutable by construction).
 */
function frozenCommit(sessionId: string, events: DomainEvent[], commands: OutboxCommand[], state: SessionState): Commit {
  for (const event of events) deepFreeze(event);
  for (const command of commands) deepFreeze(command); // what the executor will run
  Object.freeze(state.recentInputs);
  Object.freeze(state.recentSequences);
  return Object.freeze({ sessionId, events: Object.freeze(events), commands: Object.freeze(commands), state: Object.freeze(state) });
}

/** The planner's dependencies, built in one composition root. */
export interface PlannerOptions {
  store: EventStore;
  repository: SessionRepository;
  decideDeps: DecideDeps;
  effects: Effects;
  clock: () => number;
  newId: () => string;
  logger: Logger;
  /** Attempts before a concurrency conflict is given up (default 5). */
  maxConflictRetries?: number;
}

/**
 * The orchestrator: for each input, 1. load the session, 2. decide, 3. append the events with the
 * commands they carry at the expected version, 4. act, only once the append is acknowledged.
 * Inputs of one session are applied strictly in order; sessions run concurrently.
 */
export class Planner {
  private readonly queue = new KeyedQueue();
  private readonly listeners = new Set<CommitListener>();
  private readonly reissueListeners = new Set<(state: SessionState) => void>();

  constructor(private readonly o: PlannerOptions) {}

  /** Applies one input to a session and resolves with the events it appended (possibly none). */
  handle(sessionId: string, input: PlannerInput, meta: Partial<InputMeta> = {}): Promise<Commit> {
    // Session ids become subject tokens and file names: refuse one that cannot be routed.
    if (!SessionId.safeParse(sessionId).success) {
      return Promise.reject(new ValidationError(`invalid session id ${JSON.stringify(sessionId)}: 1-64 characters of [A-Za-z0-9_-]`));
    }
    // Defaults last: a key present but undefined (e.g. a missing header) must not erase them.
    const full: InputMeta = { ...meta, messageId: meta.messageId ?? this.o.newId(), now: meta.now ?? this.o.clock() };
    const metaCheck = InputMetaSchema.safeParse(full);
    if (!metaCheck.success) {
      const issue = metaCheck.error.issues[0];
      return Promise.reject(new ValidationError(`invalid meta: ${issue?.path.join('.')}: ${issue?.message}`));
    }
    const checked = checkInput(input);
    return this.queue.run(sessionId, () => this.apply(sessionId, checked, full));
  }

  /** Subscribes to acknowledged appends; returns the unsubscribe function. */
  onCommit(listener: CommitListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Subscribes to redelivered inputs found already applied (an append that landed although it
   * reported an error): told the session's state, whose waiting work is then done again (the
   * retry scheduler arms a TaskRetryScheduled no commit ever told it of). Returns the unsubscribe
   * function.
   */
  onReissue(listener: (state: SessionState) => void): () => void {
    this.reissueListeners.add(listener);
    return () => this.reissueListeners.delete(listener);
  }

  /** Resolves when every input handed to the planner so far has been applied. */
  drain(): Promise<void> {
    return this.queue.drain();
  }

  private async apply(sessionId: string, input: PlannerInput, meta: InputMeta): Promise<Commit> {
    const retries = this.o.maxConflictRetries ?? 5;
    for (let attempt = 1; ; attempt++) {
      // 1. load
      const state = await this.o.repository.load(sessionId);
      // 2. decide
      const decision = decide(state, input, meta, this.o.decideDeps);
      const commands = toOutbox(decision.commands, decision.state, meta);
      const commit = frozenCommit(sessionId, decision.events, commands, decision.state);
      if (decision.events.length === 0) {
        if (state.recentInputs.includes(meta.messageId)) this.reissue(state, meta);
        return commit;
      }
      // 3. append at the expected version, commands in the same append (the outbox)
      try {
        await this.o.store.appendToStream(sessionId, decision.events, { expectedVersion: state.version, commands });
      } catch (error) {
        this.o.repository.forget(sessionId);
        if (isValidationError(error) && state.recentInputs.includes(meta.messageId)) throw partlyStored(sessionId, error);
        if (!isConcurrencyError(error) || attempt >= retries) throw error;
        this.o.logger.debug({ sessionId, attempt }, 'concurrent append; reloading the session');
        continue;
      }
      // 4. act: only now that the append is acknowledged. A snapshot is only a cache: failing to
      // save one must not strand the commands of an append that is already durable.
      await this.o.repository.committed(state.version, decision.state, decision.events.at(-1)?.id).catch((err: unknown) => {
        this.o.logger.warn({ err, sessionId }, 'snapshot not saved');
      });
      this.o.effects.perform(commands);
      this.log(commit, meta);
      this.notify(commit);
      return commit;
    }
  }

  /**
   * Hands the commit to each listener. The commit is durable whatever a listener does: one that
   * throws (a bug of its own, a write to the frozen commit) is logged, and the rest still get it.
   */
  private notify(commit: Commit): void {
    for (const listener of this.listeners) {
      const failed = (err: unknown) => this.o.logger.error({ err, sessionId: commit.sessionId }, 'a commit listener failed; the commit stands');
      try {
        // An async listener's rejection would otherwise be unhandled, and end the process.
        const returned: unknown = listener(commit);
        if (typeof (returned as PromiseLike<unknown> | undefined)?.then === 'function') (returned as Promise<unknown>).then(undefined, failed);
      } catch (err) {
        failed(err);
      }
    }
  }

  /**
   * A redelivered input that changes nothing may be the retry of an append that landed although
   * it reported an error: its commands were never performed. The work the session waits on is
   * derived from state and performed again; its dispatch id makes a second delivery harmless.
   */
  private reissue(state: SessionState, meta: InputMeta): void {
    const command = outstanding(state).command;
    if (command?.type === 'ExecuteTask') this.o.effects.perform(toOutbox([command], state, meta));
    for (const listener of this.reissueListeners) {
      try {
        listener(state);
      } catch (err) {
        this.o.logger.error({ err, sessionId: state.sessionId }, 'a reissue listener failed');
      }
    }
  }

  private log(commit: Commit, meta: InputMeta): void {
    if (!this.o.logger.isLevelEnabled('debug')) return;
    for (const event of commit.events) {
      const taskId = (event.data as { taskId?: string }).taskId;
      this.o.logger.debug(
        { sessionId: commit.sessionId, taskId, correlationId: event.correlationId, causationId: meta.messageId, seq: event.sequence },
        event.type,
      );
    }
  }
}

/**
 * The input checked against its schema, as one from the bus or NATS is where its bytes enter: a
 * caller of the library may pass anything (a cast, plain JavaScript), and an invalid input must be
 * recorded as rejected, not stored as an event that breaks its schema or crash the decider.
 */
function checkInput(input: PlannerInput): PlannerInput {
  const given = input as unknown as { type?: unknown; reason?: unknown; inputType?: unknown } | null | undefined;
  if (given?.type === 'InvalidInput') {
    // The rejection of an input that failed where its bytes entered: its reason must be a string.
    if (typeof given.reason !== 'string') return { type: 'InvalidInput', reason: 'invalid InvalidInput: reason: expected a string' };
    return { type: 'InvalidInput', reason: given.reason, ...(typeof given.inputType === 'string' ? { inputType: given.inputType } : {}) };
  }
  const parsed = parseInput(input);
  if (parsed.ok) return parsed.input;
  return { type: 'InvalidInput', reason: parsed.reason, ...(parsed.inputType ? { inputType: parsed.inputType } : {}) };
}

/**
 * The store refused the rest of a decision whose first events it holds (an append cut short, then
 * refused, e.g. for its size): rejecting the input now would drop the rest of what it decided, so
 * it is an outage to retry, not the input's fault.
 */
function partlyStored(sessionId: string, error: Error): StoreUnavailableError {
  return new StoreUnavailableError(
    `session ${sessionId}: the rest of an input's decision, whose first events are stored, was refused (${error.message}); retrying`,
    { cause: error },
  );
}

/** Gives each command its outbox identity: the dispatch id for work, a stable id for questions. */
export function toOutbox(commands: PlannerCommand[], state: SessionState, meta: InputMeta): OutboxCommand[] {
  return commands.map((command) => ({
    id: command.type === 'ExecuteTask' ? command.dispatchId : `${command.sessionId}.${command.taskId}.ask.${state.version}`,
    sessionId: command.sessionId,
    causationId: meta.messageId,
    correlationId: meta.correlationId ?? command.sessionId,
    command,
  }));
}
