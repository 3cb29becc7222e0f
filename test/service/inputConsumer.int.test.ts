import {
  jetstream,
  jetstreamManager,
  type ConsumeOptions,
  type Consumer,
  type ConsumerMessages,
  type Consumers,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import { errors, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import type { Planner } from '../../src/actors/planner.js';
import { StoreUnavailableError } from '../../src/errors.js';
import { Metrics } from '../../src/observability/metrics.js';
import { silentLogger } from '../../src/observability/logger.js';
import { ensureStream } from '../../src/persistence/jetstream/index.js';
import type { PlannerInput } from '../../src/machines/decide.js';
import type { InputMeta } from '../../src/protocol/inputs.js';
import { InputConsumer, POISON_AFTER, type AppliedInputs, type InputConsumerOptions } from '../../src/service/inputConsumer.js';
import { isolation, PLANNER_DURABLE, plannerStream, publishInput, serverEnv, type Isolation } from './harness.js';
import { latch } from '../support/waiting.js';

const { env } = serverEnv();
const durableName = PLANNER_DURABLE;

/** A planner that records the message ids it applied, in order, after `before` resolves. */
function recordingPlanner(before: () => Promise<void> = async () => undefined) {
  const applied: string[] = [];
  const planner = {
    handle: vi.fn(async (_sessionId: string, _input: unknown, meta: Partial<InputMeta>) => {
      await before();
      applied.push(meta.messageId!);
      return { events: [{}] };
    }),
  } as unknown as Planner & { handle: ReturnType<typeof vi.fn> };
  return { planner, applied };
}

function consumerOf(nc: NatsConnection, iso: Isolation, planner: Planner, extra: Partial<InputConsumerOptions>) {
  const options: InputConsumerOptions = {
    js: jetstream(nc), jsm: extra.jsm!, streamName: iso.streamName, subjectPrefix: iso.subjectPrefix, durableName,
    planner, metrics: new Metrics(), clock: Date.now, logger: silentLogger, maxInputBytes: 65_536, ...extra,
  };
  const consumer = new InputConsumer(options);
  env.stops.push(() => consumer.stop());
  return consumer;
}

/**
 * A previous leader by hand: session 'ord' has three inputs; the first failed and waits out a nak
 * delay, the two after it were held and nak'd at once, so the consumer redelivers them first.
 */
async function leftByPreviousLeader(nc: NatsConnection, iso: Isolation): Promise<JetStreamManager> {
  const { jsm } = await plannerStream(nc, iso);
  for (let k = 1; k <= 3; k++) await publishInput(nc, iso, 'ord', { type: 'SubmitInput', text: `Summarise part ${k}.` }, `ord-${k}`);
  const batch = await (await jetstream(nc).consumers.get(iso.streamName, durableName)).fetch({ max_messages: 3, expires: 5_000 });
  const delivered = [];
  for await (const m of batch) delivered.push(m);
  delivered[0]!.nak(1_500);
  delivered[1]!.nak();
  delivered[2]!.nak();
  await nc.flush();
  return jsm;
}

describe('InputConsumer: a new leader while NATS is unsettled', () => {
  it("holds a session's backlog when its applied inputs cannot be loaded", async () => {
    const iso = isolation();
    const nc = await env.connect();
    const jsm = await leftByPreviousLeader(nc, iso);
    const { planner, applied } = recordingPlanner();
    const appliedInputs = vi.fn(async () => Promise.reject(new Error('no responders')));
    consumerOf(nc, iso, planner, { jsm, appliedInputs }).start();
    await vi.waitFor(() => expect(applied).toHaveLength(3), { timeout: 15_000, interval: 50 });
    expect(appliedInputs).toHaveBeenCalledWith('ord');
    expect(applied).toEqual(['ord-1', 'ord-2', 'ord-3']);
  });

  it('stops at once during a backlog read, and that read leaves no hold behind for a later term', async () => {
    const iso = isolation();
    const nc = await env.connect();
    const jsm = await leftByPreviousLeader(nc, iso);
    const { planner, applied } = recordingPlanner();
    const loading = latch();
    const reading = latch();
    const appliedInputs = vi.fn(async (): Promise<AppliedInputs> => {
      reading.release();
      await loading.promise; // the lease is lost while the backlog's sessions load
      return { recentInputs: [], inputSequenceFloor: 0 };
    });
    const consumer = consumerOf(nc, iso, planner, { jsm, appliedInputs });
    consumer.start();
    await reading.promise;
    await consumer.stop(); // does not wait for the read
    loading.release();
    await vi.waitFor(() => expect(appliedInputs).toHaveBeenCalledTimes(1));
    // Meanwhile the next leader applies and acks the three inputs.
    const batch = await (await jetstream(nc).consumers.get(iso.streamName, durableName)).fetch({ max_messages: 3, expires: 5_000 });
    for await (const m of batch) m.ack();
    await nc.flush();
    // Elected again: a later input of that session is not held behind inputs acked elsewhere.
    appliedInputs.mockImplementation(async () => ({ recentInputs: ['ord-1', 'ord-2', 'ord-3'], inputSequenceFloor: 0 }));
    consumer.start();
    await publishInput(nc, iso, 'ord', { type: 'SubmitInput', text: 'Summarise part 4.' }, 'ord-4');
    await vi.waitFor(() => expect(applied).toEqual(['ord-4']), { timeout: 15_000, interval: 50 });
  });

  it('retries reading the backlog instead of starting without it', async () => {
    const iso = isolation();
    const nc = await env.connect();
    const jsm = await leftByPreviousLeader(nc, iso);
    // The first consumer info (the backlog's ack floor) fails, as it may while NATS settles.
    let infoFailures = 0;
    const consumers = new Proxy(jsm.consumers, {
      get: (target, prop) => {
        if (prop === 'info' && infoFailures++ === 0) return async () => Promise.reject(new Error('timeout'));
        const value = Reflect.get(target, prop, target) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const flaky = new Proxy(jsm, { get: (target, prop) => (prop === 'consumers' ? consumers : Reflect.get(target, prop, target)) });
    const { planner, applied } = recordingPlanner();
    consumerOf(nc, iso, planner, { jsm: flaky, appliedInputs: async () => ({ recentInputs: [], inputSequenceFloor: 0 }) }).start();
    await vi.waitFor(() => expect(applied).toHaveLength(3), { timeout: 15_000, interval: 50 });
    expect(infoFailures).toBeGreaterThan(1);
    expect(applied).toEqual(['ord-1', 'ord-2', 'ord-3']);
  });

  it('a backlog input, once delivered, holds its session until it is applied, even failing past the backlog hold', async () => {
    const iso = isolation();
    const nc = await env.connect();
    const jsm = await leftByPreviousLeader(nc, iso);
    let now = Date.now();
    const applied: string[] = [];
    let failedOnce = false;
    const planner = {
      handle: vi.fn(async (_sessionId: string, _input: unknown, meta: Partial<InputMeta>) => {
        if (meta.messageId === 'ord-1' && !failedOnce) {
          failedOnce = true;
          now += 200_000; // it keeps failing for longer than a backlog hold lasts (2 minutes)
          throw new Error('not applied this time');
        }
        applied.push(meta.messageId!);
        return { events: [{}] };
      }),
    } as unknown as Planner;
    consumerOf(nc, iso, planner, { jsm, clock: () => now, appliedInputs: async () => ({ recentInputs: [], inputSequenceFloor: 0 }) }).start();
    await vi.waitFor(() => expect(applied).toHaveLength(3), { timeout: 20_000, interval: 100 });
    expect(failedOnce).toBe(true);
    // ord-2 and ord-3 come back first, while ord-1 waits out its nak delay: they still wait for it.
    expect(applied).toEqual(['ord-1', 'ord-2', 'ord-3']);
  });
});

describe('InputConsumer: an input that keeps failing', () => {
  it('is not acked when its rejection cannot be recorded: it comes back and is rejected then, and the next input waits for that', async () => {
    expect(POISON_AFTER).toBe(3); // bad-1 fails three times before its rejection is first tried
    const iso = isolation();
    const nc = await env.connect();
    const jsm = await jetstreamManager(nc);
    await ensureStream(nc, iso);
    const log: string[] = [];
    let rejectionFailures = 0;
    const planner = {
      handle: vi.fn(async (_sessionId: string, input: PlannerInput, meta: Partial<InputMeta>) => {
        if (input.type === 'InvalidInput') {
          // Recording the rejection fails once (a bug of its own, not the store's).
          if (rejectionFailures++ === 0) throw new Error('rejection not recorded');
          log.push(`rejected ${meta.messageId}`);
          return { events: [{}] };
        }
        if (meta.messageId === 'bad-1') throw new Error('planner bug this input triggers');
        log.push(`applied ${meta.messageId}`);
        return { events: [{}] };
      }),
    } as unknown as Planner;
    consumerOf(nc, iso, planner, { jsm }).start();
    await publishInput(nc, iso, 's1', { type: 'CancelSession' }, 'bad-1');
    await publishInput(nc, iso, 's1', { type: 'CancelSession' }, 'ok-2');

    // Acked without its rejection recorded, bad-1 would be lost without a trace.
    await vi.waitFor(() => expect(log).toEqual(['rejected bad-1', 'applied ok-2']), { timeout: 20_000, interval: 100 });
    expect(rejectionFailures).toBe(2);
  });
});

/**
 * The client with every delivered input's ack and nak throwing, as nats.js may once the connection
 * is closed or draining (v3.4 buffers them instead; other versions and transports throw).
 */
function throwingAcks(js: JetStreamClient): JetStreamClient {
  const fail = () => {
    throw new errors.ClosedConnectionError();
  };
  const msg = (m: JsMsg) => wrap(m, { ack: fail, nak: fail });
  const messages = (ms: ConsumerMessages) =>
    wrap(ms, { [Symbol.asyncIterator]: async function* () { for await (const m of ms) yield msg(m); } });
  const consumer = (c: Consumer) => wrap(c, { consume: async (o?: ConsumeOptions) => messages(await c.consume(o)) });
  const consumers = wrap(js.consumers, { get: async (...a: Parameters<Consumers['get']>) => consumer(await js.consumers.get(...a)) });
  return wrap(js, { consumers });
}

/** `target` with some properties replaced; its own methods stay bound to it. */
function wrap<T extends object>(target: T, overrides: Record<PropertyKey, unknown>): T {
  return new Proxy(target, {
    get: (t, prop) => {
      if (prop in overrides) return overrides[prop as keyof typeof overrides];
      const value = Reflect.get(t, prop, t) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(t) : value;
    },
  });
}

describe('InputConsumer: acks that throw', () => {
  async function run(planner: Planner) {
    const iso = isolation();
    const nc = await env.connect();
    const jsm = await jetstreamManager(nc);
    await ensureStream(nc, iso);
    const logger = { error: vi.fn(), warn: vi.fn(), info: vi.fn(), debug: vi.fn() };
    const metrics = new Metrics();
    const consumer = consumerOf(nc, iso, planner, { jsm, js: throwingAcks(jetstream(nc)), logger: logger as unknown as Logger, metrics });
    const rejections: unknown[] = [];
    const onRejection = (reason: unknown) => void rejections.push(reason);
    process.on('unhandledRejection', onRejection);
    try {
      consumer.start();
      await publishInput(nc, iso, 's1', { type: 'CancelSession' }, 'cancel-1');
      await vi.waitFor(() => expect(logger.debug).toHaveBeenCalledWith(expect.anything(), expect.stringMatching(/^input (ack|nak) not sent/)), { timeout: 10_000 });
      await consumer.stop();
      await new Promise((resolve) => setImmediate(resolve)); // a stray rejection is reported by now
    } finally {
      process.off('unhandledRejection', onRejection);
    }
    return { logger, metrics, rejections };
  }

  it('an applied input whose ack throws is no failure of the input', async () => {
    const { planner, applied } = recordingPlanner();
    const { logger, metrics, rejections } = await run(planner);
    expect(applied).toEqual(['cancel-1']);
    expect(logger.debug).toHaveBeenCalledWith(expect.anything(), expect.stringMatching(/^input ack not sent/));
    expect(logger.error).not.toHaveBeenCalled();
    expect(metrics.stepCount).toBe(1);
    expect(rejections).toEqual([]);
  });

  it('a nak that throws after a failed input does not escape as an unhandled rejection', async () => {
    const planner = { handle: vi.fn(async () => Promise.reject(new StoreUnavailableError('store away'))) } as unknown as Planner;
    const { logger, rejections } = await run(planner);
    expect(logger.debug).toHaveBeenCalledWith(expect.anything(), expect.stringMatching(/^input nak not sent/));
    expect(logger.error).toHaveBeenCalledWith(expect.objectContaining({ sessionId: 's1' }), 'input not applied; redelivering it');
    expect(rejections).toEqual([]);
  });
});
