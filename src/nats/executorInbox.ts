/**
 * The executor's inbox on a JetStream KV bucket: the report of each dispatch id, recorded before
 * the report is published and the command acked. A redelivered command finds its report here and
 * is answered without running the handler again, by any executor process.
 */
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { SessionInput } from '../protocol/inputs.js';
import type { Inbox } from '../persistence/inbox.js';
import { readKvJson } from '../persistence/jetstream/kvJson.js';
import type { ExecutorReport } from '../executors/report.js';
import { executorNames } from '../protocol/deploymentNames.js';
import { DEFAULT_STREAM_NAME, DEFAULT_SUBJECT_PREFIX } from '../persistence/jetstream/streamConfig.js';
import { ValidationError } from '../errors.js';

/** The inbox bucket when none is named: the default deployment's (see executorNames). */
export const DEFAULT_EXEC_INBOX_BUCKET = executorNames(DEFAULT_STREAM_NAME, DEFAULT_SUBJECT_PREFIX).inboxBucket;

/** What a NATS KV bucket name may hold (the client's own rule). */
const BUCKET = /^[A-Za-z0-9_-]+$/;

/**
 * Throws ValidationError, naming the option `what` and the rule, unless `bucket` is a valid NATS KV
 * bucket name. Checked up front, like the executor's other options: the NATS client's own refusal
 * is a plain Error, and createExecutor would meet it only after making the stream.
 */
export function checkBucketName(what: string, bucket: string): void {
  if (!BUCKET.test(bucket)) {
    throw new ValidationError(`${what} must be a NATS KV bucket name ([A-Za-z0-9_-]+: letters, digits, _ or -), got ${JSON.stringify(bucket)}`);
  }
}

/** KV keys allow [-/_=.a-zA-Z0-9]; dispatch ids (`session.task.attempt`) already fit. */
const KEY = /^[-/_=.a-zA-Z0-9]+$/;

/** Maps a dispatch id to a valid KV key (ids that fit are used as they are). */
export function inboxKey(dispatchId: string): string {
  if (KEY.test(dispatchId) && !dispatchId.startsWith('.') && !dispatchId.endsWith('.') && !dispatchId.includes('..')) {
    return dispatchId;
  }
  return `x.${Buffer.from(dispatchId, 'utf8').toString('base64url')}`;
}

/** The dispatch id a key of {@link inboxKey} stands for: an `x.<base64url>` key decoded, any other as it is. */
export function dispatchIdOfKey(key: string): string {
  // A dispatch id has at least two dots, so a key with one is always an encoded one.
  return /^x\.[A-Za-z0-9_-]+$/.test(key) ? Buffer.from(key.slice(2), 'base64url').toString('utf8') : key;
}

/** Options of KvExecutorInbox.open. */
export interface KvExecutorInboxOptions {
  bucket?: string;
  /** Forget reports after this long (ms); default: keep them. */
  ttlMs?: number;
  replicas?: number;
}

/** Reports by dispatch id, shared by all executor processes. */
export class KvExecutorInbox implements Inbox<ExecutorReport> {
  private constructor(
    readonly kv: KV,
    readonly bucket: string,
  ) {}

  /** Creates (or opens) the bucket; ValidationError for a bucket name NATS KV does not take. */
  static async open(nc: NatsConnection, options: KvExecutorInboxOptions = {}): Promise<KvExecutorInbox> {
    const bucket = options.bucket ?? DEFAULT_EXEC_INBOX_BUCKET;
    checkBucketName('inbox: bucket', bucket);
    const kv = await new Kvm(nc).create(bucket, {
      history: 1,
      replicas: options.replicas ?? 1,
      ...(options.ttlMs !== undefined ? { ttl: options.ttlMs } : {}),
    });
    return new KvExecutorInbox(kv, bucket);
  }

  async get(dispatchId: string): Promise<ExecutorReport | undefined> {
    const parsed = SessionInput.safeParse(await readKvJson(this.kv, inboxKey(dispatchId)));
    if (!parsed.success) return undefined;
    const report = parsed.data;
    if (report.type !== 'TaskCompleted' && report.type !== 'TaskFailed' && report.type !== 'NeedsClarification') return undefined;
    return report;
  }

  async put(dispatchId: string, report: ExecutorReport): Promise<void> {
    await this.kv.put(inboxKey(dispatchId), JSON.stringify(report));
  }

  /** The dispatch ids (keys) recorded so far. */
  async keys(): Promise<string[]> {
    const out: string[] = [];
    for await (const key of await this.kv.keys()) out.push(key);
    return out.sort();
  }
}
