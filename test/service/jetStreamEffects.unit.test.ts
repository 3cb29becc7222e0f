import { errors } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import type { OutboxCommand } from '../../src/protocol/commands.js';
import { JetStreamEffects } from '../../src/service/jetStreamEffects.js';

const command = (n: number): OutboxCommand => ({
  id: `s1.t${n}.1`, sessionId: 's1', causationId: 'c', correlationId: 'c',
  command: { type: 'ExecuteTask', sessionId: 's1', taskId: `t${n}`, dispatchId: `s1.t${n}.1`, attempt: 1, kind: 'ToolCall', description: 'Fetch.', attachments: [], context: '' },
});

/** A logger whose calls are recorded. */
const fakeLogger = () => ({ error: vi.fn(), warn: vi.fn(), debug: vi.fn() }) as unknown as Logger & Record<'warn' | 'debug', ReturnType<typeof vi.fn>>;

describe('JetStreamEffects while leading', () => {
  it('publishes again an ExecuteTask whose PubAck did not come (a NATS blip), under the same msg id, until the stream acks it', async () => {
    let calls = 0;
    const publish = vi.fn(async (_subject: string, _body: string | Uint8Array, _o: { msgID?: string }) => {
      if (++calls <= 2) throw new errors.TimeoutError();
      return { stream: 'S', seq: 7, duplicate: false } as never;
    });
    const effects = new JetStreamEffects({ publisher: { publish }, isClosed: () => false, subjectPrefix: 'jp', logger: fakeLogger(), baseDelayMs: 5, maxDelayMs: 10 });
    effects.perform([command(1)]);
    // No leader change follows: the running task's only publish is this one, retried.
    await vi.waitFor(() => expect(effects.published).toBe(1), { timeout: 10_000 });
    expect(publish).toHaveBeenCalledTimes(3);
    expect(publish.mock.calls.map(([, , o]) => o.msgID)).toEqual(['s1.t1.1', 's1.t1.1', 's1.t1.1']);
    await effects.close();
  });
});

describe('JetStreamEffects at a shutdown', () => {
  it('close() gives up, after closeGraceMs, a publish that keeps timing out on a connection still open', async () => {
    const logger = fakeLogger();
    const publish = vi.fn(async () => Promise.reject(new errors.TimeoutError()));
    const effects = new JetStreamEffects({ publisher: { publish }, isClosed: () => false, subjectPrefix: 'jp', logger, baseDelayMs: 10, maxDelayMs: 20, closeGraceMs: 200 });
    effects.perform([command(1)]);
    await effects.close(); // were the grace not kept, this would never resolve (the test times out)
    expect(effects.published).toBe(0);
    expect(logger.warn).toHaveBeenCalledWith(
      { commands: 1, dispatchIds: ['s1.t1.1'] },
      'ExecuteTask commands not published before shutdown; the next leader republishes them',
    );
  });

  it('reports the commands it could not publish in one line, not one each', async () => {
    const logger = fakeLogger();
    const publish = vi.fn(async () => Promise.reject(new Error('connection closed')));
    const effects = new JetStreamEffects({ publisher: { publish }, isClosed: () => true, subjectPrefix: 'jp', logger });
    effects.perform([1, 2, 3].map(command));
    await effects.close();
    expect(logger.warn).toHaveBeenCalledTimes(1);
    expect(logger.warn).toHaveBeenCalledWith(
      { commands: 3, dispatchIds: ['s1.t1.1', 's1.t2.1', 's1.t3.1'] },
      'ExecuteTask commands not published before shutdown; the next leader republishes them',
    );
    expect(effects.published).toBe(0);
    await effects.close(); // said once
    expect(logger.warn).toHaveBeenCalledTimes(1);
  });
});
