/** Two deployments (subject prefixes) on one stream: each its own consumer, lease and snapshots. */
import { jetstreamManager } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { isValidationError } from '../../src/errors.js';
import { plannerNames } from '../../src/protocol/deploymentNames.js';
import { has, plannerDurable, publishInput, serverEnv, waitForEvents } from './harness.js';
import { uniqueName } from '../support/natsServer.js';

const { env } = serverEnv();

describe('deployment names (plannerNames)', () => {
  it('keep the names of the default prefix, and give another prefix names of its own', () => {
    expect(plannerNames('JETPLAN', 'jetplan')).toEqual({ durableName: 'jetplan-planner', leaseKey: 'planner.JETPLAN', snapshotBucket: 'jetplan_snapshots' });
    expect(plannerNames('OTHER', 'jetplan')).toEqual({ durableName: 'jetplan-planner', leaseKey: 'planner.OTHER', snapshotBucket: 'jetplan_snapshots_OTHER' });
    const ab = plannerNames('JETPLAN', 'a.b');
    expect(ab.durableName).toMatch(/^jetplan-planner_a_b_[0-9a-f]{8}$/);
    expect(ab.leaseKey).toMatch(/^planner\.JETPLAN_a_b_[0-9a-f]{8}$/);
    expect(ab.snapshotBucket).toMatch(/^jetplan_snapshots_a_b_[0-9a-f]{8}$/);
    // Prefixes that read alike in a name stay apart.
    expect(plannerNames('JETPLAN', 'a_b').durableName).not.toBe(ab.durableName);
  });
});

describe('two prefixes on one stream', () => {
  it('lead and apply their own inputs side by side; a consumer of the other prefix is refused at start', async () => {
    const streamName = uniqueName('JPD');
    const one = { streamName, subjectPrefix: uniqueName('jpone') };
    const two = { streamName, subjectPrefix: `${uniqueName('jptwo')}.nested` };
    const first = await env.service(one);
    const second = await env.service(two);
    await Promise.all([first.whenLeader, second.whenLeader]);
    const nc = await env.connect();
    // The same session id in both: separate sessions (own subjects, own snapshots).
    await publishInput(nc, one, 's1', { type: 'SubmitInput', text: 'Which format do you want?' });
    await publishInput(nc, two, 's1', { type: 'SubmitInput', text: 'Which colour do you want?\nWhich size do you want?' });
    const a = await waitForEvents(await env.store(one), 's1', has('ClarificationRequested'));
    const b = await waitForEvents(await env.store(two), 's1', has('ClarificationRequested'));
    expect(a.find((e) => e.type === 'ClarificationRequested')!.data).toMatchObject({ question: 'Which format do you want?' });
    expect(b.find((e) => e.type === 'ClarificationRequested')!.data).toMatchObject({ question: 'Which colour do you want?' });
    const jsm = await jetstreamManager(nc);
    expect((await jsm.consumers.info(streamName, plannerDurable(one))).config.filter_subject).toBe(`${one.subjectPrefix}.in.>`);
    expect((await jsm.consumers.info(streamName, plannerDurable(two))).config.filter_subject).toBe(`${two.subjectPrefix}.in.>`);

    // Told to use the other deployment's consumer: one clear error, and that consumer is untouched.
    const err = await env.service(two, { durableName: plannerDurable(one) }).catch((e: unknown) => e);
    expect(isValidationError(err)).toBe(true);
    expect((err as Error).message).toBe(
      `consumer ${plannerDurable(one)} on stream ${streamName} takes ${one.subjectPrefix}.in.>, not ${two.subjectPrefix}.in.>: it belongs to another deployment; give this one its own durable name`,
    );
    expect((await jsm.consumers.info(streamName, plannerDurable(one))).config.filter_subject).toBe(`${one.subjectPrefix}.in.>`);
  });
});
