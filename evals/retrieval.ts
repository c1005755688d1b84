/**
 * Retrieval evaluation: index a dataset's corpus into fresh temporary SQLite stores, run every
 * configuration's searches, and score the article-level rankings with `evals/metrics.ts`.
 *
 * A configuration is a plain object (`RetrievalConfig`); configurations with the same chunking
 * share one store, built once. Vector, hybrid and reranking configurations run only when an
 * `Embedder` / `Reranker` is supplied; otherwise they are reported as skipped, never faked.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Embedder } from '../core/embedder.ts';
import { SqliteKnowledgeStore } from '../core/knowledge-store/sqlite.ts';
import type { HybridSearchOptions } from '../core/knowledge-store.ts';
import { type Reranker, rerankHits } from '../core/reranker.ts';
import { cl100kTokenizer, type Tokenizer } from '../core/tokenizer.ts';
import type { SearchHit } from '../core/types.ts';
import { syncSource } from '../sync/sync.ts';
import { corpusSource, type EvalDataset } from './datasets.ts';
import { meanScores, percentile, type QueryScores, RETRIEVAL_METRICS, scoreQuery } from './metrics.ts';

/** One retrieval setup to compare. */
export interface RetrievalConfig {
  /** Unique label in tables and charts (`bm25-300`, `hybrid-rrf-0.5`). */
  name: string;
  /** Chunk size and overlap in tokens (cl100k), as `chunking.*` in the config. */
  chunking: { maxTokens: number; overlapTokens: number };
  mode: 'bm25' | 'vector' | 'hybrid';
  /** Weight of the vector list in hybrid search (0 = BM25 only, 1 = vector only). */
  alpha?: number;
  fusion?: 'rrf' | 'relative';
  /** Rerank this many fused candidates with the supplied reranker (e.g. 50). */
  rerank?: number;
}

/** Outcome of one query under one configuration. */
export interface QueryOutcome {
  id: string;
  query: string;
  /** Distinct documents (by sourcePath), best first, as many as the search returned (≤ `depth`). */
  ranking: string[];
  /** Ids of the relevant documents with their grades. */
  relevant: Record<string, number>;
  /** `null` when the query has no relevant document (left out of the means). */
  scores: QueryScores | null;
  latencyMs: number;
}

export interface ConfigResult {
  config: RetrievalConfig;
  status: 'ok' | 'skipped';
  /** Why it was skipped (`no embedding model configured`). */
  reason?: string;
  /** Mean of each metric in `RETRIEVAL_METRICS` over the scored queries. */
  metrics: Record<string, number>;
  scoredQueries: number;
  latencyP50Ms: number;
  latencyP95Ms: number;
  /** Chunks in the store this configuration searched. */
  chunks: number;
  perQuery: QueryOutcome[];
}

/** What `runRetrievalEval` returns and `evals/report.ts` renders; JSON-serializable. */
export interface RetrievalEvalResult {
  kind: 'retrieval';
  dataset: string;
  createdAt: string;
  notes: string[];
  queries: number;
  documents: number;
  /** Embedder / reranker ids used, when any. */
  embedder: string | null;
  reranker: string | null;
  metrics: readonly string[];
  results: ConfigResult[];
}

/** BM25 at 128/300/600-token chunks, and the vector, hybrid and reranking setups at the default size. */
export function defaultConfigs(): RetrievalConfig[] {
  const c = (maxTokens: number) => ({ maxTokens, overlapTokens: Math.round(maxTokens / 10) });
  return [
    { name: 'bm25-128', chunking: c(128), mode: 'bm25' },
    { name: 'bm25-300', chunking: c(300), mode: 'bm25' },
    { name: 'bm25-600', chunking: c(600), mode: 'bm25' },
    { name: 'vector-300', chunking: c(300), mode: 'vector' },
    { name: 'hybrid-rrf-0.3', chunking: c(300), mode: 'hybrid', fusion: 'rrf', alpha: 0.3 },
    { name: 'hybrid-rrf-0.5', chunking: c(300), mode: 'hybrid', fusion: 'rrf', alpha: 0.5 },
    { name: 'hybrid-rrf-0.7', chunking: c(300), mode: 'hybrid', fusion: 'rrf', alpha: 0.7 },
    { name: 'hybrid-relative-0.5', chunking: c(300), mode: 'hybrid', fusion: 'relative', alpha: 0.5 },
    { name: 'bm25-300+rerank', chunking: c(300), mode: 'bm25', rerank: 50 },
    {
      name: 'hybrid-rrf-0.5+rerank',
      chunking: c(300),
      mode: 'hybrid',
      fusion: 'rrf',
      alpha: 0.5,
      rerank: 50,
    },
  ];
}

export interface RetrievalEvalOptions {
  embedder?: Embedder | null;
  reranker?: Reranker | null;
  tokenizer?: Tokenizer;
  /** Chunks fetched per search before collapsing to documents (default 50, enough for 20 distinct documents in practice). */
  depth?: number;
  /** Folder for the temporary stores (default: a fresh one under the OS temp dir, removed afterwards). */
  workDir?: string;
  /** Called after each configuration, for progress output. */
  onConfigDone?: (result: ConfigResult) => void;
}

/** Distinct documents of a hit list (by `chunk.sourcePath`), best first. */
export function documentRanking(hits: readonly SearchHit[]): string[] {
  const out: string[] = [];
  for (const h of hits) if (!out.includes(h.chunk.sourcePath)) out.push(h.chunk.sourcePath);
  return out;
}

/**
 * Runs every configuration over the dataset. Stores are built per distinct chunking (and embedded
 * with `options.embedder` when one is given and some configuration needs vectors).
 *
 * @throws whatever indexing throws (a corpus that cannot be read, an embedder error).
 */
export async function runRetrievalEval(
  dataset: EvalDataset,
  configs: readonly RetrievalConfig[],
  options: RetrievalEvalOptions = {},
): Promise<RetrievalEvalResult> {
  const names = new Set<string>();
  for (const c of configs) {
    if (names.has(c.name)) throw new Error(`duplicate configuration name ${c.name}`);
    names.add(c.name);
  }
  const tokenizer = options.tokenizer ?? cl100kTokenizer;
  const depth = options.depth ?? 50;
  const embedder = options.embedder ?? null;
  const reranker = options.reranker ?? null;
  const ownDir = options.workDir ? null : mkdtempSync(path.join(tmpdir(), 'supportbot-eval-'));
  const workDir = options.workDir ?? (ownDir as string);
  const results: ConfigResult[] = [];
  let documents = 0;
  // One query embedding per question, shared by every configuration that needs vectors.
  let queryVectors: Float32Array[] | null = null;
  try {
    const byChunking = new Map<string, RetrievalConfig[]>();
    for (const c of configs) {
      const key = `${c.chunking.maxTokens}-${c.chunking.overlapTokens}`;
      byChunking.set(key, [...(byChunking.get(key) ?? []), c]);
    }
    const skipped = new Map<string, string>();
    for (const c of configs) {
      if (c.mode !== 'bm25' && !embedder) skipped.set(c.name, 'no embedding model configured');
      else if (c.rerank && !reranker) skipped.set(c.name, 'no reranker model configured');
    }
    for (const [key, group] of byChunking) {
      const runnable = group.filter((c) => !skipped.has(c.name));
      if (runnable.length === 0) continue;
      const needsVectors = runnable.some((c) => c.mode !== 'bm25');
      const store = SqliteKnowledgeStore.open(path.join(workDir, `${dataset.name}-${key}.sqlite`));
      try {
        const chunking = { ...(group[0] as RetrievalConfig).chunking, tokenizer };
        // With vectors, the sync embeds chunks exactly as production sync does (sync/sync.ts).
        const summary = await syncSource(corpusSource(dataset), store, {
          chunking,
          ...(needsVectors && embedder ? { embedder } : {}),
        });
        documents = Math.max(documents, summary.added);
        if (needsVectors && embedder) {
          queryVectors ??= await embedder.embedQueries(dataset.queries.map((q) => q.text));
        }
        const chunks = (await store.stats()).chunks;
        for (const config of runnable) {
          const result = await runConfig(store, dataset, config, { depth, reranker, queryVectors, chunks });
          results.push(result);
          options.onConfigDone?.(result);
        }
      } finally {
        await store.close();
      }
    }
    for (const c of configs) {
      const reason = skipped.get(c.name);
      if (reason) {
        const r: ConfigResult = {
          config: c,
          status: 'skipped',
          reason,
          metrics: {},
          scoredQueries: 0,
          latencyP50Ms: Number.NaN,
          latencyP95Ms: Number.NaN,
          chunks: 0,
          perQuery: [],
        };
        results.push(r);
        options.onConfigDone?.(r);
      }
    }
  } finally {
    if (ownDir) rmSync(ownDir, { recursive: true, force: true });
  }
  // Keep the caller's configuration order in the tables.
  results.sort((a, b) => configs.indexOf(a.config) - configs.indexOf(b.config));
  return {
    kind: 'retrieval',
    dataset: dataset.name,
    createdAt: new Date().toISOString(),
    notes: dataset.notes,
    queries: dataset.queries.length,
    documents,
    embedder: embedder?.id ?? null,
    reranker: reranker?.id ?? null,
    metrics: RETRIEVAL_METRICS,
    results,
  };
}

async function runConfig(
  store: SqliteKnowledgeStore,
  dataset: EvalDataset,
  config: RetrievalConfig,
  ctx: { depth: number; reranker: Reranker | null; queryVectors: Float32Array[] | null; chunks: number },
): Promise<ConfigResult> {
  const perQuery: QueryOutcome[] = [];
  for (const [i, q] of dataset.queries.entries()) {
    const search: HybridSearchOptions = { k: ctx.depth, mode: config.mode };
    if (config.mode !== 'bm25') {
      search.vector = ctx.queryVectors?.[i] as Float32Array;
      if (config.alpha !== undefined) search.alpha = config.alpha;
      if (config.fusion) search.fusion = config.fusion;
    }
    const t0 = performance.now();
    let hits = await store.search(q.text, search);
    if (config.rerank && ctx.reranker) {
      hits = await rerankHits(ctx.reranker, q.text, hits.slice(0, config.rerank), config.rerank);
    }
    const latencyMs = performance.now() - t0;
    const ranking = documentRanking(hits);
    perQuery.push({
      id: q.id,
      query: q.text,
      ranking: ranking.slice(0, 20),
      relevant: { ...q.qrels },
      scores: scoreQuery(ranking, q.qrels),
      latencyMs,
    });
  }
  const scored = perQuery.map((p) => p.scores).filter((s): s is QueryScores => s !== null);
  const lat = perQuery.map((p) => p.latencyMs);
  return {
    config,
    status: 'ok',
    metrics: meanScores(scored),
    scoredQueries: scored.length,
    latencyP50Ms: percentile(lat, 50),
    latencyP95Ms: percentile(lat, 95),
    chunks: ctx.chunks,
    perQuery,
  };
}
