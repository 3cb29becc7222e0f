import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers } from '@nats-io/transport-node';
import { describe, expect, it, vi } from 'vitest';
import type { DomainEvent } from '../../src/protocol/events.js';
import { defaultDecideDeps } from '../../src/runtime/embeddedRuntime.js';
import { POISON_AFTER } from '../../src/service/inputConsumer.js';
import {
  serverEnv,
  dispatchCounts,
  execMessages,
  has,
  isolation,
  publishInput,
  startTestExecutor,
  waitForEvents,
  serviceOnLimitedStream,
} from './harness.js';
import { plannerDurable } from './harness.js';

const { env } = serverEnv();

const TEXT = 'Run `npm test`.\nWhich database should we use?\nSummarise the results.';
const rejected = (events: DomainEvent[]) => events.filter((e) => e.type === 'InputRejected');

describe('planner service: sessions over JetStream', () => {
  it('runs a session with clarifications (Clarification task and executor question) to SessionCompleted', async () => {
    const { iso, service, nc, store } = await env.leading();
    const executor = await startTestExecutor(nc, iso, (task) =>
      task.kind === 'ToolCall' && task.attempt === 1
        ? { type: 'NeedsClarification', question: 'Which shell?' }
        : { type: 'TaskCompleted', output: `done: ${task.description} ${task.context.includes('bash') ? '(bash)' : ''}` },
    );
    env.stops.push(() => executor.stop());

    await publishInput(nc, iso, 's1', { type: 'SubmitInput', text: TEXT }, 'submit-1');
    let events = await waitForEvents(store, 's1', has('ClarificationRequested', (e) => 'dispatchId' in e.data));
    const t1 = (events.find((e) => e.type === 'TasksPlanned')!.data as { tasks: Array<{ id: string }> }).tasks;
    await publishInput(nc, iso, 's1', { type: 'ProvideClarification', taskId: t1[0]!.id, answer: 'bash' }, 'answer-1');
    events = await waitForEvents(store, 's1', has('ClarificationRequested', (e) => (e.data as { taskId: string }).taskId === t1[1]!.id));
    await publishInput(nc, iso, 's1', { type: 'ProvideClarification', taskId: t1[1]!.id, answer: 'Postgres' }, 'answer-2');
    events = await waitForEvents(store, 's1', has('SessionCompleted'));

    expect(rejected(events)).toEqual([]);
    expect(events.filter((e) => e.type === 'TaskCompleted')).toHaveLength(2);
    expect(events.filter((e) => e.type === 'ClarificationProvided')).toHaveLength(2);
    expect([...executor.executions.values()].every((n) => n === 1)).toBe(true);
    expect(executor.executions.size).toBe(3); // t1 twice (asked, then answered), t3 once
    const exec = await execMessages(nc, iso);
    expect([...dispatchCounts(exec).values()].every((n) => n === 1)).toBe(true);
    expect(exec.map((m) => m.subject).sort()).toEqual([`${iso.subjectPrefix}.exec.processing.s1`, `${iso.subjectPrefix}.exec.toolcall.s1`, `${iso.subjectPrefix}.exec.toolcall.s1`]);
    expect(service.metrics.clarifications).toBe(2);
    expect(service.metrics.stepCount).toBeGreaterThan(0);
  });

  it('ignores duplicated executor reports and redeliveries; each task runs once', async () => {
    const { iso, service, nc, store } = await env.leading();
    const executor = await startTestExecutor(nc, iso, (task) => ({ type: 'TaskCompleted', output: task.description }), {
      duplicateReports: true,
    });
    env.stops.push(() => executor.stop());

    await publishInput(nc, iso, 'dup', { type: 'SubmitInput', text: 'Run `ls`.\nSummarise it.' }, 'submit-dup');
    const again = (evs: DomainEvent[]) => evs.filter((e) => e.causationId.endsWith('.again'));
    let events = await waitForEvents(store, 'dup', (evs) => has('SessionCompleted')(evs) && again(evs).length === 2);
    expect(events.filter((e) => e.type === 'TaskCompleted')).toHaveLength(2);
    // The first task's duplicate is ignored; the last one's arrives after completion and is rejected.
    expect(again(events).map((e) => e.type)).toEqual(['ReportIgnored', 'InputRejected']);
    expect((again(events)[1]!.data as { reason: string }).reason).toBe('session is completed');
    expect([...executor.executions.values()]).toEqual([1, 1]);

    // The same report under the same msg id again: JetStream drops it as a duplicate.
    const completed = events.find((e) => e.type === 'TaskCompleted')!.data as { taskId: string; dispatchId: string };
    const report = { type: 'TaskCompleted', taskId: completed.taskId, dispatchId: completed.dispatchId, output: 'x' };
    const ack = await publishInput(nc, iso, 'dup', report, `report.${completed.dispatchId}`);
    expect(ack.duplicate).toBe(true);
    // A redelivered input (same message id) changes nothing: the session's inbox drops it.
    const commit = await service.planner.handle('dup', report as never, { messageId: `report.${completed.dispatchId}` });
    expect(commit.events).toEqual([]);
    events = (await store.readStream('dup')).events;
    expect(events.filter((e) => e.type === 'ReportIgnored')).toHaveLength(1);
    expect(service.metrics.tasksCompleted).toBe(2);
  });

  it('records each kind of bad input as InputRejected with its stream sequence, and goes on', async () => {
    const iso = isolation();
    const service = await env.service(iso, { maxInputBytes: 2_048 });
    await service.whenLeader;
    const nc = await env.connect();
    const store = await env.store(iso);

    // A running task (no executor here) to send bad answers and reports to.
    await publishInput(nc, iso, 'bad', { type: 'SubmitInput', text: 'Run `ls`.' });
    const started = await waitForEvents(store, 'bad', has('TaskDispatched'));
    const taskId = (started.find((e) => e.type === 'TaskDispatched')!.data as { taskId: string }).taskId;

    const invalidSubject = await publishInput(nc, iso, 'not%valid', { type: 'CancelSession' });
    // More tokens than `<prefix>.in.<sessionId>`: no session, not the last token's ('other').
    await publishInput(nc, iso, 'x.other', { type: 'CancelSession' });
    const cases: Array<[unknown, RegExp]> = [
      ['{not json', /^invalid JSON: /],
      [{ type: 'SubmitInput', text: 42 }, /^invalid SubmitInput: text: /],
      [{ type: 'Bogus' }, /^unknown input type "Bogus"$/],
      [{ type: 'RetryDue', taskId, attempt: 1 }, /^input type "RetryDue" is internal to the planner$/],
      [42, /^invalid input: \(root\): /],
      [{ type: 'ProvideClarification', taskId, answer: 'yes' }, new RegExp(`^task ${taskId} is not waiting for clarification$`)],
      [{ type: 'ProvideClarification', taskId, answer: ' \t ' }, /^invalid ProvideClarification: answer: must not be blank$/],
      [{ type: 'TaskCompleted', taskId, dispatchId: 'nope', output: '' }, new RegExp(`^unknown dispatch nope for task ${taskId}$`)],
      [JSON.stringify({ type: 'SubmitInput', text: 'x'.repeat(3_000) }), /^oversized body \(\d+ bytes > 2048\)$/],
    ];
    const seqs: number[] = [];
    for (const [body] of cases) seqs.push((await publishInput(nc, iso, 'bad', body)).seq);
    await publishInput(nc, iso, 'bad', { type: 'CancelSession', reason: 'enough' });

    const events = await waitForEvents(store, 'bad', has('SessionCancelled'));
    const rejections = rejected(events).map((e) => e.data as { reason: string; streamSequence?: number; messageId?: string });
    expect(rejections).toHaveLength(cases.length);
    rejections.forEach((r, i) => {
      expect(r.reason).toMatch(cases[i]![1]);
      expect(r.streamSequence).toBe(seqs[i]);
      expect(r.messageId).toBe(`in.${seqs[i]}`);
    });
    expect(service.metrics.inputsRejected).toBe(cases.length);
    // The message on an invalid session subject was terminated, not stored or retried.
    expect(invalidSubject.seq).toBeLessThan(seqs[0]!);
    expect(await store.listStreams()).toEqual(['bad']);
    const jsm = await jetstreamManager(nc);
    await vi.waitFor(async () => {
      const info = await jsm.consumers.info(iso.streamName, plannerDurable(iso));
      expect({ ack: info.num_ack_pending, pending: info.num_pending, redelivered: info.num_redelivered }).toEqual({ ack: 0, pending: 0, redelivered: 0 });
    }, { timeout: 10_000 });
  });

  it('rejects a client message id with a reserved prefix, so an input without an id is never taken for a repeat of it', async () => {
    const { iso, nc, store } = await env.leading();
    await publishInput(nc, iso, 'ids', { type: 'SubmitInput', text: 'Which format do you want?' });
    const asked = await waitForEvents(store, 'ids', has('ClarificationRequested'));
    const { taskId } = asked.find((e) => e.type === 'ClarificationRequested')!.data as { taskId: string };
    const jsm = await jetstreamManager(nc);
    const last = (await jsm.streams.info(iso.streamName)).state.last_seq;
    // A client id naming the sequence the answer below will get (the rejection's event comes between).
    const spoof = await publishInput(nc, iso, 'ids', { type: 'ProvideClarification', taskId: 'nope', answer: 'x' }, `in.${last + 3}`);
    const retry = await publishInput(nc, iso, 'ids', { type: 'CancelSession' }, `retry.ids.${taskId}.2`);
    await waitForEvents(store, 'ids', (events) => rejected(events).length === 2);
    const answer = await publishInput(nc, iso, 'ids', { type: 'ProvideClarification', taskId, answer: 'CSV' });

    const events = await waitForEvents(store, 'ids', has('SessionCompleted'));
    expect(spoof.seq).toBe(last + 1);
    const rejections = rejected(events).map((e) => e.data as { reason: string; messageId: string; streamSequence: number });
    expect(rejections).toEqual([
      { reason: `Nats-Msg-Id: message id "in.${last + 3}" starts with "in.", which is reserved for ids jetplan makes (in., retry., recover., report., refused.)`, inputType: 'ProvideClarification', messageId: `in.${spoof.seq}`, streamSequence: spoof.seq },
      expect.objectContaining({ reason: expect.stringMatching(/^Nats-Msg-Id: message id "retry\.ids\.\S+" starts with "retry\."/), messageId: `in.${retry.seq}`, inputType: 'CancelSession' }),
    ]);
    expect(events.some((e) => e.type === 'InputRepeated')).toBe(false);
    expect(events.find((e) => e.type === 'ClarificationProvided')).toMatchObject({ causationId: `in.${answer.seq}`, data: { taskId, answer: 'CSV' } });
  });

  it('rejects an input whose message id or correlation id is huge (copied into every event, they made even its rejection too large to store)', async () => {
    const { iso, nc, store } = await env.leading();
    const js = jetstream(nc);
    const huge = 'x'.repeat(40_000); // under the 64 KiB NATS takes in headers; twice in an event's, over it
    const longId = await js.publish(`${iso.subjectPrefix}.in.hh`, JSON.stringify({ type: 'SubmitInput', text: 'Which format do you want?' }), { msgID: huge });
    const h = headers();
    h.set('Jetplan-Correlation-Id', huge);
    const longCorrelation = await js.publish(`${iso.subjectPrefix}.in.hh`, JSON.stringify({ type: 'SubmitInput', text: 'Which format do you want?' }), { msgID: 'hh-2', headers: h });
    await publishInput(nc, iso, 'hh', { type: 'SubmitInput', text: 'Which format do you want?' }, 'hh-3');
    const events = await waitForEvents(store, 'hh', has('ClarificationRequested'));
    expect(rejected(events).map((e) => e.data)).toEqual([
      { reason: 'Nats-Msg-Id: message id is 40000 characters, over the 1024 it may have (it is copied into every event the input causes)', inputType: 'SubmitInput', messageId: `in.${longId.seq}`, streamSequence: longId.seq },
      { reason: 'Jetplan-Correlation-Id: correlation id is 40000 characters, over the 1024 it may have (it is copied into every event the input causes)', inputType: 'SubmitInput', messageId: 'hh-2', streamSequence: longCorrelation.seq },
    ]);
    expect(events.find((e) => e.type === 'SessionStarted')).toMatchObject({ causationId: 'hh-3' });
  });

  it("a report with its own dispatch's id and a bad body is told what is wrong with the body", async () => {
    const { iso, nc, store } = await env.leading();
    await publishInput(nc, iso, 'rb', { type: 'SubmitInput', text: 'Summarise the notes.' });
    const dispatched = await waitForEvents(store, 'rb', has('TaskDispatched'));
    const { taskId, dispatchId } = dispatched.find((e) => e.type === 'TaskDispatched')!.data as { taskId: string; dispatchId: string };
    const js = jetstream(nc);
    const bad = await js.publish(`${iso.subjectPrefix}.in.rb`, '{"type":', { msgID: `report.${dispatchId}.json` });
    const noOutput = await publishInput(nc, iso, 'rb', { type: 'TaskCompleted', taskId, dispatchId }, `report.${dispatchId}`);
    await publishInput(nc, iso, 'rb', { type: 'TaskCompleted', taskId, dispatchId, output: 'done' }, `report.${dispatchId}.2`);
    const events = await waitForEvents(store, 'rb', has('SessionCompleted'));
    expect(rejected(events).map((e) => e.data)).toEqual([
      expect.objectContaining({ reason: expect.stringMatching(/^invalid JSON/), messageId: `in.${bad.seq}` }),
      expect.objectContaining({ reason: expect.stringMatching(/^invalid TaskCompleted: output: /), messageId: `report.${dispatchId}`, inputType: 'TaskCompleted' }),
    ]);
    expect(rejected(events)[1]!.data).toMatchObject({ streamSequence: noOutput.seq });
  });

  it('names the input type of an unreadable body from its Jetplan-Type header, when that is an input type', async () => {
    const { iso, nc, store } = await env.leading();
    const js = jetstream(nc);
    for (const type of ['ProvideClarification', 'Bogus', 'RetryDue']) {
      const h = headers();
      h.set('Jetplan-Type', type);
      await js.publish(`${iso.subjectPrefix}.in.hdr`, '{"type":', { headers: h });
    }
    const events = await waitForEvents(store, 'hdr', (es) => rejected(es).length === 3);
    expect(rejected(events).map((e) => (e.data as { inputType?: string }).inputType)).toEqual(['ProvideClarification', undefined, undefined]);
  });

  it('blocks a session whose input cannot be applied (nak + backoff) and keeps its inputs in order', async () => {
    const { iso, nc, store } = await env.leading();
    const jsm = await jetstreamManager(nc);
    // An unreadable log: every load of session 'blk' fails until the subject is purged.
    await jetstream(nc).publish(`${iso.subjectPrefix}.ev.blk`, 'garbage');
    for (let k = 1; k <= 3; k++) await publishInput(nc, iso, 'blk', { type: 'SubmitInput', text: `Summarise part ${k}.` }, `blk-${k}`);
    await publishInput(nc, iso, 'ok', { type: 'SubmitInput', text: 'Summarise it.' }, 'ok-1');

    await waitForEvents(store, 'ok', has('TasksPlanned')); // other sessions go on
    await vi.waitFor(async () => expect((await jsm.consumers.info(iso.streamName, plannerDurable(iso))).num_redelivered).toBeGreaterThan(0), { timeout: 10_000 });
    await jsm.streams.purge(iso.streamName, { filter: `${iso.subjectPrefix}.ev.blk` });

    const events = await waitForEvents(store, 'blk', (evs) => evs.filter((e) => e.type === 'TasksPlanned').length === 3);
    expect(events.filter((e) => e.type === 'TasksPlanned').map((e) => e.causationId)).toEqual(['blk-1', 'blk-2', 'blk-3']);
    expect(rejected(events)).toEqual([]);
  });

  it('rejects an input that keeps failing (after POISON_AFTER attempts) and applies the inputs after it', async () => {
    const iso = isolation();
    const builtIn = defaultDecideDeps();
    // A bug some executor output triggers: token counting (run after each completed task) throws.
    const decideDeps = { ...builtIn, countTokens: (text: string) => {
      if (text.includes('POISON')) throw new Error('tokenizer crashed on this text');
      return builtIn.countTokens(text);
    } };
    const service = await env.service(iso, { decideDeps });
    await service.whenLeader;
    const nc = await env.connect();
    const store = await env.store(iso);
    await publishInput(nc, iso, 'psn', { type: 'SubmitInput', text: 'Summarise the report.' }, 'psn-1');
    const dispatched = await waitForEvents(store, 'psn', has('TaskDispatched'));
    const { taskId, dispatchId } = dispatched.find((e) => e.type === 'TaskDispatched')!.data as { taskId: string; dispatchId: string };
    // Over the token budget in bytes, so the tokenizer runs on it.
    const poison = `POISON ${'word '.repeat(1_000)}`;
    const bad = await publishInput(nc, iso, 'psn', { type: 'TaskCompleted', taskId, dispatchId, output: poison }, 'psn-2');
    await publishInput(nc, iso, 'psn', { type: 'TaskCompleted', taskId, dispatchId, output: 'summarised' }, 'psn-3');

    const events = await waitForEvents(store, 'psn', has('SessionCompleted'));
    expect(rejected(events)).toEqual([
      expect.objectContaining({
        causationId: 'psn-2',
        data: {
          reason: `not applied after ${POISON_AFTER} attempts: tokenizer crashed on this text`,
          inputType: 'TaskCompleted', messageId: 'psn-2', streamSequence: bad.seq,
        },
      }),
    ]);
    // Order kept: the rejection comes before the next input's events, which complete the task.
    const at = (id: string) => events.findIndex((e) => e.causationId === id);
    expect(at('psn-2')).toBeLessThan(at('psn-3'));
    expect(events.find((e) => e.type === 'TaskCompleted')).toMatchObject({ causationId: 'psn-3', data: { output: 'summarised' } });
  });

  it("keeps each dispatch's context within what a message can carry, whatever the token budget allows", async () => {
    const iso = isolation();
    const limit = 48_000;
    const { nc } = await serviceOnLimitedStream(env, iso, limit);
    const store = await env.store(iso);
    // A run of one letter is ~8 bytes a token: 8 results of 9,000 bytes hold ~9,000 tokens, far
    // below the budget, yet 72 KB: more than one message takes.
    const executor = await startTestExecutor(nc, iso, () => ({ type: 'TaskCompleted', output: 'a'.repeat(9_000) }));
    env.stops.push(() => executor.stop());
    const text = Array.from({ length: 8 }, (_, i) => `- Summarise part ${i + 1}`).join('\n');
    await publishInput(nc, iso, 'bytes', { type: 'SubmitInput', text, config: { tokenBudget: 60_000 } });

    const events = await waitForEvents(store, 'bytes', (es) => es.some((e) => e.type === 'SessionCompleted' || e.type === 'SessionFailed'));
    expect(events.at(-1)?.type).toBe('SessionCompleted');
    const compactions = events.filter((e) => e.type === 'ContextCompacted').map((e) => e.data as { tokensBefore: number; budget: number });
    expect(compactions.length).toBeGreaterThan(0);
    expect(compactions.every((c) => c.tokensBefore < c.budget)).toBe(true); // compacted for bytes, not tokens
    const exec = await execMessages(nc, iso);
    expect(exec).toHaveLength(8);
    expect(Math.max(...exec.map((m) => m.bytes))).toBeLessThanOrEqual(limit);
  });

  it('rejects at once an input whose events are larger than the stream takes, and applies the next one', async () => {
    const iso = isolation();
    const nc = await env.connect();
    const jsm = await jetstreamManager(nc);
    const p = iso.subjectPrefix;
    // An operator's stream whose max_msg_size (kept by the service) is below what the input makes:
    // its TasksPlanned repeats the text in the plan.
    await jsm.streams.add({ name: iso.streamName, subjects: [`${p}.in.>`, `${p}.ev.>`, `${p}.exec.>`], max_msg_size: 4_096 });
    const service = await env.service(iso);
    await service.whenLeader;
    const store = await env.store(iso);
    const text = Array.from({ length: 60 }, (_, i) => `Summarise chapter ${i + 1} of the report.`).join(' ');
    expect(text.length).toBeLessThan(3_000);
    const big = await publishInput(nc, iso, 'huge', { type: 'SubmitInput', text }, 'huge-1');
    await publishInput(nc, iso, 'huge', { type: 'SubmitInput', text: 'Summarise the report.' }, 'huge-2');

    const events = await waitForEvents(store, 'huge', has('TaskDispatched'));
    expect(events.map((e) => e.type)).toEqual(['InputRejected', 'SessionStarted', 'TasksPlanned', 'TaskDispatched']);
    expect(events[0]).toMatchObject({
      causationId: 'huge-1',
      data: { inputType: 'SubmitInput', messageId: 'huge-1', streamSequence: big.seq, reason: expect.stringMatching(/event TasksPlanned would be a message of \d+ bytes, over the 4096 bytes/) },
    });
    // Rejected on its first delivery: a deterministic refusal is not retried.
    const info = await jsm.consumers.info(iso.streamName, plannerDurable(iso));
    expect(info.num_redelivered).toBe(0);
  });

  it('never rejects an input after part of its decision is stored: it waits until the stream takes the rest', async () => {
    const iso = isolation();
    const nc = await env.connect();
    const jsm = await jetstreamManager(nc);
    const service = await env.service(iso);
    await service.whenLeader;
    const store = await env.store(iso);
    const limit = async (max_msg_size: number) => {
      const { config } = await jsm.streams.info(iso.streamName);
      await jsm.streams.update(iso.streamName, { ...config, max_msg_size });
    };
    // Lowered while the service runs, below this input's TasksPlanned but above its SessionStarted:
    // the first event is stored, the second refused by the server.
    await limit(1_500);
    const text = Array.from({ length: 20 }, (_, i) => `Summarise chapter ${i + 1} of the report.`).join(' ');
    await publishInput(nc, iso, 'low', { type: 'SubmitInput', text }, 'low-1');
    await waitForEvents(store, 'low', has('SessionStarted'));
    // A third delivery means the second was nak'd, not rejected: there, the rest of the decision
    // was refused before it was sent (the store had read the lowered limit).
    await vi.waitFor(async () => expect((await jsm.consumers.info(iso.streamName, plannerDurable(iso))).delivered.consumer_seq).toBeGreaterThanOrEqual(3), { timeout: 10_000 });
    expect((await store.readStream('low')).events.map((e) => e.type)).toEqual(['SessionStarted']);
    await limit(-1); // the operator raises it: the input goes through, whole
    const events = await waitForEvents(store, 'low', has('TaskDispatched'));
    expect(events.map((e) => [e.type, e.causationId])).toEqual([
      ['SessionStarted', 'low-1'],
      ['TasksPlanned', 'low-1'],
      ['TaskDispatched', 'low-1'],
    ]);
  });

  it('serves /healthz and /metrics', async () => {
    const iso = isolation();
    const nc = await env.connect();
    const service = await env.service(iso, { nc, httpPort: 0 });
    await service.whenLeader;
    const store = await env.store(iso);
    await publishInput(nc, iso, 'h1', { type: 'SubmitInput', text: 'Run `ls`.' });
    await publishInput(nc, iso, 'h1', '{oops');
    await waitForEvents(store, 'h1', has('InputRejected'));

    const base = `http://127.0.0.1:${service.httpPort}`;
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok', nats: 'connected', stream: 'reachable', leader: true, consumerPending: 0 });

    const metrics = await fetch(`${base}/metrics`);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await metrics.text();
    expect(text).toContain('# TYPE jetplan_step_latency_seconds histogram');
    expect(text).toMatch(/jetplan_step_latency_seconds_bucket\{le="0\.0001"\} \d+/);
    expect(text).toMatch(/jetplan_step_latency_seconds_bucket\{le="\+Inf"\} [1-9]/);
    expect(text).toMatch(/jetplan_step_latency_seconds_count [1-9]/);
    expect(text).toContain('jetplan_inputs_rejected_total 1');
    expect(text).toContain('jetplan_tasks_completed_total 0');
    expect(text).toContain('jetplan_tasks_failed_total 0');
    expect(text).toContain('jetplan_clarifications_total 0');
    expect(text).toContain('jetplan_consumer_pending 0');
    expect(text).toContain('jetplan_leader 1');
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    const head = await fetch(`${base}/healthz`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    const post = await fetch(`${base}/metrics`, { method: 'POST' });
    expect({ status: post.status, allow: post.headers.get('allow') }).toEqual({ status: 405, allow: 'GET, HEAD' });

    // The stream gone while NATS is up: unhealthy, naming why, and the backlog unknown.
    await (await jetstreamManager(nc)).streams.delete(iso.streamName);
    const gone = await fetch(`${base}/healthz`);
    expect(gone.status).toBe(503);
    expect(await gone.json()).toMatchObject({ nats: 'connected', stream: 'unreachable', consumerPending: null, error: expect.stringMatching(/stream not found/) });
    expect(await (await fetch(`${base}/metrics`)).text()).toContain('jetplan_consumer_pending NaN\n');

    await nc.close();
    const down = await fetch(`${base}/healthz`);
    expect(down.status).toBe(503);
    expect(await down.json()).toMatchObject({ status: 'unavailable', nats: 'disconnected', consumerPending: null, error: expect.stringMatching(/NATS connection is down/) });
    // Unknown, not 0: an alert on a backlog must not read "none" while it cannot be read.
    expect(await (await fetch(`${base}/metrics`)).text()).toContain('jetplan_consumer_pending NaN\n');
  });
});
