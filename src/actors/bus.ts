/** A message on a bus: a subject (topic and routing key, dot-separated), a JSON body, headers. */
export interface BusMessage {
  subject: string;
  data: unknown;
  headers: Record<string, string>;
}

/** Handles one message; a rejection (throw) makes the publisher retry. */
export type BusHandler = (message: BusMessage) => Promise<void> | void;

/**
 * Nobody subscribes to the subject: the publisher keeps the message and retries, or gives up when
 * the subscriber is one that cannot come back on this bus (the planner of a closed runtime).
 */
export class NoRouteError extends Error {
  override readonly name = 'NoRouteError';
  constructor(readonly subject: string, options?: ErrorOptions) {
    super(`no subscriber for ${subject}`, options);
  }
}

/** Whether `err` is a {@link NoRouteError} (by name, so it holds across module copies, as the guards of errors.ts). */
export const isNoRouteError = (err: unknown): err is NoRouteError => err instanceof Error && err.name === 'NoRouteError';

/**
 * The bus port. Subjects use NATS syntax so the embedded and NATS deployments route alike:
 * `*` matches one token, `>` one or more trailing tokens.
 */
export interface Bus {
  /**
   * Delivers to every matching subscriber and resolves when all have handled it; rejects with
   * NoRouteError when none matches, or with a subscriber's error.
   */
  publish(subject: string, data: unknown, headers?: Record<string, string>): Promise<void>;
  /** Subscribes to a pattern; returns the unsubscribe function. */
  subscribe(pattern: string, handler: BusHandler): () => void;
}

/** Header names carried by every message, on the in-process bus and on NATS alike. */
export const HEADER = {
  type: 'Jetplan-Type',
  correlationId: 'Jetplan-Correlation-Id',
  causationId: 'Jetplan-Causation-Id',
  messageId: 'Nats-Msg-Id',
} as const;

/** Whether a NATS-style pattern matches a subject. */
export function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length || (p[i] !== '*' && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}
