/**
 * Executors over JetStream. One durable pull consumer per kind (nats-server 2.9 takes one filter
 * subject per consumer) on `<prefix>.exec.<kind>.>`, explicit acks. Each ExecuteTask runs its
 * handler at most once per dispatch id: the report is recorded in a KV inbox before it is published
 * (with Nats-Msg-Id `report.<dispatchId>`) and before the command is acked, so a redelivery — after
 * a crash, an ack lost, or a duplicate publish — re-sends the recorded report instead of running
 * the task again. Commands are pulled only into free handler slots and kept leased with `working()`
 * progress acks every ackWait/3 (executorPull.ts); handlers run under a claim (executorRun.ts), by
 * a NatsExecutor (natsExecutor.ts) once createExecutor has bound every consumer.
 * At start the stream is created or widened as the planner service does (or refused, in one line,
 * if its storage or retention differ) before the consumers are made on it. A command older than
 * `staleAfterMs` is run only if its session, rebuilt from its log, still waits on exactly that
 * dispatch; any other is acked without running it (executorStale.ts). While a handler runs, the
 * executor follows its session's events: one that ends the session aborts the handler's signal.
 */
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { DEFAULT_STREAM_NAME, DEFAULT_SUBJECT_PREFIX, ensureStream } from '../persistence/jetstream/streamConfig.js';
import { silentLogger } from '../observability/logger.js';
import { checkBucketName, KvExecutorInbox } from './executorInbox.js';
import { readMessageLimit } from '../persistence/jetstream/jetStreamEventStore.js';
import { DEFAULT_MAX_REPORT_BYTES } from '../executors/fitReport.js';
import { executorNames } from '../protocol/deploymentNames.js';
import { ValidationError } from '../errors.js';
import { KvClaims } from './executorClaims.js';
import { ensureConsumer } from './executorConsumer.js';
import { checkSharedOptions } from '../executors/executorChecks.js';
import { checkConnectionOption, checkFunctionOption } from '../shared/optionChecks.js';
import { DEFAULT_STALE_AFTER_MS, StaleCheck } from './executorStale.js';
import { NatsExecutor, type BoundConsumer } from './natsExecutor.js';
import type { Executor, ExecutorKind, ExecutorOptions } from './executorOptions.js';

export type { Executor, ExecutorKind, ExecutorOptions } from './executorOptions.js';

const kindToken = (kind: ExecutorKind): 'toolcall' | 'processing' => (kind === 'ToolCall' ? 'toolcall' : 'processing');

/** Starts an executor. Resolves once its consumers are bound and taking messages. */
export async function createExecutor(options: ExecutorOptions): Promise<Executor> {
  const { nc, handler, kinds, streamName, prefix, names, durablePrefix, ackWaitMs, concurrency, logger, staleAfterMs } = resolveOptions(options);
  const jsm = await jetstreamManager(nc);
  const { inbox, claims } = await openStores(nc, options, ackWaitMs, names);
  const js = jetstream(nc);
  const staleCheck = new StaleCheck({ nc, streamName, subjectPrefix: prefix, staleAfterMs, ackWaitMs, logger });
  const binding: Binding = { jsm, js, streamName, prefix, durablePrefix, ackWaitMs, logger, staleCheck };
  // Every kind is bound before any loop starts: a kind that fails (its consumer refused, NATS
  // away) rejects the start with nothing pulling, so no handler runs for an executor the caller
  // never got and cannot stop. Nothing else needs releasing then: the inbox and claims are bucket
  // handles, and the store of stale checks is opened on the first command.
  // A report must fit one message of the stream: a larger one would be refused, and published
  // again on every redelivery for good. Cut to the stream's limit (less room for headers) as well.
  const messageLimit = await readMessageLimit(nc, jsm, streamName);
  const maxReportBytes = Math.max(1_024, Math.min(options.maxReportBytes ?? DEFAULT_MAX_REPORT_BYTES, messageLimit - 1_024));
  const bound: BoundConsumer[] = [];
  for (const kind of kinds) bound.push(await bind(kind, binding));
  const executor = new NatsExecutor({ options: { ...options, maxReportBytes }, nc, js, handler, streamName, prefix, ackWaitMs, concurrency, logger, inbox, claims, staleCheck });
  executor.start(bound);
  return executor;
}

/**
 * The options with their defaults, each checked: every bad option the same way, a ValidationError,
 * before anything is created (the checks the bus executor shares are in executorChecks.ts).
 */
function resolveOptions(options: ExecutorOptions) {
  const streamName = options.streamName ?? DEFAULT_STREAM_NAME;
  const prefix = options.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX;
  const names = executorNames(streamName, prefix);
  const r = {
    nc: options.nc,
    handler: options.handler,
    streamName,
    prefix,
    names,
    durablePrefix: options.durablePrefix ?? names.durablePrefix,
    ackWaitMs: options.ackWaitMs ?? 30_000,
    concurrency: options.concurrency ?? 4,
    logger: options.logger ?? silentLogger,
    staleAfterMs: options.staleAfterMs ?? DEFAULT_STALE_AFTER_MS,
  };
  checkConnectionOption('executor: nc', r.nc);
  const kinds = checkSharedOptions(options);
  checkFunctionOption('executor: afterRecord', options.afterRecord);
  if (!Number.isSafeInteger(r.staleAfterMs) || r.staleAfterMs < 0) throw new ValidationError(`executor: staleAfterMs must be an integer of 0 or more, got ${shown(r.staleAfterMs)}`);
  // At most what a timer takes for the claim TTL (3 ack waits).
  if (!Number.isInteger(r.ackWaitMs) || r.ackWaitMs < 100 || r.ackWaitMs > MAX_ACK_WAIT_MS) {
    throw new ValidationError(`executor: ackWaitMs must be an integer from 100 to ${MAX_ACK_WAIT_MS}, got ${shown(r.ackWaitMs)}`);
  }
  // JetStream takes a max age of 100 ms or more, in nanoseconds that must fit an int64.
  if (options.inboxTtlMs !== undefined && !(Number.isInteger(options.inboxTtlMs) && options.inboxTtlMs >= 100 && options.inboxTtlMs <= MAX_TTL_MS)) {
    throw new ValidationError(`executor: inboxTtlMs must be an integer from 100 to ${MAX_TTL_MS}, got ${shown(options.inboxTtlMs)}`);
  }
  if (!Number.isInteger(r.concurrency) || r.concurrency < 1) throw new ValidationError(`executor: concurrency must be an integer of at least 1, got ${r.concurrency}`);
  if (!/^[A-Za-z0-9_-]+$/.test(r.durablePrefix)) throw new ValidationError(`executor: durablePrefix must be letters, digits, _ or -, got ${JSON.stringify(r.durablePrefix)}`);
  if (options.inboxBucket !== undefined) checkBucketName('executor: inboxBucket', options.inboxBucket);
  if (options.claimsBucket !== undefined) checkBucketName('executor: claimsBucket', options.claimsBucket);
  return { ...r, kinds };
}

/** The longest ack wait: the claims' TTL, three of them, must fit a Node timer (2^31 − 1 ms). */
export const MAX_ACK_WAIT_MS = Math.floor((2 ** 31 - 1) / 3);

/** The longest KV TTL, ms: its nanoseconds must fit an int64. */
const MAX_TTL_MS = Math.floor(Number(2n ** 63n - 1n) / 1e6) - 1;

/** A value as a message quotes it: strings quoted, so "500" is told from 500. */
const shown = (value: unknown): string => (typeof value === 'string' ? JSON.stringify(value) : String(value));

/** What `bind` needs: the stream, the naming of consumers, and where their creation times go. */
interface Binding {
  jsm: JetStreamManager;
  js: JetStreamClient;
  streamName: string;
  prefix: string;
  durablePrefix: string;
  ackWaitMs: number;
  logger: Logger;
  staleCheck: StaleCheck;
}

/** Makes (or checks) the kind's durable consumer and binds to it; nothing is pulled yet. */
async function bind(kind: ExecutorKind, b: Binding): Promise<BoundConsumer> {
  const durable = `${b.durablePrefix}-${kindToken(kind)}`;
  const filter = `${b.prefix}.exec.${kindToken(kind)}.>`;
  const rebind = async () => {
    await ensureConsumer(b.jsm, b.streamName, durable, filter, b.ackWaitMs, b.logger);
    const consumer = await b.js.consumers.get(b.streamName, durable);
    // A consumer made again delivers the stream from its start: what it stored before is judged stale.
    b.staleCheck.consumerCreated(durable, Date.parse((await consumer.info(true)).created));
    return consumer;
  };
  return { consumer: await rebind(), durable, filter, rebind };
}

/**
 * Creates the stream or widens it to what jetplan needs, as the planner service does (an executor
 * may start before it, or at once on a stream made by hand), so that the consumers' filter
 * subjects exist; a stream whose storage or retention differ is refused (ValidationError, one
 * line). Then opens the inbox and claims buckets.
 */
async function openStores(
  nc: NatsConnection,
  options: ExecutorOptions,
  ackWaitMs: number,
  names: ReturnType<typeof executorNames>,
): Promise<{ inbox: KvExecutorInbox; claims: KvClaims }> {
  await ensureStream(nc, { streamName: options.streamName ?? DEFAULT_STREAM_NAME, subjectPrefix: options.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX });
  const inbox = await KvExecutorInbox.open(nc, {
    bucket: options.inboxBucket ?? names.inboxBucket,
    ...(options.inboxTtlMs !== undefined ? { ttlMs: options.inboxTtlMs } : {}),
  });
  // A claim outlives a few missed refreshes (one per ackWait/3), not a dead executor. A bucket
  // made by an executor with a shorter ack wait may expire claims before we refresh them: refused.
  const claims = await KvClaims.open(nc, {
    bucket: options.claimsBucket ?? (options.inboxBucket ? `${options.inboxBucket}_claims` : names.claimsBucket),
    ttlMs: Math.max(3 * ackWaitMs, 10_000),
    minTtlMs: ackWaitMs,
  });
  return { inbox, claims };
}
