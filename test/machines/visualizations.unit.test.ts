import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createMachine, type AnyStateMachine, type AnyStateNode } from 'xstate';
import { renderVisualizations, toMermaid } from '../../src/machines/mermaid.js';
import { sessionMachine } from '../../src/machines/sessionMachine.js';
import { taskMachine } from '../../src/machines/taskMachine.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), '../../visualizations');

const stateKeys = (node: AnyStateNode): string[] =>
  Object.values(node.states as Record<string, AnyStateNode>).flatMap((child) => [child.key, ...stateKeys(child)]);

const transitionCount = (node: AnyStateNode): number =>
  [...node.transitions.values()].flat().length +
  Object.values(node.states as Record<string, AnyStateNode>).reduce((n, c) => n + transitionCount(c), 0);

describe('visualizations', () => {
  it('are up to date with the machine definitions', () => {
    for (const [file, expected] of Object.entries(renderVisualizations())) {
      let committed: string;
      try {
        committed = readFileSync(join(dir, file), 'utf8');
      } catch {
        committed = '';
      }
      expect(committed, `visualizations are stale: run npm run viz (${file})`).toBe(expected);
    }
  });

  it.each<[string, AnyStateMachine]>([
    ['taskMachine', taskMachine],
    ['sessionMachine', sessionMachine],
  ])('%s: every state and every transition appears', (_, machine) => {
    const text = toMermaid(machine);
    expect(text.startsWith('stateDiagram-v2\n')).toBe(true);
    for (const key of stateKeys(machine.root)) expect(text).toMatch(new RegExp(`\\b${key}\\b`));
    const arrows = text.split('\n').filter((l) => l.includes(' --> ') && !l.includes('[*]')).length;
    const rootOwn = [...machine.root.transitions.values()].flat().length;
    expect(arrows).toBe(transitionCount(machine.root) - rootOwn);
    for (const type of [...machine.root.transitions.keys()]) expect(text).toContain(type);
  });

  it('renders guards, compound states, terminal notes and root transitions', () => {
    const session = toMermaid(sessionMachine);
    expect(session).toContain('[*] --> idle');
    expect(session).toMatch(/state active \{\n\s+\[\*\] --> ready/);
    expect(session).toContain('active --> completed: SessionCompleted');
    expect(session).toContain('note right of cancelled: terminal');
    expect(session).toContain('In every state: InputRejected, ReportIgnored');
    const task = toMermaid(taskMachine);
    expect(task).toContain('Running --> Failed: TaskFailed [isFinalFailure]');
    expect(task).toContain('Running --> Planned: TaskFailed\n');
    expect(task).toContain('Planned --> Planned: TaskRetryScheduled (internal)');
  });

  it('names repeated keys by path and renders inline and object guards', () => {
    const machine = createMachine({
      id: 'm',
      initial: 'a',
      states: {
        a: {
          initial: 'x',
          states: { x: { on: { GO: { target: 'y', guard: function isReady() { return true; } } } }, y: {} },
          on: { NEXT: { target: 'b', guard: { type: 'named' } }, ANON: { target: 'b', guard: [() => true][0]! } },
        },
        b: { initial: 'x', states: { x: { tags: ['terminal'] } } },
      },
    });
    const text = toMermaid(machine);
    expect(text).toContain('a_x --> y: GO [isReady]');
    expect(text).toContain('a --> b: NEXT [named]');
    expect(text).toContain('a --> b: ANON [inline guard]');
    expect(text).toContain('[*] --> b_x');
    expect(text).toContain('note right of b_x: terminal');
    expect(text).not.toContain('In every state');
  });
});
