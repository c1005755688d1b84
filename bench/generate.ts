/**
 * Generation bench: the llama-cpp generator (node-llama-cpp, CPU) on a tiny random Llama GGUF with
 * two LoRA adapters written at run time, next to the extractive generator it would replace, over
 * the example help center's retrieved chunks. Reports time to first token (cold, warm, first use
 * of an adapter), tokens/s, and whole-answer latency per request. Tiny-model figures measure the
 * serving overhead (contexts, adapter pools, prompt assembly), not a real model's speed.
 *   npx tsx bench/generate.ts [requests=20]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_SOURCE, folderSourceSchema } from '../core/config.ts';
import type { GenerateRequest, Generator } from '../core/generator.ts';
import { ExtractiveGenerator } from '../core/generators/extractive.ts';
import { LlamaCppGenerator } from '../core/generators/llama-cpp.ts';
import { SqliteKnowledgeStore } from '../core/knowledge-store/sqlite.ts';
import { cl100kTokenizer } from '../core/tokenizer.ts';
import { percentile } from '../evals/metrics.ts';
import { createFolderSource } from '../sync/sources/folder.ts';
import { syncSource } from '../sync/sync.ts';
import { randomLoraPairs, writeTinyLlama, writeTinyLora } from '../test/fixtures/gguf/tiny-llama.ts';

const requests = Number(process.argv[2] ?? 20);
const dir = mkdtempSync(path.join(os.tmpdir(), 'supportbot-bench-gen-'));
const store = SqliteKnowledgeStore.open(path.join(dir, 'kb.sqlite'));
await syncSource(createFolderSource(folderSourceSchema.parse(DEFAULT_SOURCE)), store, {
  chunking: { maxTokens: 300, overlapTokens: 30, tokenizer: cl100kTokenizer },
});
const questions = [
  'How do I reset my password?',
  'Can I get a refund on an annual plan?',
  'How do I connect my bank account?',
  'How do I send an invoice?',
  'How do I turn on two-factor authentication?',
];
const requestsFor = async (): Promise<GenerateRequest[]> =>
  Promise.all(
    Array.from({ length: requests }, async (_, i) => {
      const question = questions[i % questions.length] as string;
      return { question, history: [], contexts: await store.search(question, { k: 5 }), maxChars: 900 };
    }),
  );

// BENCH_GGUF (+ BENCH_LORA_A / BENCH_LORA_B) measure a real model and adapters instead.
const targets = ['blk.0.attn_q.weight', 'blk.0.attn_v.weight', 'blk.1.attn_q.weight', 'blk.1.attn_v.weight'];
const modelPath = process.env.BENCH_GGUF ?? (await writeTinyLlama(dir, { file: 'base.gguf' }));
const loraA =
  process.env.BENCH_LORA_A ?? (await writeTinyLora(dir, 'a.gguf', { pairs: randomLoraPairs(1, targets) }));
const loraB =
  process.env.BENCH_LORA_B ?? (await writeTinyLora(dir, 'b.gguf', { pairs: randomLoraPairs(2, targets) }));
const modelName = process.env.BENCH_GGUF
  ? path.basename(process.env.BENCH_GGUF)
  : 'tiny random Llama GGUF (2 layers, 64 dims)';
// One thread: on small CPUs node-llama-cpp's default thread count is many times slower (see
// ../shared/notes/dependencies.md); BENCH_THREADS overrides.
const threads = Number(process.env.BENCH_THREADS ?? 1);
const loadStart = performance.now();
const llama = await LlamaCppGenerator.load({
  modelPath,
  adapters: { a: { path: loraA, scale: 1 }, b: { path: loraB, scale: 1 } },
  threads,
  maxTokens: 64,
});
const loadMs = performance.now() - loadStart;

type Row = { name: string; p50: number; p95: number; ttftP50?: number; tokPerS?: number; note?: string };
const rows: Row[] = [];
async function measure(name: string, gen: Generator, adapter?: string | null, note?: string) {
  const latencies: number[] = [];
  const ttfts: number[] = [];
  let tokens = 0;
  let genMs = 0;
  for (const req of await requestsFor()) {
    const t0 = performance.now();
    let first: number | undefined;
    const r = await gen.generate({ ...req, adapter, onToken: () => (first ??= performance.now() - t0) });
    const ms = performance.now() - t0;
    latencies.push(ms);
    if (first !== undefined) ttfts.push(first);
    tokens += r.usage?.completionTokens ?? 0;
    genMs += ms - (first ?? 0);
  }
  rows.push({
    name,
    p50: percentile(latencies, 50),
    p95: percentile(latencies, 95),
    ttftP50: ttfts.length ? percentile(ttfts, 50) : undefined,
    tokPerS: tokens ? tokens / (genMs / 1000) : undefined,
    note,
  });
}

// First use of each adapter (its context pool is created): one request each, timed alone.
const firstUse: Record<string, number> = {};
for (const adapter of [null, 'a', 'b'] as const) {
  const [req] = await requestsFor();
  const t0 = performance.now();
  await llama.generate({ ...(req as GenerateRequest), adapter });
  firstUse[String(adapter ?? 'base')] = performance.now() - t0;
}
await measure('extractive (the peer)', new ExtractiveGenerator());
await measure('llama-cpp base', llama, null);
await measure('llama-cpp + LoRA a', llama, 'a');
const alternating = await requestsFor();
{
  const latencies: number[] = [];
  for (const [i, req] of alternating.entries()) {
    const t0 = performance.now();
    await llama.generate({ ...req, adapter: i % 2 ? 'a' : 'b' });
    latencies.push(performance.now() - t0);
  }
  rows.push({
    name: 'llama-cpp alternating a/b',
    p50: percentile(latencies, 50),
    p95: percentile(latencies, 95),
    note: 'adapter switch per request (pooled contexts)',
  });
}
await llama.dispose();
await store.close();
rmSync(dir, { recursive: true, force: true });

const cpu = os.cpus()[0]?.model ?? 'unknown cpu';
console.log(
  `machine: ${cpu}, ${os.cpus().length} cores, node ${process.version}; ${requests} requests per row, ${modelName}, ${threads} threads`,
);
console.log(
  `model load ${loadMs.toFixed(0)} ms; first request per adapter (creates its context): base ${firstUse.base?.toFixed(0)} ms, a ${firstUse.a?.toFixed(0)} ms, b ${firstUse.b?.toFixed(0)} ms\n`,
);
const fmt = (n?: number, d = 1) => (n === undefined ? '—' : n.toFixed(d));
console.log('| generator | p50 ms | p95 ms | first token p50 ms | tokens/s | note |');
console.log('|---|---|---|---|---|---|');
for (const r of rows)
  console.log(
    `| ${r.name} | ${fmt(r.p50)} | ${fmt(r.p95)} | ${fmt(r.ttftP50)} | ${fmt(r.tokPerS, 0)} | ${r.note ?? ''} |`,
  );
