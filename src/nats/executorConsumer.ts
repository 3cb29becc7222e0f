/** The executor's durable pull consumers: one per kind, made or checked at startup. */
import { AckPolicy, DeliverPolicy, JetStreamApiCodes, JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { Logger } from 'pino';

/**
 * Creates the durable consumer, or checks an existing one's filter and raises its ack wait to
 * `ackWaitMs` if it is shorter (this executor paces its progress acks on its own ack wait).
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
  try {
    const info = await jsm.consumers.info(stream, durable);
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
  } catch (err) {
    if (!(err instanceof JetStreamApiError) || err.code !== JetStreamApiCodes.ConsumerNotFound) throw err;
    try {
      await jsm.consumers.add(stream, config);
    } catch (addErr) {
      // Another executor created it first.
      if (!(addErr instanceof JetStreamApiError)) throw addErr;
      await jsm.consumers.info(stream, durable);
    }
  }
}
