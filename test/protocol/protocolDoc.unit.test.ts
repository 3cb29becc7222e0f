import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DomainEvent, EVENT_TYPES } from '../../src/protocol/events.js';
import { ExecuteTask } from '../../src/protocol/commands.js';
import { SessionInput } from '../../src/protocol/inputs.js';

const doc = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');
const examples = [...doc.matchAll(/```json\n(.*?)\n```/gs)].map((m) => JSON.parse(m[1]!) as { type: string });

describe('docs/protocol.md', () => {
  it('has an example of every input, event and command, and each one is valid', () => {
    const seen = new Set<string>();
    for (const example of examples) {
      if ('sessionId' in example && 'data' in example) DomainEvent.parse(example);
      else if (example.type === 'ExecuteTask') ExecuteTask.parse(example);
      else SessionInput.parse(example);
      seen.add(`${'data' in example ? 'event' : 'message'}:${example.type}`);
    }
    for (const type of EVENT_TYPES) expect(seen, `event ${type}`).toContain(`event:${type}`);
    for (const option of SessionInput.options) {
      const type = option.shape.type.value;
      if (type !== 'RetryDue') expect(seen, `input ${type}`).toContain(`message:${type}`);
    }
    expect(seen).toContain('message:ExecuteTask');
  });

  it('lists every event type in the data table', () => {
    for (const type of EVENT_TYPES) expect(doc).toContain(`| \`${type}\` |`);
  });
});
