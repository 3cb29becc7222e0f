/** Following one session's events on the stream, live (the client's watch). */
import { DeliverPolicy, type JetStreamClient } from '@nats-io/jetstream';
import type { DomainEvent } from '../protocol/events.js';
import { decodeEvent } from '../protocol/upcasters.js';
import type { EventWatch, WatchOptions } from './client.js';

/**
 * A session's events as they are stored (from its first one with `fromStart`), through an ordered
 * consumer on its subject; see {@link EventWatch}.
 */
export function watchSessionEvents(js: JetStreamClient, streamName: string, subject: string, o: WatchOptions): EventWatch {
  let closed = false;
  // Subscribe at once, so that events published after watch() returns and `ready` resolves are seen.
  const started = (async () => {
    const consumer = await js.consumers.get(streamName, {
      filter_subjects: subject, // one subject, as nats-server 2.9 needs
      deliver_policy: o.fromStart ? DeliverPolicy.All : DeliverPolicy.New,
      inactive_threshold: 30_000,
    });
    const messages = await consumer.consume({ max_messages: 256 });
    return { consumer, messages };
  })();
  started.catch(() => undefined); // surfaced by the iterator
  const stop = async (): Promise<void> => {
    const s = await started.catch(() => undefined);
    if (!s) return;
    // stop(), not close(): close() waits for the iterator to be drained, which never happens
    // while the generator is suspended at a yield.
    s.messages.stop();
    s.consumer.delete().catch(() => undefined);
  };
  async function* events(): AsyncGenerator<DomainEvent> {
    const { messages } = await started;
    try {
      if (closed) return;
      for await (const m of messages) {
        yield decodeEvent(m.string(), `${streamName} seq ${m.seq}`);
      }
    } finally {
      await stop();
    }
  }
  const iterable = events();
  return {
    ready: started.then(() => undefined),
    [Symbol.asyncIterator]: () => iterable,
    async close() {
      closed = true;
      await stop();
      await iterable.return(undefined).catch(() => undefined);
    },
  };
}
