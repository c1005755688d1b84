import { describe, expect, it } from 'vitest';
import { hybridWeights, RRF_K, reciprocalRankFusion, relativeScoreFusion } from '../core/fusion.ts';

const list = (...entries: [string, number][]) => entries.map(([key, score]) => ({ key, score }));
const keys = (ranked: { key: string }[]) => ranked.map((r) => r.key);

describe('reciprocal rank fusion (Cormack et al. 2009, k = 60)', () => {
  // Scores are irrelevant to RRF; only positions count.
  const vector = list(['a', 0.9], ['b', 0.8], ['c', 0.1]);
  const bm25 = list(['c', 12], ['a', 3], ['d', 1]);

  it('sums 1/(60 + rank) over the lists (hand-computed)', () => {
    expect(RRF_K).toBe(60);
    const fused = reciprocalRankFusion([
      { items: vector, weight: 1 },
      { items: bm25, weight: 1 },
    ]);
    // a: 1/61 + 1/62 = 0.032522; c: 1/63 + 1/61 = 0.032266; b: 1/62 = 0.016129; d: 1/63 = 0.015873.
    expect(keys(fused)).toEqual(['a', 'c', 'b', 'd']);
    expect(fused[0]?.score).toBeCloseTo(1 / 61 + 1 / 62, 12);
    expect(fused[1]?.score).toBeCloseTo(1 / 63 + 1 / 61, 12);
    expect(fused[2]?.score).toBeCloseTo(1 / 62, 12);
    expect(fused[3]?.score).toBeCloseTo(1 / 63, 12);
  });

  it('weights lists (alpha) and takes another k', () => {
    const { vector: wv, keyword: wk } = hybridWeights(0.25);
    const fused = reciprocalRankFusion(
      [
        { items: vector, weight: wv },
        { items: bm25, weight: wk },
      ],
      { k: 1 },
    );
    // k = 1: a = .25/2 + .75/3 = 0.375; c = .25/4 + .75/2 = 0.4375; b = .25/3 = 0.0833; d = .75/4 = 0.1875.
    expect(keys(fused)).toEqual(['c', 'a', 'd', 'b']);
    expect(fused.map((f) => f.score)).toEqual(
      [0.4375, 0.375, 0.1875, 0.25 / 3].map((x) => expect.closeTo(x, 12)),
    );
  });

  it('a list with weight 0 contributes nothing, not even its keys; limit cuts the tail', () => {
    expect(
      keys(
        reciprocalRankFusion([
          { items: vector, weight: 1 },
          { items: bm25, weight: 0 },
        ]),
      ),
    ).toEqual(['a', 'b', 'c']);
    expect(keys(reciprocalRankFusion([{ items: bm25, weight: 1 }], { limit: 2 }))).toEqual(['c', 'a']);
    expect(reciprocalRankFusion([], {})).toEqual([]);
  });

  it('breaks ties by first appearance (list order, then rank)', () => {
    // x is rank 1 in the first list, y rank 1 in the second: equal scores, x was seen first.
    const fused = reciprocalRankFusion([
      { items: list(['x', 1]), weight: 1 },
      { items: list(['y', 1]), weight: 1 },
    ]);
    expect(keys(fused)).toEqual(['x', 'y']);
  });

  it('rejects negative k and weights', () => {
    expect(() => reciprocalRankFusion([{ items: vector, weight: 1 }], { k: -1 })).toThrow(RangeError);
    expect(() => reciprocalRankFusion([{ items: vector, weight: -0.5 }])).toThrow(RangeError);
  });
});

describe('relative score fusion (Weaviate relativeScoreFusion)', () => {
  it('min-max normalizes each list, weights by alpha and sums (hand-computed)', () => {
    const vector = list(['a', 0.9], ['b', 0.7], ['c', 0.5]);
    const bm25 = list(['c', 10], ['d', 6], ['a', 2]);
    const { vector: wv, keyword: wk } = hybridWeights(0.75);
    const fused = relativeScoreFusion([
      { items: vector, weight: wv },
      { items: bm25, weight: wk },
    ]);
    // vector normalized: a 1, b 0.5, c 0; bm25 normalized: c 1, d 0.5, a 0.
    // a = .75·1 + .25·0 = 0.75; b = .75·.5 = 0.375; c = 0 + .25·1 = 0.25; d = .25·.5 = 0.125.
    expect(keys(fused)).toEqual(['a', 'b', 'c', 'd']);
    expect(fused.map((f) => f.score)).toEqual([0.75, 0.375, 0.25, 0.125].map((x) => expect.closeTo(x, 12)));
  });

  it('alpha 1 is pure vector order, alpha 0 pure keyword order', () => {
    const vector = list(['a', 0.9], ['b', 0.2]);
    const bm25 = list(['b', 5], ['c', 4]);
    const run = (alpha: number) => {
      const w = hybridWeights(alpha);
      return keys(
        relativeScoreFusion([
          { items: vector, weight: w.vector },
          { items: bm25, weight: w.keyword },
        ]),
      );
    };
    expect(run(1)).toEqual(['a', 'b']);
    expect(run(0)).toEqual(['b', 'c']);
    // alpha 0.5: a = .5, b = 0 + .5 = .5 (tie, a first), c = 0.
    expect(run(0.5)).toEqual(['a', 'b', 'c']);
  });

  it('a list whose scores are all equal (one hit) normalizes to 1', () => {
    const fused = relativeScoreFusion([
      { items: list(['only', 3.2]), weight: 0.5 },
      { items: list(['p', 0.8], ['q', 0.4]), weight: 0.5 },
    ]);
    expect(fused).toEqual([
      { key: 'only', score: 0.5 },
      { key: 'p', score: 0.5 },
      { key: 'q', score: 0 },
    ]);
  });

  it('rejects alpha outside 0..1 and non-finite scores', () => {
    expect(() => hybridWeights(1.1)).toThrow(RangeError);
    expect(() => hybridWeights(Number.NaN)).toThrow(RangeError);
    expect(() => relativeScoreFusion([{ items: list(['a', Number.NaN]), weight: 1 }])).toThrow(RangeError);
  });
});
