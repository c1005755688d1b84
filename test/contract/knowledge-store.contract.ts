import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { KnowledgeStore } from '../../core/knowledge-store.ts';
import type { Article, Chunk, SearchHit, StoredChunk } from '../../core/types.ts';

/** An article with sensible defaults; `id` and `source` are what tests usually vary. */
export function makeArticle(overrides: Partial<Article> & { id: string }): Article {
  return {
    source: 'docs',
    title: `Article ${overrides.id}`,
    url: `https://help.example/articles/${overrides.id}`,
    sourcePath: `${overrides.id}.md`,
    body: '',
    updatedAt: '2024-05-01T00:00:00.000Z',
    tags: [],
    accessGroups: [],
    locale: 'en',
    ...overrides,
  };
}

/** Chunks of `article`, one per text, with deterministic ids and contiguous spans. */
export function makeChunks(article: Article, texts: string[], headingPath: string[] = []): Chunk[] {
  let offset = 0;
  return texts.map((text, index) => {
    const span = { start: offset, end: offset + text.length };
    offset = span.end;
    return {
      id: `${article.source}:${article.id}#${index}`,
      articleId: article.id,
      source: article.source,
      index,
      headingPath,
      text,
      tokenCount: text.split(/\s+/).filter(Boolean).length,
      span,
    };
  });
}

/** Upserts an article whose chunks are `texts`; returns the article. */
async function put(
  store: KnowledgeStore,
  overrides: Partial<Article> & { id: string },
  texts: string[],
  hash = 'h1',
): Promise<Article> {
  const article = makeArticle(overrides);
  await store.upsertArticle(article, makeChunks(article, texts), hash);
  return article;
}

const ids = (hits: SearchHit[]) => hits.map((h) => h.chunk.id);
const articleIds = (hits: SearchHit[]) => [...new Set(hits.map((h) => h.chunk.articleId))].sort();

/** Inputs that must never make `search` throw; FTS/SQL syntax, odd Unicode, huge strings. */
export const HOSTILE_QUERIES: readonly string[] = [
  '"',
  '""',
  "'",
  '*',
  'AND',
  'OR NOT AND',
  'NEAR(',
  'NEAR(refund invoice, 2)',
  'refund AND OR NOT',
  'title:refund',
  '{title body}: refund',
  '^refund*',
  '(refund',
  'refund)) OR ((',
  '-refund +invoice',
  "'; DROP TABLE chunks; --",
  '\\',
  '%_%',
  '\u0000',
  '\ud800 lone surrogate',
  '🙂🔥💥',
  'e\u0301\u0301\u0301',
  '日本語',
  'مرحبا بالعالم',
  '\u200b\u200d\u2060',
  'a'.repeat(10_000),
  'refund '.repeat(1500),
  Array.from({ length: 2000 }, (_, i) => `word${i}`).join(' '),
];

/**
 * The behaviour every `KnowledgeStore` implementation must show. `makeStore` returns a new, empty
 * store each time; the suite closes it after each test.
 */
export function describeKnowledgeStoreContract(name: string, makeStore: () => Promise<KnowledgeStore>): void {
  describe(`KnowledgeStore contract: ${name}`, () => {
    let store: KnowledgeStore;

    beforeEach(async () => {
      store = await makeStore();
    });

    afterEach(async () => {
      await store.close();
    });

    describe('upsert and delete', () => {
      it('stores chunks with their article fields and finds them', async () => {
        const article = await put(
          store,
          {
            id: 'billing/refunds',
            title: 'Refunds',
            url: 'https://help.example/refunds',
            sourcePath: 'billing/refunds.md',
            tags: ['billing'],
            accessGroups: [],
            locale: 'en',
            updatedAt: '2024-06-01T12:00:00.000Z',
          },
          ['You can request a refund within 30 days of purchase.'],
        );
        const [hit] = await store.search('refund', { k: 5 });
        expect(hit?.chunk).toEqual({
          ...makeChunks(article, ['You can request a refund within 30 days of purchase.'])[0],
          title: 'Refunds',
          url: 'https://help.example/refunds',
          sourcePath: 'billing/refunds.md',
          tags: ['billing'],
          accessGroups: [],
          locale: 'en',
          updatedAt: '2024-06-01T12:00:00.000Z',
        });
        expect(hit?.rank).toBe(1);
      });

      it('keeps headingPath, span, tokenCount and null url intact', async () => {
        const article = makeArticle({ id: 'a', url: null });
        const chunk: Chunk = {
          id: 'docs:a#0',
          articleId: 'a',
          source: 'docs',
          index: 0,
          headingPath: ['Setup', 'Linux'],
          text: 'Install the agent with apt.',
          tokenCount: 7,
          span: { start: 12, end: 40 },
        };
        await store.upsertArticle(article, [chunk], 'h');
        const [hit] = await store.search('agent', { k: 1 });
        expect(hit?.chunk).toMatchObject({ ...chunk, url: null });
      });

      it('re-upsert replaces all chunks: old chunks are gone, even with fewer chunks', async () => {
        await put(store, { id: 'a' }, ['zebra one', 'zebra two', 'zebra three'], 'v1');
        expect(await store.search('zebra', { k: 10 })).toHaveLength(3);

        await put(store, { id: 'a' }, ['giraffe only'], 'v2');
        expect(await store.search('zebra', { k: 10 })).toEqual([]);
        expect(ids(await store.search('giraffe', { k: 10 }))).toEqual(['docs:a#0']);
        expect(await store.stats()).toMatchObject({ articles: 1, chunks: 1 });
        expect(await store.listArticleHashes('docs')).toEqual([
          { articleId: 'a', sourcePath: 'a.md', contentHash: 'v2' },
        ]);
      });

      it('re-upsert updates article fields (title) used by search', async () => {
        await put(store, { id: 'a', title: 'Passwords' }, ['Text about accounts.']);
        await put(store, { id: 'a', title: 'Invoices' }, ['Text about accounts.']);
        const [hit] = await store.search('invoices', { k: 1 });
        expect(hit?.chunk.title).toBe('Invoices');
        expect(await store.search('passwords', { k: 1 })).toEqual([]);
      });

      it('upsert with no chunks keeps the article (for its hash) but nothing is searchable', async () => {
        await put(store, { id: 'a' }, ['walrus'], 'v1');
        await put(store, { id: 'a' }, [], 'v2');
        expect(await store.search('walrus', { k: 5 })).toEqual([]);
        expect(await store.listArticleHashes('docs')).toEqual([
          { articleId: 'a', sourcePath: 'a.md', contentHash: 'v2' },
        ]);
      });

      it('does not touch other articles, or the same id in another source', async () => {
        await put(store, { id: 'a' }, ['otter a']);
        await put(store, { id: 'b' }, ['otter b']);
        await put(store, { id: 'a', source: 'other' }, ['otter other']);
        await put(store, { id: 'a' }, ['beaver a']);
        expect(ids(await store.search('otter', { k: 10 })).sort()).toEqual(['docs:b#0', 'other:a#0']);
      });

      it('deleteArticles removes articles and their chunks and counts only existing ones', async () => {
        await put(store, { id: 'a' }, ['heron one', 'heron two']);
        await put(store, { id: 'b' }, ['heron three']);
        await put(store, { id: 'a', source: 'other' }, ['heron four']);

        expect(await store.deleteArticles('docs', ['a', 'missing'])).toBe(1);
        expect(ids(await store.search('heron', { k: 10 })).sort()).toEqual(['docs:b#0', 'other:a#0']);
        expect(await store.deleteArticles('docs', ['a'])).toBe(0);
        expect(await store.deleteArticles('docs', [])).toBe(0);
        expect(await store.listArticleHashes('docs')).toEqual([
          { articleId: 'b', sourcePath: 'b.md', contentHash: 'h1' },
        ]);
        expect(await store.stats()).toEqual({ articles: 2, chunks: 2, sources: { docs: 1, other: 1 } });
      });

      it('listArticleHashes lists one source, with source paths, and [] for an unknown source', async () => {
        await put(store, { id: 'x/b', sourcePath: 'x/b.md' }, ['t'], 'hb');
        await put(store, { id: 'x/a', sourcePath: 'x/a.mdx' }, ['t'], 'ha');
        await put(store, { id: 'c', source: 'other' }, ['t'], 'hc');
        const hashes = await store.listArticleHashes('docs');
        expect([...hashes].sort((p, q) => p.articleId.localeCompare(q.articleId))).toEqual([
          { articleId: 'x/a', sourcePath: 'x/a.mdx', contentHash: 'ha' },
          { articleId: 'x/b', sourcePath: 'x/b.md', contentHash: 'hb' },
        ]);
        expect(await store.listArticleHashes('nope')).toEqual([]);
      });

      it('stats counts articles, chunks and articles per source', async () => {
        expect(await store.stats()).toEqual({ articles: 0, chunks: 0, sources: {} });
        await put(store, { id: 'a' }, ['one', 'two', 'three']);
        await put(store, { id: 'b' }, ['four']);
        await put(store, { id: 'c', source: 'zendesk' }, ['five', 'six']);
        expect(await store.stats()).toEqual({ articles: 3, chunks: 6, sources: { docs: 2, zendesk: 1 } });
      });
    });

    describe('getChunks (chunk lookup by id)', () => {
      /** The store's `getChunks`; every store in this repo has it (the training dataset needs it). */
      const getChunks = (chunkIds: string[]): Promise<StoredChunk[]> => {
        if (!store.getChunks) throw new Error(`${store.id} has no getChunks`);
        return store.getChunks(chunkIds);
      };

      it('returns the chunks asked for with their article fields, in the order asked, skipping unknown ids', async () => {
        await put(store, { id: 'a', title: 'Refunds', tags: ['billing'], url: null }, [
          'refund one',
          'refund two',
        ]);
        await put(store, { id: 'b', locale: 'de', accessGroups: ['staff'] }, ['staff only']);
        await put(store, { id: 'a', source: 'zendesk' }, ['same id, other source']);
        const [one] = await store.search('one', { k: 1 });
        const got = await getChunks([
          'docs:b#0',
          'docs:nope#0',
          'docs:a#1',
          'zendesk:a#0',
          'docs:a#9',
          'docs:a#0',
        ]);
        expect(got.map((c) => c.id)).toEqual(['docs:b#0', 'docs:a#1', 'zendesk:a#0', 'docs:a#0']);
        // The same chunk as search gives, every field.
        expect(got[3]).toEqual(one?.chunk);
        expect(got[1]).toEqual({
          id: 'docs:a#1',
          articleId: 'a',
          source: 'docs',
          index: 1,
          headingPath: [],
          text: 'refund two',
          tokenCount: 2,
          span: { start: 10, end: 20 },
          title: 'Refunds',
          url: null,
          sourcePath: 'a.md',
          tags: ['billing'],
          accessGroups: [],
          locale: 'en',
          updatedAt: '2024-05-01T00:00:00.000Z',
        });
        // No access filter: the caller holds the ids of chunks it was allowed to retrieve.
        expect(got[0]).toMatchObject({ text: 'staff only', accessGroups: ['staff'], locale: 'de' });
        expect(got[2]).toMatchObject({ source: 'zendesk', text: 'same id, other source' });
        // An id asked twice comes twice; nothing asked, nothing returned.
        expect((await getChunks(['docs:a#0', 'docs:a#0'])).map((c) => c.id)).toEqual([
          'docs:a#0',
          'docs:a#0',
        ]);
        expect(await getChunks([])).toEqual([]);
        expect(await getChunks(['', '#', 'docs:a', 'docs:a#x', 'docs:a#01', 'docs:a#-1'])).toEqual([]);
      });

      it('sees re-syncs and deletes: replaced text, dropped indices and deleted articles', async () => {
        await put(store, { id: 'a' }, ['old zero', 'old one', 'old two'], 'v1');
        await put(store, { id: 'b' }, ['bee']);
        await put(store, { id: 'a' }, ['new zero'], 'v2');
        expect(
          (await getChunks(['docs:a#0', 'docs:a#1', 'docs:a#2', 'docs:b#0'])).map((c) => c.text),
        ).toEqual(['new zero', 'bee']);
        await store.deleteArticles('docs', ['b']);
        expect((await getChunks(['docs:b#0', 'docs:a#0'])).map((c) => c.id)).toEqual(['docs:a#0']);
      });

      it('finds ids whose source or article id contains ":" or "#"', async () => {
        await put(store, { id: 'faq:billing#refunds' }, ['colon and hash']);
        await put(store, { id: 'x', source: 'help:center' }, ['colon in the source']);
        await put(store, { id: 'https://help.example/a#b' }, ['a URL as the id']);
        const chunkIds = ['docs:faq:billing#refunds#0', 'help:center:x#0', 'docs:https://help.example/a#b#0'];
        expect((await getChunks(chunkIds)).map((c) => [c.id, c.source, c.articleId, c.text])).toEqual([
          ['docs:faq:billing#refunds#0', 'docs', 'faq:billing#refunds', 'colon and hash'],
          ['help:center:x#0', 'help:center', 'x', 'colon in the source'],
          ['docs:https://help.example/a#b#0', 'docs', 'https://help.example/a#b', 'a URL as the id'],
        ]);
        // Another split of the same text names no chunk.
        expect(await getChunks(['help:center:x#1', 'help:centerx#0', 'docs:faq:billing#0'])).toEqual([]);
      });

      it('looks up many ids at once (more than one request holds), keeping their order', async () => {
        const texts = Array.from({ length: 450 }, (_, i) => `part ${i}`);
        await put(store, { id: 'big' }, texts);
        const asked = Array.from({ length: 450 }, (_, i) => `docs:big#${(i * 7) % 450}`);
        asked.splice(100, 0, 'docs:big#450', 'docs:other#3');
        const got = await getChunks(asked);
        expect(got).toHaveLength(450);
        expect(got.map((c) => c.id)).toEqual(
          asked.filter((id) => id !== 'docs:big#450' && id !== 'docs:other#3'),
        );
        expect(got.every((c) => c.text === `part ${c.index}`)).toBe(true);
      });
    });

    describe('ranking', () => {
      beforeEach(async () => {
        // Designed so that the order by relevance to "refund invoice" is unambiguous.
        await put(store, { id: 'best', title: 'Refund an invoice' }, [
          'To refund an invoice, open the invoice and choose Refund. A refunded invoice shows a credit note.',
        ]);
        await put(store, { id: 'partial', title: 'Billing overview' }, [
          'Billing covers plans, payment methods, taxes and the occasional refund when something went wrong with a charge.',
        ]);
        await put(store, { id: 'unrelated', title: 'Reset your password' }, [
          'Open the sign-in page, choose Forgot password and follow the link we send you by email.',
        ]);
      });

      it('returns the most relevant chunk first, irrelevant ones not at all', async () => {
        const hits = await store.search('How do I refund an invoice?', { k: 10 });
        expect(hits.map((h) => h.chunk.articleId)).toEqual(['best', 'partial']);
      });

      it('ranks are 1..n and scores do not increase', async () => {
        const hits = await store.search('refund invoice password', { k: 10 });
        expect(hits.length).toBe(3);
        expect(hits.map((h) => h.rank)).toEqual([1, 2, 3]);
        for (let i = 1; i < hits.length; i++) {
          expect(hits[i]?.score).toBeLessThanOrEqual(hits[i - 1]?.score ?? Number.NaN);
        }
      });

      it('honours k', async () => {
        expect(await store.search('refund invoice password', { k: 1 })).toHaveLength(1);
        expect(await store.search('refund invoice password', { k: 2 })).toHaveLength(2);
        expect(await store.search('refund', { k: 0 })).toEqual([]);
      });

      it('terms are ORed: an unknown word does not hide matches of the others', async () => {
        const hits = await store.search('password xylophonic', { k: 5 });
        expect(hits.map((h) => h.chunk.articleId)).toEqual(['unrelated']);
      });

      it('matches regardless of case and word form (refunded / refunds)', async () => {
        expect(articleIds(await store.search('REFUNDS', { k: 5 }))).toEqual(['best', 'partial']);
      });

      it('searches the article title too', async () => {
        await put(store, { id: 'titled', title: 'Quarantine mode' }, ['Body without the word.']);
        expect(articleIds(await store.search('quarantine', { k: 5 }))).toEqual(['titled']);
      });

      it('returns [] for a query that matches nothing', async () => {
        expect(await store.search('xylophonic zeppelin', { k: 5 })).toEqual([]);
      });
    });

    describe('query input', () => {
      beforeEach(async () => {
        await put(store, { id: 'refunds', title: 'Refunds' }, ['Refund an invoice from the billing page.']);
      });

      it.each(['', '   ', '\n\t', '?!.,;:', '""', '()', '*', '🙂'])(
        'empty or punctuation-only query %j returns []',
        async (q) => {
          expect(await store.search(q, { k: 5 })).toEqual([]);
        },
      );

      it(`never throws on ${HOSTILE_QUERIES.length} hostile queries, and the store still works`, async () => {
        for (const q of HOSTILE_QUERIES) {
          const hits = await store.search(q, { k: 5 }).catch((err: unknown) => {
            throw new Error(`search(${JSON.stringify(q.slice(0, 40))}) threw: ${(err as Error).message}`);
          });
          expect(Array.isArray(hits), JSON.stringify(q.slice(0, 40))).toBe(true);
        }
        expect(articleIds(await store.search('refund', { k: 5 }))).toEqual(['refunds']);
        expect(await store.stats()).toMatchObject({ articles: 1, chunks: 1 });
      });

      it('operator words and syntax around real terms still find them', async () => {
        for (const q of ['refund AND', 'NEAR(refund', '"refund', 'title:refund', 'refund*', '(invoice)']) {
          expect(articleIds(await store.search(q, { k: 5 })), q).toEqual(['refunds']);
        }
      });

      it('a very long query with a relevant word finds it', async () => {
        const q = `refund ${'lorem ipsum dolor '.repeat(700)}`;
        expect(q.length).toBeGreaterThan(10_000);
        expect(articleIds(await store.search(q, { k: 5 }))).toEqual(['refunds']);
      });
    });

    describe('unicode', () => {
      it('finds accented, CJK, Cyrillic and emoji-bearing text', async () => {
        await put(store, { id: 'fr', locale: 'fr', title: 'Café' }, ['Modifier la facture après l’envoi.']);
        await put(store, { id: 'ja', locale: 'ja', title: 'パスワード' }, [
          'パスワードを再設定する方法を説明します。',
        ]);
        await put(store, { id: 'zh', locale: 'zh', title: '退款' }, ['如何申请退款和发票']);
        await put(store, { id: 'ru', locale: 'ru', title: 'Счета' }, ['Как скачать счёт в формате PDF']);
        await put(store, { id: 'emoji', title: 'Reactions' }, ['React with 👍 or 👎 to rate an answer 🎉']);

        expect(articleIds(await store.search('facture', { k: 5 }))).toEqual(['fr']);
        expect(articleIds(await store.search('après', { k: 5 }))).toEqual(['fr']);
        expect(articleIds(await store.search('再設定', { k: 5 }))).toEqual(['ja']);
        expect(articleIds(await store.search('退款', { k: 5 }))).toEqual(['zh']);
        expect(articleIds(await store.search('发票', { k: 5 }))).toEqual(['zh']);
        expect(articleIds(await store.search('скачать', { k: 5 }))).toEqual(['ru']);
        expect(articleIds(await store.search('rate 👍', { k: 5 }))).toEqual(['emoji']);
      });
    });

    describe('filters (applied before ranking and k)', () => {
      beforeEach(async () => {
        // Every chunk mentions "setup", so only the filter decides.
        await put(store, { id: 'pub-en', tags: ['billing'], locale: 'en' }, ['setup setup setup setup']);
        await put(store, { id: 'pub-us', tags: ['billing', 'tax'], locale: 'en-US' }, ['setup setup setup']);
        await put(store, { id: 'pub-de', tags: ['account'], locale: 'de' }, ['setup setup']);
        await put(store, { id: 'z-pub', source: 'zendesk', tags: [], locale: 'en' }, ['setup']);
        await put(store, { id: 'staff', accessGroups: ['staff'] }, ['setup staff note']);
        await put(store, { id: 'partner', accessGroups: ['partners', 'staff'] }, ['setup partner note']);
      });

      const search = (filter: Parameters<KnowledgeStore['search']>[1]['filter'], k = 10) =>
        store.search('setup', { k, filter }).then(articleIds);

      it('no filter: public articles only', async () => {
        expect(await search(undefined)).toEqual(['pub-de', 'pub-en', 'pub-us', 'z-pub']);
      });

      it('sources', async () => {
        expect(await search({ sources: ['zendesk'] })).toEqual(['z-pub']);
        expect(await search({ sources: ['docs', 'zendesk'] })).toEqual([
          'pub-de',
          'pub-en',
          'pub-us',
          'z-pub',
        ]);
        expect(await search({ sources: ['nope'] })).toEqual([]);
        expect(await search({ sources: [] })).toEqual([]);
      });

      it('tags: at least one in common', async () => {
        expect(await search({ tags: ['tax'] })).toEqual(['pub-us']);
        expect(await search({ tags: ['billing'] })).toEqual(['pub-en', 'pub-us']);
        expect(await search({ tags: ['account', 'tax'] })).toEqual(['pub-de', 'pub-us']);
        expect(await search({ tags: [] })).toEqual([]);
      });

      it('locales: exact or BCP 47 language range, case-insensitive', async () => {
        expect(await search({ locales: ['de'] })).toEqual(['pub-de']);
        expect(await search({ locales: ['en-US'] })).toEqual(['pub-us']);
        expect(await search({ locales: ['en-us'] })).toEqual(['pub-us']);
        expect(await search({ locales: ['en'] })).toEqual(['pub-en', 'pub-us', 'z-pub']);
        expect(await search({ locales: ['e'] })).toEqual([]);
      });

      it('access groups: public always, restricted only when sharing a group', async () => {
        expect(await search({ accessGroups: [] })).toEqual(['pub-de', 'pub-en', 'pub-us', 'z-pub']);
        expect(await search({ accessGroups: ['nobody'] })).toEqual(['pub-de', 'pub-en', 'pub-us', 'z-pub']);
        expect(await search({ accessGroups: ['partners'] })).toEqual([
          'partner',
          'pub-de',
          'pub-en',
          'pub-us',
          'z-pub',
        ]);
        expect(await search({ accessGroups: ['staff'] })).toEqual([
          'partner',
          'pub-de',
          'pub-en',
          'pub-us',
          'staff',
          'z-pub',
        ]);
      });

      it('a restricted chunk that would rank first stays hidden', async () => {
        const hits = await store.search('staff note', { k: 1 });
        expect(hits.map((h) => h.chunk.articleId)).not.toContain('staff');
        expect(hits.map((h) => h.chunk.articleId)).not.toContain('partner');
      });

      it('combined filters must all match', async () => {
        expect(await search({ sources: ['docs'], locales: ['en'], tags: ['billing'] })).toEqual([
          'pub-en',
          'pub-us',
        ]);
        expect(await search({ sources: ['docs'], accessGroups: ['staff'], tags: ['billing'] })).toEqual([
          'pub-en',
          'pub-us',
        ]);
        expect(await search({ sources: ['zendesk'], locales: ['de'] })).toEqual([]);
      });

      it('filters apply before k: the top-1 of a filtered search is the best allowed chunk', async () => {
        // Unfiltered, pub-en ("setup" ×4) ranks first; filtered to German it is excluded, and
        // the one German chunk must still come back with k = 1.
        expect((await store.search('setup', { k: 1 }))[0]?.chunk.articleId).toBe('pub-en');
        expect(await search({ locales: ['de'] }, 1)).toEqual(['pub-de']);
        expect(await search({ sources: ['zendesk'] }, 1)).toEqual(['z-pub']);
      });
    });

    describe('lifecycle', () => {
      it('has an id', () => {
        expect(store.id).toMatch(/\S/);
      });
    });
  });
}

/** A unit vector along the given axis weights (4 dimensions), for hand-checkable cosine scores. */
export function unit(...weights: number[]): Float32Array {
  const v = Float32Array.from({ length: 4 }, (_, i) => weights[i] ?? 0);
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
}

/**
 * The vector behaviour every `KnowledgeStore` that keeps embeddings must show (the optional
 * `embeddingInfo`/`setEmbeddingInfo`/`listChunksWithoutVectors`/`upsertVectors` methods, vectors
 * in `upsertArticle`, and `mode`/`alpha`/`fusion` in `search`). Vectors here are 4-dimensional and
 * hand-made, so expected cosine scores are exact. `makeStore` returns a new, empty store.
 */
export function describeVectorStoreContract(name: string, makeStore: () => Promise<KnowledgeStore>): void {
  describe(`KnowledgeStore vector contract: ${name}`, () => {
    let store: KnowledgeStore;
    const info = { model: 'test:axes-4', dimensions: 4 };

    /** The optional vector methods, asserted present. */
    const vectors = () => {
      const { embeddingInfo, setEmbeddingInfo, listChunksWithoutVectors, upsertVectors } = store;
      if (!embeddingInfo || !setEmbeddingInfo || !listChunksWithoutVectors || !upsertVectors) {
        throw new Error(`${store.id} does not implement the vector methods`);
      }
      return {
        embeddingInfo: embeddingInfo.bind(store),
        setEmbeddingInfo: setEmbeddingInfo.bind(store),
        listChunksWithoutVectors: listChunksWithoutVectors.bind(store),
        upsertVectors: upsertVectors.bind(store),
      };
    };

    const putV = async (
      overrides: Partial<Article> & { id: string },
      texts: string[],
      vecs: Float32Array[],
    ): Promise<Article> => {
      const article = makeArticle(overrides);
      await store.upsertArticle(article, makeChunks(article, texts), 'h1', vecs);
      return article;
    };

    beforeEach(async () => {
      store = await makeStore();
    });

    afterEach(async () => {
      await store.close();
    });

    describe('embedding model', () => {
      it('starts without one; setting the same one again is a no-op', async () => {
        const v = vectors();
        expect(await v.embeddingInfo()).toBeNull();
        await v.setEmbeddingInfo(info);
        expect(await v.embeddingInfo()).toEqual(info);
        await putV({ id: 'a' }, ['alpha'], [unit(1)]);
        await v.setEmbeddingInfo({ ...info });
        expect(await v.listChunksWithoutVectors(10)).toEqual([]);
        // reset drops the vectors even for the same model (a forced re-embed).
        await v.setEmbeddingInfo({ ...info }, { reset: true });
        expect((await v.listChunksWithoutVectors(10)).map((c) => c.id)).toEqual(['docs:a#0']);
        expect(await v.embeddingInfo()).toEqual(info);
      });

      it('another model or dimension is embedding-mismatch, naming sync --reembed; reset drops every vector', async () => {
        const v = vectors();
        await v.setEmbeddingInfo(info);
        await putV({ id: 'a' }, ['alpha one', 'alpha two'], [unit(1), unit(0, 1)]);
        for (const other of [
          { model: 'test:other', dimensions: 4 },
          { model: info.model, dimensions: 8 },
        ]) {
          const err = await v.setEmbeddingInfo(other).then(
            () => null,
            (e: unknown) => e as { code?: string; message?: string },
          );
          expect(err?.code).toBe('embedding-mismatch');
          expect(err?.message).toContain('supportbot sync --reembed');
        }
        expect(await v.embeddingInfo()).toEqual(info);

        await v.setEmbeddingInfo({ model: 'test:other', dimensions: 3 }, { reset: true });
        expect(await v.embeddingInfo()).toEqual({ model: 'test:other', dimensions: 3 });
        expect((await v.listChunksWithoutVectors(10)).map((c) => c.id).sort()).toEqual([
          'docs:a#0',
          'docs:a#1',
        ]);
        // BM25 is untouched by the reset.
        expect(ids(await store.search('alpha', { k: 5 })).sort()).toEqual(['docs:a#0', 'docs:a#1']);
      });

      it('a query vector of another length is embedding-mismatch', async () => {
        await vectors().setEmbeddingInfo(info);
        await putV({ id: 'a' }, ['alpha'], [unit(1)]);
        await expect(
          store.search('alpha', { k: 5, vector: new Float32Array(3).fill(1), mode: 'vector' }),
        ).rejects.toMatchObject({ code: 'embedding-mismatch' });
      });

      it('vectors of the wrong length or count are refused and nothing is written', async () => {
        await vectors().setEmbeddingInfo(info);
        const article = makeArticle({ id: 'a' });
        const chunks = makeChunks(article, ['alpha', 'beta']);
        await expect(
          store.upsertArticle(article, chunks, 'h', [unit(1), new Float32Array(3)]),
        ).rejects.toMatchObject({
          code: 'embedding-mismatch',
        });
        await expect(store.upsertArticle(article, chunks, 'h', [unit(1)])).rejects.toThrow();
        expect(await store.stats()).toMatchObject({ articles: 0, chunks: 0 });
      });
    });

    describe('vector search', () => {
      beforeEach(async () => {
        await vectors().setEmbeddingInfo(info);
        // Axis 0 = "refunds", axis 1 = "passwords", axis 2 = "bank feeds", axis 3 = filler.
        await putV(
          { id: 'refund', title: 'Refund policy' },
          ['Money back within 14 days.'],
          [unit(1, 0, 0, 0.2)],
        );
        await putV({ id: 'password', title: 'Reset your password' }, ['Use the sign-in page.'], [unit(0, 1)]);
        await putV(
          { id: 'bank', title: 'Bank feeds' },
          ['Error E1042 means reconnect.'],
          [unit(0, 0, 1, 0.5)],
        );
        await putV({ id: 'staff', accessGroups: ['staff'] }, ['Internal refund runbook.'], [unit(1)]);
        await putV(
          { id: 'refund-de', locale: 'de', title: 'Erstattung' },
          ['Rückerstattung.'],
          [unit(1, 0, 0, 0.4)],
        );
      });

      it('ranks by cosine similarity (the score), public articles only by default', async () => {
        const hits = await store.search('', { k: 10, vector: unit(1, 0.1), mode: 'vector' });
        expect(hits.map((h) => h.chunk.articleId)).toEqual(['refund', 'refund-de', 'password', 'bank']);
        expect(hits.map((h) => h.rank)).toEqual([1, 2, 3, 4]);
        const q = unit(1, 0.1);
        const expected = [unit(1, 0, 0, 0.2), unit(1, 0, 0, 0.4), unit(0, 1), unit(0, 0, 1, 0.5)].map((v) =>
          v.reduce((sum, x, i) => sum + x * (q[i] as number), 0),
        );
        hits.forEach((hit, i) => {
          expect(hit.score).toBeCloseTo(expected[i] as number, 5);
        });
        expect(hits[0]?.chunk).toMatchObject({ title: 'Refund policy', text: 'Money back within 14 days.' });
      });

      it('filters apply before ranking and k', async () => {
        const top = async (filter: object, k = 1) =>
          (await store.search('', { k, vector: unit(1), mode: 'vector', filter })).map(
            (h) => h.chunk.articleId,
          );
        expect(await top({})).toEqual(['refund']);
        expect(await top({ accessGroups: ['staff'] })).toEqual(['staff']);
        expect(await top({ locales: ['de'] })).toEqual(['refund-de']);
        expect(await top({ locales: ['en'], tags: [] }, 5)).toEqual([]);
        expect(await top({ sources: ['other'] }, 5)).toEqual([]);
      });

      it('honours k and never returns a deleted or replaced chunk', async () => {
        expect(await store.search('', { k: 2, vector: unit(1), mode: 'vector' })).toHaveLength(2);
        await store.deleteArticles('docs', ['refund']);
        await putV({ id: 'refund-de', locale: 'de' }, ['Erstattung neu.'], [unit(0, 0, 0, 1)]);
        const hits = await store.search('', {
          k: 10,
          vector: unit(1),
          mode: 'vector',
          filter: { locales: ['de', 'en'] },
        });
        expect(hits.map((h) => h.chunk.articleId)).not.toContain('refund');
        expect(hits.find((h) => h.chunk.articleId === 'refund-de')?.chunk.text).toBe('Erstattung neu.');
        // The replaced chunk's new vector (axis 3) is orthogonal to the query (axis 0): cosine 0.
        expect(hits.find((h) => h.chunk.articleId === 'refund-de')?.score).toBeCloseTo(0, 5);
      });

      it('hybrid finds a vector-only match and a keyword-only match; alpha 1 is pure vector, 0 pure BM25', async () => {
        // "reimbursement" is in no chunk: only the vector (the refund direction) finds the refund article.
        const synonym = await store.search('reimbursement', { k: 3, vector: unit(1), mode: 'hybrid' });
        expect(synonym[0]?.chunk.articleId).toBe('refund');
        expect(await store.search('reimbursement', { k: 3 })).toEqual([]);
        // "E1042" is in one chunk; a query vector that points elsewhere must not hide it.
        const code = await store.search('E1042', { k: 3, vector: unit(0, 1), mode: 'hybrid' });
        expect(code.map((h) => h.chunk.articleId)).toContain('bank');
        expect(code.map((h) => h.chunk.articleId)).toContain('password');
        for (const fusion of ['rrf', 'relative'] as const) {
          const pureVector = await store.search('E1042', { k: 4, vector: unit(0, 1), alpha: 1, fusion });
          expect(pureVector.map((h) => h.chunk.articleId)).toEqual(
            (await store.search('E1042', { k: 4, vector: unit(0, 1), mode: 'vector' })).map(
              (h) => h.chunk.articleId,
            ),
          );
          const pureBm25 = await store.search('E1042', { k: 4, vector: unit(0, 1), alpha: 0, fusion });
          expect(pureBm25.map((h) => h.chunk.articleId)).toEqual(['bank']);
        }
        await expect(store.search('x', { k: 1, vector: unit(1), alpha: 1.5 })).rejects.toMatchObject({
          code: 'invalid-option',
        });
      });

      it('without a query vector the search is BM25, exactly as mode bm25', async () => {
        const plain = await store.search('refund', { k: 5 });
        expect(plain.map((h) => h.chunk.articleId)).toEqual(['refund']);
        expect(await store.search('refund', { k: 5, mode: 'bm25', vector: unit(0, 1) })).toEqual(plain);
      });
    });

    describe('filling and re-embedding', () => {
      it('chunks written without vectors are listed until upsertVectors fills them', async () => {
        const v = vectors();
        await v.setEmbeddingInfo(info);
        await put(store, { id: 'a' }, ['one', 'two']);
        await putV({ id: 'b' }, ['three'], [unit(1)]);
        const missing = await v.listChunksWithoutVectors(10);
        expect(missing.map((c) => c.id)).toEqual(['docs:a#0', 'docs:a#1']);
        expect(missing[0]).toMatchObject({ title: 'Article a', text: 'one', headingPath: [] });
        expect((await v.listChunksWithoutVectors(1)).map((c) => c.id)).toEqual(['docs:a#0']);
        expect(
          await v.upsertVectors([
            { chunkId: 'docs:a#0', vector: unit(0, 1) },
            { chunkId: 'docs:a#1', vector: unit(0, 0, 1) },
            { chunkId: 'docs:nope#0', vector: unit(1) },
          ]),
        ).toBe(2);
        expect(await v.listChunksWithoutVectors(10)).toEqual([]);
        const hits = await store.search('', { k: 1, vector: unit(0, 0, 1), mode: 'vector' });
        expect(hits[0]?.chunk.id).toBe('docs:a#1');
        // Overwriting a vector moves the chunk.
        await v.upsertVectors([{ chunkId: 'docs:a#1', vector: unit(1) }]);
        expect(
          (await store.search('', { k: 1, vector: unit(0, 0, 1), mode: 'vector' }))[0]?.chunk.id,
        ).not.toBe('docs:a#1');
      });

      it('re-upserting an article without vectors leaves its new chunks without vectors', async () => {
        const v = vectors();
        await v.setEmbeddingInfo(info);
        await putV({ id: 'a' }, ['one'], [unit(1)]);
        await put(store, { id: 'a' }, ['uno', 'dos'], 'h2');
        expect((await v.listChunksWithoutVectors(10)).map((c) => c.id)).toEqual(['docs:a#0', 'docs:a#1']);
        expect(await store.search('', { k: 5, vector: unit(1), mode: 'vector' })).toEqual([]);
      });
    });
  });
}
