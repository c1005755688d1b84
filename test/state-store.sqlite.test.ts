import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SupportbotError } from '../core/errors.ts';
import { KNOWLEDGE_MIGRATIONS, SqliteKnowledgeStore } from '../core/knowledge-store/sqlite.ts';
import { SqliteStateStore } from '../core/state-store/sqlite.ts';
import type { AnswerRecord } from '../core/types.ts';

const root = mkdtempSync(path.join(tmpdir(), 'supportbot-state-'));
let counter = 0;
const newFile = () => path.join(root, `state-${++counter}`, 'state.db');

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

function answer(
  id: string,
  createdAt = '2024-05-01T10:00:00.000Z',
  overrides: Partial<AnswerRecord> = {},
): AnswerRecord {
  return {
    id,
    platform: 'slack',
    threadId: `T-${id}`,
    userId: 'U-asker',
    question: `Question ${id}?`,
    result: {
      text: 'Open Billing and choose Refund [1].',
      citations: [
        {
          n: 1,
          articleId: 'billing/refunds',
          source: 'docs',
          title: 'Refunds',
          url: 'https://help.example/refunds',
          sourcePath: 'billing/refunds.md',
          chunkIds: ['docs:billing/refunds#0'],
        },
      ],
      abstained: false,
      escalated: false,
      confidence: 0.82,
      generator: 'extractive',
      latencyMs: 12,
      retrievedChunkIds: ['docs:billing/refunds#0', 'docs:billing/invoices#2'],
    },
    createdAt,
    ...overrides,
  };
}

describe('SqliteStateStore', () => {
  let file: string;
  let store: SqliteStateStore;

  beforeEach(() => {
    file = newFile();
    store = SqliteStateStore.open(file, { now: () => new Date('2024-05-02T00:00:00.000Z') });
  });

  afterEach(async () => {
    await store.close();
  });

  describe('answers', () => {
    it('saves and returns an answer unchanged', async () => {
      const record = answer('a1', '2024-05-01T10:00:00.000Z', {
        result: { ...answer('x').result, adapter: 'tone-v3' },
      });
      await store.saveAnswer(record);
      expect(await store.getAnswer('a1')).toEqual(record);
      expect(await store.getAnswer('missing')).toBeNull();
    });

    it('saving the same id again replaces the record and keeps its ratings', async () => {
      await store.saveAnswer(answer('a1'));
      await store.setRating('a1', 'u1', 1);
      await store.saveAnswer(answer('a1', undefined, { question: 'Edited?' }));
      expect((await store.getAnswer('a1'))?.question).toBe('Edited?');
      expect(await store.ratingSummary('a1')).toEqual({ up: 1, down: 0 });
      expect(await store.listAnswers()).toHaveLength(1);
    });

    it('lists answers oldest first, since (inclusive), limit, newest first', async () => {
      await store.saveAnswer(answer('c', '2024-05-03T00:00:00.000Z'));
      await store.saveAnswer(answer('a', '2024-05-01T00:00:00.000Z'));
      await store.saveAnswer(answer('b', '2024-05-02T00:00:00.000Z'));
      await store.saveAnswer(answer('b2', '2024-05-02T00:00:00.000Z'));
      const ids = (records: AnswerRecord[]) => records.map((r) => r.id);

      expect(ids(await store.listAnswers())).toEqual(['a', 'b', 'b2', 'c']);
      expect(ids(await store.listAnswers({ since: '2024-05-02T00:00:00.000Z' }))).toEqual(['b', 'b2', 'c']);
      expect(ids(await store.listAnswers({ limit: 2 }))).toEqual(['a', 'b']);
      expect(ids(await store.listAnswers({ limit: 0 }))).toEqual([]);
      expect(ids(await store.listAnswers({ order: 'newest-first', limit: 2 }))).toEqual(['c', 'b2']);
      expect(ids(await store.listAnswers({ since: '2030-01-01T00:00:00.000Z' }))).toEqual([]);
      expect((await store.listAnswers({ limit: 1 }))[0]).toEqual(answer('a', '2024-05-01T00:00:00.000Z'));
    });
  });

  describe('ratings', () => {
    beforeEach(async () => {
      await store.saveAnswer(answer('a1'));
      await store.saveAnswer(answer('a2'));
    });

    it('starts at zero', async () => {
      expect(await store.ratingSummary('a1')).toEqual({ up: 0, down: 0 });
      expect(await store.ratingSummary('unknown')).toEqual({ up: 0, down: 0 });
    });

    it('the same user rating twice counts once', async () => {
      expect(await store.setRating('a1', 'u1', 1)).toBeNull();
      expect(await store.setRating('a1', 'u1', 1)).toBe(1);
      expect(await store.setRating('a1', 'u1', 1)).toBe(1);
      expect(await store.ratingSummary('a1')).toEqual({ up: 1, down: 0 });
    });

    it('a rating can be changed and the change is not double-counted', async () => {
      await store.setRating('a1', 'u1', 1);
      expect(await store.setRating('a1', 'u1', -1)).toBe(1);
      expect(await store.ratingSummary('a1')).toEqual({ up: 0, down: 1 });
      expect(await store.setRating('a1', 'u1', 1)).toBe(-1);
      expect(await store.ratingSummary('a1')).toEqual({ up: 1, down: 0 });
    });

    it('a rating can be retracted; retracting twice is harmless', async () => {
      await store.setRating('a1', 'u1', -1);
      expect(await store.setRating('a1', 'u1', null)).toBe(-1);
      expect(await store.ratingSummary('a1')).toEqual({ up: 0, down: 0 });
      expect(await store.setRating('a1', 'u1', null)).toBeNull();
      expect(await store.ratingSummary('a1')).toEqual({ up: 0, down: 0 });
      expect(await store.setRating('a1', 'u1', 1)).toBeNull();
      expect(await store.ratingSummary('a1')).toEqual({ up: 1, down: 0 });
    });

    it('counts several users separately, per answer', async () => {
      await store.setRating('a1', 'u1', 1);
      await store.setRating('a1', 'u2', 1);
      await store.setRating('a1', 'u3', -1);
      await store.setRating('a2', 'u1', -1);
      await store.setRating('a1', 'u2', null);
      expect(await store.ratingSummary('a1')).toEqual({ up: 1, down: 1 });
      expect(await store.ratingSummary('a2')).toEqual({ up: 0, down: 1 });
    });

    it('rating an unknown answer is unknown-answer, and stores nothing', async () => {
      const attempt = store.setRating('nope', 'u1', 1);
      await expect(attempt).rejects.toBeInstanceOf(SupportbotError);
      await expect(store.setRating('nope', 'u1', 1)).rejects.toMatchObject({ code: 'unknown-answer' });
      await expect(store.setRating('nope', 'u1', null)).rejects.toMatchObject({ code: 'unknown-answer' });
      expect(await store.ratingSummary('nope')).toEqual({ up: 0, down: 0 });
    });

    it('rejects values other than 1, -1 and null', async () => {
      for (const value of [0, 2, '1', undefined]) {
        await expect(store.setRating('a1', 'u1', value as unknown as 1)).rejects.toMatchObject({
          code: 'invalid-rating',
        });
      }
      expect(await store.ratingSummary('a1')).toEqual({ up: 0, down: 0 });
    });
  });

  describe('file', () => {
    it('keeps answers and ratings across close and reopen', async () => {
      await store.saveAnswer(answer('a1'));
      await store.setRating('a1', 'u1', 1);
      await store.setRating('a1', 'u2', -1);
      await store.close();

      store = SqliteStateStore.open(file);
      expect(await store.getAnswer('a1')).toEqual(answer('a1'));
      expect(await store.ratingSummary('a1')).toEqual({ up: 1, down: 1 });
      expect(await store.setRating('a1', 'u1', 1)).toBe(1);
      expect(await store.ratingSummary('a1')).toEqual({ up: 1, down: 1 });
    });

    it('two connections to one file see each other’s ratings without double counting', async () => {
      await store.saveAnswer(answer('a1'));
      const other = SqliteStateStore.open(file);
      try {
        await store.setRating('a1', 'u1', 1);
        expect(await other.setRating('a1', 'u1', 1)).toBe(1);
        expect(await other.setRating('a1', 'u2', -1)).toBeNull();
        expect(await store.ratingSummary('a1')).toEqual({ up: 1, down: 1 });
      } finally {
        await other.close();
      }
    });

    it('shares one file with the knowledge store', async () => {
      const knowledge = SqliteKnowledgeStore.open(file);
      try {
        expect(knowledge.schemaVersion).toBe(KNOWLEDGE_MIGRATIONS.length);
        await store.saveAnswer(answer('a1'));
        expect(await knowledge.stats()).toEqual({ articles: 0, chunks: 0, sources: {} });
        expect(await store.getAnswer('a1')).not.toBeNull();
      } finally {
        await knowledge.close();
      }
      await store.close();
      store = SqliteStateStore.open(file);
      expect(await store.getAnswer('a1')).not.toBeNull();
    });

    it('throws store-closed after close', async () => {
      await store.close();
      await expect(store.getAnswer('a1')).rejects.toMatchObject({ code: 'store-closed' });
      await expect(store.setRating('a1', 'u1', 1)).rejects.toMatchObject({ code: 'store-closed' });
      store = SqliteStateStore.open(newFile());
    });

    it('has an id naming the file', () => {
      expect(store.id).toBe(`sqlite:${file}`);
    });
  });
});
