import { mkdir, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { benchInProcess } from './inProcess.bench.js';
import { benchFileStore } from './fileStore.bench.js';

/**
 * `npm run bench`: measures jetplan and, in the same run, the raw limit it is compared with.
 * Prints a table and writes bench/results/<timestamp>.json and bench/results/latest.json.
 * With NATS_URL set (or --nats <url>) the JetStream benchmarks run too.
 */
async function main(): Promise<void> {
  const natsFlag = process.argv.indexOf('--nats');
  const natsUrl = natsFlag >= 0 ? process.argv[natsFlag + 1] : process.env.NATS_URL;
  const results: Record<string, Record<string, number>> = {};
  results.in_process = await benchInProcess();
  results.file_store = await benchFileStore();
  if (natsUrl) {
    const { benchJetStreamRaw } = await import('./jetstream.bench.js');
    results.jetstream_raw = await benchJetStreamRaw(natsUrl);
    const nats = await import('./natsPlanner.bench.js').catch(() => undefined);
    if (nats) results.jetplan_nats = await nats.benchNatsPlanner(natsUrl, results.jetstream_raw);
  }
  print(results);
  const record = { at: new Date().toISOString(), node: process.version, cpus: cpus().length, results };
  await mkdir('bench/results', { recursive: true });
  const json = `${JSON.stringify(record, null, 2)}\n`;
  await writeFile(`bench/results/${record.at.replace(/[:.]/g, '-')}.json`, json);
  await writeFile('bench/results/latest.json', json);
}

function print(results: Record<string, Record<string, number>>): void {
  const rows: string[][] = [['group', 'metric', 'value']];
  for (const [group, metrics] of Object.entries(results)) {
    for (const [metric, value] of Object.entries(metrics)) rows.push([group, metric, String(value)]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const row of rows) console.log(row.map((c, i) => c.padEnd(widths[i]!)).join('  '));
}

main().catch((err: unknown) => {
  console.error(`bench failed: ${(err as Error).message}`);
  process.exitCode = 1;
});
