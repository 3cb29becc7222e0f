import { assign, enqueueActions, sendTo, setup } from 'xstate';
import type { ContextItem, PlannedTask, PlannerConfig } from '../protocol/domain.js';
import type { DomainEvent, EventOf } from '../protocol/events.js';
import type { ExecuteTask, RequestClarification } from '../protocol/commands.js';
import { IdMap } from './idMap.js';
import { taskMachine } from './taskMachine.js';

/** What the session statechart remembers. Task lifecycles live in the spawned task actors. */
export interface SessionContext {
  sessionId: string;
  config: PlannerConfig | null;
  /** This run of the session id (SessionStarted's `runId`); null before it starts and in sessions older than run ids. */
  runId: string | null;
  /**
   * Static task definitions, by id, as planning produced them: an immutable map, since a plain
   * record copied on every plan cost O(tasks) (a fifth of a 3,000-task session's replay).
   */
  plan: IdMap<PlannedTask>;
  /** Task ids in execution order; `cursor` indexes the first task not yet completed. */
  order: string[];
  cursor: number;
  /** The working context handed to executors; compaction keeps it inside the token budget. */
  items: ContextItem[];
  rejected: number;
  ignored: number;
  /** Why the session failed or was cancelled (its end event's reason); null while it has not. */
  endReason: string | null;
}

/**
 * The plan as an IdMap. A context that xstate itself restored from JSON (`getPersistedSnapshot`,
 * JSON, `createActor(…, { snapshot })`) holds it as the plain record it serialized to.
 */
const planOf = (context: SessionContext): IdMap<PlannedTask> =>
  context.plan instanceof IdMap ? context.plan : IdMap.from(context.plan as unknown as Record<string, PlannedTask>);

/** Renders the working context as the text an executor receives. */
export const renderContext = (items: ContextItem[]): string => items.map((i) => i.text).join('\n\n');

/**
 * The planner session. Its events are the persisted domain events, so replay is a fold of this
 * machine's transition over the log. It spawns one task actor per planned task (keyed by task id)
 * and forwards task events to it. Effects leave as the named actions `executeTask` and
 * `requestClarification`, which the runtime performs only after the events are appended.
 */
export const sessionMachine = setup({
  types: {
    context: {} as SessionContext,
    events: {} as DomainEvent,
    input: {} as { sessionId: string },
  },
  actors: { task: taskMachine },
  actions: {
    // Effects: no-ops here; the runtime reads them from the transition's action list.
    executeTask: (_, _command: unknown) => {},
    requestClarification: (_, _command: unknown) => {},
    countRejected: assign({ rejected: ({ context }) => context.rejected + 1 }),
    countIgnored: assign({ ignored: ({ context }) => context.ignored + 1 }),
    recordEnd: assign({
      endReason: ({ event }) => (event.type === 'SessionCancelled' || event.type === 'SessionFailed' ? event.data.reason : null),
    }),
    forwardToTask: sendTo(
      ({ event }) => (event.data as { taskId: string }).taskId,
      ({ event }) => event,
    ),
    // Tasks before the cursor are completed; the rest learn that the session ended without them.
    endOpenTasks: enqueueActions(({ enqueue, context, event }) => {
      for (let i = context.cursor; i < context.order.length; i++) enqueue.sendTo(context.order[i]!, event);
    }),
    spawnTasks: enqueueActions(({ enqueue, event }) => {
      if (event.type !== 'TasksPlanned') return;
      for (const task of event.data.tasks) enqueue.spawnChild('task', { id: task.id, input: task });
    }),
    recordPlan: assign(({ context, event }: { context: SessionContext; event: DomainEvent }) => {
      const { input, tasks } = (event as EventOf<'TasksPlanned'>).data;
      const plan = planOf(context).setAll(tasks.map((task) => [task.id, task] as const));
      const item: ContextItem = { id: `input-${event.sequence}`, slot: 'input', text: input, pinned: false };
      return { plan, order: [...context.order, ...tasks.map((t) => t.id)], items: [...context.items, item] };
    }),
  },
}).createMachine({
  id: 'session',
  initial: 'idle',
  context: ({ input }) => ({
    sessionId: input.sessionId,
    config: null,
    runId: null,
    plan: IdMap.empty(),
    order: [],
    cursor: 0,
    items: [],
    rejected: 0,
    ignored: 0,
    endReason: null,
  }),
  on: {
    InputRejected: { actions: 'countRejected' },
    ReportIgnored: { actions: 'countIgnored' },
  },
  states: {
    idle: {
      on: {
        SessionStarted: {
          target: 'active',
          actions: assign(({ event }) => ({
            config: event.data.config,
            runId: event.data.runId ?? null,
            items: [{ id: 'system', slot: 'system' as const, text: event.data.config.systemPrompt, pinned: true }],
          })),
        },
        SessionCancelled: { target: 'cancelled', actions: 'recordEnd' },
      },
    },
    active: {
      initial: 'ready',
      on: {
        TasksPlanned: { actions: ['recordPlan', 'spawnTasks'] },
        ContextCompacted: { actions: assign({ items: ({ event }) => event.data.items }) },
        SessionCompleted: 'completed',
        SessionFailed: { target: 'failed', actions: ['recordEnd', 'endOpenTasks'] },
        SessionCancelled: { target: 'cancelled', actions: ['recordEnd', 'endOpenTasks'] },
      },
      states: {
        ready: {
          on: {
            TaskDispatched: { target: 'running', actions: ['forwardToTask', executeTaskAction()] },
            ClarificationRequested: {
              target: 'awaitingClarification',
              actions: ['forwardToTask', requestClarificationAction()],
            },
          },
        },
        running: {
          on: {
            TaskCompleted: {
              target: 'ready',
              actions: [
                'forwardToTask',
                assign(({ context, event }) => ({
                  cursor: context.cursor + 1,
                  items: [
                    ...context.items,
                    { id: `result-${event.data.taskId}`, slot: 'result' as const, text: event.data.output, pinned: false },
                  ],
                })),
              ],
            },
            TaskFailed: { target: 'backoff', actions: 'forwardToTask' },
            ClarificationRequested: {
              target: 'awaitingClarification',
              actions: ['forwardToTask', requestClarificationAction()],
            },
          },
        },
        backoff: {
          on: {
            TaskRetryScheduled: { actions: 'forwardToTask' },
            TaskDispatched: { target: 'running', actions: ['forwardToTask', executeTaskAction()] },
          },
        },
        awaitingClarification: {
          on: {
            ClarificationProvided: {
              target: 'ready',
              actions: [
                'forwardToTask',
                assign(({ context, event }) => ({
                  // A Clarification-kind task is done once answered; any other task runs again.
                  cursor: planOf(context).get(event.data.taskId)?.kind === 'Clarification' ? context.cursor + 1 : context.cursor,
                  // Answers are decisions: pinned, so compaction keeps them; shown with their question
                  // so an executor can tell which question was answered.
                  items: [
                    ...context.items,
                    {
                      id: answerId(context.items, event.data.taskId, event.sequence),
                      slot: 'answer' as const,
                      text: `Q: ${event.data.question ?? planOf(context).get(event.data.taskId)?.description}\nA: ${event.data.answer}`,
                      pinned: true,
                    },
                  ],
                })),
              ],
            },
          },
        },
      },
    },
    // Terminal, not `type: 'final'`: a done machine ignores events, and the log may still record
    // rejected inputs after the session ended.
    completed: { tags: ['terminal'] },
    failed: { tags: ['terminal'] },
    cancelled: { tags: ['terminal'] },
  },
});

/**
 * The context item id of an answer: `answer-<taskId>`, or, when the task was asked before and that
 * answer is still in the context, `answer-<taskId>-<sequence>`, so that no two items share an id.
 */
function answerId(items: readonly ContextItem[], taskId: string, sequence: number): string {
  const id = `answer-${taskId}`;
  return items.some((item) => item.id === id) ? `${id}-${sequence}` : id;
}

/**
 * The command that dispatches attempt `attempt` of task `taskId` with the session's context as it
 * is (`rendered` in its place: the decider sizes a command before its context is final).
 */
export function executeTaskFor(
  context: SessionContext,
  dispatch: { taskId: string; dispatchId: string; attempt: number },
  rendered: string = renderContext(context.items),
): ExecuteTask {
  const { taskId, dispatchId, attempt } = dispatch;
  const task = planOf(context).get(taskId)!;
  return {
    type: 'ExecuteTask',
    sessionId: context.sessionId,
    taskId,
    dispatchId,
    attempt,
    kind: task.kind,
    description: task.description,
    attachments: task.attachments,
    context: rendered,
  };
}

function executeTaskAction() {
  return {
    type: 'executeTask' as const,
    params: ({ context, event }: { context: SessionContext; event: DomainEvent }): ExecuteTask =>
      executeTaskFor(context, (event as EventOf<'TaskDispatched'>).data),
  };
}

function requestClarificationAction() {
  return {
    type: 'requestClarification' as const,
    params: ({ context, event }: { context: SessionContext; event: DomainEvent }): RequestClarification => {
      const { taskId, question } = (event as EventOf<'ClarificationRequested'>).data;
      return { type: 'RequestClarification', sessionId: context.sessionId, taskId, question };
    },
  };
}

export type SessionMachine = typeof sessionMachine;
