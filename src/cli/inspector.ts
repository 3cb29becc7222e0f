import { createWebSocketInspector } from '@statelyai/inspect';
import { LiveMirror, type CommitSource } from '../actors/liveMirror.js';
import { startInspectorBridge } from './inspectorBridge.js';

/** A running inspector bridge; `stop()` disconnects and closes its server. */
export interface InspectorHandle {
  url: string;
  stop(): void;
}

/** The `--inspect` flag: a port; 0 would serve on a random port the inspector cannot know. */
export const INSPECT_PORT = { min: 1, max: 65_535 } as const;

/**
 * `--inspect <port>`: serves the Stately inspector bridge on 127.0.0.1:<port> (see
 * {@link startInspectorBridge}) and mirrors every session the source commits (the planner, or a
 * watched session's log) as a live xstate actor connected to it, so the statecharts and their task
 * actors can be watched as they move. Open the printed URL in a browser.
 */
export async function startInspector(source: CommitSource, port: number): Promise<InspectorHandle> {
  const bridge = await startInspectorBridge(port);
  // Until its socket is open the inspector keeps only its last `maxDeferredEvents` messages (200 by
  // default: a plan of 200 tasks alone sends more), and commits without I/O in between never let it
  // open: keep them all. The bridge is local, so it opens at the first I/O; waiting for the bridge
  // to see it makes sure it will.
  const inspector = createWebSocketInspector({ url: bridge.socketUrl, maxDeferredEvents: Number.MAX_SAFE_INTEGER });
  await bridge.firstConnection;
  const mirror = new LiveMirror(source, inspector.inspect);
  return {
    url: bridge.url,
    stop() {
      mirror.stop();
      inspector.stop();
      bridge.stop();
    },
  };
}
