import { existsSync } from 'node:fs';
import { stringFlag, type ParsedArgs } from './args.js';
import type { CliContext } from './command.js';
import type { EventStore } from '../persistence/eventStore.js';
import { ReadOnlyFileEventStore } from '../persistence/readOnlyFileEventStore.js';

/**
 * The event store read-only commands (replay, sessions) read: the NATS deployment's with
 * `--nats <url>` (through `ctx.natsStore`), else the file store's log in the data dir, read
 * without its lock (so while a demo runs in it). Resolves undefined when the data dir does not
 * exist, so looking does not create it.
 */
export async function openReadStore(args: ParsedArgs, ctx: CliContext): Promise<EventStore | undefined> {
  const url = stringFlag(args, 'nats');
  if (url !== undefined) return ctx.natsStore(url);
  if (!existsSync(ctx.dataDir)) return undefined;
  const store = await ReadOnlyFileEventStore.open(ctx.dataDir);
  if (store.omittedTailBytes > 0) {
    // Not an error (a demo may be writing it), but a damaged last record must not pass unseen.
    ctx.err(`jetplan: note: the last ${store.omittedTailBytes} bytes of ${ctx.dataDir}/events.log are incomplete (being written, or damaged) and were left out`);
  }
  return store;
}
