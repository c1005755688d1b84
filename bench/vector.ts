/**
 * Vector and hybrid search in the embedded SQLite store, on the real help centers staged in
 * ../shared/data (skipped with a message when absent):
 *   npx tsx bench/vector.ts            (BENCH_SCALE=N replicates the chunks N times)
 *
 * No real embedding model is available offline, so every chunk and query gets a deterministic
 * pseudo-random unit vector of 384 dimensions (the size of all-MiniLM-L6-v2 / e5-small). Rankings
 * are therefore meaningless here; what is measured is cost: insert throughput with and without
 * vectors, and query latency p50/p95 of BM25, vector (KNN) and hybrid (RRF / relative) search,
 * unfiltered and under a restrictive filter. It also times the three ways to filter a KNN that
 * the store could use (see SqliteKnowledgeStore#vectorCandidates), on a second connection.
 *
 * Models: embedding throughput (chunks/s) and the latency of reranking 50 candidates, on the tiny
 * ONNX models the tests write (test/fixtures/models; this measures the transformers.js +
 * onnxruntime pipeline around a near-free graph), and on real model folders when
 * BENCH_EMBED_MODEL / BENCH_RERANK_MODEL name them (folder or cached hub id).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import * as sqliteVec from 'sqlite-vec';
import { configSchema } from '../core/config.ts';
import { createEmbedder, passageText } from '../core/embedder.ts';
import { SqliteKnowledgeStore } from '../core/knowledge-store/sqlite.ts';
import type { HybridSearchOptions } from '../core/knowledge-store.ts';
import { createReranker } from '../core/reranker.ts';
import { cl100kTokenizer } from '../core/tokenizer.ts';
import type { Article, Chunk, SearchFilter } from '../core/types.ts';
import {
  HELPCENTER_NAMES,
  helpcenterSource,
  loadQuestions,
  sharedHelpcentersDir,
} from '../evals/helpcenters.ts';
import { percentile } from '../evals/hit-rate.ts';
import { chunkArticle } from '../sync/chunker.ts';
import { createFolderSource } from '../sync/sources/folder.ts';
import { writeTinyCrossEncoder } from '../test/fixtures/models/tiny-cross-encoder.ts';
import { writeTinyEmbedder } from '../test/fixtures/models/tiny-embedder.ts';
import { pseudoEmbedding } from './pseudo-embedding.ts';

const DIM = 384;
const root = sharedHelpcentersDir();
if (!root) {
  console.log('bench/vector.ts: ../shared/data/helpcenters not found; nothing to measure.');
  process.exit(0);
}
const scale = Math.max(1, Number(process.env.BENCH_SCALE ?? 1));

// --- Load and chunk the help centers --------------------------------------------------------
const chunking = { ...configSchema.parse({}).chunking, tokenizer: cl100kTokenizer };
const items: { article: Article; chunks: Chunk[] }[] = [];
for (const name of HELPCENTER_NAMES) {
  for await (const item of createFolderSource(helpcenterSource(name, root)).articles()) {
    if (!item.ok) continue;
    for (let copy = 0; copy < scale; copy++) {
      const article = copy === 0 ? item.article : { ...item.article, id: `${item.article.id}~${copy}` };
      items.push({ article, chunks: chunkArticle(article, chunking) });
    }
  }
}
const chunkTotal = items.reduce((n, i) => n + i.chunks.length, 0);
const vectors = new Map(
  items.map(({ article, chunks }) => [article, chunks.map((c) => pseudoEmbedding(c.id, DIM))]),
);
const questions = HELPCENTER_NAMES.flatMap((n) => loadQuestions(n)).map((q) => q.question);

const dir = mkdtempSync(path.join(tmpdir(), 'supportbot-bench-vector-'));
function tmpdir(): string {
  return os.tmpdir();
}

interface Row {
  what: string;
  p50: number;
  p95: number;
  note: string;
}
const rows: Row[] = [];
const insertRows: { what: string; seconds: number }[] = [];
const modelRows: string[][] = [];

try {
  // --- Insert throughput ----------------------------------------------------------------------
  const plain = SqliteKnowledgeStore.open(path.join(dir, 'plain.sqlite'));
  let t = performance.now();
  for (const { article, chunks } of items) await plain.upsertArticle(article, chunks, 'h');
  insertRows.push({ what: 'BM25 only (FTS5)', seconds: (performance.now() - t) / 1000 });
  await plain.close();

  const file = path.join(dir, 'vectors.sqlite');
  const store = SqliteKnowledgeStore.open(file);
  await store.setEmbeddingInfo({ model: 'bench:pseudo-384', dimensions: DIM });
  t = performance.now();
  for (const { article, chunks } of items)
    await store.upsertArticle(article, chunks, 'h', vectors.get(article));
  insertRows.push({ what: `FTS5 + vec0 float[${DIM}]`, seconds: (performance.now() - t) / 1000 });

  // --- Query latency through the store --------------------------------------------------------
  const qvec = new Map(questions.map((q) => [q, pseudoEmbedding(`query:${q}`, DIM)]));
  const restrictive: SearchFilter = { sources: ['plausible'] };
  const plausibleShare =
    items.filter((i) => i.article.source === 'plausible').reduce((n, i) => n + i.chunks.length, 0) /
    chunkTotal;
  const twoPass = SqliteKnowledgeStore.open(file, { vectorFilter: 'two-pass' });
  const time = async (what: string, options: (q: string) => HybridSearchOptions, note = '', on = store) => {
    for (const q of questions.slice(0, 10)) await on.search(q, options(q)); // warm-up
    const ms: number[] = [];
    for (let pass = 0; pass < 2; pass++) {
      for (const q of questions) {
        const s = performance.now();
        await on.search(q, options(q));
        ms.push(performance.now() - s);
      }
    }
    rows.push({ what, p50: percentile(ms, 50), p95: percentile(ms, 95), note });
  };
  await time('bm25', () => ({ k: 5 }));
  await time('vector', (q) => ({ k: 5, vector: qvec.get(q), mode: 'vector' }));
  await time('hybrid rrf', (q) => ({ k: 5, vector: qvec.get(q), fusion: 'rrf' }), '50 candidates per path');
  await time(
    'hybrid relative',
    (q) => ({ k: 5, vector: qvec.get(q), fusion: 'relative' }),
    '50 candidates per path',
  );
  const share = `${(plausibleShare * 100).toFixed(0)}% of chunks pass`;
  await time('bm25, source filter', () => ({ k: 5, filter: restrictive }), share);
  await time(
    'vector, source filter',
    (q) => ({ k: 5, vector: qvec.get(q), mode: 'vector', filter: restrictive }),
    share,
  );
  await time('hybrid rrf, source filter', (q) => ({ k: 5, vector: qvec.get(q), filter: restrictive }), share);
  // The vector path's two filter strategies through the store (the default filter is
  // "public articles only", which almost every chunk passes). Each query runs on both stores in
  // turn, so load from other processes falls on both alike.
  const prefilter = SqliteKnowledgeStore.open(file, { vectorFilter: 'prefilter' });
  for (const [label, filter, note] of [
    ['public only', undefined, 'default filter'],
    ['source filter', restrictive, share],
  ] as const) {
    for (const k of [5, 50]) {
      const options = (q: string): HybridSearchOptions => ({
        k,
        vector: qvec.get(q),
        mode: 'vector',
        filter,
      });
      const ms = { prefilter: [] as number[], 'two-pass': [] as number[] };
      for (const q of questions.slice(0, 10)) {
        await prefilter.search(q, options(q));
        await twoPass.search(q, options(q));
      }
      for (let pass = 0; pass < 2; pass++) {
        for (const q of questions) {
          for (const [name, on] of [
            ['prefilter', prefilter],
            ['two-pass', twoPass],
          ] as const) {
            const s = performance.now();
            await on.search(q, options(q));
            ms[name].push(performance.now() - s);
          }
        }
      }
      for (const [name, values] of Object.entries(ms)) {
        rows.push({
          what: `vector k=${k}, ${label}: ${name}`,
          p50: percentile(values, 50),
          p95: percentile(values, 95),
          note,
        });
      }
    }
  }
  await prefilter.close();
  await twoPass.close();

  // --- The same strategies as bare SQL with a plain source filter, and a full-scan alternative ---
  const db = new Database(file, { readonly: true });
  sqliteVec.load(db);
  const filterSql = `a.source = @source`;
  const strategies: [string, Database.Statement][] = [
    [
      'KNN 100 then filter (first pass)',
      db.prepare(`WITH v AS MATERIALIZED (SELECT pk, distance FROM chunk_vectors WHERE embedding MATCH @vector AND k = 100)
        SELECT v.pk, v.distance FROM v JOIN chunks c ON c.pk = v.pk
        JOIN articles a ON a.source = c.source AND a.id = c.article_id WHERE ${filterSql}
        ORDER BY v.distance, v.pk LIMIT 5`),
    ],
    [
      'KNN with pk IN (filter) (fallback)',
      db.prepare(`WITH v AS MATERIALIZED (SELECT pk, distance FROM chunk_vectors WHERE embedding MATCH @vector AND k = 5
          AND pk IN (SELECT c.pk FROM chunks c JOIN articles a ON a.source = c.source AND a.id = c.article_id WHERE ${filterSql}))
        SELECT pk, distance FROM v ORDER BY distance, pk`),
    ],
    [
      'filter then vec_distance_cosine scan',
      db.prepare(`SELECT c.pk, vec_distance_cosine(v.embedding, @vector) AS distance
        FROM chunks c JOIN articles a ON a.source = c.source AND a.id = c.article_id
        JOIN chunk_vectors v ON v.pk = c.pk WHERE ${filterSql} ORDER BY distance, c.pk LIMIT 5`),
    ],
  ];
  for (const [what, stmt] of strategies) {
    const ms: number[] = [];
    for (const q of questions) {
      const v = qvec.get(q) as Float32Array;
      const params = { vector: Buffer.from(v.buffer, v.byteOffset, v.byteLength), source: 'plausible' };
      const s = performance.now();
      stmt.all(params);
      ms.push(performance.now() - s);
    }
    rows.push({ what: `SQL: ${what}`, p50: percentile(ms, 50), p95: percentile(ms, 95), note: share });
  }
  db.close();
  await store.close();

  // --- Models ---------------------------------------------------------------------------------
  const passages = items
    .filter((i) => i.article.source === 'plausible')
    .flatMap(({ article, chunks }) => chunks.map((c) => passageText({ ...c, title: article.title })))
    .slice(0, 1000);
  const embedders: [string, string][] = [
    ['tiny ONNX (test fixture)', writeTinyEmbedder(path.join(dir, 'tiny-embed'))],
  ];
  if (process.env.BENCH_EMBED_MODEL)
    embedders.push([process.env.BENCH_EMBED_MODEL, process.env.BENCH_EMBED_MODEL]);
  for (const [label, model] of embedders) {
    const embedder = await createEmbedder({ model, batchSize: 32 });
    try {
      const s = performance.now();
      await embedder.embedPassages(passages);
      const seconds = (performance.now() - s) / 1000;
      modelRows.push([
        `embed passages: ${label}`,
        `${(passages.length / seconds).toFixed(0)} chunks/s`,
        `${passages.length} chunks, batch 32, ${embedder.dimensions} dims`,
      ]);
    } finally {
      await embedder.close();
    }
  }
  const rerankers: [string, string][] = [
    ['tiny ONNX (test fixture)', writeTinyCrossEncoder(path.join(dir, 'tiny-ce'))],
  ];
  if (process.env.BENCH_RERANK_MODEL)
    rerankers.push([process.env.BENCH_RERANK_MODEL, process.env.BENCH_RERANK_MODEL]);
  for (const [label, model] of rerankers) {
    const reranker = await createReranker({ model, batchSize: 16 });
    try {
      const ms: number[] = [];
      for (const [i, q] of questions.slice(0, 30).entries()) {
        const candidates = passages.slice(
          (i * 50) % (passages.length - 50),
          ((i * 50) % (passages.length - 50)) + 50,
        );
        const s = performance.now();
        await reranker.rerank(q, candidates);
        ms.push(performance.now() - s);
      }
      modelRows.push([
        `rerank 50 candidates: ${label}`,
        `p50 ${percentile(ms, 50).toFixed(1)} ms, p95 ${percentile(ms, 95).toFixed(1)} ms`,
        `30 queries, batch 16`,
      ]);
    } finally {
      await reranker.close();
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

// --- Report ---------------------------------------------------------------------------------
const cpu = os.cpus()[0]?.model ?? 'unknown cpu';
console.log(
  `machine: ${cpu}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ${os.platform()} ${os.release()}`,
);
console.log(
  `data: ${items.length} articles, ${chunkTotal} chunks (arduino + zulip + plausible${scale > 1 ? `, ×${scale}` : ''}); ${questions.length} queries × 2 passes; pseudo-random unit vectors, ${DIM} dims\n`,
);
const table = (header: string[], body: string[][]) => {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] as string).length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of body) console.log(line(r));
  console.log();
};
table(
  ['insert', 'chunks', 'seconds', 'chunks/s'],
  insertRows.map((r) => [
    r.what,
    String(chunkTotal),
    r.seconds.toFixed(2),
    (chunkTotal / r.seconds).toFixed(0),
  ]),
);
table(
  ['query (k = 5)', 'p50 ms', 'p95 ms', 'note'],
  rows.map((r) => [r.what, r.p50.toFixed(2), r.p95.toFixed(2), r.note]),
);
table(['model', 'result', 'note'], modelRows);
