/**
 * Broker errors, seen from the event store: which ones are worth resending, and how the rest map
 * onto the store's error taxonomy (ConcurrencyError, StoreUnavailableError, ...).
 */
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { errors } from '@nats-io/transport-node';
import {
  ConcurrencyError,
  isConcurrencyError,
  isCorruptLogError,
  isStoreUnavailableError,
  isValidationError,
  StoreUnavailableError,
} from '../../errors.js';
import type { ConnectionGate } from './connectionGate.js';

const WRONG_LAST_SEQUENCE = JetStreamApiCodes.StreamWrongLastSequence; // 10071
/** JetStream's "message size exceeds maximum allowed": larger than the stream's max_msg_size. */
const MESSAGE_TOO_LARGE = 10054;

/** Resolves after `ms`. */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The server's expected-last-subject-sequence check failed: another append got there first. */
export function isWrongLastSequence(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === WRONG_LAST_SEQUENCE;
}

/**
 * Whether publishing the same message again can never succeed: nats.js refuses a message above the
 * server's max_payload (or a bad subject) with an InvalidArgumentError before sending it, and the
 * stream refuses one above its max_msg_size with API error 10054. Retrying would loop forever.
 */
export function isPermanentPublishError(err: unknown): boolean {
  if (err instanceof errors.InvalidArgumentError) return true;
  return err instanceof JetStreamApiError && err.code === MESSAGE_TOO_LARGE;
}

/** A request that may succeed if simply sent again (same msg id, same expectation). */
export function isTransient(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  switch (err.name) {
    case 'TimeoutError':
    case 'NoRespondersError':
    case 'JetStreamNotEnabled': // a 503 while the server is (re)starting JetStream
      return true;
    case 'RequestError':
      return (err as Error & { isNoResponders?: () => boolean }).isNoResponders?.() === true;
    default:
      return false;
  }
}

/** Internal: the server rejected the first event of an append (nothing was written). */
export class FirstEventConflict extends Error {
  constructor(readonly conflict: ConcurrencyError) {
    super(conflict.message, { cause: conflict });
  }
}

/** What {@link retryTransient} needs to know about the connection. */
export interface RetryContext {
  gate: ConnectionGate;
  /** How long to keep resending, ms. */
  retryForMs: number;
  /** Resending on a closed connection is pointless: give up at once. */
  isClosed: () => boolean;
}

/** Runs a request, resending it while it times out or finds no responder (server restarting). */
export async function retryTransient<T>(ctx: RetryContext, request: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + ctx.retryForMs;
  for (let attempt = 0; ; attempt++) {
    await ctx.gate.ready(Math.max(0, deadline - Date.now()));
    try {
      return await request();
    } catch (err) {
      if (!isTransient(err) || Date.now() >= deadline || ctx.isClosed()) throw err;
      await sleep(Math.min(25 * 2 ** attempt, 500));
    }
  }
}

/**
 * Maps any error thrown inside the store onto the port's taxonomy: the store's own errors pass
 * through, a late wrong-last-sequence becomes a conflict, anything else means the broker is
 * unavailable (callers may retry those).
 */
export function translateStoreError(
  err: unknown,
  streamName: string,
  streamId: string | undefined,
  expectedVersion: number | 'any' | undefined,
): Error {
  if (err instanceof FirstEventConflict) return err.conflict;
  if (isConcurrencyError(err) || isValidationError(err) || isCorruptLogError(err)) return err;
  if (isStoreUnavailableError(err)) return err;
  if (isWrongLastSequence(err) && streamId !== undefined && typeof expectedVersion === 'number') {
    return new ConcurrencyError(streamId, expectedVersion, undefined, { cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new StoreUnavailableError(
    `JetStream ${streamName}${streamId === undefined ? '' : ` (session ${streamId})`}: ${message}`,
    { cause: err },
  );
}
