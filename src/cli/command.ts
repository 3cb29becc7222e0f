import type { Logger } from 'pino';
import type { EventStore } from '../persistence/eventStore.js';
import type { FlagSpec, ParsedArgs } from './args.js';
import type { CliIo } from './io.js';

/** What every command runs with: IO, the global flags' values, a logger and deployment hooks. */
export interface CliContext {
  io: CliIo;
  /** `--data-dir` (default `./.jetplan`). */
  dataDir: string;
  /** `--json`: machine-readable output. */
  json: boolean;
  verbose: boolean;
  /** Debug logs on stderr with --verbose, silent otherwise. */
  logger: Logger;
  /** Writes one line to stdout. */
  out(line: string): void;
  /** Writes one line to stderr. */
  err(line: string): void;
  /**
   * The event store of a NATS deployment, for `--nats <url>` (replay, sessions). This build has
   * none: it throws "--nats is not available in this build"; the NATS commands replace it.
   */
  natsStore(url: string): Promise<EventStore>;
}

/** One CLI command. `flags` are its own flags, accepted besides the global ones. */
export interface Command {
  summary: string;
  usage: string;
  flags?: FlagSpec;
  /** Runs the command and resolves with the exit code; errors it throws are reported by main. */
  run(args: ParsedArgs, ctx: CliContext): Promise<number>;
}
