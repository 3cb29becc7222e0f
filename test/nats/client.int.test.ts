import { jetstreamManager } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { isSessionNotFoundError, isValidationError } from '../../src/errors.js';
import { demoHandler } from '../../src/executors/demoExecutor.js';
import { createClient, newSessionId, type JetplanClient, type Published } from '../../src/nats/client.js';
import { SessionRepository } from '../../src/actors/sessionRepository.js';
import { decide, type PlannerInput } from '../../src/machines/decide.js';
import { JetStreamEventStore } from '../../src/persistence/jetstream/index.js';
import { defaultDecideDeps } from '../../src/runtime/embeddedRuntime.js';
import { connectionOptions, connectNats, NatsConnectError } from '../../src/nats/connect.js';
import { createExecutor } from '../../src/nats/executor.js';
import { silentLogger } from '../../src/observability/logger.js';
import type { DomainEvent } from '../../src/protocol/events.js';
import { startPlannerService } from '../../src/service/plannerService.js';
import { uniqueName } from '../support/natsServer.js';
import { natsTestEnv } from '../support/natsTestEnv.js';

const env = natsTestEnv();
const conn = env.conn;

/** A running deployment on its own stream: planner service, demo executor and a client. */
async function deployment() {
  const streamName = uniqueName('JPC');
  const subjectPrefix = uniqueName('jpc');
  const service = await startPlannerService({ nc: await conn(), streamName, subjectPrefix, logger: silentLogger, leaseBucket: uniqueName('lease') });
  env.track(service);
  await service.whenLeader;
  const executor = await createExecutor({
    nc: await conn(),
    kinds: ['ToolCall', 'Processing'],
    handler: demoHandler,
    streamName,
    subjectPrefix,
    inboxBucket: uniqueName('inbox'),
  });
  env.track(executor);
  const client = createClient(await conn(), { streamName, subjectPrefix });
  env.track(client, 'last');
  return { client, service, executor, streamName, subjectPrefix };
}

const TERMINAL = new Set(['SessionCompleted', 'SessionFailed', 'SessionCancelled']);

/** Follows a session to its end, answering each question with `answer`. */
/** The session's first event of `type`, waiting for it to be appended. */
async function firstOfType(client: JetplanClient, sessionId: string, type: DomainEvent['type']): Promise<DomainEvent> {
  const watch = client.watch(sessionId, { fromStart: true });
  try {
    for await (const event of watch) if (event.type === type) return event;
  } finally {
    await watch.close();
  }
  throw new Error(`session ${sessionId}: the watch ended before a ${type}`);
}

async function followAnswering(client: JetplanClient, sessionId: string, answer: string): Promise<DomainEvent[]> {
  const seen: DomainEvent[] = [];
  for await (const event of client.watch(sessionId, { fromStart: true })) {
    seen.push(event);
    if (event.type === 'ClarificationRequested') await client.answer(sessionId, event.data.taskId, answer);
    if (TERMINAL.has(event.type)) break;
  }
  return seen;
}

describe('createClient against a running planner service', () => {
  it('submits, answers a clarification while watching, then reads status, replay and sessions', async () => {
    const { client } = await deployment();
    const { sessionId, seq, duplicate } = await client.submit('Research the market. Then deploy the app to production. Summarise the results.');
    expect(sessionId).toMatch(/^s-[a-z0-9]{10}$/);
    expect(seq).toBeGreaterThan(0);
    expect(duplicate).toBe(false);

    const events = await followAnswering(client, sessionId, 'staging');
    const types = events.map((e) => e.type);
    expect(types[0]).toBe('SessionStarted');
    expect(types).toContain('ClarificationRequested');
    expect(types).toContain('ClarificationProvided');
    expect(types.at(-1)).toBe('SessionCompleted');
    expect(events.map((e) => e.sequence)).toEqual(events.map((_, i) => i + 1));

    const status = await client.status(sessionId);
    expect(status.status).toBe('completed');
    expect(status.tasks).toHaveLength(3);
    expect(status.tasks.every((t) => t.status === 'Completed')).toBe(true);
    expect(status.tasks[1]!.answer).toBe('staging');

    const full = await client.replay(sessionId);
    expect(full.events).toHaveLength(events.length);
    expect(full.state).toEqual(status);
    const early = await client.replay(sessionId, { until: 2 });
    expect(early.events.map((e) => e.sequence)).toEqual([1, 2]);
    expect(early.state.version).toBe(2);
    expect(early.state.status).toBe('active');

    const list = await client.sessions();
    expect(list).toEqual([
      expect.objectContaining({ sessionId, status: 'completed', phase: 'done', done: 3, total: 3, version: events.length }),
    ]);
  });

  it('deduplicates a resubmission with the same message id', async () => {
    const { client } = await deployment();
    const sessionId = newSessionId();
    const first = await client.submit('Summarise the notes.', { sessionId, messageId: 'submit-1' });
    const again = await client.submit('Summarise the notes.', { sessionId, messageId: 'submit-1' });
    expect(again).toEqual({ sessionId, seq: first.seq, duplicate: true, messageId: 'submit-1' });
    const events = await followAnswering(client, sessionId, 'n/a');
    expect(events.filter((e) => e.type === 'SessionStarted')).toHaveLength(1);
    expect(events.at(-1)?.type).toBe('SessionCompleted');
  });

  it('tells what came of a published input: applied, rejected, or unchanged (its id already applied)', async () => {
    const { client, streamName } = await deployment();
    const submitted = await client.submit('Deploy the release to production.', { messageId: 'o-submit' });
    expect(await client.outcome(submitted)).toMatchObject({ status: 'applied', event: { type: 'SessionStarted', inputSequence: submitted.seq } });
    const { sessionId } = submitted;
    const bad = await client.answer(sessionId, 't9-none', 'yes');
    expect(await client.outcome(bad)).toMatchObject({ status: 'rejected', reason: 'task t9-none is not waiting for clarification' });
    // A duplicate PubAck names the original, whose outcome it gets.
    expect(await client.outcome(await client.submit('Deploy the release to production.', { sessionId, messageId: 'o-submit' }))).toMatchObject({ status: 'applied' });
    // Published again after the duplicate window (shortened here): stored anew, the session drops it.
    const jsm = await jetstreamManager(await conn());
    const info = await jsm.streams.info(streamName);
    await jsm.streams.update(streamName, { ...info.config, duplicate_window: 100_000_000 }); // 100 ms, in ns
    let again = await client.submit('Deploy the release to production.', { sessionId, messageId: 'o-submit' });
    for (let i = 0; again.duplicate && i < 10_000; i++) again = await client.submit('Deploy the release to production.', { sessionId, messageId: 'o-submit' });
    expect(again.duplicate).toBe(false);
    // Told without a later input's event: the session's state says its id was applied.
    expect(await client.outcome(again)).toEqual({ status: 'unchanged' });
    // The session records the copy's sequence, so it stays a repeat once its id leaves the window.
    const record = await firstOfType(client, sessionId, 'InputRepeated');
    const repeated = await client.replay(sessionId);
    expect(record).toMatchObject({ causationId: 'o-submit', inputSequence: again.seq, data: { messageId: 'o-submit', streamSequence: again.seq, appliedSequence: submitted.seq } });
    expect(repeated.events.filter((e) => e.type === 'TasksPlanned')).toHaveLength(1);
    await client.cancel(sessionId);
    expect(await client.outcome(again)).toEqual({ status: 'unchanged' });
    // Waiting can be ended.
    const waiting = client.outcome({ sessionId, seq: 1e9, duplicate: false, messageId: 'never' }, { signal: AbortSignal.timeout(200) });
    await expect(waiting).rejects.toThrow(/aborted|timeout/i);
  });

  it('outcome waits for an input that a later one overtook (a handover can reorder them), and tells it applied', async () => {
    // The planner by hand: the submit, then Q before P, as a new leader may apply them.
    const nc = await conn();
    const streamName = uniqueName('JPR');
    const subjectPrefix = uniqueName('jpr');
    const store = env.track(await JetStreamEventStore.create(nc, { streamName, subjectPrefix }), 'last');
    const client = env.track(createClient(nc, { streamName, subjectPrefix }), 'last');
    const sessionId = newSessionId();
    const text = 'Fetch the logs. Deploy the app.';
    const submitted = await client.submit(text, { sessionId });
    const p = await client.cancel(sessionId, 'earlier');
    const q = await client.submit('Summarise the results.', { sessionId });
    const deps = defaultDecideDeps();
    const apply = async (pub: Published, input: PlannerInput) => {
      const { state } = await new SessionRepository({ store }).rebuild(sessionId);
      const d = decide(state, input, { messageId: pub.messageId, now: Date.now(), streamSequence: pub.seq }, deps);
      await store.appendToStream(sessionId, d.events, { expectedVersion: state.version });
    };
    await apply(submitted, { type: 'SubmitInput', text });
    await apply(q, { type: 'SubmitInput', text: 'Summarise the results.' });
    const outcome = client.outcome(p);
    await apply(p, { type: 'CancelSession', reason: 'earlier' });
    expect(await outcome).toMatchObject({ status: 'applied', event: { type: 'SessionCancelled' } });
  });

  it('cancels a session waiting for an answer; watch without fromStart sees only new events', async () => {
    const { client } = await deployment();
    const { sessionId } = await client.submit('Deploy the release to production.', { config: { maxAttempts: 2 } });
    // Wait for the question, then watch only what comes after it.
    for await (const event of client.watch(sessionId, { fromStart: true })) if (event.type === 'ClarificationRequested') break;
    const live = client.watch(sessionId);
    await live.ready;
    await client.cancel(sessionId, 'changed my mind');
    const first = await live[Symbol.asyncIterator]().next();
    expect(first.value).toMatchObject({ type: 'SessionCancelled', data: { reason: 'changed my mind' } });
    await live.close();
    expect((await client.status(sessionId)).status).toBe('cancelled');
  });

  it('rejects bad session ids and reserved message ids, and reports unknown sessions', async () => {
    const { client } = await deployment();
    await expect(client.submit('x', { sessionId: 'no.dots' })).rejects.toSatisfy(isValidationError);
    // An empty id would be no id to JetStream, and every such submit would name one derived session.
    await expect(client.submit('Summarise the notes.', { messageId: '' })).rejects.toThrow(/^invalid message id "": a non-empty string/);
    await expect(client.answer('s-1', 't1', 'yes', { messageId: '' })).rejects.toSatisfy(isValidationError);
    // Ids jetplan makes itself: refused before anything is published (the service would reject them).
    for (const messageId of ['in.7', 'retry.s.t1.2', 'recover.s']) {
      await expect(client.submit('Summarise the notes.', { messageId })).rejects.toThrow(/starts with "(in|retry|recover)\.", which is reserved/);
    }
    // Within 64 Ki characters, but its JSON body is not within 64 KiB (each \u0001 takes 6 bytes).
    await expect(client.submit(`Run it.${'\u0001'.repeat(20_000)}`)).rejects.toThrow(
      /^the SubmitInput is 120\d{3} bytes as JSON, over the service's limit of 65536; nothing was published$/,
    );
    const roomy = createClient(await conn(), { streamName: client.streamName, subjectPrefix: client.subjectPrefix, maxInputBytes: 200_000 });
    await expect(roomy.submit(`Run it.${'\u0001'.repeat(20_000)}`, { sessionId: 's-roomy' })).resolves.toMatchObject({ sessionId: 's-roomy' });
    await expect(client.status('s-unknown')).rejects.toSatisfy(isSessionNotFoundError);
    await expect(client.replay('s-unknown')).rejects.toSatisfy(isSessionNotFoundError);
  });

  it('submitting to a stream that does not exist says so', async () => {
    const client = createClient(await conn(), { streamName: uniqueName('NOPE'), subjectPrefix: uniqueName('nope') });
    await expect(client.submit('Summarise the notes.')).rejects.toThrow(/^stream NOPE_\S+ does not exist \(start jetplan serve first\)$/);
  });
});

describe('connectNats', () => {
  it('maps flags to nats.js options', () => {
    const o = connectionOptions({ url: 'nats://a:1, nats://b:2', user: 'u', pass: 'p', token: 't', tls: { caFile: 'ca.pem' }, name: 'x' });
    expect(o).toMatchObject({ servers: ['nats://a:1', 'nats://b:2'], user: 'u', pass: 'p', token: 't', tls: { caFile: 'ca.pem' }, name: 'x', maxReconnectAttempts: -1, noAsyncTraces: true });
    expect(connectionOptions({}).tls).toBeUndefined();
  });

  it('fails in one line naming the URL', async () => {
    const err = await connectNats({ url: 'nats://127.0.0.1:1' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NatsConnectError);
    expect((err as Error).message).toBe('cannot connect to NATS at nats://127.0.0.1:1: connection refused (is nats-server running?)');
    expect(() => connectionOptions({ credsFile: '/nonexistent/x.creds' })).toThrow(/cannot read creds file \/nonexistent\/x.creds/);
  });

  it('connects to a running server', async () => {
    const nc = await connectNats({ url: env.server().url, name: 'jetplan-test' });
    expect(nc.isClosed()).toBe(false);
    await nc.close();
  });
});
