/**
 * Fusion of ranked lists from different retrieval paths (BM25 and vector) into one ranking.
 *
 * Both functions take lists best first, keyed by any value that `Map` can tell apart (the SQLite
 * store uses chunk rowids), and return the fused list best first, ties broken by first appearance
 * (the order of `lists`, then rank), so the result is deterministic.
 */

/** One entry of a ranked list: `score` is higher-is-better within its own list only. */
export interface Ranked<K> {
  key: K;
  score: number;
}

/** A list to fuse with its weight (>= 0; a list with weight 0 contributes nothing, not even keys). */
export interface WeightedList<K> {
  items: readonly Ranked<K>[];
  weight: number;
}

/** Constant of reciprocal rank fusion; 60 is the value Cormack, Clarke & Büttcher (2009) found robust. */
export const RRF_K = 60;

/**
 * Reciprocal rank fusion (Cormack, Clarke & Büttcher, "Reciprocal Rank Fusion outperforms
 * Condorcet and individual Rank Learning Methods", SIGIR 2009):
 * `score(d) = Σ_lists weight · 1 / (k + rank(d))`, with `rank` 1-based in each list and a document
 * absent from a list contributing nothing there. Raw scores are ignored, which is why RRF needs no
 * normalization across BM25 and cosine scales. Weights of 1 give the paper's formula; other weights
 * give the weighted variant (Weaviate's `rankedFusion` weighs by `alpha` / `1 - alpha` this way).
 *
 * @param limit how many fused entries to return (default: all).
 * @throws RangeError for `k < 0` or a negative or non-finite weight.
 */
export function reciprocalRankFusion<K>(
  lists: readonly WeightedList<K>[],
  options: { k?: number; limit?: number } = {},
): Ranked<K>[] {
  const k = options.k ?? RRF_K;
  if (!Number.isFinite(k) || k < 0) throw new RangeError(`RRF k must be a number >= 0, got ${k}`);
  return fuse(lists, options.limit, (items) => items.map((_, i) => 1 / (k + i + 1)));
}

/**
 * Relative score fusion, as Weaviate documents its `relativeScoreFusion` (the default since
 * v1.24, https://docs.weaviate.io/weaviate/concepts/search/hybrid-search): each list's scores are
 * min-max normalized to 0..1 (its best → 1, its worst → 0; a list whose scores are all equal, e.g.
 * one hit, maps them all to 1), multiplied by the list's weight, and summed per document.
 *
 * For hybrid search use `hybridWeights(alpha)`: weight `alpha` for the vector list and
 * `1 - alpha` for the BM25 list, so `alpha = 1` is pure vector and `alpha = 0` pure BM25.
 *
 * @throws RangeError for a negative or non-finite weight, or a non-finite score.
 */
export function relativeScoreFusion<K>(
  lists: readonly WeightedList<K>[],
  options: { limit?: number } = {},
): Ranked<K>[] {
  return fuse(lists, options.limit, (items) => {
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    for (const { score } of items) {
      if (!Number.isFinite(score))
        throw new RangeError(`relative score fusion needs finite scores, got ${score}`);
      min = Math.min(min, score);
      max = Math.max(max, score);
    }
    const range = max - min;
    return items.map(({ score }) => (range > 0 ? (score - min) / range : 1));
  });
}

/**
 * Weaviate's `alpha` as list weights: `{ vector: alpha, keyword: 1 - alpha }`.
 *
 * @throws RangeError unless 0 <= alpha <= 1.
 */
export function hybridWeights(alpha: number): { vector: number; keyword: number } {
  if (!(alpha >= 0 && alpha <= 1)) throw new RangeError(`alpha must be between 0 and 1, got ${alpha}`);
  return { vector: alpha, keyword: 1 - alpha };
}

/** Sums `weight · contribution(list)[i]` per key; sorts by fused score, then by first appearance. */
function fuse<K>(
  lists: readonly WeightedList<K>[],
  limit: number | undefined,
  contributions: (items: readonly Ranked<K>[]) => number[],
): Ranked<K>[] {
  const fused = new Map<K, { score: number; order: number }>();
  let order = 0;
  for (const { items, weight } of lists) {
    if (!Number.isFinite(weight) || weight < 0) {
      throw new RangeError(`fusion weights must be finite and >= 0, got ${weight}`);
    }
    if (weight === 0 || items.length === 0) continue;
    const parts = contributions(items);
    items.forEach((item, i) => {
      const entry = fused.get(item.key);
      const add = weight * (parts[i] ?? 0);
      if (entry) entry.score += add;
      // A key repeated within one list counts once per occurrence; callers pass de-duplicated lists.
      else fused.set(item.key, { score: add, order: order++ });
    });
  }
  const out = [...fused.entries()]
    .sort((a, b) => b[1].score - a[1].score || a[1].order - b[1].order)
    .map(([key, { score }]) => ({ key, score }));
  return limit === undefined ? out : out.slice(0, Math.max(0, limit));
}
