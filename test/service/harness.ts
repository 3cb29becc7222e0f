/**
 * Helpers of the service integration tests: a real nats-server per file, isolated streams, a tiny
 * executor on a JetStream consumer, and waits on the event log (no sleeps).
 */
import { plannerNames } from '../../src/protocol/deploymentNames.js';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type PubAck } from '@nats-io/jetstream';
import { connect, nanos, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, vi } from 'vitest';
import { silentLogger } from '../../src/observability/logger.js';
import { ensureStream, JetStreamEventStore } from '../../src/persistence/jetstream/index.js';
import { ensureInputConsumer } from '../../src/service/inputConsumer.js';
import { ExecuteTask } from '../../src/protocol/commands.js';
import type { DomainEvent } from '../../src/protocol/events.js';
import { startPlannerService, type PlannerService, type PlannerServiceOptions } from '../../src/service/plannerService.js';
import { startNatsServer, uniqueName, type NatsServerHandle } from '../support/natsServer.js';

export interface Isolation {
  streamName: string;
  subjectPrefix: string;
}

export const isolation = (): Isolation => ({ streamName: uniqueName('JP'), subjectPrefix: uniqueName('jp') });

/** Connections and services a test file opened, closed in afterAll. */
export class Env {
  readonly connections: NatsConnection[] = [];
  readonly services: PlannerService[] = [];
  readonly stops: Array<() => Promise<void>> = [];

  constructor(readonly server: () => NatsServerHandle) {}

  async connect(): Promise<NatsConnection> {
    const nc = await connect({ servers: this.server().url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    this.connections.push(nc);
    return nc;
  }

  async service(iso: Isolation, extra: Partial<PlannerServiceOptions> = {}): Promise<PlannerService> {
    const nc = extra.nc ?? (await this.connect());
    const service = await startPlannerService({ nc, logger: silentLogger, leaseTtlMs: 2_000, ...iso, ...extra });
    this.services.push(service);
    return service;
  }

  /** A leading service on a fresh isolation, a connection and a store reading its stream. */
  async leading(iso: Isolation = isolation()): Promise<{ iso: Isolation; service: PlannerService; nc: NatsConnection; store: JetStreamEventStore }> {
    const service = await this.service(iso);
    await service.whenLeader;
    return { iso, service, nc: await this.connect(), store: await this.store(iso) };
  }

  async store(iso: Isolation): Promise<JetStreamEventStore> {
    return JetStreamEventStore.create(await this.connect(), iso);
  }

  async cleanup(): Promise<void> {
    for (const stop of this.stops) await stop().catch(() => undefined);
    for (const s of this.services) await s.close().catch(() => undefined);
    await Promise.all(this.connections.map((nc) => nc.close().catch(() => undefined)));
  }
}

/**
 * A nats-server of this test file's own and an {@link Env} on it: started before the file's tests,
 * and everything they opened cleaned up after them. `server()` is the running server (to restart).
 */
export function serverEnv(): { env: Env; server: () => NatsServerHandle } {
  let server: NatsServerHandle | undefined;
  const current = () => {
    if (!server) throw new Error('the nats-server is not started yet (use it inside a test)');
    return server;
  };
  const env = new Env(current);
  beforeAll(async () => {
    server = await startNatsServer();
  });
  afterAll(async () => {
    await env.cleanup();
    await server?.cleanup();
  });
  return { env, server: current };
}

/**
 * An executor that completes every task with its description, holding tasks whose id starts with
 * `held` until `hold.open()` (so a test can act while one runs). Stopped by env.cleanup().
 */
export async function startHeldExecutor(env: Env, nc: NatsConnection, iso: Isolation, held = 't1-') {
  const hold = gate();
  const executor = await startTestExecutor(nc, iso, async (task) => {
    if (task.taskId.startsWith(held)) await hold.promise;
    return { type: 'TaskCompleted', output: task.description };
  });
  env.stops.push(() => executor.stop());
  return { executor, hold };
}

/** Publishes an input body (object → JSON, string/bytes as is), retrying while the server restarts. */
/** The durable name of the planner's input consumer (the service's default for the default prefix). */
export const PLANNER_DURABLE = 'jetplan-planner';

/** The durable name a service of `iso` gives its input consumer (its prefix is not the default). */
export const plannerDurable = (iso: Isolation): string => plannerNames(iso.streamName, iso.subjectPrefix).durableName;

/**
 * The stream and the planner's input consumer as a service makes them, with no service running:
 * for a test that plays a previous leader by hand.
 */
export async function plannerStream(nc: NatsConnection, iso: Isolation) {
  const jsm = await jetstreamManager(nc);
  await ensureStream(nc, iso);
  await ensureInputConsumer(jsm, { ...iso, durableName: PLANNER_DURABLE });
  return { jsm, durableName: PLANNER_DURABLE };
}

export async function publishInput(nc: NatsConnection, iso: Isolation, sessionId: string, body: unknown, msgID?: string): Promise<PubAck> {
  const js = jetstream(nc);
  const payload = typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body);
  for (let attempt = 0; ; attempt++) {
    try {
      return await js.publish(`${iso.subjectPrefix}.in.${sessionId}`, payload, msgID ? { msgID } : {});
    } catch (err) {
      if (attempt > 100 || nc.isClosed()) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/**
 * A leading planner service on a stream an operator made with `max_msg_size` (the service keeps
 * it), and a connection to it.
 */
export async function serviceOnLimitedStream(env: Env, iso: Isolation, maxMsgSize: number): Promise<{ service: PlannerService; nc: NatsConnection }> {
  const nc = await env.connect();
  const p = iso.subjectPrefix;
  await (await jetstreamManager(nc)).streams.add({ name: iso.streamName, subjects: [`${p}.in.>`, `${p}.ev.>`, `${p}.exec.>`], max_msg_size: maxMsgSize });
  const service = await env.service(iso);
  await service.whenLeader;
  return { service, nc };
}

/** Waits until the session's log satisfies `done`; returns the events. */
export async function waitForEvents(
  store: JetStreamEventStore,
  sessionId: string,
  done: (events: DomainEvent[]) => boolean,
  timeout = 20_000,
): Promise<DomainEvent[]> {
  return vi.waitFor(
    async () => {
      const { events } = await store.readStream(sessionId);
      if (!done(events)) throw new Error(`session ${sessionId}: condition not met (${events.map((e) => e.type).join(',')})`);
      return events;
    },
    { timeout, interval: 50 },
  );
}

export const has = (type: string, pred: (e: DomainEvent) => boolean = () => true) => (events: DomainEvent[]) =>
  events.some((e) => e.type === type && pred(e));

/** Every message on `<prefix>.exec.>` as (msg id, subject), read with an ordered consumer. */
export async function execMessages(nc: NatsConnection, iso: Isolation): Promise<Array<{ msgId: string; subject: string; bytes: number }>> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(iso.streamName, { subjects_filter: `${iso.subjectPrefix}.exec.>` });
  const total = Object.values(info.state.subjects ?? {}).reduce((n, c) => n + c, 0);
  const out: Array<{ msgId: string; subject: string; bytes: number }> = [];
  if (total === 0) return out;
  const consumer = await jetstream(nc).consumers.get(iso.streamName, { filter_subjects: `${iso.subjectPrefix}.exec.>` });
  const messages = await consumer.consume();
  for await (const m of messages) {
    out.push({ msgId: m.headers?.get('Nats-Msg-Id') ?? '', subject: m.subject, bytes: m.data.length });
    if (out.length >= total) break;
  }
  await messages.close();
  return out;
}

export type Outcome =
  | { type: 'TaskCompleted'; output: string }
  | { type: 'TaskFailed'; error: string; retryable?: boolean }
  | { type: 'NeedsClarification'; question: string };

/** A tiny executor: a durable consumer on `<prefix>.exec.>`, reports published with a msg id. */
export interface TestExecutor {
  /** Executions per dispatch id. */
  executions: Map<string, number>;
  stop(): Promise<void>;
}

export async function startTestExecutor(
  nc: NatsConnection,
  iso: Isolation,
  handler: (task: ExecuteTask) => Outcome | Promise<Outcome>,
  options: { duplicateReports?: boolean } = {},
): Promise<TestExecutor> {
  const name = uniqueName('exec');
  const jsm = await jetstreamManager(nc);
  await jsm.consumers.add(iso.streamName, {
    durable_name: name,
    filter_subject: `${iso.subjectPrefix}.exec.>`,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(60_000),
  });
  const consumer = await jetstream(nc).consumers.get(iso.streamName, name);
  const messages = await consumer.consume({ max_messages: 100, expires: 2_000 });
  const executions = new Map<string, number>();
  const running = new Set<Promise<void>>();
  const handle = async (task: ExecuteTask, ack: () => void) => {
    executions.set(task.dispatchId, (executions.get(task.dispatchId) ?? 0) + 1);
    const outcome = await handler(task);
    const report = { ...outcome, taskId: task.taskId, dispatchId: task.dispatchId };
    await publishInput(nc, iso, task.sessionId, report, `report.${task.dispatchId}`);
    if (options.duplicateReports) await publishInput(nc, iso, task.sessionId, report, `report.${task.dispatchId}.again`);
    ack();
  };
  const loop = (async () => {
    for await (const m of messages) {
      const work = handle(ExecuteTask.parse(m.json()), () => m.ack());
      running.add(work);
      void work.finally(() => running.delete(work));
    }
  })();
  return {
    executions,
    async stop() {
      await messages.close();
      await loop;
      await Promise.allSettled([...running]);
    },
  };
}

/** A promise with its resolve function, for gating an executor. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** Asserts every dispatch id went to the exec subjects once and was executed once. */
export function dispatchCounts(messages: Array<{ msgId: string }>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const { msgId } of messages) counts.set(msgId, (counts.get(msgId) ?? 0) + 1);
  return counts;
}
