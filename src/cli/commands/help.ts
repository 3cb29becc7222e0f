import type { Command } from '../command.js';
import { UsageError } from '../cliErrors.js';
import { commands } from './index.js';

const GLOBAL_HELP = `Global flags:
  --data-dir <dir>   where sessions are stored (default ./.jetplan)
  --json             machine-readable output
  --verbose          debug logs (JSON) on stderr
  --help, -h         usage of a command`;

/** The full usage text: every command of the registry and the global flags. */
export function helpText(registry: Record<string, Command>): string {
  const width = Math.max(...Object.keys(registry).map((n) => n.length));
  const lines = Object.entries(registry).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `Usage: jetplan <command> [flags]\n\nCommands:\n${lines.join('\n')}\n\n${GLOBAL_HELP}\n`;
}

/** `jetplan help [command]`: the usage of everything, or of one command. */
export const helpCommand: Command = {
  summary: 'show usage',
  usage: 'Usage: jetplan help [command]',
  async run(args, ctx) {
    const name = args.positionals[0];
    if (name === undefined) {
      ctx.io.stdout(helpText(commands));
      return 0;
    }
    const cmd = Object.hasOwn(commands, name) ? commands[name] : undefined;
    if (!cmd) throw new UsageError(`unknown command ${name}`);
    ctx.out(cmd.usage);
    return 0;
  },
};
