import { pino } from 'pino';
import { boolFlag, stringFlag, type ParsedArgs } from './args.js';
import { CliError } from './cliErrors.js';
import type { CliContext } from './command.js';
import type { CliIo } from './io.js';

/** The default data directory, relative to the working directory. */
export const DEFAULT_DATA_DIR = './.jetplan';

/** Builds the context of one command run from the global flags. */
export function createContext(args: ParsedArgs, io: CliIo): CliContext {
  const verbose = boolFlag(args, 'verbose');
  const logger = pino(
    { name: 'jetplan', level: verbose ? 'debug' : 'silent' },
    { write: (line: string) => io.stderr(line) },
  );
  return {
    io,
    dataDir: stringFlag(args, 'data-dir') ?? DEFAULT_DATA_DIR,
    json: boolFlag(args, 'json'),
    verbose,
    logger,
    out: (line) => io.stdout(`${line}\n`),
    err: (line) => io.stderr(`${line}\n`),
    natsStore: async () => {
      throw new CliError('--nats is not available in this build', 2);
    },
  };
}
