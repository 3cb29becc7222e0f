import type { NatsConnection } from '@nats-io/transport-node';

/**
 * The status listeners on `nc`. nats.js keeps them in an internal list, with no public count; the
 * check fails loudly if that list moves.
 */
export function statusListeners(nc: NatsConnection): number {
  const listeners = (nc as unknown as { protocol?: { listeners?: unknown[] } }).protocol?.listeners;
  if (!Array.isArray(listeners)) throw new Error('nats.js no longer keeps status listeners in protocol.listeners');
  return listeners.length;
}
