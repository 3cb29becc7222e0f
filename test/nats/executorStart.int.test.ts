/** createExecutor failing part-way: nothing it set up before the failure goes on taking work. */
import { AckPolicy, DeliverPolicy } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import type { ExecuteTask } from '../../src/protocol/commands.js';
import type { TaskHandler } from '../../src/executors/report.js';
import type { ExecutorOptions } from '../../src/nats/executor.js';
import { isValidationError } from '../../src/errors.js';
import { executorNames } from '../../src/protocol/deploymentNames.js';
import { executorWorld } from '../support/executorWorld.js';
import { executeTask } from '../support/executeTask.js';
import { natsTestEnv } from '../support/natsTestEnv.js';
import { until } from '../support/waiting.js';

const env = natsTestEnv();

/** A handler that completes every task, and the dispatch ids it ran. */
function recording(): { calls: string[]; handler: TaskHandler } {
  const calls: string[] = [];
  const handler: TaskHandler = async (t: ExecuteTask) => {
    calls.push(t.dispatchId);
    return { type: 'completed', output: 'done' };
  };
  return { calls, handler };
}

describe('createExecutor failing part-way', () => {
  it('refuses a kind it does not know (the CLI spells them in lowercase), making no consumer', async () => {
    const w = await executorWorld(env, ['ToolCall', 'Processing']);
    const kinds = ['toolcall'] as unknown as ['ToolCall'];
    await expect(w.start(recording().handler, { kinds })).rejects.toThrow('executor: unknown kind "toolcall" (ToolCall or Processing)');
    const names: string[] = [];
    for await (const c of w.jsm.consumers.list(w.streamName)) names.push(c.name);
    expect(names).toEqual([]);
  });

  it('refuses bad options with a ValidationError before it makes anything', async () => {
    const w = await executorWorld(env, ['ToolCall']);
    const bad: Array<[Partial<ExecutorOptions>, RegExp]> = [
      [{ kinds: [] as unknown as ['ToolCall'] }, /at least one kind/],
      [{ kinds: 'Processing' as unknown as ['ToolCall'] }, /kinds must be an array/],
      [{ handler: undefined as unknown as ExecutorOptions['handler'] }, /handler must be a function/],
      [{ nc: undefined as unknown as ExecutorOptions['nc'] }, /nc must be a NATS connection/],
      [{ ackWaitMs: 0 }, /ackWaitMs must be an integer from 100 to 715827882, got 0$/],
      [{ ackWaitMs: -5 }, /ackWaitMs must be an integer from 100 to 715827882, got -5$/],
      [{ ackWaitMs: 99.5 }, /ackWaitMs must be an integer from 100 to 715827882, got 99.5$/],
      [{ concurrency: 0 }, /concurrency must be an integer of at least 1, got 0/],
      [{ durablePrefix: 'a.b' }, /durablePrefix must be letters, digits, _ or -, got "a.b"/],
      [{ maxReportBytes: 10 }, /maxReportBytes/],
      [{ staleAfterMs: -1 }, /staleAfterMs must be an integer of 0 or more, got -1$/],
      [{ staleAfterMs: Infinity }, /staleAfterMs must be an integer of 0 or more, got Infinity$/],
      [{ ackWaitMs: 2 ** 40 }, /ackWaitMs must be an integer from 100 to 715827882, got 1099511627776$/],
      [{ ackWaitMs: '500' as unknown as number }, /ackWaitMs must be an integer from 100 to 715827882, got "500"$/],
      [{ inboxTtlMs: -1 }, /inboxTtlMs must be an integer from 100 to 9223372036853, got -1$/],
      [{ inboxTtlMs: 1e13 }, /inboxTtlMs must be an integer from 100 to 9223372036853, got 10000000000000$/],
      [{ inboxBucket: 'bad bucket!' }, /inboxBucket must be a NATS KV bucket name \(\[A-Za-z0-9_-\]\+/],
      [{ claimsBucket: 'a.b' }, /claimsBucket must be a NATS KV bucket name/],
    ];
    for (const [extra, message] of bad) {
      const err = await w.start(recording().handler, extra).catch((e: unknown) => e);
      expect(isValidationError(err), JSON.stringify(extra)).toBe(true);
      expect((err as Error).message).toMatch(message);
    }
    const names: string[] = [];
    for await (const c of w.jsm.consumers.list(w.streamName)) names.push(c.name);
    expect(names).toEqual([]);
  });

  it('names its consumers and buckets after its deployment when the stream or prefix is not the default', async () => {
    const w = await executorWorld(env, ['ToolCall']);
    const executor = await w.start(recording().handler, { inboxBucket: undefined });
    const own = executorNames(w.streamName, w.subjectPrefix);
    expect(executor.inbox.bucket).toBe(own.inboxBucket);
    expect(own.inboxBucket).not.toBe(executorNames('JETPLAN', 'jetplan').inboxBucket);
    const names: string[] = [];
    for await (const c of w.jsm.consumers.list(w.streamName)) names.push(c.name);
    expect(names).toEqual([`${own.durablePrefix}-toolcall`]);
    expect(executorNames('JETPLAN', 'jetplan')).toEqual({ durablePrefix: 'jetplan-exec', inboxBucket: 'jetplan_exec_inbox', claimsBucket: 'jetplan_exec_claims' });
  });

  it('a start refused on its second kind leaves no pull of the first kind running: the executor started next runs the command', async () => {
    const w = await executorWorld(env, ['ToolCall', 'Processing']);
    // The processing consumer exists with another filter: refused, after the toolcall one is made.
    const processing = `${executorNames(w.streamName, w.subjectPrefix).durablePrefix}-processing`;
    await w.jsm.consumers.add(w.streamName, {
      durable_name: processing, filter_subject: `${w.subjectPrefix}.exec.other.>`,
      ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All,
    });
    const refused = recording();
    await expect(w.start(refused.handler)).rejects.toThrow(/filters .*\.exec\.other\.>, expected/);

    await w.jsm.consumers.delete(w.streamName, processing);
    const started = recording();
    await w.start(started.handler);
    // A pull is waiting before the command is published; a loop left by the failed start would
    // have pulled first, and the server hands a message to the oldest pull.
    await until(async () => (await w.consumerInfo('toolcall')).num_waiting > 0, 'a pull on the toolcall consumer');
    await w.js.publish(`${w.subjectPrefix}.exec.toolcall.s1`, JSON.stringify(executeTask()), { msgID: 'd1' });
    await w.reports(1);
    expect(refused.calls).toEqual([]);
    expect(started.calls).toEqual(['s1.t1.1']);
  });
});
