import type { Commit } from '../actors/planner.js';
import { outstanding, statusOf, toPlannerState } from '../machines/sessionQueries.js';
import type { SessionState } from '../machines/sessionState.js';
import { RequestClarification } from '../protocol/commands.js';
import type { EmbeddedRuntime, RuntimeFault } from '../runtime/embeddedRuntime.js';
import type { AnswerSource } from './answers.js';
import type { CliContext } from './command.js';
import { printable, progressLine } from './view.js';

/** How a run of a session ended. */
export type Outcome =
  | { kind: 'finished'; state: SessionState }
  | { kind: 'waiting'; state: SessionState; taskId: string; question: string }
  | { kind: 'interrupted' }
  /** The runtime cannot go on (an unusable store, an input that keeps failing): no progress will come. */
  | { kind: 'fault'; error: Error };

type DriverEvent =
  | { kind: 'question'; taskId: string; question: string }
  | { kind: 'finished'; state: SessionState }
  | { kind: 'fault'; error: Error };

/** A FIFO whose `take()` waits for the next item. */
class Mailbox<T> {
  private readonly items: T[] = [];
  private readonly waiters: Array<(item: T) => void> = [];
  push(item: T): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter(item);
    else this.items.push(item);
  }
  take(): Promise<T> {
    const item = this.items.shift();
    return item !== undefined ? Promise.resolve(item) : new Promise((resolve) => this.waiters.push(resolve));
  }
}

const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

/**
 * Runs one session in the foreground: shows its progress, answers its questions from an
 * {@link AnswerSource}, and ends when it finishes, needs an answer nobody gave, or is interrupted.
 * Questions arrive as RequestClarification commands on the bus; each is checked against the
 * session's state first, so a duplicate (redelivered, or re-asked on resume) is asked once.
 */
export class SessionDriver {
  private readonly mailbox = new Mailbox<DriverEvent | { kind: 'interrupt' }>();
  private readonly shown = new Set<string>();
  private readonly offs: Array<() => void>;
  private interrupted = false;
  private fault: Error | undefined;
  private answers: AnswerSource | undefined;

  constructor(
    private readonly runtime: EmbeddedRuntime,
    private readonly sessionId: string,
    private readonly ctx: CliContext,
  ) {
    this.offs = [
      runtime.planner.onCommit((commit) => this.onCommit(commit)),
      runtime.bus.subscribe(runtime.subjects.allClarify, (message) => this.onQuestion(message.data)),
      runtime.onFault((fault) => this.onFault(fault)),
    ];
  }

  /** Ctrl-C: the run ends as soon as what it awaits settles. */
  interrupt(): void {
    this.interrupted = true;
    this.mailbox.push({ kind: 'interrupt' });
  }

  /** Resolves with the outcome of the run. */
  async run(answers: AnswerSource): Promise<Outcome> {
    this.answers = answers;
    // A fault that came while the session was starting (before there were answers to close).
    if (this.fault) answers.close();
    for (;;) {
      const event = await this.mailbox.take();
      if (this.interrupted || event.kind === 'interrupt') return { kind: 'interrupted' };
      if (event.kind === 'finished' || event.kind === 'fault') return event;
      const outcome = await this.ask(event.taskId, answers);
      if (outcome) return outcome;
    }
  }

  /** Stops listening to the planner and the bus. */
  dispose(): void {
    for (const off of this.offs) off();
  }

  private async ask(taskId: string, answers: AnswerSource): Promise<Outcome | undefined> {
    if (this.fault) return { kind: 'fault', error: this.fault }; // never prompt once the store is gone
    const state = await this.runtime.repository.load(this.sessionId);
    if (this.fault) return { kind: 'fault', error: this.fault }; // came while loading
    const open = outstanding(state).command;
    if (open?.type !== 'RequestClarification' || open.taskId !== taskId) return undefined;
    const log = this.ctx.logger.child({ sessionId: this.sessionId, taskId, correlationId: this.sessionId });
    if (!this.ctx.json && !this.shown.has(`${taskId}\n${open.question}`)) this.ctx.out(`? ${taskId}: ${printable(open.question)}`);
    log.debug({ question: open.question }, 'asking for clarification');
    const answer = await answers.next();
    if (this.interrupted) return { kind: 'interrupted' };
    if (this.fault) return { kind: 'fault', error: this.fault };
    if (answer === undefined) return { kind: 'waiting', state, taskId, question: open.question };
    log.debug('clarification answered');
    const { events } = await this.runtime.planner.handle(
      this.sessionId,
      { type: 'ProvideClarification', taskId, answer },
      { correlationId: this.sessionId },
    );
    // Refused (the progress line said why): nothing else will come to wake the run, so the
    // question, if it is still open, is asked again rather than waited on forever.
    if (events.some((e) => e.type === 'InputRejected')) return this.ask(taskId, answers);
    return undefined;
  }

  private onCommit(commit: Commit): void {
    if (commit.sessionId !== this.sessionId) return;
    const view = this.ctx.json ? undefined : toPlannerState(commit.state);
    for (const event of commit.events) {
      if (event.type === 'ClarificationRequested') this.shown.add(`${event.data.taskId}\n${event.data.question}`);
      const line = view && progressLine(event, view);
      if (line) this.ctx.out(line);
    }
    if (TERMINAL.has(statusOf(commit.state))) this.mailbox.push({ kind: 'finished', state: commit.state });
  }

  /**
   * A fault of the store stops every session; another session's stuck input does not stop this one.
   * A prompt under way is closed: its answer could not be stored anyway.
   */
  private onFault(fault: RuntimeFault): void {
    if (this.fault || (fault.sessionId !== undefined && fault.sessionId !== this.sessionId)) return;
    this.fault = fault.error;
    this.answers?.close();
    this.mailbox.push({ kind: 'fault', error: fault.error });
  }

  private onQuestion(data: unknown): void {
    const parsed = RequestClarification.safeParse(data);
    if (!parsed.success || parsed.data.sessionId !== this.sessionId) return;
    this.mailbox.push({ kind: 'question', taskId: parsed.data.taskId, question: parsed.data.question });
  }
}
