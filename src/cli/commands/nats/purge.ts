import { purgeEndedSessions, type PurgeResult } from '../../../nats/purgeSessions.js';
import { noPositionals, stringFlag } from '../../args.js';
import { UsageError } from '../../cliErrors.js';
import type { Command, CliContext } from '../../command.js';
import { connectFromArgs, CONNECTION_FLAGS, CONNECTION_USAGE, streamOptionsFrom } from './connection.js';

const USAGE = `Usage: jetplan purge --older-than <age> [--dry-run] [--json]
Removes from a NATS deployment every session that has ended (completed, failed or cancelled) and
whose last event is at least <age> old: its events, its commands, the inputs the service has
processed, its snapshot and its executors' inbox entries. Open sessions are never removed. A later
input under a removed id starts a new session. Safe while the service runs; run it again if it is
interrupted.
  --older-than <age>   e.g. 30d, 12h, 45m, 90s, 500ms; never less than the stream's duplicate
                       window (2 min by default), which still remembers the sessions' message ids
  --dry-run            list the sessions that would be removed; remove nothing
  --json               print {sessions, messages, snapshots, dispatchEntries, recent, open}
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

function report(ctx: CliContext, result: PurgeResult, dryRun: boolean): void {
  if (ctx.json) return ctx.out(JSON.stringify(result));
  if (dryRun) for (const id of result.sessions) ctx.out(id);
  const what = dryRun
    ? `would purge ${result.sessions.length} ended session(s)`
    : `purged ${result.sessions.length} ended session(s): ${result.messages} message(s), ${result.snapshots} snapshot(s), ${result.dispatchEntries} executor inbox entries`;
  ctx.out(`${what}; kept ${result.recent} ended too recently, ${result.open} not ended`);
}

/** `jetplan purge`: retention of ended sessions on NATS. */
export const purgeCommand: Command = {
  summary: 'remove ended sessions older than an age from NATS',
  usage: USAGE,
  flags: { ...CONNECTION_FLAGS, 'older-than': 'string', 'dry-run': 'boolean' },
  async run(args, ctx) {
    noPositionals(args);
    const age = stringFlag(args, 'older-than');
    // Required: a purge with a default age would be one typo away from removing recent sessions.
    if (age === undefined) throw new UsageError('purge needs --older-than <age> (e.g. 30d); nothing was removed');
    const olderThanMs = parseAge('older-than', age);
    const dryRun = args.flags['dry-run'] === true;
    const streams = streamOptionsFrom(args);
    const nc = await connectFromArgs(args, ctx);
    try {
      const result = await purgeEndedSessions(nc, { ...streams, olderThanMs, dryRun });
      report(ctx, result, dryRun);
      return 0;
    } finally {
      await nc.close().catch(() => undefined);
    }
  },
};
