/** The executor's durable pull consumers: one per kind, made or checked at startup. */
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type ConsumerInfo,
  type JetStreamManager,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { Logger } from 'pino';

/** The consumer's info, or undefined when it does not exist. */
async function consumerInfo(jsm: JetStreamManager, stream: string, durable: string): Promise<ConsumerInfo | undefined> {
  try {
    return await jsm.consumers.info(stream, durable);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound) return undefined;
    throw err;
  }
}

/**
 * Creates the durable consumer, or checks an existing one's filter and raises its ack wait to
 * `ackWaitMs` if it is shorter (this executor paces its progress acks on its own ack wait). The
 * stream must already carry `filter` (ensureStream widens it first): a consumer the server refuses
 * is one line naming the consumer, the stream and the server's reason.
 */
export async function ensureConsumer(
  jsm: JetStreamManager,
  stream: string,
  durable: string,
  filter: string,
  ackWaitMs: number,
  logger: Logger,
): Promise<void> {
  const config = {
    durable_name: durable,
    filter_subject: filter,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(ackWaitMs),
    max_deliver: -1,
  };
  let info = await consumerInfo(jsm, stream, durable);
  if (!info) {
    try {
      await jsm.consumers.add(stream, config);
      return;
    } catch (err) {
      // Another executor may have created it meanwhile (with its own ack wait): check that one.
      // Otherwise the server's reason is the error, not a "consumer not found" from a lookup.
      info = await consumerInfo(jsm, stream, durable);
      if (!info) {
        const reason = err instanceof Error ? err.message : String(err);
        throw new Error(`cannot create consumer ${durable} on stream ${stream} (filter ${filter}): ${reason}`, { cause: err });
      }
    }
  }
  if (info.config.filter_subject !== filter) {
    throw new Error(`consumer ${durable} on ${stream} filters ${info.config.filter_subject ?? '(nothing)'}, expected ${filter}`);
  }
  // Only raised, never lowered: executors sharing the consumer with a longer ack wait pace their
  // progress acks on it, and a shorter one set by another executor would get their commands
  // redelivered while they still run them. A shorter own ack wait only paces acks sooner.
  if ((info.config.ack_wait ?? 0) < config.ack_wait) {
    await jsm.consumers.update(stream, durable, { ack_wait: config.ack_wait });
    logger.info({ durable, ackWaitMs }, 'consumer ack wait raised');
  }
}
