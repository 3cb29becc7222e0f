import { createServer, type AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createWebSocketReceiver } from '@statelyai/inspect';
import { startInspector } from '../../src/cli/inspector.js';
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
    expect(inspector.url).toBe(`http://localhost:${port}`);
    const seen = new Promise<unknown>((resolve) => {
      const receiver = createWebSocketReceiver({ server: `ws://localhost:${port}` });
      receiver.subscribe((e: { type: string; event?: { type?: string } }) => {
        if (e.type === '@xstate.event' && e.event?.type === 'TaskDispatched') resolve(e);
      });
    });
    const first = await runtime.planner.handle('insp1', { type: 'SubmitInput', text: 'Summarise the notes. Check the totals.' });
    const { taskId, dispatchId } = first.events.find((e) => e.type === 'TaskDispatched')!.data as { taskId: string; dispatchId: string };
    await runtime.planner.handle('insp1', { type: 'TaskCompleted', taskId, dispatchId, output: 'done' });
    await expect(seen).resolves.toMatchObject({ type: '@xstate.event' });
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
