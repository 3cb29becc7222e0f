import type { Command } from '../command.js';
import { demoCommand } from './demo.js';
import { helpCommand } from './help.js';
import { replayCommand } from './replay.js';
import { resumeCommand } from './resume.js';
import { sessionsCommand } from './sessions.js';
import { answerCommand } from './nats/answer.js';
import { cancelCommand } from './nats/cancel.js';
import { executorCommand } from './nats/executor.js';
import { purgeCommand } from './purge.js';
import { withNatsReads } from './nats/natsReads.js';
import { serveCommand } from './nats/serve.js';
import { statusCommand } from './nats/status.js';
import { submitCommand } from './nats/submit.js';
import { watchCommand } from './nats/watch.js';

/** Every CLI command by name; other deployments add their entries here. */
export const commands: Record<string, Command> = {
  demo: demoCommand,
  resume: resumeCommand,
  replay: withNatsReads(replayCommand),
  sessions: withNatsReads(sessionsCommand),
  serve: serveCommand,
  executor: executorCommand,
  submit: submitCommand,
  answer: answerCommand,
  status: statusCommand,
  watch: watchCommand,
  cancel: cancelCommand,
  purge: purgeCommand,
  help: helpCommand,
};
