import type { Readable } from 'node:stream';

/** The signals the CLI turns into a clean shutdown. */
export type CliSignal = 'SIGINT' | 'SIGTERM' | 'SIGHUP';

const SIGNAL_NUMBERS: Record<CliSignal, number> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };

/**
 * The exit code of a command a signal stopped: 128 + the signal's number, as shells report it
 * (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP: the terminal closed), so a supervisor can tell
 * them apart.
 */
export function interruptedExitCode(signal: CliSignal): number {
  return 128 + SIGNAL_NUMBERS[signal];
}

/**
 * Everything the CLI touches outside itself, injected so tests can run commands in-process:
 * output writers, stdin, whether stdin is a terminal, the environment and a signal hook.
 */
export interface CliIo {
  /** Writes text to stdout as is (callers add the newline). */
  stdout(text: string): void;
  /** Writes text to stderr as is (callers add the newline). */
  stderr(text: string): void;
  /** Where answers and piped text come from. */
  stdin: Readable;
  /** Whether stdin is an interactive terminal (answers are then asked for with a prompt). */
  isTTY: boolean;
  env: Record<string, string | undefined>;
  /** Calls `handler` on Ctrl-C / SIGTERM until the returned function is called. */
  onSignal(handler: (signal: CliSignal) => void): () => void;
}

/**
 * A writer to `stream` that goes quiet once the stream fails (EPIPE: the reader went away, as with
 * `| head`): the rest of the output is dropped and the command itself goes on, instead of an
 * unhandled 'error' event crashing it with a stack trace mid-session.
 */
export function quietWriter(stream: NodeJS.WritableStream): (text: string) => void {
  let broken = false;
  stream.on('error', () => {
    broken = true;
  });
  return (text) => {
    if (!broken) stream.write(text);
  };
}

/** The real process: stdout, stderr, stdin, process.env and SIGINT/SIGTERM. */
export function processIo(): CliIo {
  return {
    stdout: quietWriter(process.stdout),
    stderr: quietWriter(process.stderr),
    stdin: process.stdin,
    isTTY: process.stdin.isTTY === true,
    env: process.env,
    onSignal(handler) {
      const listener = (signal: NodeJS.Signals) => handler(signal as CliSignal);
      process.on('SIGINT', listener);
      process.on('SIGTERM', listener);
      // The terminal closed: stop cleanly, as for Ctrl-C. (Node resets SIGHUP to its default at
      // start, so `nohup` never kept it running: use setsid or a supervisor to outlive a logout.)
      process.on('SIGHUP', listener);
      return () => {
        process.off('SIGINT', listener);
        process.off('SIGTERM', listener);
        process.off('SIGHUP', listener);
      };
    },
  };
}
