import { purgeEndedSessions } from '../../nats/purgeSessions.js';
import { purgeDataDir } from '../../runtime/purgeDataDir.js';
import { noPositionals, stringFlag, type ParsedArgs } from '../args.js';
import { UsageError } from '../cliErrors.js';
import type { Command, CliContext } from '../command.js';
import { connectFromArgs, CONNECTION_FLAGS, CONNECTION_USAGE, streamOptionsFrom } from './nats/connection.js';

const USAGE = `Usage: jetplan purge --older-than <age> [--dry-run] [--json]
Removes every session that has ended (completed, failed or cancelled), or never started (every
input rejected), and whose last event is at least <age> old: its events, its commands, the inputs the service has processed, its snapshot and
its executor inbox records. Open sessions are never removed; a later input under a removed id
starts a new session. Run it again if it is interrupted.
From the data dir (--data-dir), which no other process may be using; with --nats (or any connection
flag), from a NATS deployment, safe while the service runs.
  --older-than <age>   e.g. 30d, 12h, 45m, 90s, 500ms; on NATS never less than the stream's
                       duplicate window (2 min by default), which still remembers their message ids
  --dry-run            list the sessions that would be removed; remove nothing
  --json               print what was removed and kept as JSON
${CONNECTION_USAGE}`;

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `30d`, `12h`, `45m`, `90s`, `500ms` as milliseconds; a UsageError naming the flag otherwise. */
export function parseAge(flag: string, value: string): number {
  const match = /^(\d+)(ms|s|m|h|d)$/.exec(value.trim());
  const ms = match ? Number(match[1]) * UNIT_MS[match[2]!]! : NaN;
  if (!Number.isSafeInteger(ms)) {
    throw new UsageError(`--${flag} expects an age such as 30d, 12h, 45m, 90s or 500ms, got ${JSON.stringify(value)}`);
  }
  return ms;
}

/** What either purge found: the sessions removed, what it removed of them, what it kept. */
interface Purged {
  sessions: string[];
  recent: number;
  open: number;
}

/** `where`: what was purged (the data dir, or the NATS stream), so a job pointed at the wrong one says so. */
function report(ctx: CliContext, result: Purged, where: string, removed: string, dryRun: boolean): void {
  if (ctx.json) return ctx.out(JSON.stringify(result));
  if (dryRun) for (const id of result.sessions) ctx.out(id);
  // Sessions that never started (every input rejected) go too: "ended" alone would hide them.
  const n = `${result.sessions.length} session(s) (ended, or never started)`;
  const what = dryRun ? `would purge ${n} from ${where}` : `purged ${n} from ${where}: ${removed}`;
  ctx.out(`${what}; kept ${result.recent} too recent, ${result.open} still open`);
}

async function purgeNats(args: ParsedArgs, ctx: CliContext, olderThanMs: number, dryRun: boolean): Promise<void> {
  const streams = streamOptionsFrom(args);
  const nc = await connectFromArgs(args, ctx);
  try {
    const r = await purgeEndedSessions(nc, { ...streams, olderThanMs, dryRun });
    const where = `NATS stream ${streams.streamName ?? 'JETPLAN'}`;
    report(ctx, r, where, `${r.messages} message(s), ${r.snapshots} snapshot(s), ${r.dispatchEntries} executor inbox entries`, dryRun);
  } finally {
    await nc.close().catch(() => undefined);
  }
}

/** `jetplan purge`: retention of ended sessions, in the data dir or on NATS. */
export const purgeCommand: Command = {
  summary: 'remove sessions that ended (or never started) older than an age',
  usage: USAGE,
  flags: { ...CONNECTION_FLAGS, 'older-than': 'string', 'dry-run': 'boolean' },
  async run(args, ctx) {
    noPositionals(args);
    const age = stringFlag(args, 'older-than');
    // Required: a purge with a default age would be one typo away from removing recent sessions.
    if (age === undefined) throw new UsageError('purge needs --older-than <age> (e.g. 30d); nothing was removed');
    const olderThanMs = parseAge('older-than', age);
    const dryRun = args.flags['dry-run'] === true;
    if (Object.keys(CONNECTION_FLAGS).some((flag) => args.flags[flag] !== undefined)) {
      await purgeNats(args, ctx, olderThanMs, dryRun);
      return 0;
    }
    const r = await purgeDataDir(ctx.dataDir, { olderThanMs, dryRun });
    if (r.tornTailBytes > 0) {
      const fate = dryRun ? 'left out' : `set aside in ${ctx.dataDir}/events.log.tail-*`;
      ctx.err(`jetplan: note: the last ${r.tornTailBytes} bytes of ${ctx.dataDir}/events.log are incomplete (being written, or damaged) and were ${fate}`);
    }
    report(ctx, r, ctx.dataDir, `${r.entries} log entries, ${r.snapshots} snapshot(s), ${r.executions} executor inbox records`, dryRun);
    return 0;
  },
};
