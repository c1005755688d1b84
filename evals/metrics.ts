/**
 * Ranking metrics for retrieval evaluation, with the conventions of trec_eval and BEIR (which
 * computes them through pytrec_eval, i.e. trec_eval's code):
 *
 * - A ranking is a list of document ids, best first, as the system returned it. Repeated ids count
 *   once, at their first position (the article-level ranking keeps an article's best chunk).
 *   trec_eval re-sorts documents with tied scores by document id; we take the system's order as
 *   given, since our stores already break ties deterministically and the hits carry no ties
 *   information at article level. On tie-free rankings the two agree.
 * - `qrels` maps document id → graded relevance (an integer ≥ 0). Grade 0 means judged not
 *   relevant; ids absent from the qrels are not relevant. A query with no document of grade > 0
 *   is left out of averages (pytrec_eval only scores queries that have relevant judgments),
 *   which is why the functions below return `null` for it.
 * - Cut-offs count positions 1..k of the (de-duplicated) ranking; a ranking shorter than k is
 *   scored as if padded with non-relevant documents.
 */

/** Graded relevance judgments of one query: document id → grade (≥ 0; > 0 is relevant). */
export type Qrels = Readonly<Record<string, number>>;

/** The ranking with repeated ids removed (first occurrence wins), cut to `k` entries. */
export function dedupe(ranking: readonly string[], k = Number.POSITIVE_INFINITY): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const id of ranking) {
    if (out.length >= k) break;
    if (seen.has(id)) continue;
    seen.add(id);
    out.push(id);
  }
  return out;
}

function relevantCount(qrels: Qrels): number {
  return Object.values(qrels).filter((g) => g > 0).length;
}

/**
 * Recall@k = |{relevant docs in the top k}| / |{relevant docs}| (trec_eval `recall_k`, BEIR
 * `Recall@k`: the denominator is all relevant documents, not min(k, relevant)).
 *
 * @returns a value in 0..1, or `null` when the query has no relevant document.
 * @throws RangeError unless k is an integer ≥ 1.
 */
export function recallAtK(ranking: readonly string[], qrels: Qrels, k: number): number | null {
  checkK(k);
  const total = relevantCount(qrels);
  if (total === 0) return null;
  return dedupe(ranking, k).filter((id) => (qrels[id] ?? 0) > 0).length / total;
}

/**
 * Reciprocal rank cut at k (MRR@k when averaged over queries): 1 / rank of the first relevant
 * document among the top k, 0 when none is there (trec_eval `recip_rank` with the ranking cut at k;
 * MS MARCO's MRR@10).
 *
 * @returns a value in 0..1, or `null` when the query has no relevant document.
 */
export function reciprocalRankAtK(ranking: readonly string[], qrels: Qrels, k = 10): number | null {
  checkK(k);
  if (relevantCount(qrels) === 0) return null;
  const top = dedupe(ranking, k);
  const i = top.findIndex((id) => (qrels[id] ?? 0) > 0);
  return i < 0 ? 0 : 1 / (i + 1);
}

/**
 * nDCG@k with graded relevance (Järvelin & Kekäläinen, "Cumulated gain-based evaluation of IR
 * techniques", ACM TOIS 20(4), 2002), in the form trec_eval's `ndcg_cut` and BEIR use:
 *
 *   DCG@k  = Σ_{i=1..k} rel_i / log2(i + 1)        (linear gain = the grade; rank i is 1-based)
 *   IDCG@k = DCG@k of the ideal ranking: all judged grades sorted descending
 *   nDCG@k = DCG@k / IDCG@k
 *
 * The 2^rel − 1 gain of Burges et al. (2005) is not used, matching trec_eval/BEIR; with binary
 * judgments the two are identical.
 *
 * @returns a value in 0..1, or `null` when the query has no relevant document.
 */
export function ndcgAtK(ranking: readonly string[], qrels: Qrels, k = 10): number | null {
  checkK(k);
  if (relevantCount(qrels) === 0) return null;
  const dcg = dedupe(ranking, k).reduce((s, id, i) => s + Math.max(0, qrels[id] ?? 0) / Math.log2(i + 2), 0);
  const ideal = Object.values(qrels)
    .filter((g) => g > 0)
    .sort((a, b) => b - a)
    .slice(0, k)
    .reduce((s, g, i) => s + g / Math.log2(i + 2), 0);
  return dcg / ideal;
}

/** Per-query scores as `scoreQuery` computes them. */
export interface QueryScores {
  /** recall@k for each k in `RECALL_KS`, keyed `recall@1`, `recall@5`, … */
  [metric: string]: number;
}

/** The cut-offs reported for recall. */
export const RECALL_KS = [1, 5, 10, 20] as const;

/** Metric names in report order: recall@k for `RECALL_KS`, then `mrr@10` and `ndcg@10`. */
export const RETRIEVAL_METRICS = [...RECALL_KS.map((k) => `recall@${k}`), 'mrr@10', 'ndcg@10'] as const;

/** All retrieval metrics of one query, or `null` when it has no relevant document. */
export function scoreQuery(ranking: readonly string[], qrels: Qrels): QueryScores | null {
  if (relevantCount(qrels) === 0) return null;
  const out: QueryScores = {};
  for (const k of RECALL_KS) out[`recall@${k}`] = recallAtK(ranking, qrels, k) as number;
  out['mrr@10'] = reciprocalRankAtK(ranking, qrels, 10) as number;
  out['ndcg@10'] = ndcgAtK(ranking, qrels, 10) as number;
  return out;
}

/** Arithmetic mean per metric over the given per-query scores (`{}` for none). */
export function meanScores(rows: readonly QueryScores[]): Record<string, number> {
  const out: Record<string, number> = {};
  if (rows.length === 0) return out;
  for (const key of Object.keys(rows[0] as QueryScores)) {
    out[key] = rows.reduce((s, r) => s + (r[key] ?? 0), 0) / rows.length;
  }
  return out;
}

/** Nearest-rank percentile (p in 0..100) of `values`; NaN for none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

function checkK(k: number): void {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`k must be an integer >= 1, got ${k}`);
}
