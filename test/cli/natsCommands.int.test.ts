import { createServer, type AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { createWebSocketReceiver } from '@statelyai/inspect';
/**
 * The NATS commands of the CLI run in-process through `main(argv, io)` against a real nats-server:
 * `serve` and `executor` run until the fake IO's signal, while `submit`, `answer`, `status`,
 * `cancel`, `watch`, `replay --nats` and `sessions --nats` drive and read sessions. Each test has
 * its own stream and subject prefix.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { CliSignal } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { createClient } from '../../src/nats/client.js';
import { connectNats } from '../../src/nats/connect.js';
import { ensureStream } from '../../src/persistence/jetstream/streamConfig.js';
import { startNatsServer, uniqueName, type NatsServerHandle } from '../support/natsServer.js';
import { fakeIo, openStdin, run, type FakeIo, type FakeIoOptions } from './fakeIo.js';

const UNREACHABLE = 'nats://127.0.0.1:1';
const REFUSED = `jetplan: cannot connect to NATS at ${UNREACHABLE}: connection refused (is nats-server running?)`;

let server: NatsServerHandle;
let nc: NatsConnection;

/** A command that runs until signalled (serve, executor, watch). */
interface Running {
  io: FakeIo;
  done: Promise<number>;
  /** Resolves when stdout contains `text`; rejects if the command exits first. */
  started(text: string): Promise<void>;
  /** Resolves when stderr contains `text`; rejects if the command exits first. */
  said(text: string): Promise<void>;
  /** Sends `signal` and resolves with the exit code. */
  stop(signal?: CliSignal): Promise<number>;
}

const running = new Set<Running>();

function start(argv: string[], options: FakeIoOptions = {}): Running {
  const io = fakeIo(options);
  let exited = false;
  const done = main(argv, io).finally(() => {
    exited = true;
    running.delete(r);
  });
  const r: Running = {
    io,
    done,
    started: (text) =>
      Promise.race([
        io.waitForOut(text),
        done.then((code) => {
          if (!io.stdoutText.includes(text)) {
            throw new Error(`${argv[0]} exited ${code} before printing "${text}": ${io.stdoutText}${io.err.join('')}`);
          }
        }),
      ]),
    said: (text) =>
      Promise.race([
        io.waitForErr(text),
        done.then((code) => {
          if (!io.err.join('').includes(text)) throw new Error(`${argv[0]} exited ${code} before saying "${text}": ${io.err.join('')}`);
        }),
      ]),
    async stop(signal = 'SIGTERM') {
      if (!exited) io.signal(signal);
      return done;
    },
  };
  running.add(r);
  return r;
}

beforeAll(async () => {
  server = await startNatsServer();
  nc = await connectNats({ url: server.url });
});
afterAll(async () => {
  await Promise.allSettled([...running].map((r) => r.stop()));
  await nc?.close();
  await server?.cleanup();
});

/** Connection flags of a fresh, isolated deployment (its stream is created on first use). */
function isolated(): { conn: string[]; streamName: string; subjectPrefix: string } {
  const streamName = uniqueName('JPCLI');
  const subjectPrefix = uniqueName('jpcli');
  return { conn: ['--nats', server.url, '--stream', streamName, '--prefix', subjectPrefix], streamName, subjectPrefix };
}

/**
 * `jetplan serve` on an isolated stream (and lease bucket: no other instance), once it leads. A
 * lease of 3 s: with a shorter one a pause of the test process (GC, a loaded CI machine) of a few
 * hundred ms misses a renewal, and the warning it logs fails the tests that check stderr.
 */
async function serve(conn: string[]): Promise<Running> {
  const s = start(['serve', ...conn, '--http-port', '0', '--lease-ttl-ms', '3000', '--lease-bucket', uniqueName('lease')]);
  await s.started('jetplan serve: leader, consuming inputs');
  return s;
}

/** `jetplan executor <args>` once it takes tasks. */
async function executor(conn: string[], args: string[], env: Record<string, string> = {}): Promise<Running> {
  const e = start(['executor', ...args, ...conn, '--inbox-bucket', uniqueName('inbox')], { env });
  await e.started('taking');
  return e;
}

/** The single stderr line of a failed command, and its exit code. */
async function fails(argv: string[], options: FakeIoOptions = {}): Promise<{ code: number; line: string }> {
  const { code, io } = await run(argv, options);
  expect(io.stderrLines).toHaveLength(1);
  expect(io.stdoutText).toBe('');
  return { code, line: io.stderrLines[0]! };
}

const lines = (io: FakeIo): string[] => io.stdoutText.trimEnd().split('\n');

interface StatusJson {
  sessionId: string;
  status: string;
  version: number;
  tasks: Array<{ id: string; status: string; kind: string; result?: string; answer?: string; question?: string }>;
  context: { tokens: number };
}

async function statusJson(conn: string[], sessionId: string): Promise<StatusJson> {
  const { code, io } = await run(['status', sessionId, ...conn, '--json']);
  expect(io.err).toEqual([]);
  expect(code).toBe(0);
  return JSON.parse(io.stdoutText) as StatusJson;
}

describe('serve + executor echo + the client commands', () => {
  it('runs a session end to end, reads it back, and shuts both down on signals', async () => {
    const { conn } = isolated();
    const s = await serve(conn);
    expect(s.io.out[0]).toMatch(/^jetplan serve: connected to 127\.0\.0\.1:\d+, http on :(\d+)\n$/);
    const httpPort = Number(/http on :(\d+)/.exec(s.io.out[0]!)![1]);
    expect((await fetch(`http://127.0.0.1:${httpPort}/healthz`)).status).toBe(200);

    const e = await executor(
      conn,
      ['echo', '--kinds', 'toolcall, processing,toolcall', '--concurrency', '2', '--ack-wait-ms', '5000', '--durable-prefix', uniqueName('dur'), '--stale-after-ms', '0'],
      { JETPLAN_DEMO_DELAY_MS: '1' },
    );
    expect(e.io.stdoutText).toMatch(/^jetplan executor: echo taking ToolCall, Processing tasks from 127\.0\.0\.1:\d+\n$/);

    const sessionId = uniqueName('s');
    const submitted = await run(['submit', ...conn, '--session', sessionId, 'Research the market. Then deploy the app to production. Summarise the results.']);
    expect(submitted.io.err).toEqual([]);
    expect(submitted.code).toBe(0);
    expect(submitted.io.stdoutText).toBe(`${sessionId}\n`);

    const watched = await run(['watch', sessionId, ...conn, '--answer', 'staging']);
    expect(watched.io.err).toEqual([]);
    expect(watched.code).toBe(0);
    const timeline = lines(watched.io);
    expect(timeline[0]).toMatch(/^\s+1 {2}\S+ {2}SessionStarted {10}budget \d+, max attempts 3$/);
    expect(timeline.some((l) => /ClarificationProvided\s+t2-\w+: staging/.test(l))).toBe(true);
    expect(timeline.at(-1)).toMatch(/SessionCompleted\s+3 tasks$/);

    const text = await run(['status', sessionId, ...conn]);
    expect(text.code).toBe(0);
    expect(lines(text.io)[0]).toBe(`session ${sessionId}  status completed  phase done  version ${timeline.length}`);
    expect(text.io.stdoutText).toContain('tasks (3/3 completed):');
    expect(text.io.stdoutText).toContain('(answer: staging)');
    const status = await statusJson(conn, sessionId);
    expect(status).toMatchObject({ sessionId, status: 'completed', version: timeline.length });
    expect(status.context.tokens).toBeGreaterThan(0);

    const replay = await run(['replay', sessionId, ...conn]);
    expect(replay.code).toBe(0);
    expect(replay.io.stdoutText).toContain(`timeline (${timeline.length} events):`);
    const early = await run(['replay', sessionId, ...conn, '--until', '2', '--json']);
    expect(early.code).toBe(0);
    const earlyJson = JSON.parse(early.io.stdoutText) as { state: { version: number; status: string }; events: unknown[] };
    expect(earlyJson.events).toHaveLength(2);
    expect(earlyJson.state).toMatchObject({ version: 2, status: 'active' });

    const list = await run(['sessions', ...conn]);
    expect(list.code).toBe(0);
    expect(list.io.stdoutText).toMatch(new RegExp(`^${sessionId} {2}completed {2}3/3 tasks {2}\\d{4}-\\d\\d-\\d\\dT.*Z\\n$`));
    const listJson = await run(['sessions', ...conn, '--json']);
    expect(JSON.parse(listJson.io.stdoutText)).toEqual([expect.objectContaining({ sessionId, status: 'completed', done: 3, total: 3 })]);

    // Retention: the session just ended, inside the stream's duplicate window, so even 0s keeps it.
    const dryPurge = await run(['purge', ...conn, '--older-than', '0s', '--dry-run']);
    expect(dryPurge.io.err).toEqual([]);
    expect(dryPurge.io.stdoutText).toBe(`would purge 0 session(s) (ended, or never started) from NATS stream ${conn[conn.indexOf('--stream') + 1]}; kept 1 too recent, 0 still open\n`);
    const purgeJson = await run(['purge', ...conn, '--older-than', '30d', '--json']);
    expect(JSON.parse(purgeJson.io.stdoutText)).toEqual({ sessions: [], messages: 0, snapshots: 0, dispatchEntries: 0, recent: 1, open: 0 });
    const noAge = await run(['purge', ...conn]);
    expect([noAge.code, noAge.io.err]).toEqual([2, ['jetplan: purge needs --older-than <age> (e.g. 30d); nothing was removed (see jetplan help)\n']]);
    const badAge = await run(['purge', ...conn, '--older-than', '3 weeks']);
    expect([badAge.code, badAge.io.err]).toEqual([2, ['jetplan: --older-than expects an age such as 30d, 12h, 45m, 90s or 500ms, got "3 weeks" (see jetplan help)\n']]);

    expect(await e.stop('SIGTERM')).toBe(0);
    expect(e.io.stdoutText).toContain('jetplan executor: SIGTERM, stopping running tasks\n');
    // 3 tasks + the deploy task again after its answer.
    expect(e.io.stdoutText).toContain('jetplan executor: stopped after 4 executions\n');
    // Its logs (info by default) go to the CLI's stderr as JSON lines, one per execution.
    const executed = e.io.err.map((line) => JSON.parse(line) as { msg: string; dispatchId?: string }).filter((l) => l.msg === 'task executed');
    expect(executed).toHaveLength(4);
    expect(new Set(executed.map((l) => l.dispatchId)).size).toBe(4);

    expect(await s.stop('SIGINT')).toBe(0);
    expect(s.io.stdoutText).toContain('jetplan serve: SIGINT, shutting down\n');
    // A signal handler is in place from start to exit: between the first signal and the shutdown
    // that a second one cuts short, a process without one would be killed outright.
    expect(s.io.signalHandlerCounts.indexOf(0)).toBe(s.io.signalHandlerCounts.length - 1);
    expect(s.io.err.map((line) => (JSON.parse(line) as { level: number }).level).every((level) => level <= 30)).toBe(true);
    await expect(fetch(`http://127.0.0.1:${httpPort}/healthz`)).rejects.toThrow();
  });

  it('watch exits 1 when the session fails, and --max-attempts reaches the session config', async () => {
    const { conn } = isolated();
    await serve(conn);
    await executor(conn, ['echo']);
    const submitted = await run(['submit', ...conn, '--max-attempts', '1', '--token-budget', '5000', 'Retry the flaky upload']);
    expect(submitted.code).toBe(0);
    const sessionId = submitted.io.stdoutText.trim();
    expect(sessionId).toMatch(/^s-[a-z0-9]{10}$/);
    const watched = await run(['watch', sessionId, ...conn]);
    expect(watched.code).toBe(1);
    expect(lines(watched.io).at(-1)).toMatch(/SessionFailed/);
    expect(watched.io.stdoutText).toMatch(/SessionStarted\s+budget 5000, max attempts 1/);
    expect((await statusJson(conn, sessionId)).status).toBe('failed');
  });

  it('answer, cancel and submit --session refuse, in one line, what the service would only reject', async () => {
    const { conn } = isolated();
    await serve(conn); // no executor: the first task stays Running
    const sessionId = uniqueName('s');
    expect((await run(['submit', ...conn, '--session', sessionId, 'Fetch the logs. Summarise them.'])).code).toBe(0);
    await vi.waitFor(async () => expect((await statusJson(conn, sessionId)).tasks[0]?.status).toBe('Running'), { timeout: 10_000 });
    const [running, queued] = (await statusJson(conn, sessionId)).tasks;
    expect(await fails(['answer', sessionId, running!.id, 'prod', ...conn])).toEqual({
      code: 1,
      line: `jetplan: task ${running!.id} is not waiting for clarification (it is Running)`,
    });
    expect(await fails(['answer', sessionId, 't9-nope', 'x', ...conn])).toEqual({ code: 1, line: `jetplan: session ${sessionId} has no task t9-nope` });
    // A retry (same --message-id) of an input the service rejected gets the rejection, not success.
    const { streamName, subjectPrefix } = { streamName: conn[conn.indexOf('--stream') + 1]!, subjectPrefix: conn[conn.indexOf('--prefix') + 1]! };
    await createClient(nc, { streamName, subjectPrefix }).answer(sessionId, running!.id, 'early', { messageId: 'early-1' });
    await vi.waitFor(async () => {
      const replayed = JSON.parse((await run(['replay', sessionId, ...conn, '--json'])).io.stdoutText) as { events: Array<{ type: string }> };
      expect(replayed.events.map((e) => e.type)).toContain('InputRejected');
    }, { timeout: 10_000 });
    expect(await fails(['answer', sessionId, running!.id, 'early', ...conn, '--message-id', 'early-1'])).toEqual({
      code: 1,
      line: `jetplan: input early-1 was rejected: task ${running!.id} is not waiting for clarification`,
    });
    expect(queued!.status).toBe('Planned');
    expect((await run(['cancel', sessionId, ...conn])).code).toBe(0);
    await vi.waitFor(async () => expect((await statusJson(conn, sessionId)).status).toBe('cancelled'), { timeout: 10_000 });
    expect(await fails(['cancel', sessionId, ...conn])).toEqual({ code: 1, line: `jetplan: session ${sessionId} is cancelled` });
    expect(await fails(['answer', sessionId, running!.id, 'x', ...conn])).toEqual({ code: 1, line: `jetplan: session ${sessionId} is cancelled` });
    expect(await fails(['submit', ...conn, '--session', sessionId, 'More work.'])).toEqual({
      code: 1,
      line: `jetplan: session ${sessionId} is cancelled; submit to a new session`,
    });
    const events = (await run(['replay', sessionId, ...conn, '--json'])).io.stdoutText;
    // Only the rejection of the library's early answer: none of the CLI's refusals reached the log.
    expect((JSON.parse(events) as { events: Array<{ type: string }> }).events.filter((e) => e.type === 'InputRejected')).toHaveLength(1);
  });

  it('cancel right after submit works while the service has not applied the submit yet', async () => {
    const { conn, streamName, subjectPrefix } = isolated();
    await ensureStream(nc, { streamName, subjectPrefix }); // no service yet: both inputs wait, in order
    const sessionId = uniqueName('s');
    expect((await run(['submit', ...conn, '--session', sessionId, 'Fetch the logs.'])).code).toBe(0);
    const cancelled = await run(['cancel', sessionId, ...conn, '--reason', 'changed my mind']);
    expect(cancelled.io.err).toEqual([]);
    expect(cancelled.code).toBe(0);
    await serve(conn);
    await vi.waitFor(async () => expect((await statusJson(conn, sessionId)).status).toBe('cancelled'), { timeout: 10_000 });
  });

  it('executor shell --allow echo runs a ToolCall command and reports its output', async () => {
    const { conn } = isolated();
    const s = await serve(conn);
    const e = await executor(conn, ['shell', '--allow', 'echo, ', '--timeout-ms', '5000', '--max-output-bytes', '1000', '--kinds', 'toolcall']);
    expect(e.io.stdoutText).toMatch(/^jetplan executor: shell \(allow: echo\) taking ToolCall tasks from /);
    const sessionId = uniqueName('s');
    expect((await run(['submit', ...conn, '--session', sessionId, 'Run `echo hello-shell`.'])).code).toBe(0);
    const watched = await run(['watch', sessionId, ...conn]);
    expect(watched.code).toBe(0);
    const status = await statusJson(conn, sessionId);
    expect(status.tasks).toEqual([expect.objectContaining({ kind: 'ToolCall', status: 'Completed', result: expect.stringContaining('hello-shell') })]);
    expect(await e.stop('SIGINT')).toBe(0);
    expect(e.io.stdoutText).toContain('jetplan executor: SIGINT, stopping running tasks\n');
    expect(e.io.stdoutText).toContain('jetplan executor: stopped after 1 executions\n');
    expect(await s.stop()).toBe(0);
    expect(s.io.stdoutText).toContain('jetplan serve: SIGTERM, shutting down\n');
  });
});

/** A served session of `text`, watched on a terminal (with `flags`) until it asks its first question. */
async function askingWatch(text: string, ...flags: string[]) {
  const { conn } = isolated();
  await serve(conn);
  const sessionId = uniqueName('s');
  expect((await run(['submit', ...conn, '--session', sessionId, text])).code).toBe(0);
  const stdin = openStdin();
  const w = start(['watch', sessionId, ...conn, ...flags], { stdin, isTTY: true });
  // The question and the prompt on stderr: stdout is the event stream, often redirected.
  await w.said('answer> ');
  return { conn, sessionId, stdin, w };
}

describe('questions, answers and cancelling (planner only)', () => {
  it('watch on a terminal asks the open question and publishes the typed answer', async () => {
    const { conn, sessionId, stdin, w } = await askingWatch('Which format do you want?');
    expect(w.io.err.join('')).toMatch(/^\? t1-\w+: Which format do you want\?\nanswer> $/);
    expect(w.io.stdoutText).not.toContain('answer> ');
    stdin.write('\n   \ncsv\n');
    expect(await w.done).toBe(0);
    expect(w.io.stderrLines.filter((l) => !/^(\? |answer> )/.test(l))).toEqual([]);
    expect(w.io.stdoutText).toMatch(/ClarificationProvided\s+t1-\w+: csv/);
    expect(lines(w.io).at(-1)).toMatch(/SessionCompleted/);
    expect((await statusJson(conn, sessionId)).tasks[0]).toMatchObject({ status: 'Completed', answer: 'csv' });

    // Watching a finished session replays it and exits at once, asking nothing.
    const again = await run(['watch', sessionId, ...conn, '--answer', 'unused', '--json']);
    expect(again.code).toBe(0);
    expect(again.io.stderrLines).toEqual(['jetplan: 1 --answer value not used (no more questions)']);
    const events = lines(again.io).map((l) => JSON.parse(l) as { type: string; sequence: number });
    expect(events.map((e) => e.sequence)).toEqual(events.map((_, i) => i + 1));
    expect(events.filter((e) => e.type === 'ClarificationProvided')).toHaveLength(1);
    expect(events.at(-1)?.type).toBe('SessionCompleted');
  });

  it('watch started before the session exists waits for it and answers from --answer (--json)', async () => {
    const { conn } = isolated();
    await serve(conn);
    const sessionId = uniqueName('s');
    const w = start(['watch', sessionId, ...conn, '--answer', 'yaml', '--json']);
    expect((await run(['submit', ...conn, '--session', sessionId, 'Which format do you want?'])).code).toBe(0);
    expect(await w.done).toBe(0);
    expect(w.io.err).toEqual([]);
    const events = lines(w.io).map((l) => JSON.parse(l) as { type: string; data: { answer?: string } });
    expect(events[0]?.type).toBe('SessionStarted');
    expect(events.find((e) => e.type === 'ClarificationProvided')?.data.answer).toBe('yaml');
    expect(events.at(-1)?.type).toBe('SessionCompleted');
  });

  it('watch --inspect mirrors the session live in the Stately inspector', async () => {
    const { conn } = isolated();
    await serve(conn);
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port: free } = probe.address() as AddressInfo;
        probe.close(() => resolve(free));
      });
    });
    const sessionId = uniqueName('s');
    // Two questions: the watch (and its inspector) stays up on the second until the first's answer was seen.
    expect((await run(['submit', ...conn, '--session', sessionId, '- Which format do you want?\n- Which colour do you want?'])).code).toBe(0);
    const w = start(['watch', sessionId, ...conn, '--inspect', String(port)]);
    await w.started('ClarificationRequested');
    // The bridge replays what it relayed to a receiver that connects late.
    const receiver = createWebSocketReceiver({ server: `ws://127.0.0.1:${port}` });
    const seen = new Promise<unknown>((resolve) => {
      receiver.subscribe((e: { type: string; event?: { type?: string } }) => {
        if (e.type === '@xstate.event' && e.event?.type === 'ClarificationProvided') resolve(e);
      });
    });
    const [first, second] = (await statusJson(conn, sessionId)).tasks;
    expect((await run(['answer', sessionId, first!.id, 'yaml', ...conn])).code).toBe(0);
    await expect(seen).resolves.toMatchObject({ type: '@xstate.event' });
    expect((await run(['answer', sessionId, second!.id, 'blue', ...conn])).code).toBe(0);
    expect(await w.done).toBe(0);
    expect(w.io.stderrLines[0]).toBe(`inspector: open http://127.0.0.1:${port} to watch the statecharts`);
    expect((await fails(['watch', sessionId, ...conn, '--inspect', '0'])).line).toMatch(/--inspect expects an integer from 1 to 65535, got "0"/);
  });

  it('answer publishes a ProvideClarification (text and --json with --message-id)', async () => {
    const { conn } = isolated();
    await serve(conn);
    const sessionId = uniqueName('s');
    expect((await run(['submit', ...conn, '--session', sessionId, '- Which format do you want?\n- Which colour do you want?'])).code).toBe(0);
    const w = start(['watch', sessionId, ...conn]); // no answers, not a terminal: only follows
    await w.started('ClarificationRequested');
    const [first, second] = (await statusJson(conn, sessionId)).tasks;
    const answered = await run(['answer', sessionId, first!.id, 'comma', 'separated', ...conn]);
    expect(answered.io.err).toEqual([]);
    expect(answered.code).toBe(0);
    expect(answered.io.stdoutText).toBe(`answered ${first!.id} in ${sessionId}\n`);
    await w.io.waitForOut(`${second!.id}: Which colour`);
    const args = ['answer', sessionId, second!.id, 'blue', ...conn, '--message-id', 'answer-2', '--json'];
    const json = await run(args);
    expect(json.code).toBe(0);
    const published = JSON.parse(json.io.stdoutText) as { sessionId: string; seq: number; duplicate: boolean };
    expect(published).toMatchObject({ sessionId, duplicate: false });
    expect(JSON.parse((await run(args)).io.stdoutText)).toEqual({ ...published, duplicate: true });
    expect(await w.done).toBe(0);
    expect(w.io.stdoutText).toMatch(/ClarificationProvided\s+t1-\w+: comma separated/);
    const tasks = (await statusJson(conn, sessionId)).tasks;
    expect(tasks.map((t) => t.answer)).toEqual(['comma separated', 'blue']);
  });

  it('cancel ends a waiting session; watch then exits 1', async () => {
    const { conn } = isolated();
    await serve(conn);
    const sessionId = uniqueName('s');
    expect((await run(['submit', ...conn, '--session', sessionId, 'Which format do you want?'])).code).toBe(0);
    const w = start(['watch', sessionId, ...conn]);
    await w.started('ClarificationRequested');
    const cancelled = await run(['cancel', sessionId, ...conn, '--reason', 'changed my mind']);
    expect(cancelled.io.err).toEqual([]);
    expect(cancelled.code).toBe(0);
    expect(cancelled.io.stdoutText).toBe(`cancel requested for ${sessionId}\n`);
    expect(await w.done).toBe(1);
    expect(lines(w.io).at(-1)).toMatch(/SessionCancelled\s+changed my mind$/);
    expect((await statusJson(conn, sessionId)).status).toBe('cancelled');

    // Cancelling again is refused before anything is published, except as a retry of the same message.
    expect(await fails(['cancel', sessionId, ...conn])).toEqual({ code: 1, line: `jetplan: session ${sessionId} is cancelled` });
    const other = uniqueName('s');
    expect((await run(['submit', ...conn, '--session', other, 'Which format do you want?'])).code).toBe(0);
    await vi.waitFor(async () => expect((await statusJson(conn, other)).status).toBe('active'), { timeout: 10_000 });
    const once = ['cancel', other, ...conn, '--message-id', `cancel-${other}`, '--json'];
    expect(JSON.parse((await run(once)).io.stdoutText)).toMatchObject({ sessionId: other, duplicate: false });
    await vi.waitFor(async () => expect((await statusJson(conn, other)).status).toBe('cancelled'), { timeout: 10_000 });
    const retried = await run(once);
    expect(retried.code).toBe(0);
    expect(JSON.parse(retried.io.stdoutText)).toMatchObject({ sessionId: other, duplicate: true });
  });

  it('watch on a terminal says it waits for a session with no events or input yet', async () => {
    const { conn, streamName, subjectPrefix } = isolated();
    await ensureStream(nc, { streamName, subjectPrefix });
    const w = start(['watch', uniqueName('s'), ...conn], { stdin: openStdin(), isTTY: true });
    await w.said('waiting for session');
    expect(await w.stop('SIGINT')).toBe(130);
    // On stderr: stdout carries only events (a --json stream, a log).
    expect(w.io.stdoutText).toBe('');
  });

  it('watch ends (exit 1, one line) when every input of a session that never started was rejected', async () => {
    const { conn, streamName, subjectPrefix } = isolated();
    await serve(conn);
    const sessionId = uniqueName('s');
    const client = createClient(nc, { streamName, subjectPrefix });
    const rejected = await client.submit('Fetch the logs.', { sessionId, config: { tokenBudget: 5 } }); // the library does not pre-check
    const notStarted = async () => {
      const watched = await run(['watch', sessionId, ...conn]);
      expect(watched.code).toBe(1);
      expect(watched.io.err).toEqual([
        `jetplan: session ${sessionId} has not started: every input was rejected, the last with: invalid config: tokenBudget 5 cannot hold the system prompt (9 tokens)\n`,
      ]);
      expect(await fails(['cancel', sessionId, ...conn])).toEqual({ code: 1, line: `jetplan: session ${sessionId} has not started (every input so far was rejected)` });
      expect(await fails(['answer', sessionId, 't1', 'x', ...conn])).toEqual({
        code: 1,
        line: `jetplan: session ${sessionId} has not started (every input so far was rejected), so it has no task t1`,
      });
    };
    await notStarted();
    // The rejected submit published again after the duplicate window (shortened here): recorded as
    // a repeat, it is no input on its way either.
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(streamName);
    await jsm.streams.update(streamName, { ...info.config, duplicate_window: 100_000_000 }); // 100 ms, in ns
    await vi.waitFor(async () => {
      const copy = await client.submit('Fetch the logs.', { sessionId, messageId: rejected.messageId, config: { tokenBudget: 5 } });
      expect(copy.duplicate).toBe(false);
    });
    await vi.waitFor(async () => expect((await client.replay(sessionId)).events.map((e) => e.type)).toContain('InputRepeated'), { timeout: 10_000 });
    await jsm.streams.update(streamName, info.config);
    await notStarted();
    // A second submit waiting behind the rejection: watch follows it to the end instead.
    const e = await executor(conn, ['echo']);
    await client.submit('Summarise the notes.', { sessionId });
    const again = await run(['watch', sessionId, ...conn]);
    expect(again.io.err).toEqual([]);
    expect(again.code).toBe(0);
    expect(lines(again.io).at(-1)).toMatch(/SessionCompleted/);
    await e.stop('SIGTERM');
  });

  it('watch waits for a session whose input the service has not applied yet', async () => {
    const { conn, streamName, subjectPrefix } = isolated();
    await ensureStream(nc, { streamName, subjectPrefix }); // no service yet: the input waits
    const sessionId = uniqueName('s');
    expect((await run(['submit', ...conn, '--session', sessionId, 'Which format do you want?'])).code).toBe(0);
    const w = start(['watch', sessionId, ...conn]);
    await serve(conn);
    await w.started('ClarificationRequested');
    expect(await w.stop('SIGINT')).toBe(130);
    // No terminal and no --answer: it says how to answer instead of waiting in silence.
    expect(w.io.err).toEqual([expect.stringMatching(new RegExp(`waits for an answer: jetplan answer ${sessionId} t1-\\w+ "<answer>"`))]);
  });

  it('watch says how to answer once its --answer values are used up', async () => {
    const { conn } = isolated();
    await serve(conn);
    const sessionId = uniqueName('s');
    expect((await run(['submit', ...conn, '--session', sessionId, 'Which format do you want? Which colour do you like?'])).code).toBe(0);
    const w = start(['watch', sessionId, ...conn, '--answer', 'CSV']);
    await vi.waitFor(() => expect(w.io.err).toEqual([expect.stringMatching(new RegExp(`^jetplan: t2-\\w+ waits for an answer: jetplan answer ${sessionId} t2-`))]), { timeout: 10_000 });
    expect(await w.stop('SIGINT')).toBe(130);
    expect((await statusJson(conn, sessionId)).tasks.map((t) => [t.status, t.answer])).toEqual([['Completed', 'CSV'], ['NeedsClarification', undefined]]);
  });

  it('watch exits 130 on Ctrl-C and 143 on SIGTERM, also while asking on a terminal, and sends no answer', async () => {
    const { conn } = isolated();
    await serve(conn);
    const sessionId = uniqueName('s');
    expect((await run(['submit', ...conn, '--session', sessionId, 'Which format do you want?'])).code).toBe(0);

    const quiet = start(['watch', sessionId, ...conn]);
    await quiet.started('ClarificationRequested');
    expect(await quiet.stop('SIGINT')).toBe(130);
    expect(quiet.io.err).toEqual([expect.stringMatching(/waits for an answer/)]);

    const asking = start(['watch', sessionId, ...conn], { stdin: openStdin(), isTTY: true });
    await asking.said('answer> ');
    expect(await asking.stop('SIGTERM')).toBe(143); // 128 + the signal, as a shell reports it
    expect(asking.io.stderrLines).toEqual([expect.stringMatching(/^\? t1-/), 'answer> ']);
    const status = await statusJson(conn, sessionId);
    expect(status.status).toBe('active');
    expect(status.tasks[0]?.answer).toBeUndefined();
  });
});

describe('watch asking on a terminal', () => {
  it('keeps --json output to events only, and drops a prompt whose question was answered elsewhere', async () => {
    const { conn, sessionId, stdin, w } = await askingWatch('Which colour? Which size?', '--json');
    const t1 = /\? (t1-\w+): Which colour\?/.exec(w.io.err.join(''))![1]!;
    // Answered from another terminal while this one asks.
    expect((await run(['answer', sessionId, t1, 'red', ...conn])).code).toBe(0);
    await w.said(`jetplan: ${t1} was answered meanwhile`);
    await w.said('Which size?');
    stdin.write('XL\n'); // for the question now asked
    expect(await w.done).toBe(0);
    const events = lines(w.io).map((l) => JSON.parse(l) as { type: string; data: { answer?: string; reason?: string } });
    expect(events.filter((e) => e.type === 'ClarificationProvided').map((e) => e.data.answer)).toEqual(['red', 'XL']);
    expect(events.filter((e) => e.type === 'InputRejected')).toEqual([]);
  });

  it('says how to answer once the terminal input ends (Ctrl-D), instead of going quiet', async () => {
    const { stdin, w } = await askingWatch('Which format do you want?');
    stdin.end();
    await w.said('no more answers from the terminal (its input ended); ');
    expect(w.io.stderrLines.at(-1)).toMatch(/^jetplan: no more answers from the terminal \(its input ended\); t1-\w+ waits for an answer: jetplan answer /);
    expect(await w.stop('SIGINT')).toBe(130);
  });
});

describe('submit', () => {
  it('reads the text from stdin, prints JSON with --json and deduplicates by --message-id', async () => {
    const { conn, streamName, subjectPrefix } = isolated();
    await ensureStream(nc, { streamName, subjectPrefix });
    const sessionId = uniqueName('s');
    const args = ['submit', ...conn, '--session', sessionId, '--message-id', 'submit-1', '--json'];
    const first = await run(args, { stdin: 'Summarise the notes.\n' });
    expect(first.io.err).toEqual([]);
    expect(first.code).toBe(0);
    const published = JSON.parse(first.io.stdoutText) as { sessionId: string; seq: number; duplicate: boolean };
    expect(published).toEqual({ sessionId, seq: expect.any(Number), duplicate: false, messageId: 'submit-1' });
    const again = await run([...args, '-'], { stdin: 'Summarise the notes.\n', isTTY: true });
    expect(again.code).toBe(0);
    expect(JSON.parse(again.io.stdoutText)).toEqual({ ...published, duplicate: true });
    // Without --session, the session id comes from the message id: a retry names the same session.
    const unnamed = ['submit', ...conn, '--message-id', 'submit-2', 'Summarise the logs.'];
    const one = (await run(unnamed)).io.stdoutText;
    expect(one).toMatch(/^s-[a-z0-9]{10}\n$/);
    expect((await run(unnamed)).io.stdoutText).toBe(one);
    // A message id reused for another input would be dropped as a duplicate: refused, not success.
    expect(await fails(['submit', ...conn, '--session', sessionId, '--message-id', 'submit-1', 'Other text.'])).toEqual({
      code: 2,
      line: expect.stringMatching(/^jetplan: message id submit-1 was already used for another input \(\S+\.in\.\S+, stream sequence \d+\); nothing was published$/),
    });
  });

  it('rejects missing or empty text, zero limits and bad session ids', async () => {
    const { conn, streamName, subjectPrefix } = isolated();
    await ensureStream(nc, { streamName, subjectPrefix });
    expect(await fails(['submit', ...conn], { isTTY: true })).toEqual({ code: 2, line: 'jetplan: submit needs text (or pipe it on stdin) (see jetplan help)' });
    expect(await fails(['submit', ...conn], { stdin: '  \n' })).toEqual({ code: 2, line: 'jetplan: submit needs non-empty text (see jetplan help)' });
    // Text the planner would reject is refused before publishing.
    expect(await fails(['submit', ...conn, ' ... '])).toMatchObject({ code: 2, line: expect.stringMatching(/^jetplan: input has no plannable text/) });
    expect(await fails(['submit', ...conn], { stdin: 'Summarise it. '.repeat(5_000) })).toMatchObject({ code: 2, line: expect.stringMatching(/^jetplan: input is too long/) });
    expect(await fails(['submit', ...conn, 'x', '--max-attempts', '0'])).toEqual({ code: 2, line: 'jetplan: --max-attempts expects a positive integer, got "0" (see jetplan help)' });
    expect(await fails(['submit', ...conn, 'x', '--token-budget', '0'])).toEqual({ code: 2, line: 'jetplan: --token-budget expects a positive integer, got "0" (see jetplan help)' });
    // The service's bounds, checked before publishing (it would only record an InputRejected).
    expect(await fails(['submit', ...conn, 'x', '--token-budget', '100001'])).toEqual({
      code: 2,
      line: 'jetplan: --token-budget: tokenBudget must be at most 100000 tokens: a larger context may not fit in one NATS message (see jetplan help)',
    });
    expect(await fails(['submit', ...conn, 'x', '--max-attempts', '101'])).toEqual({ code: 2, line: 'jetplan: --max-attempts: maxAttempts must be at most 100 (see jetplan help)' });
    expect(await fails(['submit', ...conn, 'x', '--token-budget', '5'])).toEqual({
      code: 2,
      line: 'jetplan: --token-budget: tokenBudget 5 cannot hold the system prompt (9 tokens) (see jetplan help)',
    });
    expect(await fails(['submit', ...conn, 'x', '--max-attempts', 'many'])).toEqual({
      code: 2,
      line: 'jetplan: --max-attempts expects a positive integer, got "many" (see jetplan help)',
    });
    const bad = await fails(['submit', ...conn, 'x', '--session', 'no.dots']);
    expect(bad.code).toBe(2);
    expect(bad.line).toMatch(/^jetplan: invalid session id "no\.dots"/);
  });
});

describe('read commands and their errors', () => {
  it('status, replay, watch, cancel and answer report an unknown or invalid session in one line', async () => {
    const { conn, streamName, subjectPrefix } = isolated();
    await ensureStream(nc, { streamName, subjectPrefix });
    expect(await fails(['status', 's-nope', ...conn])).toEqual({ code: 1, line: 'jetplan: unknown session s-nope' });
    expect(await fails(['replay', 's-nope', ...conn])).toEqual({ code: 1, line: 'jetplan: unknown session s-nope' });
    expect(await fails(['status', 'bad.id', ...conn])).toMatchObject({ code: 2, line: expect.stringMatching(/^jetplan: invalid session id "bad\.id"/) });
    expect(await fails(['watch', 'bad.id', ...conn])).toMatchObject({ code: 2, line: expect.stringMatching(/^jetplan: invalid session id "bad\.id"/) });
    expect(await fails(['cancel', 'bad.id', ...conn])).toMatchObject({ code: 2 });
    // Nothing is published for a session that does not exist (a cancel would create one).
    expect(await fails(['cancel', 's-nope', ...conn])).toEqual({ code: 1, line: 'jetplan: unknown session s-nope' });
    expect(await fails(['answer', 's-nope', 't1', 'yes', ...conn])).toEqual({ code: 1, line: 'jetplan: unknown session s-nope' });
    expect((await run(['sessions', ...conn, '--json'])).io.stdoutText).toBe('[]\n');
    expect(await fails(['answer', 'bad.id', 't1', 'yes', ...conn])).toMatchObject({ code: 2 });
    expect(await fails(['replay', 's-nope', ...conn, '--until', '0'])).toEqual({ code: 2, line: 'jetplan: --until expects a positive integer, got "0" (see jetplan help)' });
    // A bad id is a usage error before anything connects: the same with NATS unreachable.
    const down = ['--nats', 'nats://127.0.0.1:1'];
    const invalid = 'jetplan: invalid session id "bad.id" (1-64 characters of [A-Za-z0-9_-]) (see jetplan help)';
    for (const argv of [['status', 'bad.id'], ['watch', 'bad.id'], ['cancel', 'bad.id'], ['answer', 'bad.id', 't1', 'yes'], ['submit', '--session', 'bad.id', 'Summarise it.']]) {
      expect(await fails([...argv, ...down]), argv[0]).toEqual({ code: 2, line: invalid });
    }
  });

  it('sessions --nats lists nothing on an empty stream; NATS_URL or any connection flag selects NATS', async () => {
    const { streamName, subjectPrefix } = isolated();
    // Reading commands never create or change the stream: before `serve` made it, a clear error.
    const missing = await fails(['sessions', '--nats', server.url, '--stream', streamName, '--prefix', subjectPrefix]);
    expect(missing).toEqual({ code: 1, line: `jetplan: stream ${streamName} does not exist (start jetplan serve first)` });
    const nc = await connectNats({ url: server.url });
    await ensureStream(nc, { streamName, subjectPrefix });
    await nc.close();
    const empty = await run(['sessions', '--nats', server.url, '--stream', streamName, '--prefix', subjectPrefix]);
    expect(empty.code).toBe(0);
    // A prefix the stream does not take: said as such, not as a consumer's refusal.
    const wrong = await fails(['sessions', '--nats', server.url, '--stream', streamName, '--prefix', 'other']);
    expect(wrong).toMatchObject({ code: expect.any(Number) as number, line: `jetplan: stream ${streamName} does not take other.in.>, other.ev.>, other.exec.> (its subjects: ${subjectPrefix}.in.>, ${subjectPrefix}.ev.>, ${subjectPrefix}.exec.>): is the subject prefix "other" the deployment's?` });
    expect(empty.io.stdoutText).toBe('no sessions\n');
    const viaEnv = await run(['sessions', '--stream', streamName, '--prefix', subjectPrefix, '--json'], { env: { NATS_URL: server.url } });
    expect(viaEnv.io.err).toEqual([]);
    expect(viaEnv.code).toBe(0);
    expect(viaEnv.io.stdoutText).toBe('[]\n');
    // Without connection flags the data dir is read, as before.
    const local = await run(['sessions', '--data-dir', `/nonexistent/${uniqueName('d')}`]);
    expect(local.io.stdoutText).toBe('no sessions\n');
  });

  it('sessions --nats fails in one line when the stream cannot be opened', async () => {
    const r = await fails(['sessions', '--nats', server.url, '--stream', 'bad.name']);
    expect(r.code).toBe(2);
    expect(r.line).toMatch(/^jetplan: streamName must be a single NATS subject token/);
  });
});

describe('usage errors', () => {
  const conn = (): string[] => ['--nats', server.url];
  it.each([
    [['answer'], 'answer needs <session> <taskId> "answer"'],
    [['answer', 's1', 't1'], 'answer needs <session> <taskId> "answer"'],
    [['answer', 's1', 't1', '  '], 'answer needs <session> <taskId> "answer"'],
    [['status'], 'status needs a session id'],
    [['status', 'a', 'b'], 'unexpected argument b'],
    [['cancel'], 'cancel needs a session id'],
    [['cancel', 's1', '--reason'], '--reason needs a value'],
    [['watch'], 'watch needs a session id'],
    [['watch', 's1', '--bogus'], 'unknown flag --bogus'],
    [['serve', 'extra'], 'unexpected argument extra'],
    [['serve', '--lease-ttl-ms', '100'], '--lease-ttl-ms expects an integer of at least 300, got "100"'],
    [['serve', '--http-port', 'eighty'], '--http-port expects an integer from 0 to 65535, got "eighty"'],
    [['serve', '--http-port', '99999'], '--http-port expects an integer from 0 to 65535, got "99999"'],
    [['executor'], 'executor needs a type: echo or shell'],
    [['executor', 'echo', 'shell'], 'unexpected argument shell'],
    [['executor', 'python'], 'unknown executor python (expected echo or shell)'],
    [['executor', 'echo', '--allow', 'ls'], '--allow only applies to the shell executor'],
    [['executor', 'echo', '--timeout-ms', '5'], '--timeout-ms only applies to the shell executor'],
    [['executor', 'shell'], 'the shell executor needs --allow <prog,prog>'],
    [['executor', 'shell', '--allow', ' , '], 'the shell executor needs --allow <prog,prog>'],
    [['executor', 'shell', '--allow', 'echo', '--timeout-ms', '0'], '--timeout-ms expects an integer from 1 to 2147483647, got "0"'],
    [['executor', 'shell', '--allow', 'echo', '--max-output-bytes', '0'], '--max-output-bytes expects a positive integer, got "0"'],
    [['executor', 'echo', '--kinds', ' , '], '--kinds needs at least one of toolcall, processing'],
    [['executor', 'echo', '--kinds', 'toolcall,clarification'], 'unknown kind clarification (expected toolcall or processing)'],
    [['executor', 'echo', '--ack-wait-ms', '50'], '--ack-wait-ms expects an integer from 100 to 715827882, got "50"'],
    [['executor', 'echo', '--concurrency', '0'], '--concurrency expects a positive integer, got "0"'],
    [['executor', 'echo', '--inbox-ttl-ms', '1000'], '--inbox-ttl-ms expects an integer from 60000 to 315360000000, got "1000"'],
    [['executor', 'echo', '--stale-after-ms', 'soon'], '--stale-after-ms expects an integer from 0 to 315360000000, got "soon"'],
  ])('%j → exit 2: %s', async (argv, message) => {
    expect(await fails([...argv, ...conn()])).toEqual({ code: 2, line: `jetplan: ${message} (see jetplan help)` });
  });

  it('a bad JETPLAN_DEMO_DELAY_MS is a usage error of executor echo', async () => {
    expect(await fails(['executor', 'echo', ...conn()], { env: { JETPLAN_DEMO_DELAY_MS: 'soon' } })).toEqual({
      code: 2,
      line: 'jetplan: JETPLAN_DEMO_DELAY_MS must be a non-negative integer, got "soon"',
    });
  });

  it('--help prints the usage of each NATS command', async () => {
    for (const command of ['serve', 'executor', 'submit', 'answer', 'status', 'watch', 'cancel']) {
      const { code, io } = await run([command, '--help']);
      expect(code).toBe(0);
      expect(io.stdoutText).toMatch(new RegExp(`^Usage: jetplan ${command}`));
      expect(io.stdoutText).toContain('--stream <name>');
    }
    const replay = await run(['replay', '--help']);
    expect(replay.io.stdoutText).toContain('With --nats (or any connection flag), reads the NATS deployment instead');
  });
});

describe('connection failures', () => {
  it.each([
    [['serve']],
    [['executor', 'echo']],
    [['executor', 'shell', '--allow', 'echo']],
    [['submit', 'hello']],
    [['answer', 's1', 't1', 'yes']],
    [['status', 's1']],
    [['cancel', 's1']],
    [['watch', 's1']],
    [['replay', 's1']],
    [['sessions']],
  ])('%j with NATS unreachable → one line, exit 1', async (argv) => {
    expect(await fails([...argv, '--nats', UNREACHABLE])).toEqual({ code: 1, line: REFUSED });
  });

  it('takes the URL from NATS_URL when --nats is not given', async () => {
    expect(await fails(['status', 's1'], { env: { NATS_URL: UNREACHABLE } })).toEqual({ code: 1, line: REFUSED });
  });

  it('reports an unreadable --creds file in one line', async () => {
    const creds = `/nonexistent/${uniqueName('c')}.creds`;
    const r = await fails(['status', 's1', '--nats', server.url, '--creds', creds]);
    expect(r.code).toBe(1);
    expect(r.line).toMatch(new RegExp(`^jetplan: cannot read creds file ${creds.replace(/\./g, '\\.')}: `));
  });

  it('reports a missing TLS file, and TLS asked of a server without TLS, in one line each', async () => {
    expect(await fails(['status', 's1', '--nats', server.url, '--tls-ca', '/nonexistent/ca.pem'])).toEqual({
      code: 2,
      line: 'jetplan: --tls-ca: cannot read /nonexistent/ca.pem (see jetplan help)',
    });
    const file = fileURLToPath(import.meta.url); // readable; its contents never get used
    const r = await fails(['status', 's1', '--nats', server.url, '--tls-ca', file, '--tls-cert', file, '--tls-key', file]);
    expect(r.code).toBe(1);
    expect(r.line).toMatch(new RegExp(`^jetplan: cannot connect to NATS at ${server.url.replace(/\./g, '\\.')}: `));
  });

  it('passes --user/--pass and --token to the server (which has no auth, so they are accepted)', async () => {
    expect(await fails(['status', 's1', '--nats', server.url, '--user', 'u'])).toEqual({ code: 2, line: 'jetplan: --user and --pass go together (see jetplan help)' });
    expect(await fails(['status', 's1', '--nats', ''])).toEqual({ code: 2, line: 'jetplan: --nats needs a non-empty value (see jetplan help)' });
    expect(await fails(['status', 's1', '--nats', ' '])).toEqual({ code: 2, line: 'jetplan: --nats needs a server URL (see jetplan help)' });
    expect(await fails(['status', 's1', '--nats', server.url, '--stream', ''])).toEqual({ code: 2, line: 'jetplan: --stream needs a non-empty value (see jetplan help)' });
    expect(await fails(['submit', '--nats', server.url, '--session', '', 'Summarise it.'])).toEqual({ code: 2, line: 'jetplan: --session needs a non-empty value (see jetplan help)' });
    expect(await fails(['cancel', 's1', '--nats', server.url, '--message-id', ''])).toEqual({ code: 2, line: 'jetplan: --message-id needs a non-empty value (see jetplan help)' });
    expect(await fails(['sessions', '--nats', server.url, '--prefix', ' '])).toEqual({ code: 2, line: 'jetplan: --prefix needs a subject prefix (see jetplan help)' });
    const { conn, streamName, subjectPrefix } = isolated();
    await ensureStream(nc, { streamName, subjectPrefix });
    expect(await fails(['status', 's-nope', ...conn, '--user', 'u', '--pass', 'p'])).toEqual({ code: 1, line: 'jetplan: unknown session s-nope' });
    expect(await fails(['status', 's-nope', ...conn, '--token', 't'])).toEqual({ code: 1, line: 'jetplan: unknown session s-nope' });
    expect(await fails(['status', 's-nope', ...conn, '--user', 'u', '--pass', 'p', '--token', 't'])).toEqual({
      code: 2,
      line: 'jetplan: --user/--pass and --token are alternatives: give one (see jetplan help)',
    });
  });

  it('serve and executor close the connection and fail in one line when they cannot start', async () => {
    const serveFailed = await fails(['serve', '--nats', server.url, '--stream', 'bad.name']);
    expect(serveFailed.code).toBe(2);
    expect(serveFailed.line).toMatch(/^jetplan: streamName must be a single NATS subject token/);
    const execFailed = await fails(['executor', 'echo', '--nats', server.url, '--stream', uniqueName('JPCLI'), '--inbox-bucket', 'bad.bucket']);
    expect(execFailed).toEqual({ code: 2, line: 'jetplan: executor: inboxBucket must be a NATS KV bucket name ([A-Za-z0-9_-]+: letters, digits, _ or -), got "bad.bucket"' });
  });
});
