import type { NatsConnection } from '@nats-io/transport-node';
import type { CliSignal } from '../../io.js';
import type { CliContext } from '../../command.js';

/** Resolves with the signal that asked a long-running command to stop, or 'closed' if NATS closed. */
export async function untilSignalOrClosed(ctx: CliContext, nc: NatsConnection): Promise<CliSignal | 'closed'> {
  let off: (() => void) | undefined;
  try {
    return await Promise.race([
      new Promise<CliSignal>((resolve) => {
        off = ctx.io.onSignal(resolve);
      }),
      nc.closed().then(() => 'closed' as const),
    ]);
  } finally {
    off?.();
  }
}

/**
 * Says on the command's output when NATS goes away and when it is back: an operator otherwise sees
 * only the timeouts that follow. One line each way, not one per reconnect attempt. Ends with the
 * connection.
 */
export function reportConnection(ctx: CliContext, nc: NatsConnection, name: string): void {
  void (async () => {
    let down = false;
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' && !down) {
        down = true;
        ctx.err(`${name}: NATS disconnected (${s.server}); reconnecting, work waits`);
      } else if (s.type === 'reconnect') {
        down = false;
        ctx.out(`${name}: reconnected to ${s.server}`);
      }
    }
  })().catch(() => undefined);
}

/** How long a drain may take at shutdown before the connection is closed without it. */
const DRAIN_LIMIT_MS = 10_000;

/**
 * Drains the connection (pending publishes and acks go out), then makes sure it is closed: while
 * NATS is away there is no drain (it would wait for a reconnect), and the connection, still
 * reconnecting, would keep the process alive after the command returned. A drain that takes too
 * long is cut short the same way.
 * Resolves whether the drain completed.
 */
export async function closeConnection(nc: NatsConnection, limitMs = DRAIN_LIMIT_MS): Promise<boolean> {
  if (nc.isClosed()) return true;
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), limitMs)));
  // rtt() fails at once while the connection is down, where a drain would wait for a reconnect.
  const drained = await Promise.race([
    nc.rtt().then(() => nc.drain()).then(() => true, () => false),
    limit,
  ]);
  clearTimeout(timer);
  if (!nc.isClosed()) await nc.close().catch(() => undefined);
  return drained;
}

/** How long a service's shutdown may take before it is cut short, the connection's drain included. */
export const SHUTDOWN_LIMIT_MS = 15_000;

/**
 * Waits for `closing` (a graceful shutdown) at most `limitMs`, or until a second signal. A
 * shutdown can hang on NATS (away, or slow with a long backlog): then it gives way, and closing the
 * connection ends what is left; nothing is lost, since work is acknowledged only once it is stored.
 * Resolves how it ended.
 */
export async function boundedShutdown(ctx: CliContext, closing: Promise<unknown>, limitMs = SHUTDOWN_LIMIT_MS): Promise<'done' | 'timeout' | CliSignal> {
  let timer: NodeJS.Timeout | undefined;
  let off: (() => void) | undefined;
  try {
    return await Promise.race([
      closing.then(() => 'done' as const, () => 'done' as const),
      new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), limitMs))),
      new Promise<CliSignal>((resolve) => (off = ctx.io.onSignal(resolve))),
    ]);
  } finally {
    clearTimeout(timer);
    off?.();
  }
}
