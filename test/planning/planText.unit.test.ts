import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isValidationError } from '../../src/errors.js';
import type { NodeKind, PlannedTask } from '../../src/protocol/domain.js';
import { PlannedTask as PlannedTaskSchema } from '../../src/protocol/domain.js';
import { DEFAULT_MAX_TASKS, MAX_INPUT_BYTES, planText } from '../../src/planning/index.js';
import { findCodeSpans, findUrls, fnv1a32 } from '../../src/planning/textSpans.js';

/** An expected task: description, kind and attachment URLs (ids are checked separately). */
type Expected = [description: string, kind: NodeKind, urls?: string[]];

const P = (d: string, ...urls: string[]): Expected => [d, 'Processing', urls];
const T = (d: string, ...urls: string[]): Expected => [d, 'ToolCall', urls];
const C = (d: string, ...urls: string[]): Expected => [d, 'Clarification', urls];

const lines = (...ls: string[]) => ls.join('\n');
const sentences = (n: number) => Array.from({ length: n }, (_, i) => `Process record ${i + 1}.`).join(' ');

const cases: Array<[name: string, input: string, expected: Expected[]]> = [
  ['a single sentence', 'Summarize the quarterly report.', [P('Summarize the quarterly report.')]],
  [
    'several sentences with ! and ?',
    'Book the venue! Send the invites. Who is the keynote speaker?',
    [P('Book the venue!'), P('Send the invites.'), C('Who is the keynote speaker?')],
  ],
  [
    'a dash list with a lead-in line',
    lines('Todo for the release:', '- Update the changelog', '- Bump the version', '- Tag the release'),
    [P('Todo for the release:'), P('Update the changelog'), P('Bump the version'), P('Tag the release')],
  ],
  [
    'star, plus and bullet-character lists',
    lines('* Draft the email', '+ Review the draft', '• Send it'),
    [P('Draft the email'), P('Review the draft'), P('Send it')],
  ],
  [
    'numbered lists with . and ) and letters',
    lines('1. Collect the logs', '2) Find the failing request', 'a) Write a fix', '(b) Ship it'),
    [P('Collect the logs'), P('Find the failing request'), P('Write a fix'), P('Ship it')],
  ],
  [
    'nested bullets are their own tasks',
    lines('- Prepare the launch', '  - Write the blog post', '    - Get legal review', '- Launch'),
    [P('Prepare the launch'), P('Write the blog post'), P('Get legal review'), P('Launch')],
  ],
  [
    'a list entry with an indented continuation line',
    lines('- Migrate the users table', '  to the new schema', '- Drop the old table'),
    [P('Migrate the users table to the new schema'), P('Drop the old table')],
  ],
  [
    'a list entry is not split into sentences',
    '- Fix the bug. Then add a regression test.',
    [P('Fix the bug. Then add a regression test.')],
  ],
  [
    'checkboxes are dropped from task lists',
    lines('- [ ] Write tests', '- [x] Fix lint'),
    [P('Write tests'), P('Fix lint')],
  ],
  [
    'a multi-line paragraph joins its lines',
    lines('Update the onboarding guide so that', 'it covers the new SSO flow.', 'Then notify the team.'),
    [P('Update the onboarding guide so that it covers the new SSO flow.'), P('Then notify the team.')],
  ],
  [
    'headings, rules and setext titles are not tasks',
    lines('# Sprint plan', '', 'Plan', '====', '', '## Backend', 'Add caching.', '', '---', '', 'Add metrics.'),
    [P('Add caching.'), P('Add metrics.')],
  ],
  [
    'URLs next to punctuation',
    'Read https://example.com/guide. Compare it with https://example.org/a, https://example.net/b; and "https://example.io/c"!',
    [
      P('Read https://example.com/guide.', 'https://example.com/guide'),
      P(
        'Compare it with https://example.org/a, https://example.net/b; and "https://example.io/c"!',
        'https://example.org/a',
        'https://example.net/b',
        'https://example.io/c',
      ),
    ],
  ],
  [
    'URLs in parentheses and balanced wikipedia parentheses',
    'Use the spec (https://spec.example.com/v2) and (see https://en.wikipedia.org/wiki/Fork_(software)).',
    [
      P(
        'Use the spec (https://spec.example.com/v2) and (see https://en.wikipedia.org/wiki/Fork_(software)).',
        'https://spec.example.com/v2',
        'https://en.wikipedia.org/wiki/Fork_(software)',
      ),
    ],
  ],
  [
    'a URL with a query and fragment stays whole; the dots in it split nothing',
    'Check https://status.example.com/api/v1.2/health?region=eu.west#top before deploying.',
    [
      P(
        'Check https://status.example.com/api/v1.2/health?region=eu.west#top before deploying.',
        'https://status.example.com/api/v1.2/health?region=eu.west#top',
      ),
    ],
  ],
  [
    'a markdown link and a repeated URL give one attachment each',
    'Read [the docs](https://docs.example.com/start) and again https://docs.example.com/start.',
    [
      P(
        'Read [the docs](https://docs.example.com/start) and again https://docs.example.com/start.',
        'https://docs.example.com/start',
      ),
    ],
  ],
  [
    'Fetch <url> is a tool call',
    'Fetch https://api.example.com/v1/users?page=2. Download http://files.example.com/report.pdf',
    [
      T('Fetch https://api.example.com/v1/users?page=2.', 'https://api.example.com/v1/users?page=2'),
      T('Download http://files.example.com/report.pdf', 'http://files.example.com/report.pdf'),
    ],
  ],
  [
    'code spans make a tool call and protect their dots',
    'Run `npm run build`. Then check `dist/index.js` exists. Edit the config file.',
    [T('Run `npm run build`.'), T('Then check `dist/index.js` exists.'), P('Edit the config file.')],
  ],
  [
    'shell commands and tool verbs',
    lines('- git push origin main', '- $ ls -la /var/log', '- Execute the migration', '- Call the billing API', '- make sure the docs build'),
    [
      T('git push origin main'),
      T('$ ls -la /var/log'),
      T('Execute the migration'),
      T('Call the billing API'),
      P('make sure the docs build'),
    ],
  ],
  [
    'capitalized program names in prose are not commands',
    'Docker is installed on the host. Make sure the cache is warm. Then run the smoke tests.',
    [P('Docker is installed on the host.'), P('Make sure the cache is warm.'), T('Then run the smoke tests.')],
  ],
  [
    'a fenced code block is one tool call',
    lines('Set up the project:', '', '```bash', 'npm ci', 'npm test -- --coverage', '```', '', 'Report the results.'),
    [P('Set up the project:'), T('npm ci\nnpm test -- --coverage'), P('Report the results.')],
  ],
  [
    'an indented fence inside a list keeps relative indentation',
    lines('- Apply this patch:', '  ```ts', '  if (ok) {', '    ship();', '  }', '  ```'),
    [P('Apply this patch:'), T('if (ok) {\n  ship();\n}')],
  ],
  [
    'an unterminated fence runs to the end; an empty fence is dropped',
    lines('```', '```', 'Deploy.', '~~~sh', 'kubectl rollout restart deploy/api'),
    [P('Deploy.'), T('kubectl rollout restart deploy/api')],
  ],
  [
    'triple backticks within a line are a code span, not a fence; a bare scheme is no URL',
    lines('```npm test``` before merging', 'Open https://... later'),
    [T('```npm test``` before merging Open https://... later')],
  ],
  [
    'questions and ask-style phrases',
    lines(
      '- Ask the user which region to deploy to',
      '- Confirm whether the API is public',
      '- Which database should we use',
      '- When is the deadline',
      '- When the build is green, deploy',
      '- Can you run `npm test`?',
    ),
    [
      C('Ask the user which region to deploy to'),
      C('Confirm whether the API is public'),
      C('Which database should we use'),
      C('When is the deadline'),
      P('When the build is green, deploy'),
      C('Can you run `npm test`?'),
    ],
  ],
  [
    'decimals, abbreviations and file names do not split',
    'Set the ratio to 3.14, e.g. in config.ts or i.e. the default. Ask Dr. Smith vs. Prof. Jones. Done.',
    [P('Set the ratio to 3.14, e.g. in config.ts or i.e. the default.'), C('Ask Dr. Smith vs. Prof. Jones.'), P('Done.')],
  ],
  [
    'etc. ends a sentence only before a capital letter; ellipses likewise',
    'Clean the logs, caches etc. before the release. Pack the tests, docs etc. Loading... please wait. Stop... Then go.',
    [
      P('Clean the logs, caches etc. before the release.'),
      P('Pack the tests, docs etc.'),
      P('Loading... please wait.'),
      P('Stop...'),
      P('Then go.'),
    ],
  ],
  [
    'a closing quote stays with its sentence',
    'He said "ship it." Then he left. Was that "final?"',
    [P('He said "ship it."'), P('Then he left.'), C('Was that "final?"')],
  ],
  [
    'German with umlauts and z.B.',
    'Prüfe die Datenbank, z.B. die Tabelle „Kunden“. Wann ist der Termin? Frage den Kunden nach dem Budget.',
    [P('Prüfe die Datenbank, z.B. die Tabelle „Kunden“.'), C('Wann ist der Termin?'), C('Frage den Kunden nach dem Budget.')],
  ],
  [
    'French with a space before ?',
    'Préparez le rapport. Quelle est la date limite ? Envoyez-le à l’équipe.',
    [P('Préparez le rapport.'), C('Quelle est la date limite ?'), P('Envoyez-le à l’équipe.')],
  ],
  [
    'Japanese with 。 and ？ and a URL against the text',
    'データをバックアップする。https://example.jp/docsを読む。締め切りはいつですか？確認しますか。',
    [
      P('データをバックアップする。'),
      P('https://example.jp/docsを読む。', 'https://example.jp/docs'),
      C('締め切りはいつですか？'),
      C('確認しますか。'),
    ],
  ],
  [
    'Chinese with 。！？',
    '整理需求文档。马上发布！谁负责测试？',
    [P('整理需求文档。'), P('马上发布！'), C('谁负责测试？')],
  ],
  [
    'Russian with т.е. and и т.д.',
    'Проверь логи, т.е. ошибки и т.д. Затем перезапусти сервер. Уточни у клиента сроки. Когда релиз?',
    [
      P('Проверь логи, т.е. ошибки и т.д.'),
      P('Затем перезапусти сервер.'),
      C('Уточни у клиента сроки.'),
      C('Когда релиз?'),
    ],
  ],
  [
    'emoji are kept; an emoji-only item is dropped',
    lines('- 🚀 Launch the beta', '- 🎉', '- Celebrate 🎉 with the team!'),
    [P('🚀 Launch the beta'), P('Celebrate 🎉 with the team!')],
  ],
  [
    'whitespace is trimmed and collapsed, CRLF and tabs too',
    '  Write   the\t\tsummary  .\r\n\r\n-\u00a0 Send\u3000it ',
    [P('Write the summary .'), P('Send it')],
  ],
  [
    'block quotes are read as text',
    lines('> Rotate the API keys.', '> Revoke the old ones.'),
    [P('Rotate the API keys.'), P('Revoke the old ones.')],
  ],
  [
    'mixed markdown plan',
    lines(
      '# Incident follow-up',
      'The outage on 2024-05-01 lasted 3.5 hours.',
      '',
      '1. Fetch the logs from https://logs.example.com/incident/42.',
      '2. Write the postmortem',
      '   - timeline',
      '   - root cause',
      '3. Should we page the on-call team?',
      '',
      '```sh',
      'curl -s https://api.example.com/health | jq .',
      '```',
    ),
    [
      P('The outage on 2024-05-01 lasted 3.5 hours.'),
      T('Fetch the logs from https://logs.example.com/incident/42.', 'https://logs.example.com/incident/42'),
      P('Write the postmortem'),
      P('timeline'),
      P('root cause'),
      C('Should we page the on-call team?'),
      T('curl -s https://api.example.com/health | jq .', 'https://api.example.com/health'),
    ],
  ],
  [
    '150 generated sentences give 150 tasks',
    sentences(150),
    Array.from({ length: 150 }, (_, i) => P(`Process record ${i + 1}.`)),
  ],
];

/** Checks tasks against the expectation exactly, and ids for their format and position. */
function expectPlan(tasks: PlannedTask[], expected: Expected[], startIndex = 0): void {
  expect(tasks.map((t) => [t.description, t.kind, t.attachments.map((a) => a.url)])).toEqual(
    expected.map(([d, k, urls = []]) => [d, k, urls]),
  );
  tasks.forEach((task, i) => {
    expect(PlannedTaskSchema.parse(task)).toEqual(task);
    expect(task.attachments.every((a) => a.kind === 'url')).toBe(true);
    expect(task.id).toBe(`t${startIndex + i + 1}-${fnv1a32(task.description)}`);
    expect(task.id).toMatch(/^t\d+-[0-9a-f]{8}$/);
  });
}

describe('planText', () => {
  it.each(cases)('%s', (_name, input, expected) => {
    const tasks = planText(input);
    expectPlan(tasks, expected);
    // Deterministic: the same text plans to the same tasks, ids included.
    expect(planText(input)).toEqual(tasks);
  });

  it('gives stable ids that depend on the description and the position only', () => {
    const tasks = planText('Write the spec. Review the spec.');
    expect(tasks.map((t) => t.id)).toEqual(['t1-f7791590', 't2-3c68e691']);
    const later = planText('Write the spec. Review the spec.', { startIndex: 7 });
    expect(later.map((t) => t.id)).toEqual(['t8-f7791590', 't9-3c68e691']);
    // The same description gives the same hash wherever it appears.
    expect(planText('Other step. Review the spec.')[1]?.id).toBe('t2-3c68e691');
  });

  it('gives the same id however an accent is encoded (NFC)', () => {
    const composed = planText('Ouvrir le café.');
    const decomposed = planText('Ouvrir le cafe\u0301.');
    expect(decomposed).toEqual(composed);
  });

  it('hashes with FNV-1a 32-bit over UTF-8', () => {
    expect(fnv1a32('')).toBe('811c9dc5');
    expect(fnv1a32('a')).toBe('e40c292c');
    expect(fnv1a32('foobar')).toBe('bf9cf968');
  });

  it('finds code spans by matching backtick runs', () => {
    expect(findCodeSpans('a ``x ` y`` b `c` d `open')).toEqual([
      { start: 2, end: 11 },
      { start: 14, end: 17 },
    ]);
  });

  it('accepts up to maxTasks tasks', () => {
    expect(planText(sentences(DEFAULT_MAX_TASKS))).toHaveLength(DEFAULT_MAX_TASKS);
    expect(planText('One. Two. Three.', { maxTasks: 3 })).toHaveLength(3);
  });

  it('accepts input of exactly 64 KiB', () => {
    const tasks = planText('a'.repeat(MAX_INPUT_BYTES));
    expect(tasks).toHaveLength(1);
  });
});

describe('planText errors', () => {
  const errors: Array<[name: string, run: () => unknown, message: string]> = [
    ['empty input', () => planText(''), 'input has no plannable text: it is empty or whitespace only'],
    ['whitespace only', () => planText(' \n\t\r\n '), 'input has no plannable text: it is empty or whitespace only'],
    ['only punctuation', () => planText('... !!! ???'), 'input has no plannable text: no task found'],
    ['only a heading', () => planText('# Roadmap\n\n## Q3'), 'input has no plannable text: no task found'],
    ['only emoji and an empty fence', () => planText('🎉🎉\n\n```\n\n```'), 'input has no plannable text: no task found'],
    ['more than 64 KiB', () => planText('a'.repeat(MAX_INPUT_BYTES + 1)), 'input is too long: more than 65536 bytes (64 KiB)'],
    [
      'more than 64 KiB of UTF-8 in fewer characters',
      () => planText('ä'.repeat(MAX_INPUT_BYTES / 2 + 1)),
      'input is too long: more than 65536 bytes (64 KiB)',
    ],
    [
      'more than the default 200 tasks',
      () => planText(sentences(201)),
      'input yields 201 tasks, more than the limit of 200 (maxTasks)',
    ],
    [
      'more than a given maxTasks',
      () => planText('- a\n- b\n- c', { maxTasks: 2 }),
      'input yields 3 tasks, more than the limit of 2 (maxTasks)',
    ],
    ['a negative startIndex', () => planText('Go.', { startIndex: -1 }), 'startIndex must be a non-negative integer, got -1'],
    ['a fractional startIndex', () => planText('Go.', { startIndex: 1.5 }), 'startIndex must be a non-negative integer, got 1.5'],
    ['a zero maxTasks', () => planText('Go.', { maxTasks: 0 }), 'maxTasks must be a positive integer, got 0'],
    ['a non-string input', () => planText(42 as unknown as string), 'input must be a string, got number'],
  ];

  it.each(errors)('rejects %s', (_name, run, message) => {
    let caught: unknown;
    try {
      run();
    } catch (e) {
      caught = e;
    }
    expect(isValidationError(caught)).toBe(true);
    expect((caught as Error).message).toContain(message);
  });
});

describe('URLs ending in punctuation and brackets', () => {
  /** The rule, as it reads: drop trailing punctuation, and a closing bracket while it has more of them than opening ones. */
  const reference = (raw: string): string => {
    const count = (text: string, ch: string) => text.split(ch).length - 1;
    let url = raw;
    for (;;) {
      const last = url.slice(-1);
      const open = ({ ')': '(', ']': '[' } as Record<string, string>)[last];
      if (".,;:!?'\"*".includes(last) && last !== '' ? true : open !== undefined && count(url, last) > count(url, open)) url = url.slice(0, -1);
      else return url;
    }
  };

  it('trims them by the rule, brackets in the URL counted', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z()[\].,;:!?'*]{0,30}$/), (tail) => {
        const url = `https://example.com/${tail}`;
        expect(findUrls(`see ${url} `).map((u) => u.url)).toEqual([reference(url)]);
      }),
    );
  });

  it('plans a body of 60,000 closing brackets after a URL (each one used to recount the whole URL)', () => {
    const [task] = planText(`Fetch https://a${')'.repeat(60_000)}`);
    expect(task!.attachments).toEqual([{ kind: 'url', url: 'https://a' }]);
  });
});
