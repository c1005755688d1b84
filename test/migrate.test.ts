import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateKnowledge } from '../bot/migrate.ts';
import { SqliteKnowledgeStore } from '../core/knowledge-store/sqlite.ts';
import { WeaviateKnowledgeStore } from '../core/knowledge-store/weaviate.ts';
import type { ExportedArticle, KnowledgeStore } from '../core/knowledge-store.ts';
import { makeArticle, makeChunks, unit } from './contract/knowledge-store.contract.ts';
import { type FakeWeaviate, startFakeWeaviate } from './fakes/weaviate/server.ts';

const root = mkdtempSync(path.join(tmpdir(), 'supportbot-migrate-'));
let fake: FakeWeaviate;
let n = 0;
const sqlite = () => SqliteKnowledgeStore.open(path.join(root, `s${++n}`, 'knowledge.db'));
const weaviateStore = (tenant: string) =>
  WeaviateKnowledgeStore.connect({ url: fake.url, grpcUrl: fake.grpcUrl, tenant });
const info = { model: 'test:axes-4', dimensions: 4 };

beforeAll(async () => {
  fake = await startFakeWeaviate();
});
afterAll(async () => {
  await fake?.close();
  rmSync(root, { recursive: true, force: true });
});

async function exported(store: KnowledgeStore): Promise<ExportedArticle[]> {
  const out: ExportedArticle[] = [];
  for await (const item of store.exportArticles?.() ?? []) out.push(item);
  return out;
}

/** A store with the field shapes that can go wrong in a copy: null url, CJK, groups, headings, missing vectors. */
async function seed(store: SqliteKnowledgeStore): Promise<void> {
  await store.setEmbeddingInfo(info);
  const a = makeArticle({
    id: 'billing/refunds',
    title: 'Refunds',
    tags: ['billing', 'tax'],
    locale: 'en-US',
  });
  await store.upsertArticle(
    a,
    makeChunks(
      a,
      ['Refund an invoice from the billing page.', 'Refunds take 5 days.'],
      ['Billing', 'Refunds'],
    ),
    'hash-a',
    [unit(1), unit(1, 0.5)],
  );
  const b = makeArticle({
    id: 'ja/パスワード',
    title: 'パスワード',
    url: null,
    locale: 'ja',
    accessGroups: ['staff'],
  });
  await store.upsertArticle(b, makeChunks(b, ['パスワードを再設定する方法を説明します。']), 'hash-b', [
    unit(0, 1),
  ]);
  const c = makeArticle({ id: 'c', source: 'zendesk', title: 'Bank feeds', sourcePath: 'zendesk/123.md' });
  // Written without vectors, then only the first chunk embedded: a sync that had not finished.
  await store.upsertArticle(
    c,
    makeChunks(c, ['Error E1042 means reconnect.', 'Reconnect from settings.']),
    'hash-c',
  );
  await store.upsertVectors([{ chunkId: 'zendesk:c#0', vector: unit(0, 0, 1) }]);
  const d = makeArticle({ id: 'empty' });
  await store.upsertArticle(d, [], 'hash-d');
}

describe('migrateKnowledge', () => {
  it('sqlite → Weaviate (fake) → sqlite keeps articles, chunks, hashes and vectors, without re-embedding', async () => {
    const source = sqlite();
    await seed(source);
    const middle = await weaviateStore('migrate-round-trip');
    const back = sqlite();
    try {
      const steps: number[] = [];
      const there = await migrateKnowledge(source, middle, { onProgress: (p) => steps.push(p.articles) });
      expect(there).toMatchObject({ articles: 4, chunks: 5, vectors: 4, embedding: info });
      expect(steps.sort((x, y) => x - y)).toEqual([1, 2, 3, 4]);
      const original = await exported(source);
      expect(await exported(middle)).toEqual(original);
      expect(await middle.stats()).toEqual(await source.stats());
      expect(await middle.embeddingInfo?.()).toEqual(info);

      const home = await migrateKnowledge(middle, back);
      expect(home).toMatchObject({ articles: 4, chunks: 5, vectors: 4 });
      expect(await exported(back)).toEqual(original);
      expect(await back.stats()).toEqual(await source.stats());
      for (const s of ['docs', 'zendesk']) {
        expect(await back.listArticleHashes(s)).toEqual(await source.listArticleHashes(s));
      }
      // The chunk left without a vector is still waiting for one; the others are searchable by vector.
      expect((await back.listChunksWithoutVectors(10)).map((c) => c.id)).toEqual(['zendesk:c#1']);
      const near = await back.search('', { k: 1, vector: unit(0, 0, 1), mode: 'vector' });
      expect(near[0]?.chunk.id).toBe('zendesk:c#0');
      const nearThere = await middle.search('', { k: 1, vector: unit(0, 0, 1), mode: 'vector' });
      expect(nearThere[0]?.chunk.id).toBe('zendesk:c#0');
      expect(
        (await middle.search('再設定', { k: 5, filter: { accessGroups: ['staff'] } }))[0]?.chunk.articleId,
      ).toBe('ja/パスワード');
    } finally {
      await Promise.all([source.close(), middle.close(), back.close()]);
    }
  });

  it('refuses a target whose vectors are of another model, before writing anything', async () => {
    const source = sqlite();
    await seed(source);
    const target = await weaviateStore('migrate-mismatch');
    try {
      await target.setEmbeddingInfo({ model: 'test:other', dimensions: 8 });
      await expect(migrateKnowledge(source, target)).rejects.toMatchObject({ code: 'embedding-mismatch' });
      expect(await target.stats()).toEqual({ articles: 0, chunks: 0, sources: {} });
    } finally {
      await Promise.all([source.close(), target.close()]);
    }
  });

  it('stops at the first write error and a re-run completes the copy', async () => {
    const source = sqlite();
    await seed(source);
    const target = await weaviateStore('migrate-retry');
    try {
      fake.rejectObjects((obj) => (obj.properties.articleId === 'c' ? 'injected: disk full' : null));
      await expect(migrateKnowledge(source, target, { concurrency: 1 })).rejects.toMatchObject({
        code: 'store-write-failed',
      });
      fake.rejectObjects(null);
      expect((await target.stats()).articles).toBeLessThan(4);
      await migrateKnowledge(source, target);
      expect(await exported(target)).toEqual(await exported(source));
    } finally {
      fake.rejectObjects(null);
      await Promise.all([source.close(), target.close()]);
    }
  });
});
