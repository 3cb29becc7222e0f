/**
 * Regenerates the state diagrams in visualizations/ from the machine definitions: `npm run viz`.
 * test/machines/visualizations.unit.test.ts fails when the committed files are stale.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderVisualizations } from '../src/machines/mermaid.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'visualizations');
mkdirSync(dir, { recursive: true });
for (const [file, text] of Object.entries(renderVisualizations())) {
  writeFileSync(join(dir, file), text);
  console.log(`wrote visualizations/${file}`);
}
