/**
 * Coverage gaps from the state store (real SQLite state store): abstained or 👎-rated answers,
 * clustered by Jaccard similarity of their topic terms with complete linkage.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStateStore } from '../core/state-store/sqlite.ts';
import type { AnswerRecord } from '../core/types.ts';
import { clusterTermSets, coverageGaps, gapsText, jaccard } from '../evals/gaps.ts';

const root = mkdtempSync(path.join(tmpdir(), 'evals-gaps-test-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('jaccard and complete-linkage clustering', () => {
  it('computes |A ∩ B| / |A ∪ B|', () => {
    expect(jaccard(new Set(['a', 'b', 'c']), new Set(['b', 'c', 'd']))).toBe(0.5); // 2 / 4
    expect(jaccard(new Set(), new Set())).toBe(0);
    expect(jaccard(new Set(['a']), new Set(['b']))).toBe(0);
  });
  it('does not chain: two sets that share nothing stay apart even through a common neighbour', () => {
    const s = (...t: string[]) => new Set(t);
    // A = {x,y,z}, B = {y,z,w}, C = {w,v,u}: A~B = 2/4 = 0.5, B~C = 1/5 = 0.2, A~C = 0.
    // Single linkage at 0.2 would join all three through B; complete linkage keeps C apart.
    const sets = [s('x', 'y', 'z'), s('y', 'z', 'w'), s('w', 'v', 'u')];
    expect(clusterTermSets(sets, 0.2)).toEqual([[0, 1], [2]]);
    expect(clusterTermSets(sets, 0.6)).toEqual([[0], [1], [2]]);
    expect(clusterTermSets([], 0.5)).toEqual([]);
  });
});

function record(id: string, question: string, abstained: boolean, minute: number): AnswerRecord {
  return {
    id,
    platform: 'slack',
    threadId: `t-${id}`,
    userId: 'U1',
    question,
    result: {
      text: abstained ? 'I could not find this' : 'Here is how [1]',
      citations: [],
      abstained,
      escalated: false,
      confidence: abstained ? 0.1 : 0.9,
      generator: 'extractive',
      latencyMs: 5,
      retrievedChunkIds: [],
    },
    createdAt: `2026-03-01T10:${String(minute).padStart(2, '0')}:00.000Z`,
  };
}

describe('coverageGaps over the SQLite state store', () => {
  it('groups abstained and 👎 questions by wording, biggest first, ignoring good answers', async () => {
    const state = SqliteStateStore.open(path.join(root, 'state.sqlite'));
    try {
      const rows: [string, string, boolean][] = [
        ['a1', 'How do I export invoices to CSV?', true],
        ['a2', 'export my invoices as a CSV file', true],
        ['a3', 'can I export invoices to csv for my accountant', false], // answered but rated 👎
        ['a4', 'does the app support dark mode?', true],
        ['a5', 'dark mode setting', true],
        ['a6', 'how do I reset my password', false], // answered, 👍: not a gap
        ['a7', 'integration with quantum payroll', true],
      ];
      for (const [i, [id, q, abstained]] of rows.entries())
        await state.saveAnswer(record(id, q, abstained, i));
      await state.setRating('a3', 'U2', -1);
      await state.setRating('a6', 'U2', 1);

      const report = await coverageGaps(state);
      expect(report).toMatchObject({ answers: 7, gaps: 6 });
      expect(report.clusters.map((c) => [c.count, c.abstained, c.downvoted])).toEqual([
        [3, 2, 1],
        [2, 2, 0],
        [1, 1, 0],
      ]);
      expect(report.clusters[0]?.terms.slice(0, 3).sort()).toEqual(['csv', 'export', 'invoic']);
      expect(report.clusters[0]?.examples[0]).toBe('How do I export invoices to CSV?');
      expect(report.clusters[1]?.answerIds).toEqual(['a4', 'a5']);
      const text = gapsText(report);
      expect(text).toContain('6 of 7 answers were abstained on or rated 👎; 3 groups');
      expect(text).toContain('3× [');

      const since = await coverageGaps(state, { since: '2026-03-01T10:03:00.000Z' });
      expect(since.gaps).toBe(3); // a4, a5, a7
    } finally {
      await state.close();
    }
  });
});
