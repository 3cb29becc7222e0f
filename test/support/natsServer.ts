/**
 * Test harness: starts a real nats-server (JetStream enabled) on a free port with its own store
 * directory. Never a mock: integration tests talk to the broker they will run against.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { randomBytes } from 'node:crypto';

export interface NatsServerHandle {
  /** e.g. `nats://127.0.0.1:41234` */
  readonly url: string;
  readonly port: number;
  /** The JetStream store directory. */
  readonly dir: string;
  /** SIGTERM, then wait for the process to exit. */
  stop(): Promise<void>;
  /** SIGKILL (a crash), then wait for the process to exit. */
  kill(): Promise<void>;
  /** Stops (if running) and starts again on the same port and store directory. */
  restart(): Promise<void>;
  /** stop + remove the store directory (only if the harness created it). */
  cleanup(): Promise<void>;
}

const READY_TIMEOUT_MS = 10_000;

function findNatsServer(): string {
  const fromEnv = process.env['NATS_SERVER'];
  if (fromEnv) return fromEnv;
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, 'nats-server');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      /* keep looking */
    }
  }
  throw new Error('nats-server not found: set NATS_SERVER or put nats-server on PATH');
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      if (address === null || typeof address === 'string') {
        srv.close();
        reject(new Error('could not get a free port'));
        return;
      }
      const { port } = address;
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves when a TCP connection succeeds and the server sends its INFO line. */
function probe(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    let done = false;
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => finish(false));
    socket.once('error', () => finish(false));
    socket.once('data', (chunk) => finish(chunk.toString('utf8').startsWith('INFO')));
    socket.connect(port, '127.0.0.1');
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A name unique to this process and call, usable as a stream name or subject token. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
}

export async function startNatsServer(options: { dir?: string; port?: number; args?: string[] } = {}): Promise<NatsServerHandle> {
  const binary = findNatsServer();
  const port = options.port ?? (await freePort());
  const ownsDir = options.dir === undefined;
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'jetplan-nats-')));
  const url = `nats://127.0.0.1:${port}`;

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let stderr = '';

  const launch = async (): Promise<void> => {
    stderr = '';
    const proc = spawn(binary, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir, ...(options.args ?? [])], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child = proc;
    let hasExited = false;
    let exitInfo = '';
    exited = new Promise<void>((resolve) => {
      proc.once('exit', (code, signal) => {
        hasExited = true;
        exitInfo = `code ${code ?? 'null'}, signal ${signal ?? 'null'}`;
        if (child === proc) child = undefined;
        resolve();
      });
    });
    proc.once('error', (err) => {
      stderr += `\nspawn error: ${err.message}`;
    });
    proc.stderr?.setEncoding('utf8');
    proc.stderr?.on('data', (chunk: string) => {
      // nats-server logs to stderr; keep the tail for error messages.
      stderr = (stderr + chunk).slice(-8_000);
    });

    const deadline = Date.now() + READY_TIMEOUT_MS;
    let backoff = 10;
    while (Date.now() < deadline) {
      if (hasExited) {
        throw new Error(`nats-server exited before it was ready (${exitInfo}). stderr:\n${stderr}`);
      }
      if (await probe(port)) return;
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 200);
    }
    proc.kill('SIGKILL');
    await exited;
    throw new Error(
      `nats-server did not accept connections on ${url} within ${READY_TIMEOUT_MS} ms. stderr:\n${stderr}`,
    );
  };

  const signal = async (sig: NodeJS.Signals): Promise<void> => {
    const proc = child;
    if (!proc) return;
    proc.kill(sig);
    await exited;
  };

  await launch();

  return {
    url,
    port,
    dir,
    stop: () => signal('SIGTERM'),
    kill: () => signal('SIGKILL'),
    async restart() {
      await signal('SIGTERM');
      await launch();
    },
    async cleanup() {
      await signal('SIGTERM');
      if (ownsDir) await rm(dir, { recursive: true, force: true });
    },
  };
}
