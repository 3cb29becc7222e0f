/**
 * nats.js's Node transport with its socket writes coalesced per event-loop turn.
 *
 * nats.js writes its outbound buffer to the socket once per microtask burst. A planner step is a
 * chain of awaits (each event's append waits for the previous one's PubAck), so under load every
 * publish of every session ended up in a write of its own: a quarter of the service's CPU was
 * socket writes (on loopback a write also carries the receiving side's TCP work). Corking the
 * socket at the first write of a turn and uncorking it in that turn's check phase (setImmediate)
 * sends everything written in the turn with one writev, after at most the rest of the turn.
 */
import { setImmediate } from 'node:timers';
import { NodeTransport, nodeResolveHost } from '@nats-io/transport-node/lib/node_transport.js';
import { NatsConnectionImpl, setTransportFactory, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';

/** Corked bytes that are sent at once, turn or no turn: a loop of publishes that never yields. */
export const MAX_CORKED_BYTES = 1 << 20;

class CoalescingTransport extends NodeTransport {
  #corked = false;

  override _send(frame: Uint8Array): Promise<void> {
    const socket = this.socket;
    if (socket === undefined || socket.destroyed) return super._send(frame);
    if (!this.#corked) {
      this.#corked = true;
      socket.cork();
      setImmediate(() => this.#uncork(socket));
    }
    const sent = super._send(frame);
    // Publishes chained by microtasks alone never reach a check phase: do not let them pile up.
    if (socket.writableLength >= MAX_CORKED_BYTES) this.#uncork(socket);
    return sent;
  }

  #uncork(socket: NonNullable<NodeTransport['socket']>): void {
    if (!this.#corked) return;
    this.#corked = false;
    socket.uncork();
  }
}

/** As transport-node's `connect`, with writes coalesced per turn (also after reconnects). */
export function connectCoalescing(options: ConnectionOptions): Promise<NatsConnection> {
  // The factory is process-wide and read again at every reconnect: transport-node's own connect
  // sets its plain transport the same way, so each of our connects sets ours.
  setTransportFactory({ factory: () => new CoalescingTransport(), dnsResolveFn: nodeResolveHost });
  return NatsConnectionImpl.connect(options);
}
