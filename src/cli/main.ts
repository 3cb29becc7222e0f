import { GLOBAL_FLAGS, parseArgs, splitCommand } from './args.js';
import { describeError, UsageError } from './cliErrors.js';
import { commands } from './commands/index.js';
import { helpText } from './commands/help.js';
import { createContext } from './context.js';
import { processIo, type CliIo } from './io.js';

/**
 * The jetplan CLI: runs the command named in `argv` (without `node` and the script) and resolves
 * with the exit code: 0 success, 1 failure, 2 usage error, 130 interrupted (143 by SIGTERM). Never throws: every
 * error becomes one line on stderr, without a stack trace.
 */
export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  try {
    const { command, rest } = splitCommand(argv);
    if (command === undefined) {
      if (parseArgs(undefined, rest, GLOBAL_FLAGS).flags.help !== true) throw new UsageError('missing command');
      io.stdout(helpText(commands));
      return 0;
    }
    const cmd = Object.hasOwn(commands, command) ? commands[command] : undefined;
    if (!cmd) throw new UsageError(`unknown command ${command}`);
    const args = parseArgs(command, rest, { ...GLOBAL_FLAGS, ...cmd.flags });
    if (args.flags.help === true) {
      io.stdout(`${cmd.usage}\n`);
      return 0;
    }
    return await cmd.run(args, createContext(args, io));
  } catch (error) {
    const { line, code } = describeError(error);
    io.stderr(`${line}\n`);
    return code;
  }
}
