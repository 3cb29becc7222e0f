import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectionOptions, connectNats, isNatsConnectError, redactUrl } from '../../src/nats/connect.js';
import { startNatsServer, type NatsServerHandle } from '../support/natsServer.js';

let server: NatsServerHandle;
beforeAll(async () => {
  server = await startNatsServer({ args: ['--user', 'ann', '--pass', 'p@ss/w:rd'] });
});
afterAll(async () => {
  await server?.cleanup();
});

const withCredentials = (userinfo: string) => server.url.replace('nats://', `nats://${userinfo}@`);

describe('credentials in the NATS URL', () => {
  it('are used (percent-decoded) and kept out of the server list', () => {
    const o = connectionOptions({ url: 'nats://ann:p%40ss@h:1, nats://h2:2' });
    expect(o).toMatchObject({ servers: ['nats://h:1', 'nats://h2:2'], user: 'ann', pass: 'p@ss' });
    expect(connectionOptions({ url: 'tok3n@h:1' })).toMatchObject({ servers: ['h:1'], token: 'tok3n' });
    // Options given as such win over the URL's.
    expect(connectionOptions({ url: 'nats://ann:x@h:1', user: 'bob', pass: 'y' })).toMatchObject({ user: 'bob', pass: 'y' });
    // A token or password as it comes (base64 has / + =; an @ left unencoded): the host follows the last @.
    expect(connectionOptions({ url: 'nats://s3cr3t/tok+en=@h:1' })).toMatchObject({ servers: ['nats://h:1'], token: 's3cr3t/tok+en=' });
    expect(connectionOptions({ url: 'nats://ann:p@ss@h:1' })).toMatchObject({ servers: ['nats://h:1'], user: 'ann', pass: 'p@ss' });
    expect(redactUrl('nats://s3cr3t/tok+en=@h:1, nats://ann:p@ss@h:2')).toBe('nats://***@h:1,nats://***@h:2');
  });

  it('connect to a server that requires them', async () => {
    const nc = await connectNats({ url: withCredentials('ann:p%40ss%2Fw%3Ard') });
    await nc.flush();
    await nc.close();
  });

  it('never appear in an error: the password is replaced by ***', async () => {
    const err = await connectNats({ url: withCredentials('ann:wrong-secret'), timeoutMs: 2_000 }).catch((e: unknown) => e);
    expect(isNatsConnectError(err)).toBe(true);
    expect((err as Error).message).toBe(`cannot connect to NATS at ${withCredentials('***')}: authorization failed (check --user/--pass, --token or --creds)`);
    expect(redactUrl('nats://a:b@h:1,nats://h:2')).toBe('nats://***@h:1,nats://h:2');
  });
});

describe('a tls:// server URL', () => {
  it('asks for TLS, so a server without it is refused rather than sent the credentials in plain text', async () => {
    expect(connectionOptions({ url: 'tls://ann:p@h:1' })).toMatchObject({ servers: ['tls://h:1'], tls: {} });
    expect(connectionOptions({ url: 'nats://h:1' }).tls).toBeUndefined();
    const url = withCredentials('ann:p%40ss%2Fw%3Ard').replace('nats://', 'tls://');
    const err = await connectNats({ url, timeoutMs: 2_000 }).catch((e: unknown) => e);
    expect(isNatsConnectError(err)).toBe(true);
    expect((err as Error).message).not.toContain('p@ss');
  });
});
