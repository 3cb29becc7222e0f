import { jetstreamManager } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { ensureStream, PubAckMux } from '../../src/persistence/jetstream/index.js';
import type { OutboxCommand } from '../../src/protocol/commands.js';
import { JetStreamEffects } from '../../src/service/jetStreamEffects.js';
import { isolation, serverEnv, type Isolation } from './harness.js';

const { env } = serverEnv();

const command = (context: string): OutboxCommand => ({
  id: 'big.t1.1', sessionId: 'big', causationId: 'c', correlationId: 'c',
  command: { type: 'ExecuteTask', sessionId: 'big', taskId: 't1', dispatchId: 'big.t1.1', attempt: 1, kind: 'Processing', description: 'Summarise.', attachments: [], context },
});

async function effectsOn(iso: Isolation) {
  const nc = await env.connect();
  await ensureStream(nc, iso);
  const mux = new PubAckMux(nc);
  const publish = vi.fn(mux.publish.bind(mux));
  const logger = { error: vi.fn(), warn: vi.fn(), debug: vi.fn() } as unknown as Logger & Record<'error' | 'warn', ReturnType<typeof vi.fn>>;
  const effects = new JetStreamEffects({ publisher: { publish }, isClosed: () => nc.isClosed(), subjectPrefix: iso.subjectPrefix, logger, baseDelayMs: 1, maxDelayMs: 1 });
  env.stops.push(async () => mux.close());
  return { nc, publish, logger, effects, prefix: iso.subjectPrefix };
}

/** Waits for the log line that gives the command up, then checks it was tried once and never retried. */
async function expectRefusedOnce(w: Awaited<ReturnType<typeof effectsOn>>) {
  await vi.waitFor(() =>
    expect(w.logger.error).toHaveBeenCalledWith(
      expect.objectContaining({ sessionId: 'big', taskId: 't1', dispatchId: 'big.t1.1' }),
      expect.stringMatching(/refused by NATS.*not retried/),
    ),
    { timeout: 10_000 },
  );
  await w.effects.close();
  // Tried once, then reported failed into its session (not retryable), as an executor would.
  expect(w.publish).toHaveBeenCalledTimes(2);
  const [subject, body, opts] = w.publish.mock.calls[1]!;
  expect(subject).toBe(`${w.prefix}.in.big`);
  expect(JSON.parse(body as string)).toMatchObject({ type: 'TaskFailed', taskId: 't1', dispatchId: 'big.t1.1', retryable: false, error: expect.stringMatching(/refused by NATS/) });
  expect(opts).toMatchObject({ msgID: 'refused.big.t1.1' });
  expect(w.logger.warn).not.toHaveBeenCalled();
  expect(w.effects.published).toBe(0);
}

describe('JetStreamEffects: messages NATS will never take', () => {
  it("gives up an ExecuteTask above the server's max_payload instead of retrying it forever", async () => {
    const w = await effectsOn(isolation());
    w.effects.perform([command('x'.repeat(w.nc.info!.max_payload + 1))]);
    await expectRefusedOnce(w);
  });

  it("gives up an ExecuteTask above the stream's max_msg_size (API error 10054)", async () => {
    const iso = isolation();
    const w = await effectsOn(iso);
    const jsm = await jetstreamManager(w.nc);
    await jsm.streams.update(iso.streamName, { max_msg_size: 4_096 });
    w.effects.perform([command('x'.repeat(8_192))]);
    await expectRefusedOnce(w);
  });

  it('still publishes a command that fits', async () => {
    const w = await effectsOn(isolation());
    w.effects.perform([command('small')]);
    await w.effects.close();
    expect(w.effects.published).toBe(1);
    expect(w.logger.error).not.toHaveBeenCalled();
  });
});
