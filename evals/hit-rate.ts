import type { KnowledgeStore } from '../core/knowledge-store.ts';
import type { SearchHit } from '../core/types.ts';
import type { LabelledQuestion } from './helpcenters.ts';
import { percentile } from './metrics.ts';

/** Nearest-rank percentile; one definition for all evals, re-exported for the bench. */
export { percentile };

export interface QuestionOutcome {
  question: string;
  /** 1-based rank of the first relevant article among distinct articles, or null if not in the hits. */
  rank: number | null;
  latencyMs: number;
}

export interface HitRateReport {
  questions: number;
  /** Share of answerable questions whose first hit is a relevant article. */
  top1: number;
  /** Share with a relevant article among the first five distinct articles. */
  top5: number;
  /** Mean reciprocal rank over distinct articles (0 when not found in the hits). */
  mrr: number;
  latencyP50Ms: number;
  latencyP95Ms: number;
  outcomes: QuestionOutcome[];
}

/** Rank of the first relevant article, counting each article once (its best chunk). */
export function firstRelevantRank(hits: SearchHit[], relevant: string[]): number | null {
  const seen: string[] = [];
  for (const h of hits) {
    const key = h.chunk.sourcePath;
    if (seen.includes(key)) continue;
    seen.push(key);
    if (relevant.includes(key)) return seen.length;
  }
  return null;
}

/**
 * Top-1/top-5 hit rate and MRR of a store over the answerable questions, searching `k` chunks
 * (enough to see five distinct articles in most cases) and timing each search.
 */
export async function measureHitRate(
  store: KnowledgeStore,
  questions: LabelledQuestion[],
  k = 20,
): Promise<HitRateReport> {
  const answerable = questions.filter((q) => q.kind === 'answerable');
  const outcomes: QuestionOutcome[] = [];
  for (const q of answerable) {
    const t0 = performance.now();
    const hits = await store.search(q.question, { k });
    const latencyMs = performance.now() - t0;
    outcomes.push({ question: q.question, rank: firstRelevantRank(hits, q.relevant), latencyMs });
  }
  const n = Math.max(outcomes.length, 1);
  const lat = outcomes.map((o) => o.latencyMs);
  return {
    questions: outcomes.length,
    top1: outcomes.filter((o) => o.rank === 1).length / n,
    top5: outcomes.filter((o) => o.rank !== null && o.rank <= 5).length / n,
    mrr: outcomes.reduce((s, o) => s + (o.rank ? 1 / o.rank : 0), 0) / n,
    latencyP50Ms: percentile(lat, 50),
    latencyP95Ms: percentile(lat, 95),
    outcomes,
  };
}
