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
import { hasWsProtocol, NatsConnectionImpl, setTransportFactory, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';

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

  /** Sends what this turn corked before the socket goes: nats.js's close destroys it unflushed. */
  override close(err?: Error): Promise<void> {
    if (this.socket !== undefined) this.#uncork(this.socket);
    return super.close(err);
  }

  override disconnect(): void {
    if (this.socket !== undefined) this.#uncork(this.socket);
    super.disconnect();
  }

  #uncork(socket: NonNullable<NodeTransport['socket']>): void {
    if (!this.#corked) return;
    this.#corked = false;
    socket.uncork();
  }
}

/**
 * As transport-node's `connect`, with writes coalesced per turn. nats.js builds every transport,
 * reconnects included, from one process-wide factory, which transport-node's own `connect` sets to
 * its plain transport and this sets to ours. So in a process that also connects with plain
 * `connect`, a connection may reconnect with the other kind of transport: both are correct, only
 * the coalescing comes or goes (jetplan's own processes connect through here only).
 */
export function connectCoalescing(options: ConnectionOptions): Promise<NatsConnection> {
  if (hasWsProtocol(options)) {
    return Promise.reject(new Error('a websocket server URL needs a websocket client, not the Node transport'));
  }
  setTransportFactory({ factory: () => new CoalescingTransport(), dnsResolveFn: nodeResolveHost });
  return NatsConnectionImpl.connect(options);
}
