import { createServer, type AddressInfo } from 'node:net';
/**
 * The whole deployment as separate processes, through the built CLI (`npm run build` first):
 * `jetplan serve`, `jetplan executor echo`, `jetplan submit` and `jetplan answer`, with the test
 * following the session through the client. Then the service is SIGKILLed mid-session and
 * restarted: the session completes and no dispatch is executed twice.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jetstreamManager } from '@nats-io/jetstream';
import { createWebSocketReceiver } from '@statelyai/inspect';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type JetplanClient } from '../../src/nats/client.js';
import { connectNats } from '../../src/nats/connect.js';
import type { DomainEvent } from '../../src/protocol/events.js';
import { startNatsServer, uniqueName, type NatsServerHandle } from '../support/natsServer.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'bin', 'jetplan.js');
const LEASE_TTL_MS = 1_000;

let server: NatsServerHandle;
let nc: NatsConnection;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) throw new Error('dist/ is missing: run `npm run build` first');
  server = await startNatsServer();
  nc = await connectNats({ url: server.url });
});
afterEach(async () => {
  await Promise.all([...children].map((c) => kill(c, 'SIGKILL')));
});
afterAll(async () => {
  await nc?.close();
  await server?.cleanup();
});

interface Proc {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves when stdout has a line matching `pattern`. */
  waitFor(pattern: RegExp, ms?: number): Promise<void>;
  exited: Promise<number | null>;
}

function start(args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let out = '';
  let err = '';
  const listeners = new Set<() => void>();
  child.stdout!.setEncoding('utf8').on('data', (c: string) => {
    out += c;
    for (const l of listeners) l();
  });
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      children.delete(child);
      for (const l of listeners) l();
      resolve(code);
    }),
  );
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitFor(pattern, ms = 15_000) {
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (pattern.test(out)) done(resolve);
          else if (child.exitCode !== null || child.signalCode !== null) done(() => reject(new Error(`process exited before ${pattern}: ${out}\n${err.slice(-2_000)}`)));
        };
        const timer = setTimeout(() => done(() => reject(new Error(`timed out waiting for ${pattern}: ${out}\n${err.slice(-2_000)}`))), ms);
        const done = (f: () => void) => {
          clearTimeout(timer);
          listeners.delete(check);
          f();
        };
        listeners.add(check);
        check();
      });
    },
  };
}

async function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = start(args);
  const code = await p.exited;
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

async function kill(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  await gone;
}

function isolation() {
  const streamName = uniqueName('JPP');
  const subjectPrefix = uniqueName('jpp');
  const inboxBucket = uniqueName('inbox');
  const conn = ['--nats', server.url, '--stream', streamName, '--prefix', subjectPrefix];
  const client = createClient(nc, { streamName, subjectPrefix });
  return { streamName, subjectPrefix, inboxBucket, conn, client };
}

const serveArgs = (conn: string[]) => ['serve', ...conn, '--lease-ttl-ms', String(LEASE_TTL_MS)];

/** Follows a session to its end; `onEvent` may act on each event (answer questions, kill things). */
async function follow(client: JetplanClient, sessionId: string, onEvent: (e: DomainEvent) => Promise<void> = async () => undefined): Promise<DomainEvent[]> {
  const seen: DomainEvent[] = [];
  for await (const event of client.watch(sessionId, { fromStart: true })) {
    seen.push(event);
    await onEvent(event);
    if (event.type === 'SessionCompleted' || event.type === 'SessionFailed' || event.type === 'SessionCancelled') break;
  }
  return seen;
}

/** Dispatch ids as published to executors (by Nats-Msg-Id) and as recorded in the executor inbox. */
async function executions(streamName: string, subjectPrefix: string, inboxBucket: string) {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(streamName, { subjects_filter: `${subjectPrefix}.exec.>` });
  const execMessages = Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
  const kv = await new Kvm(nc).open(inboxBucket);
  const keys: string[] = [];
  for await (const k of await kv.keys()) keys.push(k);
  // History is 1, so the bucket's stream sequence counts every put ever made: one per execution.
  const puts = (await jsm.streams.info(`KV_${inboxBucket}`)).state.last_seq;
  return { execMessages, keys: keys.sort(), puts };
}

// Each CLI run is a fresh node process (about a second to load), so these tests get more time.
describe('jetplan across processes', { timeout: 60_000 }, () => {
  it('serve + executor + submit + answer complete a session', async () => {
    const w = isolation();
    const serve = start(serveArgs(w.conn));
    const executor = start(['executor', 'echo', ...w.conn, '--inbox-bucket', w.inboxBucket]);
    await Promise.all([serve.waitFor(/leader, consuming inputs/), executor.waitFor(/taking/)]);

    const submitted = await run(['submit', ...w.conn, 'Research the market. Then deploy the app to production. Summarise the results.']);
    expect(submitted.stderr).toBe('');
    expect(submitted.code).toBe(0);
    const sessionId = submitted.stdout.trim();
    expect(sessionId).toMatch(/^s-[a-z0-9]{10}$/);

    const answers: string[] = [];
    const events = await follow(w.client, sessionId, async (e) => {
      if (e.type !== 'ClarificationRequested') return;
      const answered = await run(['answer', ...w.conn, sessionId, e.data.taskId, 'staging']);
      expect(answered.code).toBe(0);
      answers.push(e.data.taskId);
    });
    expect(events.at(-1)?.type).toBe('SessionCompleted');
    expect(answers).toHaveLength(1);

    const status = await run(['status', ...w.conn, sessionId, '--json']);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ sessionId, status: 'completed', version: events.length });

    const sessions = await run(['sessions', ...w.conn, '--json']);
    expect(JSON.parse(sessions.stdout)).toEqual([expect.objectContaining({ sessionId, status: 'completed', done: 3, total: 3 })]);
    const replay = await run(['replay', sessionId, ...w.conn, '--until', '2', '--json']);
    expect(JSON.parse(replay.stdout).events).toHaveLength(2);

    // Clean shutdowns exit 0.
    await kill(serve.child, 'SIGTERM');
    await kill(executor.child, 'SIGTERM');
    expect(await serve.exited).toBe(0);
    expect(await executor.exited).toBe(0);
    expect(executor.stdout()).toMatch(/stopped after 4 executions/); // 3 tasks + the re-run after the answer
  });

  // The input the killed leader held comes back after the consumer's 30 s ack wait, and the new
  // leader holds the session behind it (on purpose): ~30 s of this test is that wait.
  it('a service SIGKILLed mid-session is restarted and the session completes, nothing executed twice', { timeout: 120_000 }, async () => {
    const w = isolation();
    const first = start(serveArgs(w.conn));
    // Slow executions so the kill lands mid-session.
    const executor = start(['executor', 'echo', ...w.conn, '--inbox-bucket', w.inboxBucket], { JETPLAN_DEMO_DELAY_MS: '150' });
    await Promise.all([first.waitFor(/leader, consuming inputs/), executor.waitFor(/taking/)]);

    const text = Array.from({ length: 8 }, (_, i) => `Summarise chapter ${i + 1} of the report.`).join(' ');
    const submitted = await run(['submit', ...w.conn, text]);
    const sessionId = submitted.stdout.trim();

    let restarted: Proc | undefined;
    let completedBeforeKill = 0;
    const events = await follow(w.client, sessionId, async (e) => {
      if (e.type === 'TaskCompleted' && ++completedBeforeKill === 3 && !restarted) {
        await kill(first.child, 'SIGKILL');
        restarted = start(serveArgs(w.conn));
      }
    });
    expect(restarted).toBeDefined();
    expect(events.at(-1)?.type).toBe('SessionCompleted');
    await restarted!.waitFor(/leader, consuming inputs/);

    const completed = events.filter((e) => e.type === 'TaskCompleted').map((e) => (e.type === 'TaskCompleted' ? e.data.taskId : ''));
    expect(completed).toHaveLength(8);
    expect(new Set(completed).size).toBe(8);
    const dispatched = events.filter((e) => e.type === 'TaskDispatched').map((e) => (e.type === 'TaskDispatched' ? e.data.dispatchId : ''));
    expect(new Set(dispatched).size).toBe(8);

    const x = await executions(w.streamName, w.subjectPrefix, w.inboxBucket);
    expect(x.keys).toEqual([...dispatched].sort());
    expect(x.puts).toBe(8); // each dispatch recorded (executed) exactly once
    expect(x.execMessages).toBe(8); // re-published commands were deduplicated by dispatch id

    await kill(executor.child, 'SIGTERM');
    expect(await executor.exited).toBe(0);
    expect(executor.stdout()).toMatch(/stopped after 8 executions/);
  });

  it('watch follows a session live, answers its question from --answer and exits 0 when it completes', async () => {
    const w = isolation();
    start(serveArgs(w.conn));
    const executor = start(['executor', 'echo', ...w.conn, '--inbox-bucket', w.inboxBucket]);
    await executor.waitFor(/taking/);
    const sessionId = (await run(['submit', ...w.conn, 'Deploy the app to production.'])).stdout.trim();
    const watched = await run(['watch', sessionId, ...w.conn, '--answer', 'staging']);
    expect(watched.stderr).toBe('');
    expect(watched.code).toBe(0);
    const lines = watched.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^\s+1 .* SessionStarted/);
    expect(lines.some((l) => /ClarificationProvided\s+t1-\w+: staging/.test(l))).toBe(true);
    expect(lines.at(-1)).toMatch(/SessionCompleted/);
  });

  it('watch --inspect exits when its session completes, even with an inspector page still connected', async () => {
    const w = isolation();
    await start(serveArgs(w.conn)).waitFor(/leader, consuming inputs/); // the stream exists
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port: free } = probe.address() as AddressInfo;
        probe.close(() => resolve(free));
      });
    });
    const sessionId = (await run(['submit', ...w.conn, 'Which format do you want?'])).stdout.trim();
    const watch = start(['watch', sessionId, ...w.conn, '--inspect', String(port)]);
    await watch.waitFor(/ClarificationRequested/);
    // A page connected to the bridge, as a browser tab would be, and left open.
    const page = createWebSocketReceiver({ server: `ws://127.0.0.1:${port}` });
    const connected = new Promise<void>((resolve) => page.subscribe(() => resolve()));
    await connected; // the bridge replays what it relayed: the page is connected
    await w.client.answer(sessionId, (await w.client.status(sessionId)).tasks[0]!.id, 'yaml');
    expect(await watch.exited).toBe(0);
    expect(watch.stdout()).toMatch(/SessionCompleted/);
  });

  it('serve exits in one line, leading nothing, when its HTTP port is in use', async () => {
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, resolve));
    try {
      const { conn } = isolation();
      const r = await run([...serveArgs(conn), '--http-port', String((busy.address() as AddressInfo).port)]);
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^jetplan: listen EADDRINUSE: address already in use .*:\d+$/)]);
    } finally {
      busy.close();
    }
  });

  it('fails in one line with a non-zero exit when NATS is unreachable', async () => {
    const r = await run(['submit', '--nats', 'nats://127.0.0.1:1', 'hello']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual(['jetplan: cannot connect to NATS at nats://127.0.0.1:1: connection refused (is nats-server running?)']);
  });
});
