import { connect, createServer, type AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { createWebSocketReceiver } from '@statelyai/inspect';
import { startInspector } from '../../src/cli/inspector.js';
import { KnownActors } from '../../src/cli/inspectorBridge.js';
import { createEmbeddedRuntime } from '../../src/runtime/embeddedRuntime.js';

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

describe('--inspect', () => {
  it('streams the live statecharts of committed sessions to the inspector bridge', async () => {
    const port = await freePort();
    const runtime = await createEmbeddedRuntime();
    const inspector = await startInspector(runtime.planner, port);
    expect(inspector.url).toBe(`http://127.0.0.1:${port}`);
    const messages: Array<{ type: string; event?: { type?: string } }> = [];
    createWebSocketReceiver({ server: `ws://127.0.0.1:${port}` }).subscribe((e) => void messages.push(e as (typeof messages)[number]));
    const first = await runtime.planner.handle('insp1', { type: 'SubmitInput', text: 'Summarise the notes. Check the totals.' });
    // The page is in once it has the session's actor (live, or given to it on connecting).
    await vi.waitFor(() => expect(messages.some((e) => e.type === '@xstate.actor')).toBe(true));
    const { taskId, dispatchId } = first.events.find((e) => e.type === 'TaskDispatched')!.data as { taskId: string; dispatchId: string };
    await runtime.planner.handle('insp1', { type: 'TaskCompleted', taskId, dispatchId, output: 'done' });
    await vi.waitFor(() => expect(messages).toContainEqual(expect.objectContaining({ type: '@xstate.event', event: expect.objectContaining({ type: 'TaskDispatched' }) })));
    inspector.stop();
    await runtime.close();
  });

  it('gives a page that connects late every actor and its latest snapshot; serves on the loopback interface only', async () => {
    const port = await freePort();
    const runtime = await createEmbeddedRuntime();
    const inspector = await startInspector(runtime.planner, port);
    type Message = { type: string; sessionId: string };
    const actorsOf = (messages: Message[]) => messages.filter((e) => e.type === '@xstate.actor');
    // More than the 200 messages @statelyai/inspect's own server kept before a page came.
    let actors = 0;
    for (let i = 0; i < 30; i++) {
      const commit = await runtime.planner.handle(`late${i}`, { type: 'SubmitInput', text: 'Summarise the notes. Check the totals.' });
      const planned = commit.events.find((e) => e.type === 'TasksPlanned')!.data as { tasks: unknown[] };
      actors += 1 + planned.tasks.length; // the session and a task actor each
    }
    // Once a page that was there all along has every actor, the bridge has had them all too.
    const early: Message[] = [];
    createWebSocketReceiver({ server: `ws://127.0.0.1:${port}` }).subscribe((e) => void early.push(e as Message));
    await vi.waitFor(() => expect(new Set(actorsOf(early).map((e) => e.sessionId)).size).toBe(actors), { timeout: 10_000 });
    const seen: Message[] = [];
    createWebSocketReceiver({ server: `ws://127.0.0.1:${port}` }).subscribe((e) => void seen.push(e as Message));
    await vi.waitFor(() => expect(actorsOf(seen)).toHaveLength(actors));
    expect(new Set(actorsOf(seen).map((e) => e.sessionId)).size).toBe(actors);
    expect(seen.findIndex((e) => e.type === '@xstate.snapshot')).toBe(actors); // registrations first
    const elsewhere = Object.values(networkInterfaces()).flat().find((a) => a && !a.internal && a.family === 'IPv4');
    if (elsewhere) {
      const refused = await new Promise<string>((resolve) => {
        const socket = connect(port, elsewhere.address).once('connect', () => resolve('connected')).once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
        socket.unref();
      });
      expect(refused).toBe('ECONNREFUSED');
    }
    inspector.stop();
    await runtime.close();
  });

  it("keeps each actor's registration and only its latest snapshot for a page that connects late", () => {
    const known = new KnownActors();
    const message = (type: string, sessionId: string, n = 0) => JSON.stringify({ type, sessionId, n });
    for (const m of [message('@xstate.actor', 'x:0'), message('@xstate.snapshot', 'x:0', 1), message('@xstate.event', 'x:0'), message('@xstate.actor', 'x:1'), message('@xstate.snapshot', 'x:0', 2), 'not json', message('@xstate.snapshot', 'x:1', 1)]) known.record(m);
    expect(known.replay()).toEqual([message('@xstate.actor', 'x:0'), message('@xstate.actor', 'x:1'), message('@xstate.snapshot', 'x:0', 2), message('@xstate.snapshot', 'x:1', 1)]);
  });

  it('refuses a WebSocket from any other web page (browsers let any page connect to 127.0.0.1)', async () => {
    const port = await freePort();
    const runtime = await createEmbeddedRuntime();
    const inspector = await startInspector(runtime.planner, port);
    await runtime.planner.handle('secret', { type: 'SubmitInput', text: 'Summarise the secret plan.' });
    const open = (origin?: string) =>
      new Promise<string>((resolve) => {
        const socket = new WebSocket(`ws://127.0.0.1:${port}`, origin ? { origin } : {});
        socket.once('message', () => resolve('got data'));
        socket.once('error', (err) => resolve(err.message));
        socket.once('unexpected-response', (_req, res) => resolve(`refused ${res.statusCode}`));
      });
    expect(await open('https://evil.example')).toBe('refused 401');
    // Nor may another site frame the page (it could steer the inner frame); its script posts to the
    // inspector's origin only.
    const page = await fetch(`http://127.0.0.1:${port}/`);
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(page.headers.get('content-security-policy')).toBe("frame-ancestors 'none'");
    expect(await page.text()).not.toContain("'*'");
    expect(await open(`http://127.0.0.1:${port}`)).toBe('got data'); // the bridge's own page
    inspector.stop();
    await runtime.close();
  });

  it('reports a busy port as a one-line error', async () => {
    const busy = createServer();
    const port = await new Promise<number>((resolve) => busy.listen(0, '127.0.0.1', () => resolve((busy.address() as AddressInfo).port)));
    const runtime = await createEmbeddedRuntime();
    await expect(startInspector(runtime.planner, port)).rejects.toThrow(`--inspect: port ${port} is in use`);
    busy.close();
    await runtime.close();
  });
});
