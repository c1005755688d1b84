import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SupportbotError } from '../core/errors.ts';
import {
  buildMatchExpression,
  DEFAULT_BM25_WEIGHTS,
  KNOWLEDGE_MIGRATIONS,
  SqliteKnowledgeStore,
  toSearchText,
} from '../core/knowledge-store/sqlite.ts';
import {
  describeKnowledgeStoreContract,
  makeArticle,
  makeChunks,
} from './contract/knowledge-store.contract.ts';

const root = mkdtempSync(path.join(tmpdir(), 'supportbot-ks-'));
let counter = 0;
const newFile = () => path.join(root, `store-${++counter}`, 'knowledge.db');

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

describeKnowledgeStoreContract('SqliteKnowledgeStore', async () => SqliteKnowledgeStore.open(newFile()));

describe('buildMatchExpression', () => {
  it('quotes every term and ORs them', () => {
    expect(buildMatchExpression('Refund invoice')).toBe('"refund" OR "invoice"');
  });

  it('turns FTS5 syntax into plain words', () => {
    expect(buildMatchExpression('NEAR(refund "invoice"*, 2) AND title:x^')).toBe(
      '"near" OR "refund" OR "invoice" OR "2" OR "title" OR "x"',
    );
  });

  it('returns null when nothing searchable is left', () => {
    for (const q of ['', '  ', '"', '*', '()', '🙂🔥', '\u0000', '\ud800', '-- ;']) {
      expect(buildMatchExpression(q), JSON.stringify(q)).toBeNull();
    }
  });

  it('drops stop words only when other terms remain', () => {
    expect(buildMatchExpression('How do I reset my password?')).toBe('"reset" OR "password"');
    expect(buildMatchExpression('how to')).toBe('"how" OR "to"');
    expect(buildMatchExpression('AND OR NOT')).toBe('"and" OR "or" OR "not"');
  });

  it('de-duplicates, caps the number of terms and skips blobs', () => {
    expect(buildMatchExpression('refund Refund REFUND')).toBe('"refund"');
    const many = Array.from({ length: 100 }, (_, i) => `w${i}`).join(' ');
    expect(buildMatchExpression(many)?.split(' OR ')).toHaveLength(32);
    expect(buildMatchExpression(many, 3)).toBe('"w0" OR "w1" OR "w2"');
    expect(buildMatchExpression(`${'x'.repeat(65)} refund`)).toBe('"refund"');
    expect(buildMatchExpression('a'.repeat(10_000))).toBeNull();
  });

  it('splits CJK runs into bigram phrases', () => {
    expect(buildMatchExpression('再設定')).toBe('"再 設" OR "設 定"');
    expect(buildMatchExpression('税')).toBe('"税"');
    expect(buildMatchExpression('PDFの発行')).toBe('"pdf" OR "の 発" OR "発 行"');
  });

  it('normalizes with NFKC like the indexed text', () => {
    expect(buildMatchExpression('ｒｅｆｕｎｄ')).toBe('"refund"');
    expect(toSearchText('ａ日本')).toBe('a 日  本 ');
  });
});

describe('SqliteKnowledgeStore', () => {
  let store: SqliteKnowledgeStore;
  let file: string;

  beforeEach(() => {
    file = newFile();
    store = SqliteKnowledgeStore.open(file);
  });

  afterEach(async () => {
    await store.close();
  });

  const put = async (
    s: SqliteKnowledgeStore,
    overrides: Parameters<typeof makeArticle>[0],
    texts: string[],
    headingPath: string[] = [],
    hash = 'h',
  ) => {
    const article = makeArticle(overrides);
    await s.upsertArticle(article, makeChunks(article, texts, headingPath), hash);
  };

  it('creates the parent folder, uses WAL and records the tokenizer', () => {
    const db = new Database(file, { readonly: true });
    try {
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    } finally {
      db.close();
    }
    expect(store.id).toBe(`sqlite:${file}`);
    expect(store.getMeta('fts_tokenizer')).toBe('porter unicode61 remove_diacritics 2');
    expect(store.getMeta('missing')).toBeNull();
    store.setMeta('embedding_model', 'x');
    store.setMeta('embedding_model', 'y');
    expect(store.getMeta('embedding_model')).toBe('y');
  });

  it('keeps everything across close and reopen', async () => {
    await put(store, { id: 'a', title: 'Refunds' }, ['Refund an invoice.'], [], 'hash-a');
    store.setMeta('k', 'v');
    await store.close();

    store = SqliteKnowledgeStore.open(file);
    expect((await store.search('refund', { k: 5 }))[0]?.chunk.id).toBe('docs:a#0');
    expect(await store.listArticleHashes('docs')).toEqual([
      { articleId: 'a', sourcePath: 'a.md', contentHash: 'hash-a' },
    ]);
    expect(store.getMeta('k')).toBe('v');
  });

  it('migrations are idempotent and recorded once', async () => {
    expect(store.schemaVersion).toBe(KNOWLEDGE_MIGRATIONS.length);
    await put(store, { id: 'a' }, ['kept']);
    await store.close();
    store = SqliteKnowledgeStore.open(file);
    await store.close();
    store = SqliteKnowledgeStore.open(file);
    expect(store.schemaVersion).toBe(KNOWLEDGE_MIGRATIONS.length);
    expect(await store.stats()).toMatchObject({ articles: 1, chunks: 1 });

    const db = new Database(file, { readonly: true });
    try {
      expect(
        db.prepare("SELECT component, version FROM schema_migrations WHERE component = 'knowledge'").all(),
      ).toEqual(KNOWLEDGE_MIGRATIONS.map((m) => ({ component: 'knowledge', version: m.version })));
    } finally {
      db.close();
    }
  });

  it('refuses a database from a newer schema', async () => {
    await store.close();
    const db = new Database(file);
    db.prepare(
      "INSERT INTO schema_migrations VALUES ('knowledge', 99, 'future', '2030-01-01T00:00:00Z')",
    ).run();
    db.close();
    expect(() => SqliteKnowledgeStore.open(file)).toThrow(expect.objectContaining({ code: 'store-too-new' }));
    store = SqliteKnowledgeStore.open(newFile());
  });

  it('reports a file that is not a database as store-unopenable', () => {
    const bad = path.join(root, 'not-a-db.txt');
    writeFileSync(
      bad,
      'hello, this is a text file where a SQLite database should be, not even close to a header',
    );
    expect(() => SqliteKnowledgeStore.open(bad)).toThrow(
      expect.objectContaining({ code: 'store-unopenable' }),
    );
  });

  it('scores are -bm25: positive, higher is better', async () => {
    await put(store, { id: 'a' }, ['refund refund refund invoice']);
    await put(store, { id: 'b' }, ['refund once among many other words in a longer chunk of text here']);
    await put(store, { id: 'c' }, ['nothing relevant']);
    const hits = await store.search('refund', { k: 5 });
    expect(hits.map((h) => h.chunk.articleId)).toEqual(['a', 'b']);
    for (const hit of hits) expect(hit.score).toBeGreaterThan(0);
    expect(hits[0]?.score).toBeGreaterThan(hits[1]?.score ?? Number.POSITIVE_INFINITY);
  });

  it('favours title and heading hits by default; weights are options', async () => {
    const seed = async (s: SqliteKnowledgeStore) => {
      await put(s, { id: 'titled', title: 'Webhooks' }, [
        'Configure delivery retries and signing secrets here.',
      ]);
      await put(
        s,
        { id: 'headed', title: 'Integrations' },
        ['Configure delivery retries here.'],
        ['Webhooks'],
      );
      await put(s, { id: 'body', title: 'Changelog' }, [
        'Version 2 adds webhooks, webhooks retries and a webhooks signing secret among other things.',
      ]);
      await put(s, { id: 'filler1', title: 'Other' }, ['unrelated filler text']);
      await put(s, { id: 'filler2', title: 'Other' }, ['more unrelated filler text']);
    };
    await seed(store);
    expect(DEFAULT_BM25_WEIGHTS).toEqual({ title: 4, headings: 2, body: 1 });
    const byDefault = (await store.search('webhooks', { k: 5 })).map((h) => h.chunk.articleId);
    expect(byDefault).toEqual(['titled', 'headed', 'body']);

    const bodyFirst = SqliteKnowledgeStore.open(newFile(), { weights: { title: 0.1, headings: 0.1 } });
    try {
      await seed(bodyFirst);
      expect((await bodyFirst.search('webhooks', { k: 5 }))[0]?.chunk.articleId).toBe('body');
      expect(bodyFirst.weights).toEqual({ title: 0.1, headings: 0.1, body: 1 });
    } finally {
      await bodyFirst.close();
    }
    for (const body of [0, -1, Number.NaN]) {
      expect(() => SqliteKnowledgeStore.open(newFile(), { weights: { body } })).toThrow(
        expect.objectContaining({ code: 'invalid-option' }),
      );
    }
  });

  it('a restrictive filter still finds a weak match ranked below hundreds of others', async () => {
    // 150 strong public matches fill the first-pass prefetch (max(100, 20k)); the German and the
    // staff-only chunks rank below all of them, so only the full second pass can return them.
    for (let i = 0; i < 150; i++) await put(store, { id: `strong-${i}` }, [`ibex ibex ibex ${i}`]);
    await put(store, { id: 'weak-de', locale: 'de' }, [`ibex ${'filler '.repeat(80)}`]);
    await put(store, { id: 'weak-staff', accessGroups: ['staff'] }, [`ibex ${'filler '.repeat(80)}`]);
    const ids = async (filter: object, k = 5) =>
      (await store.search('ibex', { k, filter })).map((h) => h.chunk.articleId);

    expect((await ids({ accessGroups: ['staff'] }, 200)).slice(-2).sort()).toEqual(['weak-de', 'weak-staff']);
    expect(await ids({ locales: ['de'] })).toEqual(['weak-de']);
    expect(await ids({ accessGroups: ['staff'], tags: [] })).toEqual([]);
    expect((await ids({ accessGroups: ['staff'], locales: ['en'] }, 151)).at(-1)).toBe('weak-staff');
    expect(await ids({ locales: ['en'] })).toHaveLength(5);
  });

  it('folds diacritics and full-width forms; stems English', async () => {
    await put(store, { id: 'a', title: 'Café settings' }, ['Ｉｎｖｏｉｃｅｓ are configured here.']);
    expect((await store.search('cafe', { k: 5 })).length).toBe(1);
    expect((await store.search('CAFÉ', { k: 5 })).length).toBe(1);
    expect((await store.search('invoice', { k: 5 })).length).toBe(1);
    expect((await store.search('configuring', { k: 5 })).length).toBe(1);
  });

  it('a query of only stop words still searches them', async () => {
    await put(store, { id: 'a' }, ['How to get started']);
    expect((await store.search('how to', { k: 5 })).map((h) => h.chunk.articleId)).toEqual(['a']);
  });

  it('a failing upsert changes nothing (one transaction)', async () => {
    await put(store, { id: 'a' }, ['lynx one', 'lynx two'], [], 'v1');
    const article = makeArticle({ id: 'a', title: 'New title' });
    const [first] = makeChunks(article, ['puma']);
    if (!first) throw new Error('no chunk');
    // Two chunks with the same id: the second insert violates UNIQUE after the first succeeded.
    await expect(store.upsertArticle(article, [first, { ...first, index: 1 }], 'v2')).rejects.toThrow();
    expect((await store.search('lynx', { k: 5 })).map((h) => h.chunk.id)).toEqual(['docs:a#0', 'docs:a#1']);
    expect(await store.search('puma', { k: 5 })).toEqual([]);
    expect(await store.listArticleHashes('docs')).toEqual([
      { articleId: 'a', sourcePath: 'a.md', contentHash: 'v1' },
    ]);
  });

  it('rejects chunks of another article before writing anything', async () => {
    const article = makeArticle({ id: 'a' });
    const chunks = makeChunks(makeArticle({ id: 'b' }), ['x']);
    await expect(store.upsertArticle(article, chunks, 'h')).rejects.toMatchObject({ code: 'chunk-mismatch' });
    expect(await store.stats()).toMatchObject({ articles: 0, chunks: 0 });
  });

  it('a reader in a transaction keeps its snapshot while an upsert commits', async () => {
    await put(store, { id: 'a' }, ['snapshot one', 'snapshot two', 'snapshot three']);
    const reader = new Database(file, { readonly: true });
    try {
      const count = reader.prepare("SELECT COUNT(*) AS n FROM chunks WHERE article_id = 'a'").pluck();
      reader.exec('BEGIN');
      expect(count.get()).toBe(3);
      await put(store, { id: 'a' }, ['snapshot only']);
      expect(count.get()).toBe(3);
      reader.exec('COMMIT');
      expect(count.get()).toBe(1);
    } finally {
      reader.close();
    }
  });

  it('a concurrent reader (another thread and connection) sees the old or the new chunks, never a mix or none', async () => {
    const v1 = ['marker v1 a', 'marker v1 b', 'marker v1 c', 'marker v1 d', 'marker v1 e'];
    const v2 = ['marker v2 a', 'marker v2 b'];
    await put(store, { id: 'a' }, v1);

    const shared = new Int32Array(new SharedArrayBuffer(8)); // [0] stop flag, [1] searches done
    const worker = new Worker(READER_WORKER, {
      eval: true,
      workerData: {
        module: new URL('../core/knowledge-store/sqlite.ts', import.meta.url).href,
        file,
        shared: shared.buffer,
      },
    });
    const result = new Promise<{ bad: string[]; seen: string[] }>((resolve, reject) => {
      worker.on('message', (m: { bad: string[]; seen: string[] }) => resolve(m));
      worker.on('error', reject);
    });
    try {
      await waitFor(() => Atomics.load(shared, 1) > 0);
      const started = Date.now();
      let upserts = 0;
      while ((upserts < 200 || Atomics.load(shared, 1) < 200) && Date.now() - started < 15_000) {
        await put(store, { id: 'a' }, upserts % 2 === 0 ? v2 : v1);
        upserts++;
      }
      Atomics.store(shared, 0, 1);
      const { bad, seen } = await result;
      expect(bad).toEqual([]);
      expect(Atomics.load(shared, 1)).toBeGreaterThanOrEqual(200);
      // Both states were actually observed, so the reads did interleave with the writes.
      expect(seen.sort()).toEqual(['2:v2', '5:v1']);
    } finally {
      Atomics.store(shared, 0, 1);
      await worker.terminate();
    }
  });

  it('reports document frequencies of stemmed terms from the FTS index, and follows deletes', async () => {
    await put(store, { id: 'a', title: 'Reset passwords' }, [
      'Resetting your password is quick.',
      'Two-factor codes.',
    ]);
    await put(store, { id: 'b', title: 'Invoices' }, ['Send an invoice by email.']);
    const before = await store.documentFrequencies(['password', 'invoic', 'quick', 'absent']);
    // The title is indexed with every chunk of its article, so "password" is in both chunks of a.
    expect(before).toEqual({ documents: 3, df: { password: 2, invoic: 1, quick: 1, absent: 0 } });
    await store.deleteArticles('docs', ['b']);
    expect((await store.documentFrequencies(['invoic'])).df.invoic).toBe(0);
  });

  it('throws store-closed after close', async () => {
    await store.close();
    await expect(store.search('x', { k: 1 })).rejects.toBeInstanceOf(SupportbotError);
    await expect(store.stats()).rejects.toMatchObject({ code: 'store-closed' });
    await expect(store.upsertArticle(makeArticle({ id: 'a' }), [], 'h')).rejects.toMatchObject({
      code: 'store-closed',
    });
    await store.close(); // idempotent
    store = SqliteKnowledgeStore.open(newFile());
  });
});

/**
 * Worker (CommonJS eval; bare imports resolve from the working directory, the project root) that searches in a loop through its own store/connection and reports
 * any result that is not exactly "all five v1 chunks" or "both v2 chunks".
 */
const READER_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
(async () => {
  // Node 20 workers do not inherit module hooks; tsx's API loads the TypeScript module.
  const { tsImport } = await import('tsx/esm/api');
  const { SqliteKnowledgeStore } = await tsImport(workerData.module, workerData.module);
  const store = SqliteKnowledgeStore.open(workerData.file);
  const shared = new Int32Array(workerData.shared);
  const bad = [];
  const seen = new Set();
  while (Atomics.load(shared, 0) === 0) {
    const hits = await store.search('marker', { k: 50 });
    const versions = [...new Set(hits.map((h) => h.chunk.text.split(' ')[1]))].sort();
    const signature = hits.length + ':' + versions.join(',');
    if (signature === '5:v1' || signature === '2:v2') seen.add(signature);
    else if (bad.length < 20) bad.push(signature);
    Atomics.add(shared, 1, 1);
  }
  await store.close();
  parentPort.postMessage({ bad, seen: [...seen] });
})().catch((err) => { throw err; });
`;

async function waitFor(condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error('timed out waiting for the worker');
    await new Promise((r) => setTimeout(r, 10));
  }
}
