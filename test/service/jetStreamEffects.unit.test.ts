import type { Logger } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import type { OutboxCommand } from '../../src/protocol/commands.js';
import { JetStreamEffects } from '../../src/service/jetStreamEffects.js';

const command = (n: number): OutboxCommand => ({
  id: `s1.t${n}.1`, sessionId: 's1', causationId: 'c', correlationId: 'c',
  command: { type: 'ExecuteTask', sessionId: 's1', taskId: `t${n}`, dispatchId: `s1.t${n}.1`, attempt: 1, kind: 'ToolCall', description: 'Fetch.', attachments: [], context: '' },
});

describe('JetStreamEffects at a shutdown', () => {
  it('reports the commands it could not publish in one line, not one each', async () => {
    const logger = { error: vi.fn(), warn: vi.fn(), debug: vi.fn() } as unknown as Logger & Record<'warn' | 'debug', ReturnType<typeof vi.fn>>;
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
