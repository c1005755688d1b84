/**
 * Coverage-gap report from production data: the questions the bot abstained on, or whose answer
 * someone rated 👎, grouped by similar wording, biggest group first, so help-center writers see
 * which articles are missing.
 *
 * Clustering: each question becomes its set of topic terms (`core/text.ts#contentTerms`: stop
 * words removed, Porter-stemmed); similarity is the Jaccard index |A ∩ B| / |A ∪ B| (Jaccard
 * 1901); clusters are formed by agglomerative clustering with complete linkage (merge the two most
 * similar clusters while every pair of questions across them is at least `threshold` similar;
 * Lance–Williams update sim(i∪j, k) = min(sim(i,k), sim(j,k))), which keeps clusters tight instead
 * of chaining unrelated questions through a shared word. Cost O(n³) in time, O(n²) in memory, so
 * only the `limit` most recent answers are read (default 1,000).
 */
import type { StateStore } from '../core/state-store.ts';
import { contentTerms } from '../core/text.ts';

/** Similarity of two term sets: |A ∩ B| / |A ∪ B|; 0 when both are empty. */
export function jaccard(a: ReadonlySet<string>, b: ReadonlySet<string>): number {
  if (a.size === 0 && b.size === 0) return 0;
  let inter = 0;
  for (const t of a) if (b.has(t)) inter++;
  return inter / (a.size + b.size - inter);
}

/**
 * Complete-linkage agglomerative clustering of term sets at `threshold` (0..1). Returns clusters
 * as lists of indices into `sets`, each in ascending order, biggest cluster first (ties: the
 * cluster whose first member comes first).
 */
export function clusterTermSets(sets: readonly ReadonlySet<string>[], threshold: number): number[][] {
  const n = sets.length;
  const sim: number[][] = sets.map((a, i) => sets.map((b, j) => (i === j ? 1 : jaccard(a, b))));
  const members: (number[] | null)[] = sets.map((_, i) => [i]);
  for (;;) {
    let best = -1;
    let bi = -1;
    let bj = -1;
    for (let i = 0; i < n; i++) {
      if (!members[i]) continue;
      const row = sim[i] as number[];
      for (let j = i + 1; j < n; j++) {
        if (members[j] && (row[j] as number) > best) {
          best = row[j] as number;
          bi = i;
          bj = j;
        }
      }
    }
    if (bi < 0 || best < threshold || best === 0) break;
    (members[bi] as number[]).push(...(members[bj] as number[]));
    members[bj] = null;
    for (let k = 0; k < n; k++) {
      if (!members[k] || k === bi) continue;
      const v = Math.min((sim[bi] as number[])[k] as number, (sim[bj] as number[])[k] as number);
      (sim[bi] as number[])[k] = v;
      (sim[k] as number[])[bi] = v;
    }
  }
  return members
    .filter((m): m is number[] => m !== null)
    .map((m) => [...m].sort((a, b) => a - b))
    .sort((a, b) => b.length - a.length || (a[0] as number) - (b[0] as number));
}

/** One group of similar unanswered or disliked questions. */
export interface GapCluster {
  /** Questions in the group. */
  count: number;
  abstained: number;
  /** Answers in the group with at least one 👎. */
  downvoted: number;
  /** Terms shared by at least half of the group, most frequent first: a hint at the missing article's topic. */
  terms: string[];
  /** Up to five questions, verbatim. */
  examples: string[];
  answerIds: string[];
}

export interface GapReport {
  kind: 'gaps';
  createdAt: string;
  /** Answers read from the state store. */
  answers: number;
  /** Of those, abstained on or rated 👎. */
  gaps: number;
  threshold: number;
  clusters: GapCluster[];
}

/**
 * Reads recent answers from the state store and clusters the gaps.
 *
 * @param options.since ISO-8601 UTC lower bound on `createdAt`.
 * @param options.threshold Jaccard threshold for complete linkage (default 0.34: at least one
 *   shared term in three-term questions).
 */
export async function coverageGaps(
  state: StateStore,
  options: { since?: string; limit?: number; threshold?: number } = {},
): Promise<GapReport> {
  const threshold = options.threshold ?? 0.34;
  const answers = await state.listAnswers({
    order: 'newest-first',
    limit: options.limit ?? 1000,
    ...(options.since ? { since: options.since } : {}),
  });
  const gaps: { id: string; question: string; abstained: boolean; downvoted: boolean }[] = [];
  for (const a of answers) {
    const down = (await state.ratingSummary(a.id)).down > 0;
    if (a.result.abstained || down)
      gaps.push({ id: a.id, question: a.question, abstained: a.result.abstained, downvoted: down });
  }
  gaps.reverse(); // oldest first, so examples read in the order people asked
  const sets = gaps.map((g) => new Set(contentTerms(g.question)));
  const clusters = clusterTermSets(sets, threshold).map((idx): GapCluster => {
    const freq = new Map<string, number>();
    for (const i of idx) for (const t of sets[i] as Set<string>) freq.set(t, (freq.get(t) ?? 0) + 1);
    const terms = [...freq]
      .filter(([, c]) => c * 2 >= idx.length)
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .map(([t]) => t);
    const rows = idx.map((i) => gaps[i] as (typeof gaps)[number]);
    return {
      count: idx.length,
      abstained: rows.filter((r) => r.abstained).length,
      downvoted: rows.filter((r) => r.downvoted).length,
      terms,
      examples: rows.slice(0, 5).map((r) => r.question),
      answerIds: rows.map((r) => r.id),
    };
  });
  return {
    kind: 'gaps',
    createdAt: new Date().toISOString(),
    answers: answers.length,
    gaps: gaps.length,
    threshold,
    clusters,
  };
}

/** The gap report as text: one block per cluster with its count, shared terms and examples. */
export function gapsText(report: GapReport): string {
  const lines = [
    `${report.gaps} of ${report.answers} answers were abstained on or rated 👎; ${report.clusters.length} groups (Jaccard ≥ ${report.threshold}, complete linkage)`,
  ];
  for (const c of report.clusters) {
    lines.push('');
    lines.push(`${c.count}× [${c.terms.join(' ')}]  (abstained ${c.abstained}, 👎 ${c.downvoted})`);
    for (const e of c.examples) lines.push(`   - ${e}`);
  }
  return lines.join('\n');
}
