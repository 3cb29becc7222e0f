/** The executor's durable pull consumers: one per kind, made or checked at startup. */
import { AckPolicy, DeliverPolicy, JetStreamApiCodes, JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { Logger } from 'pino';

/**
 * Creates the durable consumer, or checks an existing one's filter and brings its ack wait to
 * `ackWaitMs` (the progress acks of this executor are paced on it).
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
    if (info.config.ack_wait !== config.ack_wait) {
      await jsm.consumers.update(stream, durable, { ack_wait: config.ack_wait });
      logger.info({ durable, ackWaitMs }, 'consumer ack wait updated');
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
