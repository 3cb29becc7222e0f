#!/usr/bin/env node
import { main } from '../dist/cli/main.js';

const code = await main(process.argv.slice(2));
// The command is done (main awaited everything it started): exit once stdout and stderr are
// flushed, rather than wait for a handle something else keeps open, such as a browser tab
// connected to the inspector bridge of --inspect.
process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
