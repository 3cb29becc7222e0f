import { readAll } from '../../lines.js';
import { MAX_INPUT_BYTES } from '../../../protocol/parseInput.js';
import { checkedSessionId, numberFlag, stringFlag } from '../../args.js';
import { UsageError } from '../../cliErrors.js';
import type { Command } from '../../command.js';
import { bpeTokenCounter } from '../../../compaction/index.js';
import { budgetProblem } from '../../../machines/decide.js';
import { planText } from '../../../planning/index.js';
import { PlannerConfig } from '../../../protocol/domain.js';
import { CONNECTION_FLAGS, CONNECTION_USAGE, withClient } from './connection.js';
import { assertOpenOrNew } from './preflight.js';

const USAGE = `Usage: jetplan submit [--session <id>] "text"
Submits text to the planner service (a new session unless --session names one) and prints the
session id. Several arguments are joined with spaces. With "-", or with no text when stdin is
piped, reads the text from stdin.
  --session <id>       the session (default a new id s-<10 chars>)
  --message-id <id>    idempotency key (Nats-Msg-Id); resubmitting with it is a no-op (without
                       --session the session id is derived from it, so a retry names the same
                       session); reusing it for other input is refused within the
                       stream's duplicate window (2 min); after it, the service records
                       the repeat (InputRepeated) and does not apply it
  --max-attempts <n>   a failure at this attempt or later fails the session (default 3)
  --token-budget <n>   context token budget
${CONNECTION_USAGE}`;

/** \`jetplan submit\`: publish a SubmitInput. */
export const submitCommand: Command = {
  summary: 'submit text to a session on NATS (prints the session id)',
  usage: USAGE,
  flags: { ...CONNECTION_FLAGS, session: 'string', 'message-id': 'string', 'max-attempts': 'positive', 'token-budget': 'positive' },
  async run(args, ctx) {
    let text = args.positionals.join(' ');
    if (text === '' || text === '-') {
      if (ctx.io.isTTY && text === '') throw new UsageError('submit needs text (or pipe it on stdin)');
      text = await readAll(ctx.io.stdin, MAX_INPUT_BYTES);
    }
    if (text.trim() === '') throw new UsageError('submit needs non-empty text');
    planText(text); // text the planner would reject (nothing to plan, over 64 KiB): exit 2 now
    const sessionId = stringFlag(args, 'session');
    if (sessionId !== undefined) checkedSessionId(sessionId);
    const messageId = stringFlag(args, 'message-id');
    const maxAttempts = numberFlag(args, 'max-attempts');
    const tokenBudget = numberFlag(args, 'token-budget');
    const config = {
      ...(maxAttempts !== undefined ? { maxAttempts } : {}),
      ...(tokenBudget !== undefined ? { tokenBudget } : {}),
    };
    // The service's own bounds, checked here too: a value it would reject fails now, in one line.
    const checked = PlannerConfig.partial().safeParse(config);
    if (!checked.success) {
      const issue = checked.error.issues[0];
      const flag = issue?.path[0] === 'tokenBudget' ? '--token-budget' : '--max-attempts';
      throw new UsageError(`${flag}: ${issue?.message ?? 'bad value'}`);
    }
    const tooSmall = budgetProblem(PlannerConfig.parse(config), (text) => bpeTokenCounter.count(text));
    if (tooSmall) throw new UsageError(`--token-budget: ${tooSmall}`);
    const published = await withClient(args, ctx, async (client) => {
      if (sessionId) await assertOpenOrNew(client, sessionId, messageId);
      return client.submit(text, {
        ...(sessionId ? { sessionId } : {}),
        ...(messageId ? { messageId } : {}),
        ...(Object.keys(config).length > 0 ? { config } : {}),
      });
    });
    if (ctx.json) ctx.out(JSON.stringify(published));
    else ctx.out(published.sessionId);
    return 0;
  },
};
