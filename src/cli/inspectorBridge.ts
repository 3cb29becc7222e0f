import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { CliError } from './cliErrors.js';

/** The Stately inspector's UI, which the bridge page frames and hands every message to. */
const INSPECTOR_UI = 'https://stately.ai/inspect';

/** A running bridge; `stop()` closes its connections and its port. */
export interface InspectorBridge {
  /** The page to open in a browser. */
  url: string;
  /** Where inspected actors send their messages. */
  socketUrl: string;
  /** Resolves when the first WebSocket client (the actors' inspector, connecting at once) is in. */
  firstConnection: Promise<void>;
  stop(): void;
}

/**
 * The bridge between inspected actors and the Stately inspector in a browser: a page at
 * `http://127.0.0.1:<port>/` that frames the inspector UI, and a WebSocket on the same port that
 * relays what the actors send to every open page. Why not `@statelyai/inspect/server`: it listens
 * on every interface, so anyone who could reach the machine read the sessions' inputs, outputs and
 * answers, and it keeps only the last 200 messages, so a page opened after the first few hundred
 * saw no actor at all. This one listens on the loopback interface only, and gives a page that
 * connects late each actor's registration and latest snapshot.
 */
export async function startInspectorBridge(port: number): Promise<InspectorBridge> {
  const known = new KnownActors();
  const http = createServer(servePage);
  // Listening first: a busy port is then one error here, before the WebSocket server (which
  // re-emits its server's errors) is attached.
  await new Promise<void>((resolve, reject) => {
    http.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'EADDRINUSE' ? new CliError(`--inspect: port ${port} is in use`) : err),
    );
    http.listen(port, '127.0.0.1', () => resolve());
  });
  // Only this page and the local inspector may connect: browsers let any web page open a WebSocket
  // to 127.0.0.1 (no CORS for WebSockets), and the replay would hand it every session's texts. The
  // inspector (Node) sends no Origin; a browser always does.
  const page = new Set([`http://127.0.0.1:${port}`, `http://localhost:${port}`]);
  const sockets = new WebSocketServer({ server: http, verifyClient: ({ origin }: { origin?: string }) => !origin || page.has(origin) });
  let connected!: () => void;
  const firstConnection = new Promise<void>((resolve) => (connected = resolve));
  sockets.on('connection', (socket) => {
    connected();
    for (const message of known.replay()) socket.send(message);
    socket.on('message', (data: RawData) => {
      const message = data.toString();
      known.record(message);
      for (const other of sockets.clients) if (other !== socket && other.readyState === WebSocket.OPEN) other.send(message);
    });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    socketUrl: `ws://127.0.0.1:${port}`,
    firstConnection,
    stop() {
      for (const socket of sockets.clients) socket.terminate();
      sockets.close();
      http.close();
    },
  };
}

/** Each actor's registration and latest snapshot, by the inspector's session id of the actor. */
export class KnownActors {
  private readonly registered = new Map<string, string>();
  private readonly snapshots = new Map<string, string>();

  record(message: string): void {
    let parsed: { type?: unknown; sessionId?: unknown };
    try {
      parsed = JSON.parse(message) as typeof parsed;
    } catch {
      return; // not an inspection message: relayed, not kept
    }
    if (typeof parsed.sessionId !== 'string') return;
    if (parsed.type === '@xstate.actor') this.registered.set(parsed.sessionId, message);
    else if (parsed.type === '@xstate.snapshot') this.snapshots.set(parsed.sessionId, message);
  }

  /** What a page that connects now needs to draw every actor as it is. */
  replay(): string[] {
    return [...this.registered.values(), ...this.snapshots.values()];
  }
}

/** The bridge page: the inspector UI in a frame, fed from the bridge's WebSocket once it is ready. */
function servePage(_req: IncomingMessage, res: ServerResponse): void {
  // No other site may frame the page: one that did could steer the inner frame and be handed the
  // relayed messages.
  res.writeHead(200, {
    'Content-Type': 'text/html; charset=utf-8',
    'X-Frame-Options': 'DENY',
    'Content-Security-Policy': "frame-ancestors 'none'",
  });
  res.end(`<!DOCTYPE html>
<html><head><title>jetplan: statecharts</title>
<style>html, body, iframe { margin: 0; width: 100%; height: 100%; border: 0; }</style></head>
<body><iframe id="ui" src="${INSPECTOR_UI}"></iframe>
<script>
  const ui = document.getElementById('ui');
  const waiting = [];
  let ready = false;
  // Messages go to the inspector's origin only, and only its frame may say it is ready.
  const target = new URL(ui.src).origin;
  addEventListener('message', (e) => {
    if (e.source !== ui.contentWindow || e.origin !== target || e.data?.type !== '@statelyai.connected') return;
    ready = true;
    for (const m of waiting.splice(0)) ui.contentWindow.postMessage(m, target);
  });
  new WebSocket('ws://' + location.host).onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (ready) ui.contentWindow.postMessage(m, target);
    else waiting.push(m);
  };
</script></body></html>`);
}
