import { pino } from 'pino';
import { boolFlag, stringFlag, type ParsedArgs } from './args.js';
import { CliError, UsageError } from './cliErrors.js';
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
  const dataDir = stringFlag(args, 'data-dir') ?? DEFAULT_DATA_DIR;
  // An empty path would be taken as "no directory": a session run and then found nowhere.
  if (dataDir.trim() === '') throw new UsageError('--data-dir needs a non-empty value');
  return {
    io,
    dataDir,
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
