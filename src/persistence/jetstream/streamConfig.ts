/**
 * The one JetStream stream that is both jetplan's bus and its event store: inputs, events and
 * execution requests live under one subject prefix.
 */
import {
  jetstreamManager,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type JetStreamManager,
  type StreamConfig,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { StoreUnavailableError, ValidationError } from '../../errors.js';

export interface JetplanStreamOptions {
  /** Default 'JETPLAN'. */
  streamName?: string;
  /** Default 'jetplan'. */
  subjectPrefix?: string;
  /** Dedup window for `Nats-Msg-Id`; default 120_000, at least 2 minutes. */
  duplicateWindowMs?: number;
  /** Default 1. */
  replicas?: number;
}

export interface ResolvedStreamOptions {
  streamName: string;
  subjectPrefix: string;
  duplicateWindowMs: number;
  replicas: number;
}

export const DEFAULT_STREAM_NAME = 'JETPLAN';
export const DEFAULT_SUBJECT_PREFIX = 'jetplan';
export const MIN_DUPLICATE_WINDOW_MS = 120_000;

/** Execution request kinds, one subject token each. */
export type ExecKind = 'toolcall' | 'processing';

const TOKEN = /^[^\s.*>]+$/;

/** Throws ValidationError unless `value` is one non-wildcard subject token. */
export function assertToken(what: string, value: string): void {
  if (!TOKEN.test(value)) {
    throw new ValidationError(
      `${what} must be a single NATS subject token (no '.', '*', '>' or spaces): ${JSON.stringify(value)}`,
    );
  }
}

export function resolveStreamOptions(options: JetplanStreamOptions = {}): ResolvedStreamOptions {
  const streamName = options.streamName ?? DEFAULT_STREAM_NAME;
  const subjectPrefix = options.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX;
  const duplicateWindowMs = options.duplicateWindowMs ?? MIN_DUPLICATE_WINDOW_MS;
  const replicas = options.replicas ?? 1;
  assertToken('streamName', streamName);
  // Tokens of a subject: none empty ('', 'a..b', '.a'), no wildcards or spaces.
  if (subjectPrefix.split('.').some((token) => !TOKEN.test(token))) {
    throw new ValidationError(`invalid subjectPrefix ${JSON.stringify(subjectPrefix)}: dot-separated NATS subject tokens, none empty, without '*', '>' or spaces`);
  }
  if (!Number.isInteger(duplicateWindowMs) || duplicateWindowMs < MIN_DUPLICATE_WINDOW_MS) {
    throw new ValidationError(`duplicateWindowMs must be an integer of at least ${MIN_DUPLICATE_WINDOW_MS}`);
  }
  if (!Number.isInteger(replicas) || replicas < 1) {
    throw new ValidationError('replicas must be a positive integer');
  }
  return { streamName, subjectPrefix, duplicateWindowMs, replicas };
}

/** Subject helpers for one prefix. Session ids and kinds must be single tokens. */
export function subjects(prefix: string = DEFAULT_SUBJECT_PREFIX) {
  return {
    events(sessionId: string): string {
      assertToken('sessionId', sessionId);
      return `${prefix}.ev.${sessionId}`;
    },
    input(sessionId: string): string {
      assertToken('sessionId', sessionId);
      return `${prefix}.in.${sessionId}`;
    },
    exec(kind: ExecKind, sessionId: string): string {
      if (kind !== 'toolcall' && kind !== 'processing') {
        throw new ValidationError(`unknown exec kind ${JSON.stringify(kind)}`);
      }
      assertToken('sessionId', sessionId);
      return `${prefix}.exec.${kind}.${sessionId}`;
    },
    allEvents: `${prefix}.ev.>`,
    allInputs: `${prefix}.in.>`,
    allExec: `${prefix}.exec.>`,
    /** The session id of an events/inputs subject (its last token). */
    sessionOf(subject: string): string {
      return subject.slice(subject.lastIndexOf('.') + 1);
    },
  };
}
export type Subjects = ReturnType<typeof subjects>;

/** The stream's wanted configuration (the part jetplan owns). */
export type DesiredStreamConfig = Partial<StreamConfig> &
  Pick<StreamConfig, 'name' | 'subjects' | 'storage' | 'retention' | 'duplicate_window' | 'num_replicas'>;

export function desiredStreamConfig(options: ResolvedStreamOptions): DesiredStreamConfig {
  const s = subjects(options.subjectPrefix);
  return {
    name: options.streamName,
    subjects: [`${options.subjectPrefix}.in.>`, s.allEvents, s.allExec],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    duplicate_window: options.duplicateWindowMs * 1_000_000,
    num_replicas: options.replicas,
  };
}

/** Whether subject filter `wide` matches every subject `narrow` matches (NATS wildcards). */
export function covers(wide: string, narrow: string): boolean {
  const w = wide.split('.');
  const n = narrow.split('.');
  for (let i = 0; i < w.length; i++) {
    if (w[i] === '>') return i < n.length;
    if (i >= n.length || n[i] === '>') return false;
    if (w[i] !== '*' && w[i] !== n[i]) return false;
    if (w[i] === '*' && n[i] === '>') return false;
  }
  return w.length === n.length;
}

const STREAM_NOT_FOUND = JetStreamApiCodes.StreamNotFound;
const STREAM_NAME_IN_USE = 10058;

/**
 * Creates the stream, or updates an existing one to jetplan's configuration. Idempotent: an
 * existing stream that already matches is left untouched. Returns the resolved options.
 */
export async function ensureStream(
  nc: NatsConnection,
  options: JetplanStreamOptions = {},
): Promise<ResolvedStreamOptions> {
  const resolved = resolveStreamOptions(options);
  const jsm = await jetstreamManager(nc);
  const wanted = desiredStreamConfig(resolved);

  const reconcile = async (): Promise<void> => {
    const info = await jsm.streams.info(resolved.streamName);
    const current = info.config;
    // A subject the stream already takes through a wider one (`<prefix>.>`) is not added again:
    // the server refuses overlapping subjects.
    const missing = wanted.subjects.filter((subject) => !current.subjects.some((have) => covers(have, subject)));
    // Storage and retention cannot be changed on an existing stream.
    if (current.storage !== wanted.storage || current.retention !== wanted.retention) {
      throw new ValidationError(
        `stream ${resolved.streamName} exists with ${current.storage} storage and ${current.retention} retention; jetplan needs file storage and limits retention`,
      );
    }
    // Only ever widen: keep subjects the operator added, a longer duplicate window, and the
    // replica count unless one was asked for.
    const update: Partial<StreamConfig> = {};
    if (missing.length > 0) update.subjects = [...current.subjects, ...missing];
    if (current.duplicate_window < wanted.duplicate_window) update.duplicate_window = wanted.duplicate_window;
    if (options.replicas !== undefined && current.num_replicas !== wanted.num_replicas) update.num_replicas = wanted.num_replicas;
    if (Object.keys(update).length > 0) await jsm.streams.update(resolved.streamName, update);
  };

  try {
    try {
      await reconcile();
    } catch (err) {
      if (!(err instanceof JetStreamApiError) || err.code !== STREAM_NOT_FOUND) throw err;
      try {
        await jsm.streams.add(wanted);
      } catch (addErr) {
        // Another process created it between our info and add: reconcile with theirs.
        if (!(addErr instanceof JetStreamApiError) || addErr.code !== STREAM_NAME_IN_USE) throw addErr;
        await reconcile();
      }
    }
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === SUBJECTS_OVERLAP) throw await overlapError(jsm, resolved, wanted.subjects, err);
    throw err;
  }
  return resolved;
}

const SUBJECTS_OVERLAP = 10065;

/** Which stream already takes our subjects, and what to do about it: the server's error names neither. */
async function overlapError(jsm: JetStreamManager, resolved: ResolvedStreamOptions, subjects: string[], err: Error): Promise<ValidationError> {
  const owners = new Set<string>();
  for (const subject of subjects) {
    const owner = await jsm.streams.find(subject).catch(() => undefined);
    if (owner && owner !== resolved.streamName) owners.add(owner);
  }
  const by = owners.size > 0 ? `stream ${[...owners].join(', ')}` : 'another stream';
  return new ValidationError(
    `the subjects ${subjects.join(', ')} overlap those of ${by}: give this deployment another prefix (--prefix) or use that stream (--stream)`,
    { cause: err },
  );
}

/**
 * The options of a stream that must already exist (clients must not create or change it); a
 * missing one is a clear error rather than a timeout later.
 */
export async function existingStream(jsm: JetStreamManager, options: JetplanStreamOptions): Promise<ResolvedStreamOptions> {
  const resolved = resolveStreamOptions(options);
  let taken: string[];
  try {
    taken = (await jsm.streams.info(resolved.streamName)).config.subjects ?? [];
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === STREAM_NOT_FOUND) {
      throw new StoreUnavailableError(`stream ${resolved.streamName} does not exist (start jetplan serve first)`, { cause: err });
    }
    throw err;
  }
  // A prefix the stream does not take (a wrong --prefix) failed later, at a consumer's creation, as
  // "consumer filter subject is not a valid subset of the interest subjects".
  const missing = desiredStreamConfig(resolved).subjects.filter((want) => !taken.some((has) => covers(has, want)));
  if (missing.length > 0) {
    throw new ValidationError(
      `stream ${resolved.streamName} does not take ${missing.join(', ')} (its subjects: ${taken.join(', ') || 'none'}): is the subject prefix ${JSON.stringify(resolved.subjectPrefix)} the deployment's?`,
    );
  }
  return resolved;
}
