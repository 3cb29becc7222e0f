/** What every NATS command shares: connection flags, connecting with one-line errors, the client. */
import { accessSync, constants, statSync } from 'node:fs';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectNats, NatsConnectError, type NatsConnectionOptions } from '../../../nats/connect.js';
import { createClient, type JetplanClient } from '../../../nats/client.js';
import { stringFlag, type FlagSpec, type ParsedArgs } from '../../args.js';
import { CliError, UsageError } from '../../cliErrors.js';
import type { CliContext } from '../../command.js';

/** Connection flags every NATS command takes. */
export const CONNECTION_FLAGS: FlagSpec = {
  nats: 'string',
  user: 'string',
  pass: 'text',
  token: 'string',
  creds: 'string',
  'tls-ca': 'string',
  'tls-cert': 'string',
  'tls-key': 'string',
  stream: 'string',
  prefix: 'string',
};

export const CONNECTION_USAGE = `Connection:
  --nats <url>       NATS server(s), comma-separated (default $NATS_URL, else nats://127.0.0.1:4222);
                     nats://user:pass@host or nats://token@host also authenticate
  --user <u> --pass <p> | --token <t> | --creds <file>   authentication
  --tls-ca <file> --tls-cert <file> --tls-key <file>     TLS
  --stream <name>    JetStream stream (default JETPLAN)
  --prefix <p>       subject prefix (default jetplan)`;

/** The connection options the flags (and NATS_URL in the command's environment) ask for. */
export function connectionOptionsFrom(args: ParsedArgs, ctx: CliContext, name = 'jetplan'): NatsConnectionOptions {
  const o: NatsConnectionOptions = { name };
  const flag = stringFlag(args, 'nats');
  // An empty --nats (an unset variable in a script) must not quietly mean the default server.
  if (flag !== undefined && flag.trim() === '') throw new UsageError('--nats needs a server URL');
  const url = flag ?? ctx.io.env['NATS_URL'];
  if (url) o.url = url;
  const user = stringFlag(args, 'user');
  const pass = stringFlag(args, 'pass');
  const token = stringFlag(args, 'token');
  const creds = stringFlag(args, 'creds');
  if ((user === undefined) !== (pass === undefined)) throw new UsageError('--user and --pass go together');
  // Alternatives: nats.js would send them all and the server pick one, so a stale flag could win.
  const ways = [user !== undefined && '--user/--pass', token !== undefined && '--token', creds !== undefined && '--creds'].filter(Boolean);
  if (ways.length > 1) throw new UsageError(`${ways.join(' and ')} are alternatives: give one`);
  for (const name of ['tls-ca', 'tls-cert', 'tls-key']) {
    const file = stringFlag(args, name);
    // Read here so a wrong path is named as such, not reported later as a TLS or auth failure.
    if (file !== undefined && !isReadableFile(file)) throw new UsageError(`--${name}: cannot read ${file}`);
  }
  if (user !== undefined) o.user = user;
  if (pass !== undefined) o.pass = pass;
  if (token !== undefined) o.token = token;
  if (creds !== undefined) o.credsFile = creds;
  const caFile = stringFlag(args, 'tls-ca');
  const certFile = stringFlag(args, 'tls-cert');
  const keyFile = stringFlag(args, 'tls-key');
  if (caFile ?? certFile ?? keyFile) {
    o.tls = {
      ...(caFile !== undefined ? { caFile } : {}),
      ...(certFile !== undefined ? { certFile } : {}),
      ...(keyFile !== undefined ? { keyFile } : {}),
    };
  }
  return o;
}

/** Readable and not a directory: a pipe (`--tls-ca <(vault read …)`) is fine, as nats.js reads it. */
function isReadableFile(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return !statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** `--stream` / `--prefix`, when given. */
export function streamOptionsFrom(args: ParsedArgs): { streamName?: string; subjectPrefix?: string } {
  const streamName = stringFlag(args, 'stream');
  const subjectPrefix = stringFlag(args, 'prefix');
  // Empty (an unset variable in a script) must not quietly mean the default (production) stream.
  if (streamName?.trim() === '') throw new UsageError('--stream needs a stream name');
  if (subjectPrefix?.trim() === '') throw new UsageError('--prefix needs a subject prefix');
  return { ...(streamName ? { streamName } : {}), ...(subjectPrefix ? { subjectPrefix } : {}) };
}

/** Connects, turning connection failures into one-line CLI errors. */
export async function connectFromArgs(args: ParsedArgs, ctx: CliContext, name?: string): Promise<NatsConnection> {
  try {
    return await connectNats(connectionOptionsFrom(args, ctx, name));
  } catch (err) {
    if (err instanceof NatsConnectError) throw new CliError(err.message, 1);
    throw err;
  }
}

/** Runs `fn` with a client on a fresh connection, then closes both. */
export async function withClient<T>(
  args: ParsedArgs,
  ctx: CliContext,
  fn: (client: JetplanClient, nc: NatsConnection) => Promise<T>,
): Promise<T> {
  const nc = await connectFromArgs(args, ctx);
  const client = createClient(nc, streamOptionsFrom(args));
  try {
    return await fn(client, nc);
  } finally {
    await client.close().catch(() => undefined);
    await nc.close().catch(() => undefined);
  }
}
