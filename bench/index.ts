/**
 * `npm run bench`: (1) for each real help center in ../shared/data, sync throughput, query
 * latency, peak RSS and top-1/top-5 hit rate of supportbot next to its peers, each cell in its
 * own process; (2) the Slack HTTP path under load (`bench/chat-slack.ts`); (3) BM25 vs vector vs
 * hybrid in the SQLite store (`bench/vector.ts`); (4) llama-cpp generation with LoRA adapters next to the
 * extractive generator (`bench/generate.ts`); (5) LoRA training tokens/s per tfjs backend
 * (`bench/train.ts`); (6) sync throughput into SQLite and through the Weaviate path (against the
 * local fake server, labelled) and the Zendesk source with 2,000 articles (`bench/sync-production.ts`).
 * Each part prints its table and the machine.
 */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { PACKAGE_ROOT } from '../core/config.ts';
import { HELPCENTER_NAMES, sharedHelpcentersDir } from '../evals/helpcenters.ts';

const tsx = path.join(PACKAGE_ROOT, 'node_modules', '.bin', 'tsx');
if (sharedHelpcentersDir()) retrievalBench();
else
  console.log(
    '../shared/data/helpcenters not found: skipping the retrieval bench (it reads the staged real help centers in place).',
  );
for (const part of ['chat-slack.ts', 'vector.ts', 'generate.ts', 'train.ts', 'sync-production.ts']) {
  console.log(`\n== bench/${part}`);
  execFileSync(tsx, [path.join(PACKAGE_ROOT, 'bench', part)], { stdio: 'inherit' });
}

function retrievalBench(): void {
  const systems = ['supportbot', 'minisearch', 'langchain-split'];
  type Row = Record<string, number | string>;
  const rows: Row[] = [];
  for (const hc of HELPCENTER_NAMES) {
    for (const system of systems) {
      const out = execFileSync(tsx, [path.join(PACKAGE_ROOT, 'bench', 'run-one.ts'), hc, system], {
        encoding: 'utf8',
      });
      rows.push(JSON.parse(out.trim().split('\n').pop() as string) as Row);
      process.stderr.write('.');
    }
  }
  process.stderr.write('\n');

  const cpu = os.cpus()[0]?.model ?? 'unknown cpu';
  console.log(
    `machine: ${cpu}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ${os.platform()} ${os.release()}`,
  );
  console.log(
    'systems: supportbot = our chunker + SQLite FTS5 BM25; minisearch = our chunks in MiniSearch BM25; langchain-split = RecursiveCharacterTextSplitter chunks in our store\n',
  );
  const cols: [string, (r: Row) => string][] = [
    ['help center', (r) => String(r.helpcenter)],
    ['system', (r) => String(r.system)],
    ['articles', (r) => String(r.articles)],
    ['chunks', (r) => String(r.chunks)],
    ['articles/s', (r) => Number(r.articlesPerSecond).toFixed(0)],
    ['chunks/s', (r) => Number(r.chunksPerSecond).toFixed(0)],
    ['queries', (r) => String(r.queries)],
    ['p50 ms', (r) => Number(r.p50Ms).toFixed(2)],
    ['p95 ms', (r) => Number(r.p95Ms).toFixed(2)],
    ['top-1', (r) => `${(Number(r.top1) * 100).toFixed(0)}%`],
    ['top-5', (r) => `${(Number(r.top5) * 100).toFixed(0)}%`],
    ['peak RSS MB', (r) => Number(r.peakRssMb).toFixed(0)],
  ];
  const widths = cols.map(([h, f]) => Math.max(h.length, ...rows.map((r) => f(r).length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`;
  console.log(line(cols.map(([h]) => h)));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of rows) console.log(line(cols.map(([, f]) => f(r))));
}
