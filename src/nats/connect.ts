/** Connecting to NATS the way every jetplan process does: flags or env, auth, TLS, clear errors. */
import { readFileSync } from 'node:fs';
import { credsAuthenticator, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';
import { connectCoalescing } from './coalescingTransport.js';

export interface NatsConnectionOptions {
  /** Default: env NATS_URL, else nats://127.0.0.1:4222. A comma-separated list is allowed. */
  url?: string;
  user?: string;
  pass?: string;
  token?: string;
  /** A .creds file (JWT + nkey seed). */
  credsFile?: string;
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
  /** Client name shown by the server (default 'jetplan'). */
  name?: string;
  /** Per-request timeout, ms (nats.js default 20000). */
  timeoutMs?: number;
}

export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';

/** The URL that `connectNats` would use for these options. */
export function resolveNatsUrl(options: NatsConnectionOptions = {}): string {
  return options.url ?? process.env['NATS_URL'] ?? DEFAULT_NATS_URL;
}

/** A one-line error message for a failed connection. */
export class NatsConnectError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'NatsConnectError';
  }
}

export const isNatsConnectError = (e: unknown): e is NatsConnectError =>
  e instanceof Error && e.name === 'NatsConnectError';

/** Builds the nats.js options (exported for tests). */
export function connectionOptions(options: NatsConnectionOptions = {}): ConnectionOptions {
  const url = resolveNatsUrl(options);
  const servers = url
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  const opts: ConnectionOptions = {
    servers,
    name: options.name ?? 'jetplan',
    maxReconnectAttempts: -1,
    // nats.js otherwise builds an Error (with a captured stack) for every request and PubAck,
    // only to improve the trace of a timeout: 10-15% of the planner's CPU under load.
    noAsyncTraces: true,
  };
  if (options.timeoutMs !== undefined) opts.timeout = options.timeoutMs;
  if (options.user !== undefined) opts.user = options.user;
  if (options.pass !== undefined) opts.pass = options.pass;
  if (options.token !== undefined) opts.token = options.token;
  if (options.credsFile !== undefined) {
    let creds: Uint8Array;
    try {
      creds = readFileSync(options.credsFile);
    } catch (err) {
      throw new NatsConnectError(`cannot read creds file ${options.credsFile}: ${(err as Error).message}`, { cause: err });
    }
    opts.authenticator = credsAuthenticator(creds);
  }
  const tls = options.tls;
  if (tls && (tls.caFile !== undefined || tls.certFile !== undefined || tls.keyFile !== undefined)) {
    opts.tls = {
      ...(tls.caFile !== undefined ? { caFile: tls.caFile } : {}),
      ...(tls.certFile !== undefined ? { certFile: tls.certFile } : {}),
      ...(tls.keyFile !== undefined ? { keyFile: tls.keyFile } : {}),
    };
  }
  return opts;
}

/**
 * Connects (reconnecting forever once connected), with socket writes coalesced per event-loop turn
 * (coalescingTransport.ts). Initial failures are one-line NatsConnectErrors.
 */
export async function connectNats(options: NatsConnectionOptions = {}): Promise<NatsConnection> {
  const url = resolveNatsUrl(options);
  const opts = connectionOptions(options);
  try {
    return await connectCoalescing(opts);
  } catch (err) {
    throw new NatsConnectError(describeConnectError(err, url), { cause: err });
  }
}

function describeConnectError(err: unknown, url: string): string {
  const e = err as Error & { code?: string; cause?: Error & { code?: string } };
  const code = e.code ?? e.cause?.code;
  const text = `${e.message ?? String(err)} ${e.cause?.message ?? ''}`.toLowerCase();
  if (code === 'ECONNREFUSED' || text.includes('connection refused') || text.includes('econnrefused')) {
    return `cannot connect to NATS at ${url}: connection refused (is nats-server running?)`;
  }
  if (code === 'ENOTFOUND' || text.includes('enotfound')) {
    return `cannot connect to NATS at ${url}: host not found`;
  }
  if (e.name === 'AuthorizationError' || text.includes('authorization')) {
    return `cannot connect to NATS at ${url}: authorization failed (check --user/--pass, --token or --creds)`;
  }
  if (text.includes('tls') || text.includes('certificate')) {
    return `cannot connect to NATS at ${url}: TLS error: ${oneLine(e.message)}`;
  }
  return `cannot connect to NATS at ${url}: ${oneLine(e.message ?? String(err))}`;
}

const oneLine = (s: string): string => s.replace(/\s+/g, ' ').trim();
