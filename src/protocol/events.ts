import { z } from 'zod';
import { ContextItem, NodeKind, PlannedTask, StoredPlannerConfig } from './domain.js';

/** The schema version every event is written at today; older ones are upcast on read. */
export const EVENT_SCHEMA_VERSION = 1;

const taskRef = { taskId: z.string() };
const dispatchRef = { taskId: z.string(), dispatchId: z.string() };

/** `data` of each domain event, by type. Events are past tense. */
export const EventData = {
  /**
   * `runId` sets this run of the session id apart from any earlier one whose log was purged: it is
   * part of every dispatch id of the run (absent in sessions started before it existed).
   */
  SessionStarted: z.object({ config: StoredPlannerConfig, runId: z.string().optional() }),
  TasksPlanned: z.object({ input: z.string(), tasks: z.array(PlannedTask).min(1) }),
  TaskDispatched: z.object({ ...dispatchRef, attempt: z.number().int().positive(), kind: NodeKind }),
  TaskCompleted: z.object({ ...dispatchRef, output: z.string() }),
  TaskFailed: z.object({
    ...dispatchRef,
    error: z.string(),
    retryable: z.boolean(),
    final: z.boolean(),
  }),
  TaskRetryScheduled: z.object({ ...taskRef, attempt: z.number().int().positive(), dueAt: z.number() }),
  ClarificationRequested: z.object({ ...taskRef, question: z.string(), dispatchId: z.string().optional() }),
  ClarificationProvided: z.object({ ...taskRef, answer: z.string(), question: z.string().optional() }),
  ContextCompacted: z.object({
    budget: z.number().int(),
    /** What compaction aimed for: a share of the budget, leaving room for the next results. */
    target: z.number().int().optional(),
    tokensBefore: z.number().int(),
    tokensAfter: z.number().int(),
    folded: z.array(z.string()),
    items: z.array(ContextItem),
  }),
  SessionCompleted: z.object({ tasks: z.number().int() }),
  SessionFailed: z.object({ reason: z.string(), taskId: z.string().optional() }),
  SessionCancelled: z.object({ reason: z.string() }),
  InputRejected: z.object({
    reason: z.string(),
    inputType: z.string().optional(),
    messageId: z.string().optional(),
    streamSequence: z.number().int().optional(),
  }),
  ReportIgnored: z.object({ ...dispatchRef, report: z.string(), reason: z.string() }),
  /**
   * A copy of an applied input stored under a new stream sequence (republished after the stream's
   * duplicate window): changes nothing, but records that sequence, so the copy is known as a repeat
   * however late it is delivered again (e.g. by a durable consumer created again from the start).
   */
  InputRepeated: z.object({
    messageId: z.string(),
    streamSequence: z.number().int().positive(),
    /** The stream sequence the input was applied under, when its events carry one. */
    appliedSequence: z.number().int().positive().optional(),
  }),
} as const;

export type EventType = keyof typeof EventData;
export const EVENT_TYPES = Object.keys(EventData) as EventType[];

const envelopeFields = {
  id: z.string().min(1),
  version: z.number().int().nonnegative(),
  sessionId: z.string().min(1),
  sequence: z.number().int().positive(),
  timestamp: z.number(),
  causationId: z.string(),
  correlationId: z.string(),
  /**
   * The stream sequence of the input message that caused the event (inputs from NATS only): how a
   * session knows a redelivered input, however old, once its id has left the inbox window.
   */
  inputSequence: z.number().int().positive().optional(),
};

function variant<T extends EventType>(type: T) {
  return z.object({ ...envelopeFields, type: z.literal(type), data: EventData[type] });
}

/** Every persisted event: one envelope, discriminated by `type`. Decoded only where bytes enter. */
export const DomainEvent = z.discriminatedUnion('type', [
  variant('SessionStarted'),
  variant('TasksPlanned'),
  variant('TaskDispatched'),
  variant('TaskCompleted'),
  variant('TaskFailed'),
  variant('TaskRetryScheduled'),
  variant('ClarificationRequested'),
  variant('ClarificationProvided'),
  variant('ContextCompacted'),
  variant('SessionCompleted'),
  variant('SessionFailed'),
  variant('SessionCancelled'),
  variant('InputRejected'),
  variant('ReportIgnored'),
  variant('InputRepeated'),
]);
export type DomainEvent = z.infer<typeof DomainEvent>;
export type EventOf<T extends EventType> = Extract<DomainEvent, { type: T }>;

/** An event before the store has given it a position. */
export type NewEvent = DomainEvent extends infer E
  ? E extends DomainEvent
    ? Omit<E, 'sequence'>
    : never
  : never;

const { sequence: _sequence, ...newEnvelopeFields } = envelopeFields;

/**
 * An event handed to a store's append: a current envelope without its sequence, whose data is
 * that of a known type. Checked where events enter a store, since what the read path would refuse
 * must never be stored (one bad record would make a whole log unreadable).
 */
export const NewDomainEvent = z.discriminatedUnion(
  'type',
  EVENT_TYPES.map((type) => z.object({ ...newEnvelopeFields, type: z.literal(type), data: EventData[type] })) as unknown as [
    z.ZodObject<{ type: z.ZodLiteral<EventType> }>,
    ...z.ZodObject<{ type: z.ZodLiteral<EventType> }>[],
  ],
);

/**
 * The top-level fields a new event may have: every store gives back exactly these. A `sequence` is
 * allowed (the decider's events carry theirs) but the store's own replaces it.
 */
export const NEW_EVENT_FIELDS: ReadonlySet<string> = new Set([...Object.keys(envelopeFields), 'type', 'data']);

/** The raw envelope as stored, before upcasting (any version, data unchecked). */
export const RawEnvelope = z.object({ ...envelopeFields, type: z.string(), data: z.unknown() });
export type RawEnvelope = z.infer<typeof RawEnvelope>;

const isInt = (v: unknown): v is number => Number.isSafeInteger(v);

/**
 * {@link RawEnvelope}'s check of a decoded JSON value, for the read path (~10x cheaper than zod's
 * for an envelope that is valid): a value that passes every check of the schema comes back as zod
 * gives it (the schema's keys in its order, others dropped, `data` as it is); any other goes to
 * zod, so what is refused, and the error, are zod's. It never accepts what zod refuses: each test
 * here is one of the schema's, or stricter (a `timestamp` must be finite, as z.number() wants).
 */
export function safeParseRawEnvelope(value: unknown): ReturnType<typeof RawEnvelope.safeParse> {
  if (typeof value === 'object' && value !== null && !Array.isArray(value) && 'data' in value) {
    const v = value as Record<string, unknown>;
    const { id, version, sessionId, sequence, timestamp, causationId, correlationId, inputSequence, type } = v;
    if (
      typeof id === 'string' && id.length > 0 &&
      isInt(version) && version >= 0 &&
      typeof sessionId === 'string' && sessionId.length > 0 &&
      isInt(sequence) && sequence > 0 &&
      Number.isFinite(timestamp) &&
      typeof causationId === 'string' &&
      typeof correlationId === 'string' &&
      typeof type === 'string'
    ) {
      const ts = timestamp as number;
      if (inputSequence === undefined) {
        return { success: true, data: { id, version, sessionId, sequence, timestamp: ts, causationId, correlationId, type, data: v['data'] } };
      }
      if (isInt(inputSequence) && inputSequence > 0) {
        return {
          success: true,
          data: { id, version, sessionId, sequence, timestamp: ts, causationId, correlationId, inputSequence, type, data: v['data'] },
        };
      }
    }
  }
  return RawEnvelope.safeParse(value);
}
