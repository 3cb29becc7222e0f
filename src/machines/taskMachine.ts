import { assign, setup } from 'xstate';
import type { PlannedTask } from '../protocol/domain.js';
import type { EventOf } from '../protocol/events.js';

/** What a task actor remembers besides its status (its state value). */
export interface TaskContext extends PlannedTask {
  attempts: number;
  dispatchId?: string;
  result?: string;
  question?: string;
  answer?: string;
  error?: string;
  retryAt?: number;
}

/** The domain events a task actor reacts to; the session forwards them by task id. */
export type TaskEvent =
  | EventOf<'TaskDispatched'>
  | EventOf<'TaskCompleted'>
  | EventOf<'TaskFailed'>
  | EventOf<'TaskRetryScheduled'>
  | EventOf<'ClarificationRequested'>
  | EventOf<'ClarificationProvided'>
  | EventOf<'SessionCancelled'>
  | EventOf<'SessionFailed'>;

/**
 * The task lifecycle: Planned → Running → Completed | NeedsClarification → Planned, and Failed
 * after the last attempt. A Clarification-kind task goes from Planned straight to
 * NeedsClarification and completes with the human's answer. A task the session ends before it
 * finishes (cancelled, or failed on another task) is Cancelled. Pure: every value comes on events.
 */
export const taskMachine = setup({
  types: { context: {} as TaskContext, events: {} as TaskEvent, input: {} as PlannedTask },
  guards: {
    isFinalFailure: ({ event }) => event.type === 'TaskFailed' && event.data.final,
    asksDirectly: ({ context }) => context.kind === 'Clarification',
  },
  actions: {
    recordQuestion: assign({
      question: ({ event }) => (event.type === 'ClarificationRequested' ? event.data.question : undefined),
    }),
    // A retry that will never come is not shown; an earlier attempt's error stays (the session's
    // own end event says why it ended).
    recordEnd: assign({ retryAt: undefined }),
    recordError: assign({
      error: ({ event }) => (event.type === 'TaskFailed' ? event.data.error : undefined),
    }),
  },
}).createMachine({
  id: 'task',
  initial: 'Planned',
  // Object.assign, not `{ ...input, attempts: 0 }` (the same object): V8 (Node 20) takes a slow
  // path for a spread followed by a property, ~2 µs per task here, which a replay of many
  // planned tasks pays for each of them.
  context: ({ input }) => Object.assign({}, input, { attempts: 0 }),
  states: {
    Planned: {
      on: {
        TaskDispatched: {
          target: 'Running',
          actions: assign(({ event }) => ({
            attempts: event.data.attempt,
            dispatchId: event.data.dispatchId,
            retryAt: undefined,
          })),
        },
        TaskRetryScheduled: { actions: assign({ retryAt: ({ event }) => event.data.dueAt }) },
        ClarificationRequested: { guard: 'asksDirectly', target: 'NeedsClarification', actions: 'recordQuestion' },
        SessionCancelled: { target: 'Cancelled', actions: 'recordEnd' },
        SessionFailed: { target: 'Cancelled', actions: 'recordEnd' },
      },
    },
    Running: {
      on: {
        TaskCompleted: { target: 'Completed', actions: assign({ result: ({ event }) => event.data.output }) },
        TaskFailed: [
          { guard: 'isFinalFailure', target: 'Failed', actions: 'recordError' },
          { target: 'Planned', actions: 'recordError' },
        ],
        ClarificationRequested: { target: 'NeedsClarification', actions: 'recordQuestion' },
        SessionCancelled: { target: 'Cancelled', actions: 'recordEnd' },
        SessionFailed: { target: 'Cancelled', actions: 'recordEnd' },
      },
    },
    NeedsClarification: {
      on: {
        ClarificationProvided: [
          {
            guard: 'asksDirectly',
            target: 'Completed',
            actions: assign(({ event }) => ({ answer: event.data.answer, result: event.data.answer })),
          },
          { target: 'Planned', actions: assign({ answer: ({ event }) => event.data.answer }) },
        ],
        SessionCancelled: { target: 'Cancelled', actions: 'recordEnd' },
        SessionFailed: { target: 'Cancelled', actions: 'recordEnd' },
      },
    },
    // Terminal, but not `type: 'final'`: a final child is stopped and dropped from its parent's
    // children, and the session keeps finished tasks (results, errors) in its persisted snapshot.
    Completed: { tags: ['terminal'] },
    Failed: { tags: ['terminal'] },
    Cancelled: { tags: ['terminal'] },
  },
});

export type TaskMachine = typeof taskMachine;
