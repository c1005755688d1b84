/**
 * One benchmark cell, run in its own process so that peak RSS belongs to it alone:
 *   tsx bench/run-one.ts <helpcenter> <system>
 * systems: `supportbot` (our chunker + SQLite FTS5), `minisearch` (our chunks, MiniSearch BM25),
 * `langchain-split` (LangChain RecursiveCharacterTextSplitter chunks, our SQLite store).
 * Prints one JSON object on stdout.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { RecursiveCharacterTextSplitter } from '@langchain/textsplitters';
import MiniSearch from 'minisearch';
import { configSchema } from '../core/config.ts';
import { SqliteKnowledgeStore } from '../core/knowledge-store/sqlite.ts';
import { cl100kTokenizer } from '../core/tokenizer.ts';
import type { Article, Chunk } from '../core/types.ts';
import {
  type HelpcenterName,
  helpcenterSource,
  loadQuestions,
  sharedHelpcentersDir,
} from '../evals/helpcenters.ts';
import { firstRelevantRank, percentile } from '../evals/hit-rate.ts';
import { chunkArticle } from '../sync/chunker.ts';
import { createFolderSource } from '../sync/sources/folder.ts';
import { articleHash } from '../sync/sync.ts';

const [name, system] = process.argv.slice(2) as [HelpcenterName, string];
const root = sharedHelpcentersDir();
if (!root) throw new Error('../shared/data/helpcenters not found');
const defaults = configSchema.parse({});
const chunking = { ...defaults.chunking, tokenizer: cl100kTokenizer };
const questions = loadQuestions(name).filter((q) => q.kind === 'answerable');

const t0 = performance.now();
const articles: Article[] = [];
for await (const item of createFolderSource(helpcenterSource(name, root)).articles())
  if (item.ok) articles.push(item.article);
const loadSeconds = (performance.now() - t0) / 1000;

/** LangChain's recursive splitter measures characters; ~4 characters per cl100k token in English prose. */
async function langchainChunks(article: Article): Promise<Chunk[]> {
  const splitter = RecursiveCharacterTextSplitter.fromLanguage('markdown', {
    chunkSize: chunking.maxTokens * 4,
    chunkOverlap: chunking.overlapTokens * 4,
  });
  const texts = await splitter.splitText(article.body);
  return texts.map((text, index) => ({
    id: `${article.source}:${article.id}#${index}`,
    articleId: article.id,
    source: article.source,
    index,
    headingPath: [],
    text,
    tokenCount: cl100kTokenizer.count(text),
    span: { start: 0, end: 0 },
  }));
}

const dir = mkdtempSync(path.join(tmpdir(), 'supportbot-bench-'));
let chunkCount = 0;
let indexSeconds = 0;
const ranks: (number | null)[] = [];
const latencies: number[] = [];
try {
  if (system === 'minisearch') {
    const t1 = performance.now();
    const docs: { id: string; title: string; headings: string; text: string; sourcePath: string }[] = [];
    for (const a of articles)
      for (const c of chunkArticle(a, chunking))
        docs.push({
          id: c.id,
          title: a.title,
          headings: c.headingPath.join(' '),
          text: c.text,
          sourcePath: a.sourcePath,
        });
    const mini = new MiniSearch({
      fields: ['title', 'headings', 'text'],
      storeFields: ['sourcePath'],
      searchOptions: { boost: { title: 2, headings: 1.5 } },
    });
    mini.addAll(docs);
    chunkCount = docs.length;
    indexSeconds = (performance.now() - t1) / 1000;
    for (const q of questions) {
      const t = performance.now();
      const results = mini.search(q.question).slice(0, 20);
      latencies.push(performance.now() - t);
      const hits = results.map((r) => ({ chunk: { sourcePath: r.sourcePath as string } }));
      ranks.push(firstRelevantRank(hits as never, q.relevant));
    }
  } else {
    const store = SqliteKnowledgeStore.open(path.join(dir, 'bench.sqlite'));
    const t1 = performance.now();
    for (const a of articles) {
      const chunks = system === 'langchain-split' ? await langchainChunks(a) : chunkArticle(a, chunking);
      chunkCount += chunks.length;
      await store.upsertArticle(a, chunks, articleHash(a, chunking));
    }
    indexSeconds = (performance.now() - t1) / 1000;
    for (const q of questions) {
      const t = performance.now();
      const hits = await store.search(q.question, { k: 20 });
      latencies.push(performance.now() - t);
      ranks.push(firstRelevantRank(hits, q.relevant));
    }
    await store.close();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const n = Math.max(ranks.length, 1);
process.stdout.write(
  `${JSON.stringify({
    helpcenter: name,
    system,
    articles: articles.length,
    chunks: chunkCount,
    loadSeconds,
    indexSeconds,
    articlesPerSecond: articles.length / (loadSeconds + indexSeconds),
    chunksPerSecond: chunkCount / indexSeconds,
    queries: ranks.length,
    p50Ms: percentile(latencies, 50),
    p95Ms: percentile(latencies, 95),
    top1: ranks.filter((r) => r === 1).length / n,
    top5: ranks.filter((r) => r !== null && r <= 5).length / n,
    peakRssMb: process.resourceUsage().maxRSS / 1024,
  })}\n`,
);
