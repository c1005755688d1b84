import { passageText } from './embedder.ts';
import { SupportbotError } from './errors.ts';
import type { SearchHit } from './types.ts';

/**
 * The reranker seam: scores (query, passage) pairs jointly, which a cross-encoder does far better
 * than comparing two separately made embeddings, at the price of one model run per pair. Used on
 * a wider fused candidate set (say 50) to keep the best few. Shaped like the embedder seam.
 *
 * Implementation: an ONNX cross-encoder (ms-marco MiniLM style) through transformers.js
 * (`core/rerankers/onnx.ts`). None is the default.
 */
export interface Reranker {
  /** `onnx`. */
  readonly provider: string;
  /** The model as configured: folder or hub id. */
  readonly modelId: string;
  /** `onnx:<modelId>`, for logs, `status` and the Answer record. */
  readonly id: string;
  /**
   * One relevance score per doc, in the order given; higher is more relevant. Scores are the
   * model's raw logits (comparable within one call, not calibrated probabilities). `[]` for no docs.
   *
   * @throws SupportbotError `rerank-failed`, or the signal's reason when aborted (checked between batches).
   */
  rerank(query: string, docs: string[], options?: { signal?: AbortSignal }): Promise<number[]>;
  /** Releases the model session. Idempotent. */
  close(): Promise<void>;
}

/** Plain options for `createReranker`, as the config layer has them (`RERANKER_MODEL`). */
export interface RerankerOptions {
  /** Local folder or hub id found in the local cache (never downloaded). */
  model: string;
  /** Pairs per model run. Default 16. */
  batchSize?: number;
  /** Tokens per (query, passage) pair before truncation. Default: the tokenizer's limit, else 512. */
  maxLength?: number;
  /** Extra folders holding downloaded models (hub cache layout or `<org>/<name>`). */
  cacheDirs?: string[];
}

/**
 * Builds the configured reranker (ONNX cross-encoder), loading it now so errors show at start-up.
 * The implementation is imported lazily, so runs without a reranker never load onnxruntime.
 *
 * @throws SupportbotError `model-not-found` (no such local model), `rerank-failed`, `invalid-option`.
 */
export async function createReranker(options: RerankerOptions): Promise<Reranker> {
  if (!options.model?.trim()) throw new SupportbotError('invalid-option', 'reranker model must not be empty');
  const { OnnxReranker } = await import('./rerankers/onnx.ts');
  return OnnxReranker.load(options);
}

/**
 * Reorders hits by the reranker's score of (query, chunk text) and keeps the best `k`; ranks are
 * renumbered 1..k and `score` becomes the reranker's score. Equal scores keep the incoming order.
 */
export async function rerankHits(
  reranker: Reranker,
  query: string,
  hits: SearchHit[],
  k: number,
  options: { signal?: AbortSignal } = {},
): Promise<SearchHit[]> {
  if (hits.length === 0 || k <= 0) return [];
  const texts = hits.map((h) => passageText(h.chunk));
  const scores = await reranker.rerank(query, texts, options);
  return hits
    .map((hit, i) => ({ hit, score: scores[i] ?? Number.NEGATIVE_INFINITY, i }))
    .sort((a, b) => b.score - a.score || a.i - b.i)
    .slice(0, k)
    .map(({ hit, score }, i) => ({ ...hit, score, rank: i + 1 }));
}
