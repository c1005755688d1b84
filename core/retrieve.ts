import type { Embedder } from './embedder.ts';
import type { HybridSearchOptions, KnowledgeStore } from './knowledge-store.ts';
import { type Reranker, rerankHits } from './reranker.ts';
import type { SearchFilter, SearchHit } from './types.ts';

/** How hybrid retrieval runs (the `retrieval` config section). */
export interface RetrievalSettings {
  /** Default `hybrid` when an embedder is given; always `bm25` without one. */
  mode?: 'bm25' | 'vector' | 'hybrid';
  /** 1 = vector only, 0 = BM25 only (Weaviate's `alpha`). */
  alpha?: number;
  fusion?: 'rrf' | 'relative';
  /** Fused candidates handed to the reranker (default 20); ignored without one. */
  candidates?: number;
}

export interface RetrieveOptions {
  store: KnowledgeStore;
  topK: number;
  filter?: SearchFilter;
  embedder?: Embedder;
  reranker?: Reranker;
  retrieval?: RetrievalSettings;
  signal?: AbortSignal;
}

/**
 * The retrieval step shared by `answer()` and `supportbot search`: embed the query (when an
 * embedder is given and the mode is not `bm25`), search the store with BM25/vector/hybrid fusion
 * and the filter applied before ranking, then let the cross-encoder reorder the top
 * `candidates` down to `topK`.
 *
 * @returns the hits (best first, ranks 1..n) and a description of what ran: `bm25`, `hybrid`,
 *   `vector`, `… + rerank`, or `bm25 (embedder unavailable: …)` when embedding the query failed
 *   (a model server down) — retrieval then degrades to BM25 instead of failing the answer.
 * @throws what the store throws; an abort of `signal`.
 */
export async function retrieve(
  query: string,
  options: RetrieveOptions,
): Promise<{ hits: SearchHit[]; mode: string }> {
  const settings = options.retrieval ?? {};
  const mode = options.embedder ? (settings.mode ?? 'hybrid') : 'bm25';
  let described: string = mode;
  let vector: Float32Array | undefined;
  if (mode !== 'bm25' && options.embedder) {
    try {
      [vector] = await options.embedder.embedQueries([query], { signal: options.signal });
    } catch (err) {
      if (options.signal?.aborted) throw err;
      described = `bm25 (embedder unavailable: ${(err as Error).message})`;
    }
  }
  const reranker = options.reranker;
  const k = reranker ? Math.max(options.topK, settings.candidates ?? 20) : options.topK;
  const searchOptions: HybridSearchOptions = vector
    ? { k, filter: options.filter, vector, mode, alpha: settings.alpha, fusion: settings.fusion }
    : { k, filter: options.filter };
  let hits = await options.store.search(query, searchOptions);
  if (reranker && hits.length > 0) {
    hits = await rerankHits(reranker, query, hits, options.topK, { signal: options.signal });
    described = `${described} + rerank`;
  }
  return { hits, mode: described };
}
