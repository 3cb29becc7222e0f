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
