import { pino, type Logger } from 'pino';

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** debug level when true; otherwise `level` or 'warn'. */
  verbose?: boolean;
  level?: string;
  /** Where lines go: a file descriptor (default 2, stderr, so stdout stays for results). */
  fd?: number;
}

/** Structured JSON logs; the CLI is quiet (warn) unless --verbose. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.verbose ? 'debug' : (options.level ?? 'warn');
  return pino({ name: 'jetplan', level }, pino.destination({ fd: options.fd ?? 2, sync: true }));
}

/** A logger that writes nothing (tests, benchmarks). */
export const silentLogger: Logger = pino({ level: 'silent' });
