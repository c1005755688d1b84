import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_SOURCE, folderSourceSchema } from '../core/config.ts';
import { OnnxEmbedder } from '../core/embedders/onnx.ts';
import { SqliteKnowledgeStore } from '../core/knowledge-store/sqlite.ts';
import { createReranker, rerankHits } from '../core/reranker.ts';
import { cl100kTokenizer } from '../core/tokenizer.ts';
import type { SearchHit } from '../core/types.ts';
import { loadQuestions } from '../evals/helpcenters.ts';
import type { Source } from '../sync/source.ts';
import { createFolderSource } from '../sync/sources/folder.ts';
import { embedMissingVectors, syncSource } from '../sync/sync.ts';
import {
  describeVectorStoreContract,
  makeArticle,
  makeChunks,
  unit,
} from './contract/knowledge-store.contract.ts';
import { writeTinyCrossEncoder } from './fixtures/models/tiny-cross-encoder.ts';
import { DIM, writeTinyEmbedder } from './fixtures/models/tiny-embedder.ts';

const root = mkdtempSync(path.join(tmpdir(), 'supportbot-hybrid-'));
let counter = 0;
const newFile = () => path.join(root, `store-${++counter}`, 'knowledge.db');
const chunking = { maxTokens: 200, overlapTokens: 20, tokenizer: cl100kTokenizer };
const articleIds = (hits: SearchHit[]) => hits.map((h) => h.chunk.articleId);

afterAll(() => rmSync(root, { recursive: true, force: true }));

function folder(name: string, dir: string): Source {
  return createFolderSource(folderSourceSchema.parse({ type: 'folder', name, path: dir }));
}

describeVectorStoreContract('SqliteKnowledgeStore', async () => SqliteKnowledgeStore.open(newFile()));

/**
 * Seven short articles in the example help center's words. Under the tiny model (see
 * test/fixtures/models/tiny-embedder.ts) each embeds mostly along one topic axis; stop words and
 * the error code E1042 are [UNK] (zero rows), so a query of only "E1042" embeds along the
 * [CLS]/[SEP] axis, nearest to the article with the fewest topic words, not to the bank article.
 */
const ARTICLES: Record<string, string> = {
  'refund-policy.md':
    '---\ntitle: Refund policy\n---\n\nAnnual plans are refunded in full within 14 days. Monthly payments are not refunded.\n',
  'reset-password.md':
    '---\ntitle: Reset your password\n---\n\nOpen the sign-in page and choose Forgot password.\n',
  'bank-feed-errors.md':
    '---\ntitle: Bank feed errors\n---\n\nError E1042 means your bank consent expired: select Reconnect and approve again.\n',
  'send-invoices.md': '---\ntitle: Send an invoice\n---\n\nCreate an invoice and send the bill by email.\n',
  'cancel.md':
    '---\ntitle: Cancel your subscription\n---\n\nYou can cancel or terminate your subscription at any time.\n',
  'two-factor.md': '---\ntitle: Two-factor authentication\n---\n\nTurn on 2FA with an authenticator app.\n',
  'upgrade.md':
    '---\ntitle: Upgrade your plan\n---\n\nUpgrade to a bigger plan; the subscription changes at once.\n',
};

describe('hybrid retrieval with the tiny ONNX embedder (real transformers.js + onnxruntime)', () => {
  let embedder: OnnxEmbedder;
  let store: SqliteKnowledgeStore;

  beforeAll(async () => {
    embedder = await OnnxEmbedder.load({ model: writeTinyEmbedder(path.join(root, 'tiny-embed')) });
    const docs = path.join(root, 'docs');
    mkdirSync(docs, { recursive: true });
    for (const [file, text] of Object.entries(ARTICLES)) writeFileSync(path.join(docs, file), text);
    store = SqliteKnowledgeStore.open(newFile());
    const summary = await syncSource(folder('kb', docs), store, { chunking, embedder, embedBatchSize: 3 });
    expect(summary).toMatchObject({ added: 7, chunks: 7, embedded: 7, failed: 0 });
  });
  afterAll(async () => {
    await store.close();
    await embedder.close();
  });

  const search = async (query: string, mode: 'bm25' | 'vector' | 'hybrid', extra: object = {}) => {
    const [vector] = await embedder.embedQueries([query]);
    return store.search(query, { k: 3, vector, mode, ...extra });
  };

  it('stores one vector per chunk and records the model id and dimension', async () => {
    expect(await store.embeddingInfo()).toEqual({ model: embedder.id, dimensions: DIM });
    expect(store.vectorCount()).toBe(7);
    expect(await store.listChunksWithoutVectors(10)).toEqual([]);
  });

  it('finds a synonym that BM25 misses: "reimbursement" → the refund policy', async () => {
    const question = 'How do I get a reimbursement?';
    expect(await search(question, 'bm25')).toEqual([]);
    expect(articleIds(await search(question, 'vector'))[0]).toBe('refund-policy');
    for (const fusion of ['rrf', 'relative'] as const) {
      expect(articleIds(await search(question, 'hybrid', { fusion }))[0]).toBe('refund-policy');
    }
  });

  it('keeps a keyword-only match that vectors miss: the exact error code E1042', async () => {
    expect(articleIds(await search('E1042', 'bm25'))).toEqual(['bank-feed-errors']);
    const byVector = articleIds(await search('E1042', 'vector'));
    expect(byVector[0]).not.toBe('bank-feed-errors');
    for (const fusion of ['rrf', 'relative'] as const) {
      expect(articleIds(await search('E1042', 'hybrid', { fusion }))[0]).toBe('bank-feed-errors');
    }
  });

  it('reranks the fused candidates down to k with the tiny cross-encoder', async () => {
    const reranker = await createReranker({ model: writeTinyCrossEncoder(path.join(root, 'tiny-ce')) });
    try {
      const question = 'bank invoice';
      const [vector] = await embedder.embedQueries([question]);
      const candidates = await store.search(question, { k: 6, vector });
      // Fused, "Send an invoice" comes first. The cross-encoder scores topic overlap (test
      // fixture): q = bank + invoice; "Bank feed errors …" holds bank, feed, bank, reconnect
      // (4 on the bank axis) → 4 − 0.25; "Send an invoice …" holds invoice ×2 + bill → 3 − 0.25.
      expect(articleIds(candidates).slice(0, 2)).toEqual(['send-invoices', 'bank-feed-errors']);
      const reranked = await rerankHits(reranker, question, candidates, 2);
      expect(articleIds(reranked)).toEqual(['bank-feed-errors', 'send-invoices']);
      expect(reranked.map((h) => h.score)).toEqual([expect.closeTo(3.75, 5), expect.closeTo(2.75, 5)]);
    } finally {
      await reranker.close();
    }
  });
});

describe('sync with an embedder on the example help center', () => {
  let mean: OnnxEmbedder;
  let cls: OnnxEmbedder;
  const source = () => createFolderSource(folderSourceSchema.parse(DEFAULT_SOURCE));

  beforeAll(async () => {
    mean = await OnnxEmbedder.load({ model: writeTinyEmbedder(path.join(root, 'ex-mean')) });
    cls = await OnnxEmbedder.load({
      model: writeTinyEmbedder(path.join(root, 'ex-cls'), { pooling: 'cls' }),
    });
  });
  afterAll(async () => {
    await mean.close();
    await cls.close();
  });

  let plain: SqliteKnowledgeStore;
  let embedded: SqliteKnowledgeStore;
  beforeEach(() => {
    plain = SqliteKnowledgeStore.open(newFile());
    embedded = SqliteKnowledgeStore.open(newFile());
  });
  afterEach(async () => {
    await plain.close();
    await embedded.close();
  });

  it('BM25-only search is unchanged by stored vectors (every labelled example question)', async () => {
    await syncSource(source(), plain, { chunking });
    const summary = await syncSource(source(), embedded, { chunking, embedder: mean });
    expect(summary.embedded).toBe(summary.chunks);
    expect(embedded.vectorCount()).toBe(summary.chunks);
    const questions = loadQuestions('examples');
    expect(questions.length).toBeGreaterThan(20);
    for (const { question } of questions) {
      expect(await embedded.search(question, { k: 5 }), question).toEqual(
        await plain.search(question, { k: 5 }),
      );
    }
  });

  it('embeddings turned on later fill every chunk without re-chunking', async () => {
    const first = await syncSource(source(), embedded, { chunking });
    expect(first.embedded).toBeUndefined();
    const second = await syncSource(source(), embedded, { chunking, embedder: mean });
    expect(second).toMatchObject({ added: 0, updated: 0, chunks: 0, embedded: first.chunks });
    expect(embedded.vectorCount()).toBe(first.chunks);
    const third = await syncSource(source(), embedded, { chunking, embedder: mean });
    expect(third.embedded).toBe(0);
  });

  it('another model is embedding-mismatch until sync --reembed, which re-embeds without re-chunking', async () => {
    const first = await syncSource(source(), embedded, { chunking, embedder: mean });
    const err = await syncSource(source(), embedded, { chunking, embedder: cls }).catch((e) => e);
    expect(err).toMatchObject({ code: 'embedding-mismatch' });
    expect(err.message).toContain('supportbot sync --reembed');
    // Nothing changed: the store still names the first model.
    expect(await embedded.embeddingInfo()).toEqual({ model: mean.id, dimensions: DIM });

    const again = await syncSource(source(), embedded, { chunking, embedder: cls, reembed: true });
    expect(again).toMatchObject({ added: 0, updated: 0, chunks: 0, embedded: first.chunks });
    expect(await embedded.embeddingInfo()).toEqual({ model: cls.id, dimensions: DIM });
    // CLS pooling puts every passage on the [CLS] axis (7): cosine 1 with it, 0 with a topic axis.
    const [special] = await cls.embedQueries(['refund']);
    const hits = await embedded.search('', {
      k: 500,
      vector: special,
      mode: 'vector',
      filter: { accessGroups: ['admins'] },
    });
    expect(hits).toHaveLength(first.chunks);
    for (const hit of hits) expect(hit.score).toBeCloseTo(1, 5);
    expect(await embedMissingVectors(embedded, cls)).toBe(0);
  });
});

describe('sync --reembed over two sources', () => {
  it('drops the old vectors once and re-embeds every chunk of both sources once', async () => {
    const mean = await OnnxEmbedder.load({ model: writeTinyEmbedder(path.join(root, 'two-mean')) });
    const cls = await OnnxEmbedder.load({
      model: writeTinyEmbedder(path.join(root, 'two-cls'), { pooling: 'cls' }),
    });
    const store = SqliteKnowledgeStore.open(newFile());
    const docs = path.join(root, 'two-docs');
    mkdirSync(docs, { recursive: true });
    for (const [file, text] of Object.entries(ARTICLES)) writeFileSync(path.join(docs, file), text);
    const sources = () => [createFolderSource(folderSourceSchema.parse(DEFAULT_SOURCE)), folder('kb', docs)];
    try {
      let total = 0;
      for (const src of sources())
        total += (await syncSource(src, store, { chunking, embedder: mean })).chunks;
      const summaries = [];
      for (const src of sources())
        summaries.push(await syncSource(src, store, { chunking, embedder: cls, reembed: true }));
      // The first source's sync resets and fills every chunk in the store; the second finds the
      // model already switched and nothing missing.
      expect(summaries.map((s) => s.embedded)).toEqual([total, 0]);
      expect(summaries.map((s) => s.chunks)).toEqual([0, 0]);
      expect(store.vectorCount()).toBe(total);
      expect(await store.embeddingInfo()).toEqual({ model: cls.id, dimensions: DIM });
    } finally {
      await store.close();
      await mean.close();
      await cls.close();
    }
  });
});

describe.each(['auto', 'two-pass', 'prefilter'] as const)(
  'SqliteKnowledgeStore vector path (%s filtering)',
  (vectorFilter) => {
    let store: SqliteKnowledgeStore;
    beforeEach(async () => {
      store = SqliteKnowledgeStore.open(newFile(), { vectorFilter });
      await store.setEmbeddingInfo({ model: 'test:axes-4', dimensions: 4 });
    });
    afterEach(async () => {
      await store.close();
    });

    const put = async (overrides: Parameters<typeof makeArticle>[0], text: string, vector: Float32Array) => {
      const article = makeArticle(overrides);
      await store.upsertArticle(article, makeChunks(article, [text]), 'h', [vector]);
    };

    it('a restrictive filter still finds a weak neighbour ranked below hundreds of others', async () => {
      // 150 public near-duplicates of the query fill the first KNN pass (max(100, 20k)); the German
      // and staff-only chunks are farther than all of them, so only the filtered pass can find them.
      for (let i = 0; i < 150; i++) await put({ id: `strong-${i}` }, `strong ${i}`, unit(1, 0.01 * (i % 7)));
      await put({ id: 'weak-de', locale: 'de' }, 'schwach', unit(0.3, 1));
      await put({ id: 'weak-staff', accessGroups: ['staff'] }, 'weak', unit(0.2, 1));
      const ids = async (filter: object, k = 5) =>
        articleIds(await store.search('', { k, filter, vector: unit(1), mode: 'vector' }));
      expect(await ids({ locales: ['de'] })).toEqual(['weak-de']);
      expect(await ids({ locales: ['de'] }, 1)).toEqual(['weak-de']);
      expect((await ids({ accessGroups: ['staff'] }, 200)).slice(-2)).toEqual(['weak-de', 'weak-staff']);
      expect((await ids({ accessGroups: ['staff'], locales: ['en'] }, 151)).at(-1)).toBe('weak-staff');
      expect(await ids({ accessGroups: ['staff'], tags: [] })).toEqual([]);
      expect(await ids({})).toHaveLength(5);
      // Hybrid: the filter holds in both lists.
      const hybrid = await store.search('schwach weak strong', {
        k: 3,
        vector: unit(1),
        filter: { locales: ['de'] },
      });
      expect(articleIds(hybrid)).toEqual(['weak-de']);
    });

    it('keeps the model across reopen, and vectors follow deletes', async () => {
      await put({ id: 'a' }, 'alpha', unit(1));
      await put({ id: 'b' }, 'beta', unit(0, 1));
      const file = store.id.slice('sqlite:'.length);
      await store.close();
      store = SqliteKnowledgeStore.open(file, { vectorFilter });
      expect(await store.embeddingInfo()).toEqual({ model: 'test:axes-4', dimensions: 4 });
      expect(store.vectorCount()).toBe(2);
      expect(await store.deleteArticles('docs', ['a'])).toBe(1);
      expect(store.vectorCount()).toBe(1);
      expect(articleIds(await store.search('', { k: 5, vector: unit(1), mode: 'vector' }))).toEqual(['b']);
    });

    it('a failing upsert leaves the old vectors (one transaction)', async () => {
      await put({ id: 'a' }, 'alpha', unit(1));
      const article = makeArticle({ id: 'a' });
      const [first] = makeChunks(article, ['new']);
      if (!first) throw new Error('no chunk');
      await expect(
        store.upsertArticle(article, [first, { ...first, index: 1 }], 'h2', [unit(0, 1), unit(0, 1)]),
      ).rejects.toThrow();
      expect(store.vectorCount()).toBe(1);
      const [hit] = await store.search('', { k: 1, vector: unit(1), mode: 'vector' });
      expect(hit).toMatchObject({ chunk: { text: 'alpha' }, score: expect.closeTo(1, 5) });
    });

    it('sees vectors and a new model set by another connection', async () => {
      const file = newFile();
      const reader = SqliteKnowledgeStore.open(file, { vectorFilter });
      const writer = SqliteKnowledgeStore.open(file, { vectorFilter });
      try {
        const article = makeArticle({ id: 'a' });
        await writer.upsertArticle(article, makeChunks(article, ['alpha']), 'h');
        // No vectors yet: the reader searches BM25 and ignores the query vector.
        expect(articleIds(await reader.search('alpha', { k: 5, vector: unit(1) }))).toEqual(['a']);
        await writer.setEmbeddingInfo({ model: 'test:axes-4', dimensions: 4 });
        await writer.upsertVectors([{ chunkId: 'docs:a#0', vector: unit(1) }]);
        expect(articleIds(await reader.search('', { k: 5, vector: unit(1), mode: 'vector' }))).toEqual(['a']);
        await writer.setEmbeddingInfo({ model: 'test:other-3', dimensions: 3 }, { reset: true });
        await expect(reader.search('', { k: 5, vector: unit(1), mode: 'vector' })).rejects.toMatchObject({
          code: 'embedding-mismatch',
        });
      } finally {
        await reader.close();
        await writer.close();
      }
    });

    it('refuses vectors before a model is set', async () => {
      const bare = SqliteKnowledgeStore.open(newFile());
      try {
        const article = makeArticle({ id: 'a' });
        await expect(
          bare.upsertArticle(article, makeChunks(article, ['x']), 'h', [unit(1)]),
        ).rejects.toMatchObject({
          code: 'embedding-not-set',
        });
        // Without vectors stored, a query vector is ignored: BM25 as before.
        await bare.upsertArticle(article, makeChunks(article, ['x ray']), 'h');
        expect(articleIds(await bare.search('ray', { k: 5, vector: unit(1) }))).toEqual(['a']);
        expect(await bare.embeddingInfo()).toBeNull();
      } finally {
        await bare.close();
      }
    });
  },
);
