/** The service's HTTP endpoints: `GET /healthz` and `GET /metrics` (Prometheus). node:http only. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Metrics } from '../observability/metrics.js';
import { PROMETHEUS_CONTENT_TYPE, renderPrometheus } from './prometheus.js';

/** What the endpoints read; the service provides it. */
export interface HealthSource {
  /** Whether the NATS connection is up (not closed, not between disconnect and reconnect). */
  natsConnected(): boolean;
  /** Resolves when the stream answers an info request; rejects otherwise. */
  checkStream(): Promise<void>;
  isLeader(): boolean;
  consumerPending(): Promise<number>;
  metrics: Metrics;
  logger: Logger;
}

/** The JSON body of /healthz. */
export interface Health {
  status: 'ok' | 'unavailable';
  nats: 'connected' | 'disconnected';
  stream: 'reachable' | 'unreachable';
  leader: boolean;
  /** Inputs waiting for the planner; null when it cannot be known (NATS or the stream away). */
  consumerPending: number | null;
  error?: string;
}

/** Health as /healthz reports it: ok only when NATS is connected and the stream answers. */
export async function checkHealth(source: HealthSource): Promise<Health> {
  const leader = source.isLeader();
  if (!source.natsConnected()) {
    const error = 'the NATS connection is down (reconnecting, or closed)';
    return { status: 'unavailable', nats: 'disconnected', stream: 'unreachable', leader, consumerPending: null, error };
  }
  try {
    await source.checkStream();
  } catch (err) {
    const error = (err as Error).message;
    return { status: 'unavailable', nats: 'connected', stream: 'unreachable', leader, consumerPending: null, error };
  }
  return { status: 'ok', nats: 'connected', stream: 'reachable', leader, consumerPending: await source.consumerPending() };
}

/** Starts the server on `port` (0 = ephemeral) on all interfaces; resolves with it and its port. */
export async function startHttpServer(port: number, source: HealthSource): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const respond = (status: number, type: string, body: string, extra: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', ...extra });
      res.end(body); // Node sends no body for HEAD
    };
    const route = async () => {
      // HEAD as GET: probes (load balancers, curl -I) that only look at the status.
      if (req.method !== 'GET' && req.method !== 'HEAD') return respond(405, 'text/plain', 'method not allowed\n', { allow: 'GET, HEAD' });
      if (path === '/healthz') {
        const health = await checkHealth(source);
        return respond(health.status === 'ok' ? 200 : 503, 'application/json', JSON.stringify(health));
      }
      if (path === '/metrics') {
        // NaN (unknown), not 0, while it cannot be read: an alert on a backlog must not see none.
        const consumerPending = source.natsConnected() ? await source.consumerPending().catch(() => NaN) : NaN;
        return respond(200, PROMETHEUS_CONTENT_TYPE, renderPrometheus(source.metrics, { consumerPending, leader: source.isLeader() }));
      }
      respond(404, 'text/plain', 'not found\n');
    };
    route().catch((err: unknown) => {
      source.logger.error({ err }, 'http request failed');
      if (!res.headersSent) respond(500, 'text/plain', 'internal error\n');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, () => resolve());
  });
  return { server, port: (server.address() as AddressInfo).port };
}

/** Closes the server and any idle keep-alive connections. */
export async function stopHttpServer(server: Server): Promise<void> {
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
