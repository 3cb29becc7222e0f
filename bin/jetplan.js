#!/usr/bin/env node
import { main } from '../dist/cli/main.js';

let finished = false;
// Nothing left to run while the command still awaits something: it waits for what can no longer
// happen (a bug). Say so in one line and fail, instead of Node's silent exit 13.
process.on('beforeExit', () => {
  if (finished) return;
  process.stderr.write('jetplan: stopped: the command was waiting for something that can no longer happen (a bug: please report it); what is stored is intact\n');
  process.exit(1);
});
const code = await main(process.argv.slice(2));
finished = true;
// The command is done (main awaited everything it started): exit once stdout and stderr are
// flushed, rather than wait for a handle something else keeps open, such as a browser tab
// connected to the inspector bridge of --inspect.
process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
