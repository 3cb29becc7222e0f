import { pino, type Logger } from 'pino';

/** A logger that writes nothing: the default of the library's runtimes (tests, benchmarks). */
export const silentLogger: Logger = pino({ level: 'silent' });
