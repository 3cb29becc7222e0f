import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { MIN_LEASE_TTL_MS, startPlannerService, type PlannerService } from '../../../service/plannerService.js';
import { noPositionals, numberFlag, stringFlag } from '../../args.js';
import type { CliContext, Command } from '../../command.js';
import { connectFromArgs, CONNECTION_FLAGS, CONNECTION_USAGE, streamOptionsFrom } from './connection.js';
import { boundedShutdown, closeConnection, reportConnection, SHUTDOWN_LIMIT_MS, untilSignalOrClosed } from './lifecycle.js';

const USAGE = `Usage: jetplan serve [--nats <url>] [--http-port <port>] [--stream <name>] [--prefix <p>]
Runs the planner service on NATS JetStream: consumes inputs, appends events, dispatches tasks.
Instances run active/standby under a leader lease. SIGTERM/SIGINT stop it cleanly.
  --http-port <port>   serve /healthz and /metrics on this port (0 = any free port)
  --instance-id <id>   this instance's name in the leader lease
  --lease-ttl-ms <ms>  leader lease TTL (default 10000; set when the lease bucket is created)
  --lease-bucket <b>   KV bucket of the leader lease (default jetplan_leases)
${CONNECTION_USAGE}`;

/** `jetplan serve`: the planner service. */
export const serveCommand: Command = {
  summary: 'run the planner service on NATS',
  usage: USAGE,
  flags: { ...CONNECTION_FLAGS, 'http-port': { min: 0, max: 65_535 }, 'instance-id': 'string', 'lease-ttl-ms': { min: MIN_LEASE_TTL_MS }, 'lease-bucket': 'string' },
  async run(args, ctx) {
    noPositionals(args);
    const httpPort = numberFlag(args, 'http-port');
    const instanceId = stringFlag(args, 'instance-id');
    const leaseTtlMs = numberFlag(args, 'lease-ttl-ms');
    const leaseBucket = stringFlag(args, 'lease-bucket');
    // A service logs at info by default (debug with --verbose), through the CLI's stderr.
    const logger = ctx.verbose ? ctx.logger : ctx.logger.child({}, { level: 'info' });
    const nc = await connectFromArgs(args, ctx, 'jetplan-planner');
    // Each term as leader gets a line, the first only after the "connected" line.
    let shown = false;
    const early: boolean[] = [];
    const tell = (leader: boolean) => {
      if (leader) ctx.out('jetplan serve: leader, consuming inputs');
      else ctx.err('jetplan serve: lost the leader lease (NATS away?); standby, not consuming inputs');
    };
    let service;
    try {
      service = await startPlannerService({
        nc,
        logger,
        ...streamOptionsFrom(args),
        ...(httpPort !== undefined ? { httpPort } : {}),
        ...(instanceId ? { instanceId } : {}),
        ...(leaseTtlMs !== undefined ? { leaseTtlMs } : {}),
        ...(leaseBucket ? { leaseBucket } : {}),
        onLeadershipChange: (leader) => (shown ? tell(leader) : early.push(leader)),
      });
    } catch (err) {
      await nc.close().catch(() => undefined);
      throw err;
    }
    const where = nc.getServer();
    ctx.out(`jetplan serve: connected to ${where}${service.httpPort !== undefined ? `, http on :${service.httpPort}` : ''}`);
    shown = true;
    early.forEach(tell);
    reportConnection(ctx, nc, 'jetplan serve');
    // One handler held from here to exit: when a process's last SIGTERM/SIGINT handler goes, the
    // default action is back, and a second signal between the wait below and boundedShutdown's own
    // handler would kill the service outright instead of cutting its shutdown short.
    const holdSignals = ctx.io.onSignal(() => {});
    try {
      return await runUntilStopped(ctx, nc, service, logger);
    } finally {
      holdSignals();
    }
  },
};

/** Serves until a signal or a lost connection, then shuts down within bounds; the exit code. */
async function runUntilStopped(ctx: CliContext, nc: NatsConnection, service: PlannerService, logger: Logger): Promise<number> {
  const why = await untilSignalOrClosed(ctx, nc);
  // An unexpected close is an error: one line on stderr, exit 1.
  if (why === 'closed') ctx.err(`jetplan serve: the NATS connection closed`);
  else ctx.out(`jetplan serve: ${why}, shutting down`);
  const started = Date.now();
  const closing = service.close().catch((err: unknown) => logger.error({ err }, 'close failed'));
  const how = await boundedShutdown(ctx, closing);
  if (how !== 'done') {
    ctx.err(`jetplan serve: shutdown cut short (${how === 'timeout' ? 'it took over 15 s' : how}); unacknowledged inputs are redelivered`);
  }
  // The drain gets what is left of the 15 s: a stop takes 15 s at most, NATS away or not; none after a second signal.
  const drainMs = how === 'done' || how === 'timeout' ? Math.max(0, SHUTDOWN_LIMIT_MS - (Date.now() - started)) : 0;
  if (!(await closeConnection(nc, drainMs)) && why !== 'closed' && how === 'done') {
    ctx.err('jetplan serve: the connection was closed without a drain (NATS away?); unacknowledged inputs are redelivered');
  }
  return why === 'closed' ? 1 : 0;
}
