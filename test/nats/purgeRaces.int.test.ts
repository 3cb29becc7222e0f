/**
 * Purge against live traffic and its own interruptions, on a real nats-server: a never-started
 * session that starts meanwhile, new runs seen across orphan passes, a rerun after a purge cut a
 * log at the front, and executor entries under encoded keys.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { describe, expect, it, vi } from 'vitest';
import { purgeEndedSessions } from '../../src/nats/purgeSessions.js';
import { KvExecutorInbox, inboxKey } from '../../src/nats/executorInbox.js';
import { JetStreamEventStore } from '../../src/persistence/jetstream/jetStreamEventStore.js';
import { SessionPurger } from '../../src/persistence/jetstream/sessionPurge.js';
import { executorNames, plannerNames } from '../../src/protocol/deploymentNames.js';
import type { NewEvent } from '../../src/protocol/events.js';
import { has, isolation, publishInput, serverEnv, startTestExecutor, waitForEvents } from '../service/harness.js';

const { env } = serverEnv();

const HOUR = 3_600_000;
const TASK = 'Summarise the results.';
const later = (iso: object) => ({ ...iso, olderThanMs: HOUR / 2, now: Date.now() + HOUR });
const types = (events: Array<{ type: string }>) => events.map((e) => e.type);

const event = (sessionId: string, type: 'SessionCancelled' | 'InputRejected', id: string): NewEvent =>
  type === 'SessionCancelled'
    ? { id, type, version: 1, sessionId, timestamp: 1, causationId: id, correlationId: sessionId, data: { reason: 'done' } }
    : { id, type, version: 1, sessionId, timestamp: 1, causationId: id, correlationId: sessionId, data: { reason: 'session is cancelled' } };

describe('purge of a session that never started', () => {
  it('keeps one that starts between the scan and the purge: the fence at its version conflicts', async () => {
    const { iso, nc, store } = await env.leading();
    const executor = await startTestExecutor(nc, iso, () => ({ type: 'TaskCompleted', output: 'ok' }));
    env.stops.push(() => executor.stop());
    await publishInput(nc, iso, 'i', { type: 'ProvideClarification', taskId: 'none', answer: 'x' }, 'i-1');
    await waitForEvents(store, 'i', has('InputRejected'));
    const append = JetStreamEventStore.prototype.appendToStream;
    let raced = false;
    JetStreamEventStore.prototype.appendToStream = async function (this: JetStreamEventStore, id, events, options) {
      if (!raced && events[0]?.causationId.startsWith('purge.')) {
        raced = true;
        // The client, told its first input was rejected, submits properly; the service starts it.
        await publishInput(nc, iso, 'i', { type: 'SubmitInput', text: TASK }, 'i-2');
        await waitForEvents(store, 'i', has('TaskDispatched'));
      }
      return append.call(this, id, events, options);
    };
    let purged;
    try {
      purged = await purgeEndedSessions(nc, later(iso));
    } finally {
      JetStreamEventStore.prototype.appendToStream = append;
    }
    expect(raced).toBe(true);
    expect(purged).toMatchObject({ sessions: [], messages: 0, open: 1 });
    const events = await waitForEvents(store, 'i', has('SessionCompleted'));
    expect(types(events)).toEqual(['InputRejected', 'SessionStarted', 'TasksPlanned', 'TaskDispatched', 'TaskCompleted', 'SessionCompleted']);
  });

  it('removes one fenced before a SubmitInput arrives: the input is rejected, nothing starts, and the id starts afresh later', async () => {
    const { iso, nc, store } = await env.leading();
    const executor = await startTestExecutor(nc, iso, () => ({ type: 'TaskCompleted', output: 'ok' }));
    env.stops.push(() => executor.stop());
    await publishInput(nc, iso, 'j', { type: 'ProvideClarification', taskId: 'none', answer: 'x' }, 'j-1');
    await waitForEvents(store, 'j', has('InputRejected'));
    const purge = SessionPurger.prototype.purge;
    let fenced: string[] = [];
    SessionPurger.prototype.purge = async function (this: SessionPurger, ids, through) {
      const now = await store.readStream('j');
      fenced = types(now.events);
      await publishInput(nc, iso, 'j', { type: 'SubmitInput', text: TASK }, 'j-2');
      await waitForEvents(store, 'j', (es) => es.length === 3);
      return purge.call(this, ids, through);
    };
    let purged;
    try {
      purged = await purgeEndedSessions(nc, later(iso));
    } finally {
      SessionPurger.prototype.purge = purge;
    }
    expect(fenced).toEqual(['InputRejected', 'SessionCancelled']);
    expect(purged?.sessions).toEqual(['j']);
    expect((await store.readStream('j')).exists).toBe(false);
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(iso.streamName, { subjects_filter: `${iso.subjectPrefix}.exec.>` });
    expect(info.state.subjects ?? {}).toEqual({});
    await publishInput(nc, iso, 'j', { type: 'SubmitInput', text: TASK }, 'j-3');
    const again = await waitForEvents(store, 'j', has('SessionCompleted'));
    expect(again[0]).toMatchObject({ type: 'SessionStarted', sequence: 1 });
  });
});

describe('purge of an ended session with a late input', () => {
  it('also removes an input the service answered during the purge, so a consumer made again from the start never applies it to the id', async () => {
    const { iso, nc, store } = await env.leading();
    const executor = await startTestExecutor(nc, iso, () => ({ type: 'TaskCompleted', output: 'ok' }));
    env.stops.push(() => executor.stop());
    await publishInput(nc, iso, 'e', { type: 'SubmitInput', text: TASK }, 'e-1');
    await waitForEvents(store, 'e', has('SessionCompleted'));
    const purge = SessionPurger.prototype.purge;
    SessionPurger.prototype.purge = async function (this: SessionPurger, ids, through) {
      // Published after the purge read the ack floor: above it, yet answered before the deletes.
      const late = await publishInput(nc, iso, 'e', { type: 'SubmitInput', text: TASK }, 'e-late');
      await waitForEvents(store, 'e', has('InputRejected'));
      await vi.waitFor(async () => expect(await this.inputsProcessedThrough()).toBeGreaterThanOrEqual(late.seq));
      return purge.call(this, ids, through);
    };
    try {
      expect((await purgeEndedSessions(nc, later(iso))).sessions).toEqual(['e']);
    } finally {
      SessionPurger.prototype.purge = purge;
    }
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(iso.streamName, { subjects_filter: `${iso.subjectPrefix}.*.e` });
    expect(info.state.subjects ?? {}).toEqual({});
  });
});

describe('SessionPurger', () => {
  it('keeps a new run that one orphan pass saw only in part', async () => {
    const iso = isolation();
    const nc = await env.connect();
    const store = await env.store(iso);
    const other = await env.store(iso);
    await store.appendToStream('a', [event('a', 'SessionCancelled', 'a1')], { expectedVersion: 0 });
    await store.appendToStream('b', [event('b', 'SessionCancelled', 'b1')], { expectedVersion: 0 });
    const jsm = await jetstreamManager(nc);
    const deleteMessage = jsm.streams.deleteMessage.bind(jsm.streams);
    let calls = 0;
    jsm.streams.deleteMessage = async (stream, seq, erase) => {
      calls++;
      // A late answer to `a` (an orphan, so a second pass runs); a new run of `b` begins after the
      // first scan and grows after the first orphan pass.
      if (calls === 1) await store.appendToStream('a', [event('a', 'InputRejected', 'a-late')], { expectedVersion: 1 });
      const deleted = await deleteMessage(stream, seq, erase);
      if (calls === 2) await other.appendToStream('b', [event('b', 'InputRejected', 'b-new1')], { expectedVersion: 0 });
      if (calls === 3) await other.appendToStream('b', [event('b', 'InputRejected', 'b-new2')], { expectedVersion: 1 });
      return deleted;
    };
    const { snapshotBucket, durableName } = plannerNames(iso.streamName, iso.subjectPrefix);
    const purger = await SessionPurger.create(nc, { ...iso, snapshotBucket, inputConsumer: durableName, dispatchBuckets: [] }, jsm);
    try {
      await purger.purge(['a', 'b'], 0);
    } finally {
      purger.close();
    }
    // a1, b1 and a's late answer: not the new run's second event.
    expect(calls).toBe(3);
    const fresh = await env.store(iso);
    expect((await fresh.readStream('b')).events.map((e) => e.id)).toEqual(['b-new1', 'b-new2']);
    expect((await fresh.readStream('a')).exists).toBe(false);
  });
});

describe('purgeEndedSessions', () => {
  it('finishes, when run again, a session an interrupted purge cut at the front, and the others with it', async () => {
    const { iso, nc, store } = await env.leading();
    const executor = await startTestExecutor(nc, iso, () => ({ type: 'TaskCompleted', output: 'ok' }));
    env.stops.push(() => executor.stop());
    for (const id of ['late', 'other']) {
      await publishInput(nc, iso, id, { type: 'SubmitInput', text: TASK }, `${id}-1`);
      await waitForEvents(store, id, has('SessionCompleted'));
    }
    // Ended, then a late input answered: its latest event does not tell, so the purge folds it.
    await publishInput(nc, iso, 'late', { type: 'CancelSession' }, 'late-2');
    await waitForEvents(store, 'late', has('InputRejected'));
    // What an interrupted purge leaves: the session's first event deleted (oldest first), then it died.
    const jsm = await jetstreamManager(nc);
    const first = await jsm.streams.getMessage(iso.streamName, { next_by_subj: `${iso.subjectPrefix}.ev.late`, seq: 1 } as never);
    await jsm.streams.deleteMessage(iso.streamName, first!.seq, false);
    const purged = await purgeEndedSessions(nc, later(iso));
    expect(purged.sessions).toEqual(['late', 'other']);
    const info = await jsm.streams.info(iso.streamName, { subjects_filter: `${iso.subjectPrefix}.ev.>` });
    expect(info.state.subjects ?? {}).toEqual({});
  });

  it('removes the executor entries of a purged session under encoded keys, and no other session\'s', async () => {
    const { iso, nc, store } = await env.leading();
    const executor = await startTestExecutor(nc, iso, () => ({ type: 'TaskCompleted', output: 'ok' }));
    env.stops.push(() => executor.stop());
    await publishInput(nc, iso, 'x', { type: 'SubmitInput', text: TASK }, 'x-1');
    await waitForEvents(store, 'x', has('SessionCompleted'));
    const inbox = await KvExecutorInbox.open(nc, { bucket: executorNames(iso.streamName, iso.subjectPrefix).inboxBucket });
    // Task ids of a plug-in planner may hold characters a KV key cannot: those are stored encoded.
    const ids = ['x.r1.t1.1', 'x.r1.t:1.1', 'other.r1.t:1.1', 'other.r1.t1.1'];
    for (const dispatchId of ids) await inbox.put(dispatchId, { type: 'TaskCompleted', taskId: 't', dispatchId, output: 'ok' });
    expect(inboxKey('other.r1.t:1.1')).toMatch(/^x\./);
    const purged = await purgeEndedSessions(nc, later(iso));
    expect(purged).toMatchObject({ sessions: ['x'], dispatchEntries: 2 });
    expect((await inbox.keys()).sort()).toEqual([inboxKey('other.r1.t1.1'), inboxKey('other.r1.t:1.1')].sort());
  });
});
