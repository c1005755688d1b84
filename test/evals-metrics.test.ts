/**
 * Retrieval metrics against values computed by hand (the arithmetic is written out next to each
 * expectation), including graded relevance, duplicates, short rankings and unjudged queries.
 */
import { describe, expect, it } from 'vitest';
import {
  dedupe,
  meanScores,
  ndcgAtK,
  percentile,
  recallAtK,
  reciprocalRankAtK,
  scoreQuery,
} from '../evals/metrics.ts';

// Grades 3, 2, 1 relevant; d judged not relevant (0); x, y unjudged.
const qrels = { a: 3, b: 2, c: 1, d: 0 };
const ranking = ['x', 'b', 'd', 'a', 'y', 'c'];

describe('recall@k', () => {
  it('counts relevant documents in the top k over all relevant ones', () => {
    expect(recallAtK(ranking, qrels, 1)).toBe(0); // x
    expect(recallAtK(ranking, qrels, 2)).toBeCloseTo(1 / 3, 12); // b
    expect(recallAtK(ranking, qrels, 5)).toBeCloseTo(2 / 3, 12); // b, a (d has grade 0)
    expect(recallAtK(ranking, qrels, 10)).toBe(1); // b, a, c
  });
  it('divides by all relevant documents, not min(k, relevant) (trec_eval recall_k)', () => {
    expect(recallAtK(['a'], qrels, 1)).toBeCloseTo(1 / 3, 12);
  });
  it('counts a repeated document once', () => {
    expect(recallAtK(['b', 'b', 'b', 'a'], qrels, 3)).toBeCloseTo(2 / 3, 12); // dedupe → b, a
  });
  it('is null for a query without relevant documents and rejects bad k', () => {
    expect(recallAtK(ranking, { d: 0 }, 5)).toBeNull();
    expect(recallAtK(ranking, {}, 5)).toBeNull();
    expect(() => recallAtK(ranking, qrels, 0)).toThrow(RangeError);
    expect(() => recallAtK(ranking, qrels, 1.5)).toThrow(RangeError);
  });
});

describe('MRR@10', () => {
  it('is 1 / rank of the first relevant document', () => {
    expect(reciprocalRankAtK(ranking, qrels)).toBe(0.5); // b at rank 2
    expect(reciprocalRankAtK(['a'], qrels)).toBe(1);
    expect(reciprocalRankAtK(['d', 'x', 'c'], qrels)).toBeCloseTo(1 / 3, 12); // grade 0 is not relevant
  });
  it('is 0 when the first relevant document is below the cut-off', () => {
    const late = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', 'a'];
    expect(reciprocalRankAtK(late, qrels, 10)).toBe(0);
    expect(reciprocalRankAtK(late, qrels, 11)).toBeCloseTo(1 / 11, 12);
  });
  it('counts ranks after removing repeats', () => {
    expect(reciprocalRankAtK(['x', 'x', 'x', 'a'], qrels)).toBe(0.5);
  });
});

describe('nDCG@10 (linear gain, log2(i+1) discount)', () => {
  it('matches the hand computation on graded judgments', () => {
    // DCG  = 2/log2(3) + 3/log2(5) + 1/log2(7) = 1.261860 + 1.292030 + 0.356207 = 2.910096
    // IDCG = 3/log2(2) + 2/log2(3) + 1/log2(4) = 3 + 1.261860 + 0.5          = 4.761860
    expect(ndcgAtK(ranking, qrels, 10)).toBeCloseTo(2.9100963684711165 / 4.7618595071429155, 12);
    expect(ndcgAtK(ranking, qrels, 10)).toBeCloseTo(0.611126, 6);
  });
  it('cuts both DCG and IDCG at k', () => {
    // top 3 = x, b, d: DCG = 2/log2(3) = 1.261860; IDCG@3 = 4.761860 → 0.264993
    expect(ndcgAtK(ranking, qrels, 3)).toBeCloseTo(0.26499301486112564, 12);
    // IDCG@1 = 3; the ideal document first gives 1
    expect(ndcgAtK(['a', 'x'], qrels, 1)).toBe(1);
    expect(ndcgAtK(['b', 'a'], qrels, 1)).toBeCloseTo(2 / 3, 12);
  });
  it('is 1 for the ideal order and rewards putting the higher grade first', () => {
    expect(ndcgAtK(['a', 'b', 'c'], qrels)).toBeCloseTo(1, 12);
    const swapped = ndcgAtK(['b', 'a', 'c'], qrels) as number;
    // (2 + 3/log2(3) + 0.5) / 4.761860 = 4.392789 / 4.761860 = 0.922495
    expect(swapped).toBeCloseTo((2 + 3 / Math.log2(3) + 0.5) / 4.7618595071429155, 12);
    expect(swapped).toBeLessThan(1);
  });
  it('treats a short ranking as padded with non-relevant documents', () => {
    expect(ndcgAtK([], qrels)).toBe(0);
    expect(ndcgAtK(['c'], qrels)).toBeCloseTo(1 / 4.7618595071429155, 12);
  });
  it('equals binary nDCG with grade-1 judgments', () => {
    // relevant {p, q}; ranking p at 1, q at 3: DCG = 1 + 1/2 = 1.5; IDCG = 1 + 1/log2(3) = 1.630930
    expect(ndcgAtK(['p', 'z', 'q'], { p: 1, q: 1 })).toBeCloseTo(1.5 / (1 + 1 / Math.log2(3)), 12);
  });
  it('is null without relevant documents', () => {
    expect(ndcgAtK(['a'], { a: 0 })).toBeNull();
  });
});

describe('per-query scores and aggregation', () => {
  it('scores every metric of a query and averages over queries', () => {
    const s1 = scoreQuery(ranking, qrels);
    expect(s1).toMatchObject({ 'recall@1': 0, 'recall@20': 1, 'mrr@10': 0.5 });
    expect(scoreQuery(['a'], { a: 0 })).toBeNull();
    const s2 = scoreQuery(['a'], { a: 1 });
    expect(s2).toMatchObject({ 'recall@1': 1, 'mrr@10': 1, 'ndcg@10': 1 });
    const mean = meanScores([s1 as never, s2 as never]);
    expect(mean['mrr@10']).toBe(0.75);
    expect(mean['recall@1']).toBe(0.5);
    expect(meanScores([])).toEqual({});
  });
  it('dedupes keeping first occurrences and the cut', () => {
    expect(dedupe(['a', 'b', 'a', 'c', 'b', 'd'], 3)).toEqual(['a', 'b', 'c']);
  });
  it('takes nearest-rank percentiles', () => {
    const v = [5, 1, 4, 2, 3, 10, 9, 8, 7, 6];
    expect(percentile(v, 50)).toBe(5);
    expect(percentile(v, 95)).toBe(10);
    expect(percentile(v, 10)).toBe(1);
    expect(Number.isNaN(percentile([], 50))).toBe(true);
  });
});
