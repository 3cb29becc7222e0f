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
  return ReadOnlyFileEventStore.open(ctx.dataDir);
}
