import { createServer } from 'node:net';
import { createWebSocketInspector } from '@statelyai/inspect';
import { createInspectorServer } from '@statelyai/inspect/server';
import { LiveMirror, type CommitSource } from '../actors/liveMirror.js';
import { CliError, UsageError } from './cliErrors.js';

/** A running inspector bridge; `stop()` disconnects and closes its server. */
export interface InspectorHandle {
  url: string;
  stop(): void;
}

/** Checks an `--inspect` port: port 0 would serve on a random port the inspector cannot know. */
export function checkInspectPort(port: number | undefined): void {
  if (port !== undefined && !(Number.isInteger(port) && port >= 1 && port <= 65_535)) {
    throw new UsageError(`--inspect expects a port from 1 to 65535, got ${port}`);
  }
}

/**
 * `--inspect <port>`: serves the Stately inspector bridge on localhost:<port> and mirrors every
 * session the source commits (the planner, or a watched session's log) as a live xstate actor
 * connected to it, so the statecharts and their task actors can be watched as they move. Open the
 * printed URL in a browser.
 */
export async function startInspector(source: CommitSource, port: number): Promise<InspectorHandle> {
  await assertPortFree(port);
  const server = createInspectorServer({ port, autoOpen: false });
  const inspector = createWebSocketInspector({ url: `ws://localhost:${port}` });
  const mirror = new LiveMirror(source, inspector.inspect);
  return {
    url: `http://localhost:${port}`,
    stop() {
      mirror.stop();
      inspector.stop();
      server.stop();
    },
  };
}

// The inspector's server reports a busy port as an unhandled 'error' event; check first so the
// user gets one line instead of a crash.
async function assertPortFree(port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const probe = createServer();
    probe.once('error', () => reject(new CliError(`--inspect: port ${port} is in use`)));
    // On every interface, as the inspector's server listens: a port taken on IPv6 only counts too.
    probe.listen(port, () => probe.close(() => resolve()));
  });
}
