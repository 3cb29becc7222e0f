import { NoRouteError, subjectMatches, type Bus, type BusHandler } from './bus.js';

// Defined with the port (publishers test for it whatever the bus); still importable from here.
export { NoRouteError } from './bus.js';

/**
 * The embedded bus: routing by subject pattern inside one process. Delivery is asynchronous (a
 * handler never runs inside the publisher's call stack) and a publish resolves once every
 * matching handler has finished, so an outbox relay knows the command was taken.
 */
export class InProcessBus implements Bus {
  private readonly subs = new Set<{ pattern: string; handler: BusHandler }>();

  async publish(subject: string, data: unknown, headers: Record<string, string> = {}): Promise<void> {
    const targets = [...this.subs].filter((s) => subjectMatches(s.pattern, subject));
    if (targets.length === 0) throw new NoRouteError(subject);
    await new Promise<void>((resolve) => setImmediate(resolve));
    // structuredClone: subscribers get their own copy, as they would over a wire.
    await Promise.all(targets.map((s) => s.handler({ subject, data: structuredClone(data), headers: { ...headers } })));
  }

  subscribe(pattern: string, handler: BusHandler): () => void {
    const sub = { pattern, handler };
    this.subs.add(sub);
    return () => this.subs.delete(sub);
  }
}
