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
  const parsed = url
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map(splitCredentials);
  const servers = parsed.map((p) => p.server);
  const inUrl = parsed.find((p) => p.user !== undefined);
  const opts: ConnectionOptions = {
    servers,
    name: options.name ?? 'jetplan',
    maxReconnectAttempts: -1,
    // nats.js otherwise builds an Error (with a captured stack) for every request and PubAck,
    // only to improve the trace of a timeout: 10-15% of the planner's CPU under load.
    noAsyncTraces: true,
  };
  if (options.timeoutMs !== undefined) opts.timeout = options.timeoutMs;
  // Credentials in the URL (nats://user:pass@host, nats://token@host) count unless given as options:
  // nats.js would drop them silently.
  if (inUrl && options.user === undefined && options.token === undefined && options.credsFile === undefined) {
    if (inUrl.pass === undefined) opts.token = inUrl.user;
    else Object.assign(opts, { user: inUrl.user, pass: inUrl.pass });
  }
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
  // nats.js reads no scheme: a `tls://` URL alone connected in plain text to a server without TLS,
  // credentials and all. Asking for TLS makes it refuse such a server.
  if (opts.tls === undefined && servers.some((s) => /^tls:\/\//i.test(s))) opts.tls = {};
  return opts;
}

/**
 * A server URL without its credentials, and those credentials (percent-decoded). The host is what
 * follows the last `@` (a host has none; a password or token may: base64 has `/`, `+`, `=`).
 */
function splitCredentials(server: string): { server: string; user?: string; pass?: string } {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(server)?.[0] ?? '';
  const rest = server.slice(scheme.length);
  const at = rest.lastIndexOf('@');
  if (at < 0) return { server };
  const userinfo = rest.slice(0, at);
  const colon = userinfo.indexOf(':');
  const decode = (v: string) => {
    try {
      return decodeURIComponent(v);
    } catch {
      return v;
    }
  };
  const user = decode(colon < 0 ? userinfo : userinfo.slice(0, colon));
  return { server: `${scheme}${rest.slice(at + 1)}`, user, ...(colon < 0 ? {} : { pass: decode(userinfo.slice(colon + 1)) }) };
}

/** `url` as it may be shown: any credentials in it replaced by `***`. */
export function redactUrl(url: string): string {
  return url
    .split(',')
    .map((s) => {
      const { server, user } = splitCredentials(s.trim());
      if (user === undefined) return s;
      const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(server)?.[0] ?? '';
      return `${scheme}***@${server.slice(scheme.length)}`;
    })
    .join(',');
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
    throw new NatsConnectError(describeConnectError(err, redactUrl(url)), { cause: err });
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
