/**
 * Retention on a real nats-server: purgeEndedSessions removes ended sessions (events, processed
 * inputs, commands, snapshot) and nothing else, while the service runs.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import type { DomainEvent } from '../../src/protocol/events.js';
import { isValidationError } from '../../src/errors.js';
import { purgeEndedSessions } from '../../src/nats/purgeSessions.js';
import { KvSnapshotStore } from '../../src/persistence/jetstream/kvSnapshotStore.js';
import { SessionPurger } from '../../src/persistence/jetstream/sessionPurge.js';
import { Kvm } from '@nats-io/kv';
import { KvExecutorInbox } from '../../src/nats/executorInbox.js';
import { executorNames, plannerNames } from '../../src/protocol/deploymentNames.js';
import { has, isolation, publishInput, serverEnv, startTestExecutor, waitForEvents, type Isolation } from '../service/harness.js';

const { env } = serverEnv();

const QUESTION = 'Which database should we use?';
const TASK = 'Summarise the results.';
const HOUR = 3_600_000;

/** Messages per subject of the deployment's stream. */
async function subjects(nc: NatsConnection, iso: Isolation): Promise<Record<string, number>> {
  const jsm = await jetstreamManager(nc);
  return (await jsm.streams.info(iso.streamName, { subjects_filter: '>' })).state.subjects ?? {};
}

const ofSession = (all: Record<string, number>, id: string) => Object.keys(all).filter((s) => s.endsWith(`.${id}`)).sort();

describe('purgeEndedSessions', () => {
  it('removes ended sessions older than the age, keeps open and recent ones, and lets a removed id start afresh', async () => {
    const { iso, nc, store } = await env.leading();
    const executor = await startTestExecutor(nc, iso, (task) => ({ type: 'TaskCompleted', output: `done: ${task.description}` }));
    env.stops.push(() => executor.stop());
    const p = iso.subjectPrefix;

    await publishInput(nc, iso, 'done', { type: 'SubmitInput', text: TASK }, 'done-1');
    const oldDispatches = (await waitForEvents(store, 'done', has('SessionCompleted')))
      .filter((e) => e.type === 'TaskDispatched')
      .map((e) => (e.data as { dispatchId: string }).dispatchId);
    await publishInput(nc, iso, 'late', { type: 'SubmitInput', text: TASK }, 'late-1');
    await waitForEvents(store, 'late', has('SessionCompleted'));
    // Ended, then a late input answered: its latest event (InputRejected) alone does not tell.
    await publishInput(nc, iso, 'late', { type: 'ProvideClarification', taskId: 'none', answer: 'x' }, 'late-2');
    await waitForEvents(store, 'late', has('InputRejected'));
    await publishInput(nc, iso, 'cancelled', { type: 'SubmitInput', text: QUESTION }, 'cancelled-1');
    await waitForEvents(store, 'cancelled', has('ClarificationRequested'));
    await publishInput(nc, iso, 'cancelled', { type: 'CancelSession' }, 'cancelled-2');
    await waitForEvents(store, 'cancelled', has('SessionCancelled'));
    await publishInput(nc, iso, 'open', { type: 'SubmitInput', text: QUESTION }, 'open-1');
    const open = await waitForEvents(store, 'open', has('ClarificationRequested'));
    const snapshots = await KvSnapshotStore.create(nc, { bucket: plannerNames(iso.streamName, iso.subjectPrefix).snapshotBucket });
    await snapshots.save({ streamId: 'done', version: 3, schema: 1, state: {}, lastEventId: 'x' });
    const names = executorNames(iso.streamName, iso.subjectPrefix);
    const inbox = await KvExecutorInbox.open(nc, { bucket: names.inboxBucket });
    const claims = await new Kvm(nc).create(names.claimsBucket);
    const report = { type: 'TaskCompleted', taskId: 't1-00000000', dispatchId: 'x', output: 'old' } as const;
    for (const key of ['done.t1-00000000.1', 'late.t1-00000000.1', 'donex.t1-00000000.1']) await inbox.put(key, { ...report, dispatchId: key });
    await claims.put('done.t1-00000000.1', 'executor-1');
    const before = await subjects(nc, iso);
    expect(ofSession(before, 'done')).toEqual([`${p}.ev.done`, `${p}.exec.processing.done`, `${p}.in.done`]);

    // Everything is minutes old at most: measured from an hour ahead, all ended ones are old enough.
    const later = { ...iso, olderThanMs: HOUR / 2, now: Date.now() + HOUR };
    const dry = await purgeEndedSessions(nc, { ...later, dryRun: true });
    expect(dry).toEqual({ sessions: ['cancelled', 'done', 'late'], messages: 0, snapshots: 0, dispatchEntries: 0, recent: 0, open: 1 });
    expect(await subjects(nc, iso)).toEqual(before);
    const recent = await purgeEndedSessions(nc, { ...iso, olderThanMs: HOUR });
    expect(recent).toEqual({ sessions: [], messages: 0, snapshots: 0, dispatchEntries: 0, recent: 3, open: 1 });
    // Whatever the age asked for, sessions younger than the duplicate window (2 min) stay.
    const young = await purgeEndedSessions(nc, { ...iso, olderThanMs: 0 });
    expect(young).toEqual({ sessions: [], messages: 0, snapshots: 0, dispatchEntries: 0, recent: 3, open: 1 });

    const purged = await purgeEndedSessions(nc, later);
    expect(purged.sessions).toEqual(['cancelled', 'done', 'late']);
    expect(purged.snapshots).toBe(1);
    const removed = ['cancelled', 'done', 'late'].reduce((n, id) => n + ofSession(before, id).reduce((m, s) => m + before[s]!, 0), 0);
    expect(purged.messages).toBe(removed);
    const after = await subjects(nc, iso);
    for (const id of ['cancelled', 'done', 'late']) expect(ofSession(after, id)).toEqual([]);
    for (const s of ofSession(before, 'open')) expect(after[s]).toBe(before[s]);
    expect(await snapshots.load('done')).toBeUndefined();
    expect((await store.readStream('done')).exists).toBe(false);
    expect(await purgeEndedSessions(nc, later)).toEqual({ sessions: [], messages: 0, snapshots: 0, dispatchEntries: 0, recent: 0, open: 1 });
    // The executors' inbox and claims entries of removed sessions went, others' (even `done` as a prefix) stayed.
    expect(await inbox.keys()).toEqual(['donex.t1-00000000.1']);
    expect(purged.dispatchEntries).toBe(3);

    const claimed: string[] = [];
    for await (const key of await claims.keys()) claimed.push(key);
    expect(claimed).toEqual([]);

    // The open session goes on; a removed id starts a new session (from version 1).
    const taskId = (open.find((e) => e.type === 'ClarificationRequested')!.data as { taskId: string }).taskId;
    await publishInput(nc, iso, 'open', { type: 'ProvideClarification', taskId, answer: 'Postgres' }, 'open-2');
    await waitForEvents(store, 'open', has('SessionCompleted'));
    // The same text again: the same task ids, but the new run's dispatch ids are its own (run id), so
    // neither JetStream's duplicate window nor an executor's inbox takes it for the old run.
    await publishInput(nc, iso, 'done', { type: 'SubmitInput', text: TASK }, 'done-again');
    const again = await waitForEvents(store, 'done', has('SessionCompleted'));
    const dispatchIds = (events: DomainEvent[]) => events.filter((e) => e.type === 'TaskDispatched').map((e) => (e.data as { dispatchId: string }).dispatchId);
    expect(dispatchIds(again)).toHaveLength(1);
    expect(oldDispatches).not.toContain(dispatchIds(again)[0]);
    expect(again.map((e) => e.sequence)).toEqual(again.map((_, i) => i + 1));
    expect(again[0]!.type).toBe('SessionStarted');
  });

  it('keeps inputs the service has not processed yet, of the purged sessions and of others, so they are still answered', async () => {
    const iso = isolation();
    const service = await env.service(iso);
    await service.whenLeader;
    const nc = await env.connect();
    const store = await env.store(iso);
    const executor = await startTestExecutor(nc, iso, () => ({ type: 'TaskCompleted', output: 'ok' }));
    env.stops.push(() => executor.stop());
    await publishInput(nc, iso, 's1', { type: 'SubmitInput', text: TASK }, 's1-1');
    await waitForEvents(store, 's1', has('SessionCompleted'));
    await service.close();
    // Published while no service runs: above the consumer's ack floor. `fresh` is another session's:
    // on nats-server 2.9.10 a purge with a subject filter moved the input consumer past it for good.
    await publishInput(nc, iso, 'fresh', { type: 'SubmitInput', text: TASK }, 'fresh-1');
    const late = await publishInput(nc, iso, 's1', { type: 'CancelSession' }, 's1-late');

    const purged = await purgeEndedSessions(nc, { ...iso, olderThanMs: 0, now: Date.now() + HOUR });
    expect(purged.sessions).toEqual(['s1']);
    expect(ofSession(await subjects(nc, iso), 's1')).toEqual([`${iso.subjectPrefix}.in.s1`]);

    await (await env.service(iso)).whenLeader;
    const events = await waitForEvents(store, 's1', (es) => es.some((e) => e.inputSequence === late.seq));
    expect(events.find((e) => e.inputSequence === late.seq)!.type).toBe('InputRejected');
    await waitForEvents(store, 'fresh', has('SessionCompleted'));
  });

  it('refuses a negative or fractional age with a ValidationError, before touching anything', async () => {
    const nc = await env.connect();
    for (const olderThanMs of [-1, 1.5, Number.NaN]) {
      const err: unknown = await purgeEndedSessions(nc, { ...isolation(), olderThanMs }).catch((e: unknown) => e);
      expect(isValidationError(err)).toBe(true);
      expect((err as Error).message).toContain('olderThanMs');
    }
  });
});

describe('SessionPurger', () => {
  it('also removes an answer appended to a purged session during the purge, so no log is left that starts past 1', async () => {
    const iso = isolation();
    const nc = await env.connect();
    const store = await env.store(iso);
    const event = (sessionId: string, type: 'SessionCancelled' | 'InputRejected', id: string) =>
      type === 'SessionCancelled'
        ? { id, type, version: 1, sessionId, timestamp: 1, causationId: id, correlationId: sessionId, data: { reason: 'done' } }
        : { id, type, version: 1, sessionId, timestamp: 1, causationId: id, correlationId: sessionId, data: { reason: 'session is cancelled' } };
    await store.appendToStream('gone', [event('gone', 'SessionCancelled', 'g1')], { expectedVersion: 0 });
    await store.appendToStream('kept', [event('kept', 'SessionCancelled', 'k1')], { expectedVersion: 0 });
    // The service answers a late input to `gone` while the purge deletes its events: at version 2.
    const jsm = await jetstreamManager(nc);
    const deleteMessage = jsm.streams.deleteMessage.bind(jsm.streams);
    let answered = false;
    jsm.streams.deleteMessage = async (stream, seq, erase) => {
      if (!answered) {
        answered = true;
        await store.appendToStream('gone', [event('gone', 'InputRejected', 'late')], { expectedVersion: 1 });
      }
      return deleteMessage(stream, seq, erase);
    };
    const { snapshotBucket, durableName } = plannerNames(iso.streamName, iso.subjectPrefix);
    const purger = await SessionPurger.create(nc, { ...iso, snapshotBucket, inputConsumer: durableName, dispatchBuckets: [] }, jsm);
    try {
      expect(await purger.purge(['gone'], 0)).toEqual({ messages: 2, snapshots: 0, dispatchEntries: 0 });
    } finally {
      purger.close();
    }
    expect(answered).toBe(true);
    const fresh = await env.store(iso);
    expect((await fresh.readStream('gone')).exists).toBe(false);
    expect((await fresh.readStream('kept')).events.map((e) => e.id)).toEqual(['k1']);
    // A new run under the id starts at 1, and a purge that finds it after the scan keeps it.
    await fresh.appendToStream('gone', [event('gone', 'InputRejected', 'new')], { expectedVersion: 0 });
    expect((await fresh.readStream('gone')).events.map((e) => e.sequence)).toEqual([1]);
  });
});
