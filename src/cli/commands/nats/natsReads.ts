/**
 * `--nats` for the read-only commands that also read the data dir (replay, sessions): wraps such a
 * command so that it takes the connection flags and its `ctx.natsStore` reads through the NATS
 * client (the JetStream event store of the deployment). The command itself is unchanged.
 */
import { createClient } from '../../../nats/client.js';
import type { EventStore } from '../../../persistence/eventStore.js';
import { stringFlag } from '../../args.js';
import type { Command } from '../../command.js';
import { connectFromArgs, CONNECTION_FLAGS, streamOptionsFrom } from './connection.js';

const NATS_USAGE = `With --nats (or any connection flag), reads the NATS deployment instead:
  --user/--pass, --token, --creds, --tls-ca/--tls-cert/--tls-key, --stream <name>, --prefix <p>`;

export function withNatsReads(command: Command): Command {
  return {
    ...command,
    usage: `${command.usage}\n${NATS_USAGE}`,
    flags: { ...command.flags, ...CONNECTION_FLAGS },
    async run(args, ctx) {
      const usesNats = Object.keys(CONNECTION_FLAGS).some((flag) => args.flags[flag] !== undefined);
      if (!usesNats) return command.run(args, ctx);
      // The wrapped command reads `--nats` to decide; make sure it is set (NATS_URL or the default).
      const flags = { ...args.flags, nats: stringFlag(args, 'nats') ?? ctx.io.env['NATS_URL'] ?? 'nats://127.0.0.1:4222' };
      const natsStore = async (): Promise<EventStore> => {
        const nc = await connectFromArgs(args, ctx);
        const client = createClient(nc, streamOptionsFrom(args));
        try {
          const store = await client.store();
          return {
            appendToStream: store.appendToStream.bind(store),
            readStream: store.readStream.bind(store),
            listStreams: store.listStreams.bind(store),
            readAll: store.readAll.bind(store),
            async close() {
              await client.close().catch(() => undefined);
              await nc.close().catch(() => undefined);
            },
          };
        } catch (err) {
          await nc.close().catch(() => undefined);
          throw err;
        }
      };
      return command.run({ ...args, flags }, { ...ctx, natsStore });
    },
  };
}
