/** What startPlannerService refuses at start: numeric options out of range, before it creates anything. */
import { jetstreamManager } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/observability/logger.js';
import { startPlannerService, type PlannerServiceOptions } from '../../src/service/plannerService.js';
import { uniqueName } from '../support/natsServer.js';
import { isolation, serverEnv } from './harness.js';

const { env } = serverEnv();

const refused: Array<[Partial<PlannerServiceOptions>, string]> = [
  // -1 used to start and then reject every input as "oversized body (52 bytes > -1)".
  [{ maxInputBytes: -1 }, 'maxInputBytes must be a positive integer, got -1'],
  [{ maxInputBytes: 0 }, 'maxInputBytes must be a positive integer, got 0'],
  [{ maxInputBytes: 1.5 }, 'maxInputBytes must be a positive integer, got 1.5'],
  [{ leaseTtlMs: 0 }, 'leaseTtlMs must be an integer from 300 to 2147483647, got 0'],
  [{ leaseTtlMs: 299 }, 'leaseTtlMs must be an integer from 300 to 2147483647, got 299'],
  [{ leaseTtlMs: Number.NaN }, 'leaseTtlMs must be an integer from 300 to 2147483647, got NaN'],
  [{ leaseTtlMs: 2 ** 31 }, 'leaseTtlMs must be an integer from 300 to 2147483647, got 2147483648'],
  [{ httpPort: -1 }, 'httpPort must be an integer from 0 to 65535, got -1'],
  [{ httpPort: 65_536 }, 'httpPort must be an integer from 0 to 65535, got 65536'],
  [{ httpPort: '8080' as unknown as number }, 'httpPort must be an integer from 0 to 65535, got "8080"'],
  // An empty prefix was taken for the default: the service widened another deployment's stream.
  [{ subjectPrefix: '' }, `invalid subjectPrefix "": dot-separated NATS subject tokens, none empty, without '*', '>' or spaces`],
  [{ subjectPrefix: 'a..b' }, `invalid subjectPrefix "a..b": dot-separated NATS subject tokens, none empty, without '*', '>' or spaces`],
  // nats.js's own refusal was a plain Error (exit 1, no hint), after the stream was made.
  [{ leaseBucket: 'x y' }, 'leaseBucket must be a NATS KV bucket name ([A-Za-z0-9_-]+: letters, digits, _ or -), got "x y"'],
  [{ snapshotBucket: 'a.b' }, 'snapshotBucket must be a NATS KV bucket name ([A-Za-z0-9_-]+: letters, digits, _ or -), got "a.b"'],
];

/** Every stream on the server: the event stream and the KV buckets (`KV_<bucket>`) are streams. */
async function streamNames(): Promise<string[]> {
  const jsm = await jetstreamManager(await env.connect());
  const names: string[] = [];
  for await (const name of jsm.streams.names()) names.push(name);
  return names.sort();
}

describe('planner service options', () => {
  it.each(refused)('refuses %o with a ValidationError, creating nothing', async (bad, message) => {
    const nc = await env.connect();
    const before = await streamNames();
    const options = { nc, logger: silentLogger, ...isolation(), leaseBucket: uniqueName('lease'), snapshotBucket: uniqueName('snap'), ...bad };
    await expect(startPlannerService(options)).rejects.toMatchObject({ name: 'ValidationError', message });
    expect(await streamNames()).toEqual(before);
  });

  it('starts and leads with the smallest lease TTL, an ephemeral port and a 1-byte input limit', async () => {
    const service = await env.service(isolation(), { leaseTtlMs: 300, httpPort: 0, maxInputBytes: 1 });
    await service.whenLeader;
    expect(service.httpPort).toBeGreaterThan(0);
  });
});
