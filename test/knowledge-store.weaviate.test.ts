import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import weaviate, { generateUuid5 } from 'weaviate-client';
import { SqliteKnowledgeStore } from '../core/knowledge-store/sqlite.ts';
import {
  analyzeForIndex,
  analyzeQuery,
  chunkObjectIds,
  classifyError,
  localeRanges,
  objectId,
  tenantName,
  WeaviateKnowledgeStore,
  weaviateOptionsFromEnv,
} from '../core/knowledge-store/weaviate.ts';
import { contentTerms } from '../core/text.ts';
import type { Chunk } from '../core/types.ts';
import {
  describeKnowledgeStoreContract,
  describeVectorStoreContract,
  makeArticle,
  makeChunks,
  unit,
} from './contract/knowledge-store.contract.ts';
import { type FakeWeaviate, startFakeWeaviate } from './fakes/weaviate/server.ts';

let fake: FakeWeaviate;
let tenants = 0;
beforeAll(async () => {
  fake = await startFakeWeaviate();
});
afterAll(async () => {
  // Every REST call the client made is one the fake implements.
  expect(fake?.unhandled).toEqual([]);
  await fake?.close();
});

// Every store gets a new tenant: an empty store, and tenants must not see each other's data.
const makeFakeStore = () =>
  WeaviateKnowledgeStore.connect({ url: fake.url, grpcUrl: fake.grpcUrl, tenant: `t${++tenants}` });

describe('against the local Weaviate-speaking fake', () => {
  describeKnowledgeStoreContract('WeaviateKnowledgeStore (fake)', makeFakeStore);
  describeVectorStoreContract('WeaviateKnowledgeStore (fake)', makeFakeStore);
});

/** A TCP port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('WeaviateKnowledgeStore specifics (fake)', () => {
  it('object ids: deterministic UUIDv5, and (source, id) pairs that concatenate alike do not collide', () => {
    expect(objectId('chunk', 'docs', 'a', 0)).toBe(objectId('chunk', 'docs', 'a', 0));
    expect(objectId('chunk', 'docs', 'a', 0)).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    // The client's generateUuid5(id, ns) hashes id + ns: a plain join collides, the encoding does not.
    expect(generateUuid5('a:b', 'c')).toBe(generateUuid5('a:', 'bc'));
    const pairs: [string, string][] = [
      ['a:b', 'c'],
      ['a', 'b:c'],
      ['a', 'b\u0000c'],
      ['a\u0000b', 'c'],
      ['a","b', 'c'],
      ['a', '","b","c'],
      ['', 'ab'],
      ['ab', ''],
    ];
    const ids = new Set(pairs.map(([source, id]) => objectId('chunk', source, id, 0)));
    expect(ids.size).toBe(pairs.length);
    expect(objectId('chunk', 'docs', 'a', 1)).not.toBe(objectId('chunk', 'docs', 'a1', 0));
    expect(objectId('article', 'docs', 'a')).not.toBe(objectId('chunk', 'docs', 'a', 0));
  });

  it('analysis: stems like the index, CJK bigrams, stop words only when nothing else, null when nothing is left', () => {
    expect(analyzeForIndex('Refunded invoices')).toBe('refund invoic');
    expect(analyzeQuery('How do I refund my INVOICES?')).toBe('refund invoic');
    expect(analyzeQuery('how to')).toBe('how to');
    expect(analyzeForIndex('再設定')).toBe('再 設 定 再設 設定');
    expect(analyzeQuery('再設定')).toBe('再設 設定');
    expect(analyzeQuery('🙂 ?!')).toBeNull();
    expect(localeRanges('zh-Hant-TW')).toEqual(['zh', 'zh-hant', 'zh-hant-tw']);
  });

  it('creates both collections with an explicit schema: multi-tenancy, vectorizer none, tokenization, BM25 defaults', async () => {
    const store = await makeFakeStore();
    await store.close();
    const chunks = fake.engine.getClass('SupportbotChunk')?.def;
    const articles = fake.engine.getClass('SupportbotChunkArticle')?.def;
    expect(chunks?.multiTenancyConfig).toMatchObject({ enabled: true, autoTenantCreation: false });
    expect(articles?.multiTenancyConfig).toMatchObject({ enabled: true });
    expect(chunks?.invertedIndexConfig).toMatchObject({
      bm25: { k1: 1.2, b: 0.75 },
      stopwords: { preset: 'none' },
    });
    const vector = Object.values(chunks?.vectorConfig ?? {})[0];
    expect(vector?.vectorizer).toHaveProperty('none');
    expect(vector?.vectorIndexType).toBe('hnsw');
    expect(vector?.vectorIndexConfig?.distance).toBe('cosine');
    const prop = (name: string) => chunks?.properties.find((p) => p.name === name);
    for (const name of ['titleSearch', 'headingsSearch', 'bodySearch']) {
      expect(prop(name)).toMatchObject({
        dataType: ['text'],
        tokenization: 'whitespace',
        indexSearchable: true,
      });
    }
    for (const name of [
      'source',
      'articleId',
      'tags',
      'accessGroups',
      'localeRanges',
      'chunkId',
      'writeId',
    ]) {
      expect(prop(name)).toMatchObject({
        tokenization: 'field',
        indexFilterable: true,
        indexSearchable: false,
      });
    }
    // Raw text is stored for answers, not indexed (the analysed copies are).
    expect(prop('text')).toMatchObject({ indexSearchable: false, indexFilterable: false });
    expect(fake.engine.tenants('SupportbotChunk')).toContain(`t${tenants}`);
  });

  it('a vectorizer module: in the schema, embeds on write, searches by the raw query text', async () => {
    // Stands in for the module's inference container: words hashed into 16 buckets.
    const bagOfWords = (text: string) => {
      const v = new Float32Array(16);
      for (const w of text.toLowerCase().match(/[a-z]+/g) ?? []) {
        let h = 0;
        for (const ch of w) h = (h * 31 + ch.charCodeAt(0)) % 16;
        v[h] = (v[h] ?? 0) + 1;
      }
      return v;
    };
    const withModule = await startFakeWeaviate({ modules: { 'text2vec-transformers': bagOfWords } });
    const store = await WeaviateKnowledgeStore.connect({
      url: withModule.url,
      grpcUrl: withModule.grpcUrl,
      collection: 'Vectorized',
      vectorizer: 'text2vec-transformers',
    });
    try {
      const def = withModule.engine.getClass('Vectorized')?.def;
      const vector = Object.values(def?.vectorConfig ?? {})[0];
      expect(vector?.vectorizer).toEqual({ 'text2vec-transformers': { properties: ['title', 'text'] } });
      const a = makeArticle({ id: 'a', title: 'Refunds' });
      await store.upsertArticle(a, makeChunks(a, ['money back within two weeks']), 'h');
      const b = makeArticle({ id: 'b', title: 'Passwords' });
      await store.upsertArticle(b, makeChunks(b, ['reset the sign in secret']), 'h');
      // Weaviate embedded them: nothing waits for our embedder.
      expect(await store.listChunksWithoutVectors?.(10)).toEqual([]);
      // "money back" shares no stemmed term with the query's keyword part, only the module's vector finds it.
      const byVector = await store.search('want my money back', { k: 1, mode: 'vector' });
      expect(byVector[0]?.chunk.articleId).toBe('a');
      const hybrid = await store.search('reset my secret', { k: 2 });
      expect(hybrid[0]?.chunk.articleId).toBe('b');
      await expect(store.upsertArticle(a, makeChunks(a, ['x']), 'h', [unit(1)])).rejects.toMatchObject({
        code: 'invalid-option',
      });
    } finally {
      await store.close();
      await withModule.close();
    }
  });

  it('a module the server lacks and gse without its server flag are refused at connect', async () => {
    await expect(
      WeaviateKnowledgeStore.connect({
        url: fake.url,
        grpcUrl: fake.grpcUrl,
        collection: 'NoModule',
        vectorizer: 'text2vec-openai',
      }),
    ).rejects.toMatchObject({
      code: 'store-error',
      message: expect.stringMatching(/NoModule.*no module with name.*text2vec-openai/),
    });
    await expect(
      WeaviateKnowledgeStore.connect({
        url: fake.url,
        grpcUrl: fake.grpcUrl,
        collection: 'Gse',
        tokenization: 'gse',
      }),
    ).rejects.toMatchObject({ code: 'store-error', message: expect.stringMatching(/ENABLE_TOKENIZER_GSE/) });
  });

  it('tenants are isolated: one workspace never sees another one’s articles', async () => {
    const acme = await WeaviateKnowledgeStore.connect({
      url: fake.url,
      grpcUrl: fake.grpcUrl,
      tenant: 'acme',
    });
    const globex = await WeaviateKnowledgeStore.connect({
      url: fake.url,
      grpcUrl: fake.grpcUrl,
      tenant: 'globex',
    });
    try {
      const a = makeArticle({ id: 'same-id', title: 'Acme refunds' });
      await acme.upsertArticle(a, makeChunks(a, ['acme refund rules']), 'h-acme');
      const g = makeArticle({ id: 'same-id', title: 'Globex refunds' });
      await globex.upsertArticle(g, makeChunks(g, ['globex refund rules']), 'h-globex');
      expect((await acme.search('refund', { k: 5 })).map((h) => h.chunk.title)).toEqual(['Acme refunds']);
      expect((await globex.search('refund', { k: 5 })).map((h) => h.chunk.title)).toEqual(['Globex refunds']);
      await acme.deleteArticles('docs', ['same-id']);
      expect(await acme.stats()).toMatchObject({ articles: 0, chunks: 0 });
      expect(await globex.stats()).toMatchObject({ articles: 1, chunks: 1 });
      expect(globex.id).toMatch(/#globex$/);
    } finally {
      await Promise.all([acme.close(), globex.close()]);
    }
  });

  it('a batch with per-object errors throws store-write-failed naming them', async () => {
    const store = await makeFakeStore();
    try {
      fake.rejectObjects((obj) => (obj.properties.chunkIndex === 1 ? 'shard is read-only' : null));
      const a = makeArticle({ id: 'a' });
      const err = await store
        .upsertArticle(a, makeChunks(a, ['one', 'two', 'three']), 'h')
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'store-write-failed' });
      expect((err as Error).message).toMatch(/1 of 3 objects.*#1 .*shard is read-only/);
      // The hash is written last, so the failed article is not recorded as synced.
      expect(await store.listArticleHashes('docs')).toEqual([]);
    } finally {
      fake.rejectObjects(null);
      await store.close();
    }
  });

  it('hybrid scores follow Weaviate’s fusion: ranked 1/(60 + rank) from 0, relative min-max', async () => {
    const store = await makeFakeStore();
    try {
      await store.setEmbeddingInfo?.({ model: 'test:axes-4', dimensions: 4 });
      const put = async (id: string, text: string, v: Float32Array) => {
        const a = makeArticle({ id });
        await store.upsertArticle(a, makeChunks(a, [text]), 'h', [v]);
      };
      await put('both', 'zebra zebra zebra', unit(1));
      await put('text', 'zebra', unit(0, 1));
      await put('vec', 'nothing here', unit(1, 0.2));
      const ranked = await store.search('zebra', { k: 3, vector: unit(1), fusion: 'rrf', alpha: 0.5 });
      // BM25: both, text. Vector: both, vec, text (cosine 1, 0.98, 0).
      expect(ranked.map((h) => h.chunk.articleId)).toEqual(['both', 'text', 'vec']);
      expect(ranked[0]?.score).toBeCloseTo(0.5 / 60 + 0.5 / 60, 6);
      expect(ranked[1]?.score).toBeCloseTo(0.5 / 61 + 0.5 / 62, 6);
      expect(ranked[2]?.score).toBeCloseTo(0.5 / 61, 6);
      const relative = await store.search('zebra', {
        k: 3,
        vector: unit(1),
        fusion: 'relative',
        alpha: 0.25,
      });
      // "both" is best in both lists: 0.75 · 1 + 0.25 · 1.
      expect(relative[0]?.chunk.articleId).toBe('both');
      expect(relative[0]?.score).toBeCloseTo(1, 6);
      // "text" is the worse BM25 hit (0) and the farthest vector (0): 0.
      expect(relative.find((h) => h.chunk.articleId === 'text')?.score).toBeCloseTo(0, 6);
      // A query with no searchable term fuses the vector list alone, scored the same way.
      const lone = await store.search('🙂', { k: 3, vector: unit(1), fusion: 'rrf', alpha: 0.5 });
      expect(lone.map((h) => h.chunk.articleId)).toEqual(['both', 'vec', 'text']);
      expect(lone.map((h) => h.score)).toEqual([0.5 / 60, 0.5 / 61, 0.5 / 62]);
      expect(await store.search('🙂', { k: 3, vector: unit(1), alpha: 0 })).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it('a concurrent search never finds a re-written article without chunks', async () => {
    const store = await makeFakeStore();
    try {
      const a = makeArticle({ id: 'live', title: 'Walrus care' });
      const texts = (v: string, n: number) => Array.from({ length: n }, (_, i) => `walrus ${v} part ${i}`);
      await store.upsertArticle(a, makeChunks(a, texts('old', 30)), 'v1');
      let done = false;
      const seen: number[] = [];
      const reader = (async () => {
        while (!done) seen.push((await store.search('walrus', { k: 100 })).length);
      })();
      for (let round = 0; round < 3; round++) {
        await store.upsertArticle(a, makeChunks(a, texts(`new${round}`, 20 + round)), `v${round + 2}`);
      }
      done = true;
      await reader;
      expect(seen.length).toBeGreaterThan(0);
      expect(Math.min(...seen)).toBeGreaterThan(0);
      const final = await store.search('walrus', { k: 100 });
      expect(final).toHaveLength(22);
      expect(final.every((h) => h.chunk.text.includes('new2'))).toBe(true);
    } finally {
      await store.close();
    }
  });

  it('two writers racing on one article never leave it without chunks', async () => {
    const store = await makeFakeStore();
    try {
      const a = makeArticle({ id: 'raced' });
      for (let round = 0; round < 5; round++) {
        const short = makeChunks(a, ['narwhal one', 'narwhal two']);
        const long = makeChunks(
          a,
          Array.from({ length: 6 }, (_, i) => `narwhal long ${i}`),
        );
        await Promise.all([store.upsertArticle(a, short, 's'), store.upsertArticle(a, long, 'l')]);
        const hits = await store.search('narwhal', { k: 20 });
        expect(hits.length).toBeGreaterThanOrEqual(2);
        // Whatever interleaving happened, each index is held once.
        expect(new Set(hits.map((h) => h.chunk.index)).size).toBe(hits.length);
      }
    } finally {
      await store.close();
    }
  });

  it('document frequencies agree with the embedded store for contentTerms', async () => {
    const store = await makeFakeStore();
    const sqlite = SqliteKnowledgeStore.open(path.join(mkdtempSync(path.join(tmpdir(), 'wv-df-')), 'k.db'));
    try {
      const articles: [string, string, string[]][] = [
        ['a', 'Refunds', ['Refunding an invoice takes days.', 'Invoices list every charge.']],
        ['b', 'Passwords', ['Reset the password from the sign-in page.']],
        ['c', '退款', ['如何申请退款和发票']],
      ];
      for (const target of [store, sqlite]) {
        for (const [id, title, texts] of articles) {
          const a = makeArticle({ id, title });
          await target.upsertArticle(a, makeChunks(a, texts), 'h');
        }
      }
      const terms = contentTerms('refunded invoices password charges sign unknownword');
      const expected = await sqlite.documentFrequencies(terms);
      expect(expected.df.refund).toBe(2);
      expect(await store.documentFrequencies?.(terms)).toEqual(expected);
      // CJK words count the chunks holding all their bigrams. (The SQLite store reports 0 for
      // them: its FTS5 vocabulary holds single CJK characters only.)
      expect((await store.documentFrequencies?.(['退款', '发票', '退票']))?.df).toEqual({
        退款: 1,
        发票: 1,
        退票: 0,
      });
    } finally {
      await Promise.all([store.close(), sqlite.close()]);
    }
  });

  it('replicas connecting at once to a new collection both succeed', async () => {
    const connect = (tenant: string) =>
      WeaviateKnowledgeStore.connect({
        url: fake.url,
        grpcUrl: fake.grpcUrl,
        collection: 'RaceToCreate',
        tenant,
      });
    const stores = await Promise.all([connect('same'), connect('same'), connect('other')]);
    await Promise.all(stores.map((s) => s.close()));
    expect(fake.engine.tenants('RaceToCreate').sort()).toEqual(['other', 'same']);
  });

  it('deletes past the server’s per-request cap (QUERY_MAXIMUM_RESULTS) by repeating the delete', async () => {
    const capped = await startFakeWeaviate({ maxResults: 5 });
    const store = await WeaviateKnowledgeStore.connect({
      url: capped.url,
      grpcUrl: capped.grpcUrl,
      maxResults: 5,
    });
    try {
      const a = makeArticle({ id: 'long' });
      const many = Array.from({ length: 12 }, (_, i) => `heron ${i}`);
      await store.upsertArticle(a, makeChunks(a, many), 'h1');
      // Shrinking to 1 chunk deletes 11, more than one request may.
      await store.upsertArticle(a, makeChunks(a, ['heron only']), 'h2');
      expect(await store.stats()).toMatchObject({ chunks: 1 });
      await store.upsertArticle(a, makeChunks(a, many), 'h3');
      expect(await store.deleteArticles('docs', ['long'])).toBe(1);
      expect(await store.stats()).toEqual({ articles: 0, chunks: 0, sources: {} });
      expect(capped.calls.get('BatchDelete')).toBeGreaterThan(4);
    } finally {
      await store.close();
      await capped.close();
    }
  });

  it('deletes everything stale when the server’s cap is lower than the configured maxResults', async () => {
    // The server runs with QUERY_MAXIMUM_RESULTS=5; the store was left at its default (10,000), so
    // a capped reply (5 matches) looks like "fewer than the cap matched" to it.
    const capped = await startFakeWeaviate({ maxResults: 5 });
    const store = await WeaviateKnowledgeStore.connect({ url: capped.url, grpcUrl: capped.grpcUrl });
    // Counted in the fake's own storage: the store's reads (walks, searches with a larger limit)
    // are refused by a server capped below them, which is not what this test is about.
    const stored = (className: string) =>
      [...(capped.engine.getClass(className)?.shards.values() ?? [])].reduce((n, s) => n + s.objects.size, 0);
    try {
      const a = makeArticle({ id: 'long' });
      const many = Array.from({ length: 12 }, (_, i) => `egret ${i}`);
      await store.upsertArticle(a, makeChunks(a, many), 'h1');
      expect(stored(store.collectionName)).toBe(12);
      await store.upsertArticle(a, makeChunks(a, ['egret only']), 'h2');
      expect(stored(store.collectionName)).toBe(1);
      expect((await store.search('egret', { k: 5 })).map((h) => h.chunk.text)).toEqual(['egret only']);
      await store.upsertArticle(a, makeChunks(a, many), 'h3');
      expect(await store.deleteArticles('docs', ['long'])).toBe(1);
      expect(stored(store.collectionName)).toBe(0);
      expect(stored(store.articleCollectionName)).toBe(0);
    } finally {
      await store.close();
      await capped.close();
    }
  });

  it('getChunks fetches chunk objects by their UUIDv5 ids, in batches the server cap allows', async () => {
    expect(chunkObjectIds('docs:a#3')).toEqual([objectId('chunk', 'docs', 'a', 3)]);
    expect(chunkObjectIds('a:b:c#0')).toEqual([
      objectId('chunk', 'a', 'b:c', 0),
      objectId('chunk', 'a:b', 'c', 0),
    ]);
    for (const bad of ['docs:a', 'docs#0', 'docs:a#', 'docs:a#01', 'docs:a#1.5', `docs:a#${2 ** 53}`]) {
      expect(chunkObjectIds(bad), bad).toEqual([]);
    }
    const capped = await startFakeWeaviate({ maxResults: 5 });
    const store = await WeaviateKnowledgeStore.connect({
      url: capped.url,
      grpcUrl: capped.grpcUrl,
      maxResults: 5,
    });
    try {
      const a = makeArticle({ id: 'a' });
      await store.upsertArticle(
        a,
        makeChunks(
          a,
          Array.from({ length: 12 }, (_, i) => `ibis ${i}`),
        ),
        'h1',
      );
      const before = capped.calls.get('Search') ?? 0;
      const asked = Array.from({ length: 12 }, (_, i) => `docs:a#${11 - i}`);
      expect((await store.getChunks(asked)).map((c) => c.text)).toEqual(
        asked.map((id) => `ibis ${id.slice(7)}`),
      );
      // 12 object ids, at most 5 per request (QUERY_MAXIMUM_RESULTS): 3 requests.
      expect((capped.calls.get('Search') ?? 0) - before).toBe(3);
      // The object at a chunk's id holds another chunk id (written by a caller not following
      // `Chunk.id`'s form): found by object id, refused by its stored chunkId.
      const b = makeArticle({ id: 'b' });
      const [odd] = makeChunks(b, ['stork']);
      await store.upsertArticle(b, [{ ...(odd as Chunk), id: 'custom-id' }], 'h1');
      expect(await store.getChunks(['docs:b#0', 'custom-id'])).toEqual([]);
    } finally {
      await store.close();
      await capped.close();
    }
  });

  it('a vector computed from old text is not attached to a chunk another sync rewrote meanwhile', async () => {
    const store = await makeFakeStore();
    const chunkObject = (chunkId: string) =>
      [
        ...(fake.engine.getClass(store.collectionName)?.shards.get(store.tenant)?.objects.values() ?? []),
      ].find((o) => o.properties.chunkId === chunkId);
    try {
      await store.setEmbeddingInfo({ model: 'test:axes-4', dimensions: 4 });
      const a = makeArticle({ id: 'raced-vectors' });
      await store.upsertArticle(a, makeChunks(a, ['old text one', 'old text two']), 'v1');
      // The re-embedder lists the chunks and starts embedding their (old) text…
      const missing = await store.listChunksWithoutVectors(10);
      expect(missing.map((c) => c.text)).toEqual(['old text one', 'old text two']);
      expect(missing.every((c) => typeof c.writeId === 'string')).toBe(true);
      // …meanwhile another sync rewrites the first chunk (same chunk ids, new text, no vectors yet)…
      await store.upsertArticle(a, makeChunks(a, ['new text one']), 'v2');
      // …then the stale vectors arrive: none may land on the rewritten chunk.
      const written = await store.upsertVectors(
        missing.map((c, i) => ({ chunkId: c.id, writeId: c.writeId, vector: unit(1, i) })),
      );
      expect(written).toBe(0);
      const rewritten = chunkObject('docs:raced-vectors#0');
      expect(rewritten?.properties.text).toBe('new text one');
      expect(rewritten?.vector).toBeNull();
      const still = await store.listChunksWithoutVectors(10);
      expect(still.map((c) => c.text)).toEqual(['new text one']);
      // The current write's vectors are written.
      expect(
        await store.upsertVectors(
          still.map((c) => ({ chunkId: c.id, writeId: c.writeId, vector: unit(0, 1) })),
        ),
      ).toBe(1);
      expect(chunkObject('docs:raced-vectors#0')?.vector).toEqual(unit(0, 1));
      expect(await store.listChunksWithoutVectors(10)).toEqual([]);
      // Without a writeId (callers that predate it) a vector is written by chunk id as before.
      await store.upsertArticle(a, makeChunks(a, ['newer text one']), 'v3');
      expect(await store.upsertVectors([{ chunkId: 'docs:raced-vectors#0', vector: unit(1) }])).toBe(1);
    } finally {
      await store.close();
    }
  });

  it('options from the environment, and tenant names for workspaces', () => {
    expect(
      weaviateOptionsFromEnv({
        WEAVIATE_URL: 'https://weaviate.internal:8443',
        WEAVIATE_API_KEY: 'k',
        WEAVIATE_TENANT: 'slack-T024BE7LD',
        WEAVIATE_GRPC_URL: '',
      }),
    ).toEqual({
      url: 'https://weaviate.internal:8443',
      grpcUrl: undefined,
      apiKey: 'k',
      collection: undefined,
      tenant: 'slack-T024BE7LD',
      vectorizer: undefined,
      tokenization: undefined,
    });
    expect(() => weaviateOptionsFromEnv({})).toThrow(/WEAVIATE_URL/);
    expect(() => weaviateOptionsFromEnv({ WEAVIATE_URL: 'not a url' })).toThrow(/not a URL/);
    expect(() => weaviateOptionsFromEnv({ WEAVIATE_URL: 'http://x', WEAVIATE_TENANT: 'a b' })).toThrow(
      /WEAVIATE_TENANT/,
    );
    expect(() => weaviateOptionsFromEnv({ WEAVIATE_URL: 'http://x', WEAVIATE_COLLECTION: 'lower' })).toThrow(
      /WEAVIATE_COLLECTION/,
    );
    expect(tenantName('slack', 'T024BE7LD')).toBe('slack-T024BE7LD');
    expect(tenantName('discord', '81384788765712384')).toBe('discord-81384788765712384');
    expect(tenantName('console', 'a b/c')).toBe('console-a_b_c');
    expect(tenantName('x', 'y'.repeat(100))).toHaveLength(64);
  });

  describe('retries and failures', () => {
    const fast = () =>
      WeaviateKnowledgeStore.connect({
        url: fake.url,
        grpcUrl: fake.grpcUrl,
        tenant: `t${++tenants}`,
        retries: 2,
        retryBaseMs: 5,
      });

    it('retries RESOURCE_EXHAUSTED and DEADLINE_EXCEEDED with backoff, then succeeds', async () => {
      const store = await fast();
      try {
        const a = makeArticle({ id: 'a' });
        fake.failNext('BatchObjects', status.RESOURCE_EXHAUSTED, 2);
        const writes = fake.calls.get('BatchObjects') ?? 0;
        await store.upsertArticle(a, makeChunks(a, ['otter']), 'h');
        // One chunk + one article record, and the two injected failures.
        expect((fake.calls.get('BatchObjects') ?? 0) - writes).toBe(4);
        fake.failNext('Search', status.DEADLINE_EXCEEDED, 2);
        const searches = fake.calls.get('Search') ?? 0;
        expect((await store.search('otter', { k: 1 }))[0]?.chunk.articleId).toBe('a');
        expect((fake.calls.get('Search') ?? 0) - searches).toBe(3);
      } finally {
        await store.close();
      }
    });

    it('gives up after the retries with store-unavailable; does not retry a real error', async () => {
      const store = await fast();
      try {
        fake.failNext('Search', status.RESOURCE_EXHAUSTED, 10);
        await expect(store.search('otter', { k: 1 })).rejects.toMatchObject({ code: 'store-unavailable' });
        fake.failNext('Search', status.RESOURCE_EXHAUSTED, 0);
        fake.failNext('Search', status.INVALID_ARGUMENT, 1);
        const before = fake.calls.get('Search') ?? 0;
        const err = await store.search('otter', { k: 1 }).catch((e: unknown) => e);
        expect((err as { code?: string }).code).not.toBe('store-unavailable');
        expect((fake.calls.get('Search') ?? 0) - before).toBe(1);
      } finally {
        await store.close();
      }
    });

    it('retries a 503 at connect', async () => {
      fake.failNextHttp(503, 2);
      const store = await fast();
      await store.close();
    });

    it('classifies client errors', () => {
      expect(classifyError(new Error('/weaviate.v1.Weaviate/Search RESOURCE_EXHAUSTED: slow down'))).toBe(
        'retry',
      );
      expect(
        classifyError(new Error('/weaviate.v1.Weaviate/Search UNAVAILABLE: No connection established')),
      ).toBe('down');
      expect(
        classifyError(
          Object.assign(new Error('x'), { name: 'WeaviateUnexpectedStatusCodeError', code: 502 }),
        ),
      ).toBe('retry');
      expect(
        classifyError(
          Object.assign(new Error('x'), { name: 'WeaviateUnexpectedStatusCodeError', code: 422 }),
        ),
      ).toBe('fail');
      expect(classifyError(new Error('class Foo not found'))).toBe('fail');
    });

    it('a Weaviate older than the client supports (1.25) is a clear store-error at connect', async () => {
      const old = await startFakeWeaviate({ version: '1.25.4' });
      try {
        const err = await WeaviateKnowledgeStore.connect({ url: old.url, grpcUrl: old.grpcUrl }).catch(
          (e: unknown) => e,
        );
        expect(err).toMatchObject({ code: 'store-error' });
        expect((err as Error).message).toMatch(/gRPC compatibility|1\.27/);
      } finally {
        await old.close();
      }
    });

    it('a down Weaviate is store-unavailable at connect, fast, with no unhandled rejection', async () => {
      const port = await closedPort();
      const started = Date.now();
      const err = await WeaviateKnowledgeStore.connect({
        url: `http://127.0.0.1:${port}`,
        retries: 1,
        retryBaseMs: 5,
      }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'store-unavailable' });
      expect((err as Error).message).toContain(`127.0.0.1:${port}`);
      expect(Date.now() - started).toBeLessThan(5_000);
    });

    it('Weaviate going away after connect: a search fails with store-unavailable within the query timeout', async () => {
      const own = await startFakeWeaviate();
      const store = await WeaviateKnowledgeStore.connect({
        url: own.url,
        grpcUrl: own.grpcUrl,
        timeoutSeconds: { query: 1 },
      });
      try {
        await own.close();
        const started = Date.now();
        await expect(store.search('otter', { k: 1 })).rejects.toMatchObject({ code: 'store-unavailable' });
        expect(Date.now() - started).toBeLessThan(5_000);
      } finally {
        await store.close();
      }
    });

    it('an API key is sent on REST and gRPC; a wrong one is a clear error, not store-unavailable', async () => {
      const secured = await startFakeWeaviate({ apiKey: 'sekrit' });
      try {
        const store = await WeaviateKnowledgeStore.connect({
          url: secured.url,
          grpcUrl: secured.grpcUrl,
          apiKey: 'sekrit',
        });
        const a = makeArticle({ id: 'a' });
        await store.upsertArticle(a, makeChunks(a, ['otter']), 'h');
        expect(await store.search('otter', { k: 1 })).toHaveLength(1);
        await store.close();
        await expect(
          WeaviateKnowledgeStore.connect({
            url: secured.url,
            grpcUrl: secured.grpcUrl,
            apiKey: 'wrong',
            retries: 0,
          }),
        ).rejects.toMatchObject({ code: 'store-error' });
      } finally {
        await secured.close();
      }
    });
  });
});

// The same suites against a real Weaviate (>= 1.27, gRPC reachable), e.g.
// WEAVIATE_URL=http://localhost:8080 [WEAVIATE_GRPC_URL=http://localhost:50051] [WEAVIATE_API_KEY=…].
// Collections are named per run and deleted afterwards.
const real = process.env.WEAVIATE_URL;
describe.skipIf(!real)('against a real Weaviate (WEAVIATE_URL; skipped when it is not set)', () => {
  const collection = `SupportbotTest${Date.now()}`;
  let n = 0;
  const makeRealStore = () =>
    WeaviateKnowledgeStore.connect({
      url: real as string,
      grpcUrl: process.env.WEAVIATE_GRPC_URL,
      apiKey: process.env.WEAVIATE_API_KEY,
      collection,
      tenant: `t${++n}`,
    });
  afterAll(async () => {
    const url = new URL(real as string);
    const grpc = new URL(process.env.WEAVIATE_GRPC_URL ?? `${url.protocol}//${url.hostname}:50051`);
    const client = await weaviate.connectToCustom({
      httpHost: url.hostname,
      httpPort: Number(url.port) || (url.protocol === 'https:' ? 443 : 80),
      httpSecure: url.protocol === 'https:',
      grpcHost: grpc.hostname,
      grpcPort: Number(grpc.port) || 50051,
      grpcSecure: grpc.protocol === 'https:',
      authCredentials: process.env.WEAVIATE_API_KEY
        ? new weaviate.ApiKey(process.env.WEAVIATE_API_KEY)
        : undefined,
    });
    await client.collections.delete(collection).catch(() => {});
    await client.collections.delete(`${collection}Article`).catch(() => {});
    await client.close();
  });
  describeKnowledgeStoreContract('WeaviateKnowledgeStore (real Weaviate)', makeRealStore);
  describeVectorStoreContract('WeaviateKnowledgeStore (real Weaviate)', makeRealStore);
});
if (!real) {
  // Say why in the run's output, not only in the skipped suite's name.
  console.info('knowledge-store.weaviate: real-Weaviate suites skipped (set WEAVIATE_URL to run them)');
}
