import type { NodeKind } from '../protocol/domain.js';
import type { ItemSource } from './splitItems.js';
import { findCodeSpans } from './textSpans.js';

// A question mark at the end, before any closing quotes or brackets: ASCII, full-width, Arabic.
const ENDS_WITH_QUESTION = /[?？؟][\s"'”’»)\]」』）】]*$/u;
// Polite Japanese questions often end in か。 rather than ？.
const JAPANESE_QUESTION = /(?:ですか|ますか|でしょうか)[。]?$/u;
// Asking someone: "Ask the user…", "Clarify…", "Confirm whether…", and a few non-English forms.
const ASK_PHRASES = [
  'ask', 'clarify', 'confirm\\s+(?:whether|if|with)', 'check\\s+with', 'find\\s+out\\s+(?:whether|if)',
  'frag(?:e|en)?', 'kläre', 'klären', 'demande[rz]?', 'спроси(?:те)?', 'уточни(?:те)?',
];
// "Which…"/"Whether…" are questions; other wh-words only with an auxiliary ("When is…", not
// "When the build is green, deploy").
const WH_AUX = 'is|are|was|were|do|does|did|should|shall|can|could|would|will|must|might|may|many|much|long|often';
const WH_PHRASES = ['which', 'whether', `(?:what|who|whom|whose|why|where|when|how)\\s+(?:${WH_AUX})`];
// `(?![\p{L}\p{N}])` is a word end that, unlike `\b`, also works after Cyrillic or umlauts.
const ASKS = new RegExp(`^(?:please\\s+)?(?:${ASK_PHRASES.join('|')})(?![\\p{L}\\p{N}])`, 'iu');
const WH_QUESTION = new RegExp(`^(?:${WH_PHRASES.join('|')})(?![\\p{L}\\p{N}])`, 'iu');

// Words that lead into a step without changing it: "Then run…", "Please call…".
const LEAD_IN = /^(?:(?:then|next|first|finally|now|please|and|also|afterwards)[,:]?\s+)+/iu;
// Imperatives that mean "use a tool", matched in any case.
const TOOL_VERBS = new Set(['run', 're-run', 'rerun', 'call', 'fetch', 'download', 'execute', 'invoke']);
// Programs that start a shell command. Matched case-sensitively (lowercase, as typed in a shell),
// so the sentence "Docker is installed" or "Make sure…" is not mistaken for a command.
const PROGRAMS = new Set([
  'npm', 'npx', 'pnpm', 'yarn', 'git', 'curl', 'wget', 'ls', 'cat', 'grep', 'docker', 'kubectl', 'node',
  'python', 'python3', 'pip', 'make', 'cd', 'mkdir', 'rm', 'cp', 'mv', 'tsc', 'tsx', 'go', 'cargo',
  'helm', 'terraform', 'aws', 'gcloud', 'psql', 'ssh', 'scp', 'sed', 'awk', 'jq', 'tar', 'echo', 'bash',
  'sh', 'nats', 'vitest', 'run',
]);
// Programs whose names are also English words: after one of these they are prose ("make sure",
// "go to the docs", "cat the file"), not a command.
const PROSE_NEXT = new Set(['sure', 'the', 'a', 'an', 'it', 'that', 'this', 'to', 'up', 'with', 'on', 'is', 'are']);

/**
 * The kind of work an item describes. A fenced code block is a `ToolCall`; a question (a trailing
 * `?`/`？`, or a phrase such as "Ask the user…", "Confirm whether…", "Which…") is a
 * `Clarification`, checked first because a question about a command still needs a human; a code
 * span, a shell command or a tool imperative ("Run…", "Fetch…") is a `ToolCall`; the rest is
 * `Processing`.
 */
export function classify(description: string, source: ItemSource): NodeKind {
  if (source === 'code') return 'ToolCall';
  if (isQuestion(description)) return 'Clarification';
  if (isCommand(description)) return 'ToolCall';
  return 'Processing';
}

function isQuestion(text: string): boolean {
  return (
    ENDS_WITH_QUESTION.test(text) || JAPANESE_QUESTION.test(text) || ASKS.test(text) || WH_QUESTION.test(text)
  );
}

function isCommand(text: string): boolean {
  if (findCodeSpans(text).length > 0) return true;
  // A shell prompt: "$ npm test".
  if (/^\$\s+\S/u.test(text)) return true;
  const [first = '', second = ''] = text.replace(LEAD_IN, '').split(/\s+/u);
  if (TOOL_VERBS.has(first.toLowerCase().replace(/[,:]$/u, ''))) return true;
  return PROGRAMS.has(first) && !PROSE_NEXT.has(second.toLowerCase());
}
