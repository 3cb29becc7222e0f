import { isSessionNotFoundError } from '../../../errors.js';
import { AnswerSource, checkedAnswers } from '../../answers.js';
import { listFlag, numberFlag, sessionIdArg } from '../../args.js';
import { INSPECT_PORT, startInspector } from '../../inspector.js';
import { interruptedExitCode, type CliSignal } from '../../io.js';
import type { CommitSource } from '../../../actors/liveMirror.js';
import type { CommitListener } from '../../../actors/planner.js';
import { SessionFold, initialSessionState } from '../../../machines/sessionState.js';
import type { CliContext, Command } from '../../command.js';
import type { EventWatch, JetplanClient } from '../../../nats/client.js';
import type { DomainEvent } from '../../../protocol/events.js';
import { printable, timelineLine } from '../../view.js';
import { CONNECTION_FLAGS, CONNECTION_USAGE, withClient } from './connection.js';

const USAGE = `Usage: jetplan watch <session> [--answer <text>]... [--json] [--inspect <port>]
Prints a session's events as they are stored on NATS (from its first event), and exits when the
session completes (0), fails or is cancelled (1), or when every input of a session that has not
started was rejected and no other waits (1). A session not started yet is waited for (on a
terminal, it says so). On a terminal, an open clarification question is
asked (on stderr, with the prompt: stdout carries only events) and the answer published; a question
answered elsewhere meanwhile is dropped from the prompt. --answer gives answers in order instead.
Otherwise, or once the terminal's input ends (Ctrl-D), it says on stderr how to answer, and goes on
waiting. Ctrl-C exits 130, SIGTERM 143, SIGHUP 129.
  --answer <text>   an answer to the next question (repeatable)
  --json            one event per line as JSON
  --inspect <port>  watch the session's statecharts live in the Stately inspector (http://127.0.0.1:<port>, this machine only)
${CONNECTION_USAGE}`;

const EXIT: Record<string, number> = { SessionCompleted: 0, SessionFailed: 1, SessionCancelled: 1 };

/** \`jetplan watch\`: follow a session live, answering its questions. */
export const watchCommand: Command = {
  summary: "follow a session's events on NATS, answering its questions",
  usage: USAGE,
  flags: { ...CONNECTION_FLAGS, answer: 'strings', inspect: INSPECT_PORT },
  async run(args, ctx) {
    const sessionId = sessionIdArg(args);
    const answers = checkedAnswers(listFlag(args, 'answer'));
    const inspectPort = numberFlag(args, 'inspect');
    return withClient(args, ctx, async (client) => {
      // Events up to the current version are history: only a question still open then is asked.
      let caughtUp = 0;
      try {
        caughtUp = (await client.status(sessionId)).version;
      } catch (err) {
        if (!isSessionNotFoundError(err)) throw err;
        // Not started yet: wait for it (a watcher may start before the submit, so it misses
        // nothing). On a terminal, say so, since nothing else shows until the first event.
        // On stderr: stdout carries only events (a `--json` stream, a log file).
        if (ctx.io.isTTY && !(await client.hasInput(sessionId))) ctx.err(`waiting for session ${sessionId}: it has no events or input yet`);
      }
      const mirror = new FoldedCommits(sessionId);
      const inspector = inspectPort === undefined ? undefined : await startInspector(mirror, inspectPort);
      if (inspector) ctx.err(`inspector: open ${inspector.url} to watch the statecharts`);
      try {
        return await new Follower(client, ctx, sessionId, answers, caughtUp, (event) => mirror.add(event)).run();
      } finally {
        inspector?.stop();
      }
    });
  },
};

/** An open clarification question, by the sequence of the event that asked it. */
interface OpenQuestion {
  taskId: string;
  question: string;
  seq: number;
}

/** Follows one session's events to its end, printing them and answering its questions. */
class Follower {
  private readonly source: AnswerSource;
  private readonly watch: EventWatch;
  private interrupted: CliSignal | undefined;
  private done = false;
  private started = false;
  /** The reason of the last rejection while the session has not started. */
  private lastRejection: string | undefined;
  private lastSeq = 0;
  private open: OpenQuestion | undefined;
  private asking: Promise<void> | undefined;
  /** The question being asked at the prompt. */
  private askingFor: OpenQuestion | undefined;
  private readonly asked = new Set<number>();

  constructor(
    private readonly client: JetplanClient,
    private readonly ctx: CliContext,
    private readonly sessionId: string,
    answers: string[],
    /** The session's version when the watch began: a question asked before it is asked only if still open then. */
    private readonly caughtUp: number,
    /** Told of each event as it is read. */
    private readonly onRead: (event: DomainEvent) => void = () => undefined,
  ) {
    // Questions and the prompt on stderr: stdout is the event stream (often redirected, or --json).
    this.source = new AnswerSource(answers, ctx.io, ctx.io.isTTY, ctx.io.stderr);
    this.watch = client.watch(sessionId, { fromStart: true });
  }

  /** Resolves with the exit code: see USAGE (130 on Ctrl-C, 143 on SIGTERM). */
  async run(): Promise<number> {
    const off = this.ctx.io.onSignal((signal) => {
      this.interrupted = signal;
      this.source.close();
      void this.watch.close();
    });
    let code = 130;
    try {
      for await (const event of this.watch) {
        const exit = await this.onEvent(event);
        if (exit !== undefined) {
          code = exit;
          break;
        }
      }
    } finally {
      this.done = true;
      off();
      this.source.close();
      await this.watch.close();
      await this.asking;
    }
    if (this.interrupted) return interruptedExitCode(this.interrupted);
    const unused = this.source.unused;
    if (unused > 0) this.ctx.err(`jetplan: ${unused} --answer value${unused === 1 ? '' : 's'} not used (no more questions)`);
    return code;
  }

  /** Prints the event and acts on it; the exit code if the watch ends with it. */
  private async onEvent(event: DomainEvent): Promise<number | undefined> {
    const { ctx } = this;
    ctx.out(ctx.json ? JSON.stringify(event) : timelineLine(event));
    this.onRead(event);
    if (event.type === 'ClarificationRequested') this.open = { taskId: event.data.taskId, question: event.data.question, seq: event.sequence };
    else if (event.type === 'ClarificationProvided') {
      this.open = undefined;
      // Answered elsewhere while asked here: the prompt is dropped (what is typed next answers the
      // next question) rather than sending it to a task that no longer waits.
      if (this.askingFor?.taskId === event.data.taskId) {
        ctx.err(`jetplan: ${event.data.taskId} was answered meanwhile`);
        this.source.skip();
      }
    }
    const exit = EXIT[event.type];
    if (exit !== undefined) return exit;
    if (event.type === 'SessionStarted') this.started = true;
    else if (!this.started && (await this.cannotStart(event))) {
      // Every input so far was rejected (or a copy of one) and none is on its way.
      // The reason may quote the body it refused (an unreadable one: JSON.parse's message), raw.
      ctx.err(`jetplan: session ${this.sessionId} has not started: every input was rejected, the last with: ${printable(this.lastRejection ?? '')}`);
      return 1;
    }
    this.lastSeq = event.sequence;
    this.maybeAsk();
    return undefined;
  }

  /** Whether a session not started yet never will: `event` handled its last input, a rejected one. */
  private async cannotStart(event: DomainEvent): Promise<boolean> {
    if (event.type === 'InputRejected') this.lastRejection = event.data.reason;
    else if (event.type !== 'InputRepeated' || this.lastRejection === undefined) return false;
    return this.nothingWaits(event.data.streamSequence);
  }

  /** Whether no input newer than the one at stream sequence `seq` is waiting for the service. */
  private async nothingWaits(seq: number | undefined): Promise<boolean> {
    return seq !== undefined && ((await this.client.lastInputSequence(this.sessionId)) ?? 0) <= seq;
  }

  private tellHowToAnswer(q: OpenQuestion): void {
    const ended = this.ctx.io.isTTY ? 'no more answers from the terminal (its input ended); ' : '';
    this.ctx.err(`jetplan: ${ended}${q.taskId} waits for an answer: jetplan answer ${this.sessionId} ${q.taskId} "<answer>" (with this watch's connection flags), or watch with --answer`);
  }

  /** Asks the open question once it is current (not while another is being asked), and sends the answer. */
  private maybeAsk(): void {
    const q = this.open;
    if (this.done || !q || this.lastSeq < this.caughtUp || this.asked.has(q.seq) || this.asking) return;
    this.asked.add(q.seq);
    const { ctx, sessionId } = this;
    if ((!ctx.io.isTTY || this.source.ended) && !this.source.hasQueued) {
      // Nobody here can answer (no terminal, its input ended, no --answer left): say how, rather
      // than wait in silence.
      this.tellHowToAnswer(q);
      return;
    }
    this.askingFor = q;
    this.asking = (async () => {
      if (ctx.io.isTTY) ctx.err(`? ${q.taskId}: ${printable(q.question)}`);
      const answer = await this.source.next();
      if (this.interrupted || this.done) return;
      if (answer === undefined) {
        if (this.source.ended && this.open?.seq === q.seq) {
          ctx.io.stderr('\n'); // Ctrl-D at the prompt ends no line
          this.tellHowToAnswer(q);
        }
      } else if (this.open?.seq !== q.seq) {
        ctx.err(`jetplan: ${q.taskId} no longer waits for an answer; "${printable(answer)}" was not sent`);
      } else {
        this.askingFor = undefined; // its ClarificationProvided may come before the publish's ack
        await this.client.answer(sessionId, q.taskId, answer);
      }
    })()
      .catch((err: unknown) => ctx.err(`jetplan: answer not sent: ${(err as Error).message}`))
      .finally(() => {
        this.asking = undefined;
        this.askingFor = undefined;
        this.maybeAsk(); // a question that came while this one was asked
      });
  }
}

/**
 * The watched session's events as commits for a live mirror (the inspector): each event folded
 * onto the state before it, as the planner's commits carry them.
 */
class FoldedCommits implements CommitSource {
  private readonly fold: SessionFold;
  private readonly listeners = new Set<CommitListener>();

  constructor(private readonly sessionId: string) {
    this.fold = new SessionFold(initialSessionState(sessionId));
  }

  onCommit(listener: CommitListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  add(event: DomainEvent): void {
    this.fold.add(event);
    if (this.listeners.size === 0) return;
    const commit = { sessionId: this.sessionId, events: [event], commands: [], state: this.fold.state };
    for (const listener of this.listeners) listener(commit);
  }
}
