import { CorruptLogError } from '../errors.js';
import { DomainEvent, EVENT_SCHEMA_VERSION, EVENT_TYPES, RawEnvelope } from './events.js';

const KNOWN_TYPES: ReadonlySet<string> = new Set(EVENT_TYPES);

/** Turns the `data` of one event type from version `from` into version `from + 1`. */
export type Upcaster = (data: Record<string, unknown>) => Record<string, unknown>;

/**
 * The upcaster registry: stored events are never rewritten; older versions are lifted to the
 * current one as they are read. Version 0 is the pre-release format of the first prototype.
 */
const registry = new Map<string, Upcaster>([
  // v0 recorded the executor's output as `result`.
  ['TaskCompleted@0', ({ result, ...rest }) => ({ ...rest, output: result })],
  // v0 kept a flat config with `budget`; v1 nests a full PlannerConfig under `config`.
  [
    'SessionStarted@0',
    ({ systemPrompt, budget, maxAttempts }) => ({
      config: {
        systemPrompt,
        profile: 'default',
        tokenBudget: budget,
        maxAttempts: maxAttempts ?? 3,
        backoff: { baseMs: 200, factor: 2, maxMs: 30_000 },
      },
    }),
  ],
]);

/** Lifts a raw stored envelope to the current schema version; other types pass through unchanged. */
export function upcast(raw: RawEnvelope): RawEnvelope {
  let { version, data } = raw;
  while (version < EVENT_SCHEMA_VERSION) {
    const up = registry.get(`${raw.type}@${version}`);
    if (up) data = up(data as Record<string, unknown>);
    version += 1;
  }
  return { ...raw, version, data };
}

/**
 * The one place stored bytes become a DomainEvent: parse, check the envelope, upcast, validate.
 * Anything that does not fit is a CorruptLogError naming where it came from; an event of a type
 * this version does not know is passed on unchecked (see below).
 */
export function decodeEvent(json: string | unknown, where: string): DomainEvent {
  let value: unknown = json;
  try {
    if (typeof json === 'string') value = JSON.parse(json);
  } catch (cause) {
    throw new CorruptLogError(`${where}: stored event is not JSON`, { cause });
  }
  const raw = RawEnvelope.safeParse(value);
  if (!raw.success) throw new CorruptLogError(`${where}: not an event envelope (${raw.error.issues[0]?.message})`);
  if (raw.data.version > EVENT_SCHEMA_VERSION) {
    throw new CorruptLogError(`${where}: event version ${raw.data.version} is newer than this jetplan (${EVENT_SCHEMA_VERSION})`);
  }
  // A type this version does not know comes from a later one (types are added, never changed):
  // passed on as it is, as the stores pass it, for readers to skip and folds to ignore.
  if (!KNOWN_TYPES.has(raw.data.type)) return raw.data as unknown as DomainEvent;
  const event = DomainEvent.safeParse(upcast(raw.data));
  if (!event.success) {
    const issue = event.error.issues[0];
    throw new CorruptLogError(`${where}: invalid ${raw.data.type} event (${issue?.path.join('.')}: ${issue?.message})`);
  }
  return event.data;
}

/**
 * Brings an event read from a store to the current schema. Stores check the envelope; events
 * already at the current version pass through untouched (the hot path of replay), older ones are
 * upcast and validated.
 */
export function toCurrentEvent(event: DomainEvent | RawEnvelope, where: string): DomainEvent {
  return event.version === EVENT_SCHEMA_VERSION ? (event as DomainEvent) : decodeEvent(event, where);
}
