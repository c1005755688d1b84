/**
 * Sync throughput on the production paths: `npx tsx bench/sync-production.ts`.
 *
 * 1. The example help center (examples/helpcenter) read by the folder source, repeated
 *    `BENCH_SYNC_COPIES` times (default 23, about 500 articles) under distinct article ids by a
 *    wrapper source that walks the folder once per copy, synced by `syncSource` into the embedded
 *    SQLite store and into the Weaviate store. The Weaviate rows run against the local fake
 *    server (test/fakes/weaviate/server.ts: Weaviate's REST and gRPC wire protocol, data in
 *    memory, in this same process), not a real Weaviate: they measure our client-side path
 *    (analysis, UUIDv5 ids, gRPC batches, tenant handling) plus the fake's cost, and say nothing
 *    about a real Weaviate's indexing speed. Each store is synced twice: a first sync into an
 *    empty store and an unchanged re-sync (everything read and hashed again, nothing written).
 *    With and without vectors: vectors come from a pseudo-embedder, deterministic pseudo-random
 *    unit vectors of 384 dimensions (the size of all-MiniLM-L6-v2 / e5-small) seeded by the text,
 *    so embedding costs next to nothing and the rows measure storing vectors, not a model.
 * 2. The Zendesk source (sync/sources/zendesk.ts) against the local Zendesk API fake
 *    (test/fakes/zendesk.ts) holding `BENCH_ZENDESK_ARTICLES` (default 2,000) published en-us
 *    articles in 20 sections, listed in cursor pages of 100: first sync into SQLite and the
 *    unchanged second sync in `listing` mode (every sync lists everything), then in `incremental`
 *    mode (the first sync lists everything, the second asks the incremental export only).
 *    Requests are counted by the fake; the source's own count (`lastRun().requests`) must agree.
 *
 * Prints the machine (cpu model, cores, node version) and one table per part. Exits 1 when a
 * sync failed or reported a different article count than expected.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_SOURCE, folderSourceSchema } from '../core/config.ts';
import type { Embedder } from '../core/embedder.ts';
import { SqliteKnowledgeStore } from '../core/knowledge-store/sqlite.ts';
import { WeaviateKnowledgeStore } from '../core/knowledge-store/weaviate.ts';
import type { KnowledgeStore } from '../core/knowledge-store.ts';
import { cl100kTokenizer } from '../core/tokenizer.ts';
import type { Source, SourceItem } from '../sync/source.ts';
import { createFolderSource } from '../sync/sources/folder.ts';
import { createZendeskSource, zendeskSourceSchema } from '../sync/sources/zendesk.ts';
import { type SyncSummary, syncSource } from '../sync/sync.ts';
import { startFakeWeaviate } from '../test/fakes/weaviate/server.ts';
import { FakeZendesk } from '../test/fakes/zendesk.ts';
import { pseudoEmbedding } from './pseudo-embedding.ts';

const DIM = 384;
const COPIES = Math.max(1, Math.floor(Number(process.env.BENCH_SYNC_COPIES ?? 23)));
const ZENDESK_ARTICLES = Math.max(1, Math.floor(Number(process.env.BENCH_ZENDESK_ARTICLES ?? 2000)));
const ZENDESK_SECTIONS = 20;
// The config's default chunking (300 / 30 tokens), as `supportbot sync` runs it.
const chunking = { maxTokens: 300, overlapTokens: 30, tokenizer: cl100kTokenizer };

/**
 * The bench's embedder: the `Embedder` seam (core/embedder.ts) over `pseudoEmbedding`, so the sync
 * engine's embedding path (batches, `setEmbeddingInfo`, vectors stored with their chunks) runs
 * without a model. Its id names it as a bench vectorizer, so no real store could mistake the
 * vectors for a model's.
 */
const pseudoEmbedder: Embedder = {
  provider: 'bench',
  modelId: `pseudo-random-${DIM}`,
  id: `bench:pseudo-random-${DIM}`,
  dimensions: DIM,
  embedQueries: async (texts) => texts.map((t) => pseudoEmbedding(`query:${t}`, DIM)),
  embedPassages: async (texts) => texts.map((t) => pseudoEmbedding(t, DIM)),
  close: async () => {},
};

/**
 * The example help center `copies` times: the folder is read once per copy, and copy c > 0 gets
 * ids and paths suffixed `~c`, so the sync sees `copies` × 22 distinct articles.
 */
function repeatedSource(inner: Source, copies: number): Source {
  return {
    name: inner.name,
    type: inner.type,
    async *articles(): AsyncIterable<SourceItem> {
      for (let copy = 0; copy < copies; copy++) {
        for await (const item of inner.articles()) {
          if (!item.ok || copy === 0) {
            yield item;
            continue;
          }
          const a = item.article;
          yield {
            ok: true,
            article: {
              ...a,
              id: `${a.id}~${copy}`,
              sourcePath: `${a.sourcePath}~${copy}`,
              url: `${a.url}~${copy}`,
            },
          };
        }
      }
    },
  };
}

/** A finished sync, or the process exits 1 with why (a bench number of a failed sync means nothing). */
function checked(what: string, summary: SyncSummary, expectedArticles: number): SyncSummary {
  const seen = summary.added + summary.updated + summary.unchanged;
  if (summary.sourceError || summary.failed > 0 || seen !== expectedArticles) {
    console.error(
      `${what}: sync failed or incomplete (${seen} of ${expectedArticles} articles): ${JSON.stringify({ ...summary, errors: summary.errors.slice(0, 3) })}`,
    );
    process.exit(1);
  }
  return summary;
}

/** Exits 1 unless the store holds exactly the articles and chunks the sync said it wrote. */
async function expectStored(what: string, store: KnowledgeStore, articles: number, chunks: number) {
  const stats = await store.stats();
  if (stats.articles !== articles || stats.chunks !== chunks) {
    console.error(
      `${what}: the store holds ${stats.articles} articles and ${stats.chunks} chunks, expected ${articles} and ${chunks}`,
    );
    process.exit(1);
  }
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'supportbot-bench-sync-'));
const syncRows: string[][] = [];
const zendeskRows: string[][] = [];
const rate = (n: number, seconds: number) => (n === 0 ? '—' : (n / seconds).toFixed(0));
let helpArticles = 0;
let helpChunks = 0;
let zendeskChunks = 0;

try {
  // --- 1. The example help center into SQLite and Weaviate (fake) -----------------------------
  const folder = createFolderSource(folderSourceSchema.parse(DEFAULT_SOURCE));
  let perCopy = 0;
  for await (const item of folder.articles()) if (item.ok) perCopy++;
  helpArticles = perCopy * COPIES;
  const source = repeatedSource(folder, COPIES);
  // Warm-up, not measured: loads the tokenizer's ranks and lets the JIT compile the chunker, which
  // would otherwise be charged to whichever row runs first.
  const warm = SqliteKnowledgeStore.open(path.join(tmp, 'warm-up.sqlite'));
  await syncSource(folder, warm, { chunking, embedder: pseudoEmbedder });
  await warm.close();
  const weaviate = await startFakeWeaviate();
  try {
    let tenant = 0;
    const stores: [string, () => Promise<KnowledgeStore>][] = [
      ['SQLite (embedded)', async () => SqliteKnowledgeStore.open(path.join(tmp, `kb-${++tenant}.sqlite`))],
      [
        'Weaviate path, local fake server (not a real Weaviate)',
        // A fresh tenant per run, so each first sync starts from an empty shard.
        () =>
          WeaviateKnowledgeStore.connect({
            url: weaviate.url,
            grpcUrl: weaviate.grpcUrl,
            tenant: `bench${++tenant}`,
          }),
      ],
    ];
    for (const [storeLabel, open] of stores) {
      for (const embedder of [undefined, pseudoEmbedder]) {
        const vectors = embedder ? `pseudo-random ${DIM}-dim (bench embedder)` : 'none (BM25 only)';
        const store = await open();
        try {
          for (const pass of ['first sync', 'unchanged re-sync']) {
            const summary = checked(
              `${storeLabel}, ${pass}`,
              await syncSource(source, store, { chunking, embedder }),
              helpArticles,
            );
            if (pass === 'first sync') helpChunks = summary.chunks;
            await expectStored(`${storeLabel}, ${pass}`, store, helpArticles, helpChunks);
            syncRows.push([
              storeLabel,
              vectors,
              pass,
              String(helpArticles),
              String(summary.chunks),
              String(summary.embedded ?? 0),
              summary.seconds.toFixed(2),
              rate(helpArticles, summary.seconds),
              rate(summary.chunks, summary.seconds),
            ]);
          }
        } finally {
          await store.close();
        }
      }
    }
  } finally {
    await weaviate.close();
  }

  // --- 2. Zendesk: 2,000 articles in cursor pages of 100 --------------------------------------
  const email = 'bench@example.com';
  const token = 'bench-token';
  const zd = await new FakeZendesk({ email, token }).start();
  try {
    for (let c = 0; c < 4; c++) zd.categories.push({ id: 10 + c, names: { 'en-us': `Category ${c + 1}` } });
    for (let s = 0; s < ZENDESK_SECTIONS; s++) {
      zd.sections.push({ id: 100 + s, category_id: 10 + (s % 4), names: { 'en-us': `Section ${s + 1}` } });
    }
    for (let i = 1; i <= ZENDESK_ARTICLES; i++) zd.put(zendeskArticle(i), 'en-us', zendeskTranslation(i));
    const modes = [
      { mode: 'listing' as const, cacheDir: undefined },
      { mode: 'incremental' as const, cacheDir: path.join(tmp, 'zendesk-cache') },
    ];
    for (const { mode, cacheDir } of modes) {
      const src = createZendeskSource(
        zendeskSourceSchema.parse({
          type: 'zendesk',
          name: 'zd',
          baseUrl: zd.url,
          email,
          apiToken: token,
          locales: ['en-us'],
          pageSize: 100,
          mode,
        }),
        { cacheDir },
      );
      const store = SqliteKnowledgeStore.open(path.join(tmp, `zendesk-${mode}.sqlite`));
      try {
        for (const pass of ['first sync', 'unchanged second sync']) {
          const before = zd.requests.length;
          const summary = checked(
            `zendesk ${mode}, ${pass}`,
            await syncSource(src, store, { chunking }),
            ZENDESK_ARTICLES,
          );
          const requests = zd.requests.length - before;
          if (pass === 'first sync') zendeskChunks = summary.chunks;
          await expectStored(`zendesk ${mode}, ${pass}`, store, ZENDESK_ARTICLES, zendeskChunks);
          const run = src.lastRun();
          if (run?.requests !== requests) {
            console.error(
              `zendesk ${mode}: the source counted ${run?.requests} requests, the fake ${requests}`,
            );
            process.exit(1);
          }
          zendeskRows.push([
            mode,
            pass,
            String(ZENDESK_ARTICLES),
            String(summary.chunks),
            String(requests),
            summary.seconds.toFixed(2),
            rate(ZENDESK_ARTICLES, summary.seconds),
          ]);
        }
      } finally {
        await store.close();
      }
    }
  } finally {
    await zd.close();
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

/** Article `i` of the synthetic help center: its section, a label, visible to everyone. */
function zendeskArticle(i: number) {
  return {
    id: 1000 + i,
    section_id: 100 + (i % ZENDESK_SECTIONS),
    user_segment_id: null,
    label_names: [`l${i % 7}`],
  };
}
/**
 * A Help Center article body of about 1.5 KB of HTML (a heading, paragraphs, a list, a link),
 * varied by `i` so no two articles hash alike: the shape the HTML normalizer and the chunker see
 * from a real Zendesk export.
 */
function zendeskTranslation(i: number) {
  const topic = ['invoices', 'payments', 'bank feeds', 'reports', 'users', 'the API', 'exports'][i % 7];
  const para = (n: number) =>
    `<p>Step ${n} for article ${i}: open <strong>Settings</strong> and choose how ${topic} behave for your ` +
    `organisation. Changes apply to new records from the next billing period; existing records keep ` +
    `the settings they were created with, so reports stay consistent across periods.</p>`;
  return {
    title: `How to configure ${topic} (${i})`,
    body:
      `${para(1)}<h2>Before you start</h2>${para(2)}<ul><li>You need the admin role.</li>` +
      `<li>Sync runs every ${(i % 5) + 1} hours.</li><li>See <a href="/hc/articles/${i + 1}">the next article</a>.</li></ul>` +
      `<h2>Troubleshooting</h2>${para(3)}${para(4)}`,
  };
}

// --- Report -----------------------------------------------------------------------------------
const cpu = os.cpus()[0]?.model ?? 'unknown cpu';
console.log(
  `machine: ${cpu}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ${os.platform()} ${os.release()}`,
);
const table = (header: string[], body: string[][]) => {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] as string).length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of body) console.log(line(r));
  console.log();
};
console.log(
  `\nexample help center ×${COPIES}: ${helpArticles} articles, ${helpChunks} chunks (chunks of 300 tokens, overlap 30). ` +
    `Weaviate rows: the local fake server in this process, not a real Weaviate. ` +
    `Vectors: deterministic pseudo-random unit vectors from a bench embedder, no model.\n`,
);
table(
  ['store', 'vectors', 'sync', 'articles', 'chunks written', 'embedded', 'seconds', 'articles/s', 'chunks/s'],
  syncRows,
);
console.log(
  `Zendesk source against the local Zendesk API fake: ${ZENDESK_ARTICLES} published en-us articles, ` +
    `${ZENDESK_SECTIONS} sections, cursor pages of 100, into SQLite, no vectors.\n`,
);
table(['mode', 'sync', 'articles', 'chunks written', 'requests', 'seconds', 'articles/s'], zendeskRows);
