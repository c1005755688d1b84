import { createHash } from 'node:crypto';
import type { KnowledgeStore } from '../core/knowledge-store.ts';
import type { Article } from '../core/types.ts';
import { type ChunkOptions, chunkArticle } from './chunker.ts';
import type { Source, SourceItem, SourceItemError } from './source.ts';

/** What one sync of one source did. Counts are articles unless named otherwise. */
export interface SyncSummary {
  source: string;
  added: number;
  updated: number;
  unchanged: number;
  deleted: number;
  /** Items the source could not turn into articles (reported in `errors`, skipped). */
  failed: number;
  /** Chunks written by this sync (for added and updated articles only). */
  chunks: number;
  /** Wall-clock duration in seconds. */
  seconds: number;
  errors: SourceItemError[];
  /**
   * False when the source as a whole failed, or returned nothing at all while the store still
   * has articles from it (`sourceError` says which): then nothing was deleted, since a source that
   * errors cannot tell deleted articles from unreadable ones, and an empty folder is more likely
   * an unmounted share than a help center that deleted everything.
   */
  swept: boolean;
  sourceError?: string;
}

export interface SyncProgress {
  source: string;
  /** Items seen so far (articles and failures). */
  processed: number;
  article?: string;
  /** Set on the last call for this source. */
  done?: boolean;
}

export interface SyncOptions {
  chunking: ChunkOptions;
  onProgress?: (progress: SyncProgress) => void;
  /** Re-chunk every article even when its hash is unchanged. */
  force?: boolean;
}

/**
 * Content hash of a normalized article plus the chunking settings that shape its chunks, as
 * sha256 hex. Changing the chunk size or tokenizer therefore re-chunks everything on the next
 * sync; `updatedAt` is left out so that a touched but unchanged file costs nothing.
 */
export function articleHash(article: Article, chunking: ChunkOptions): string {
  const material = JSON.stringify([
    article.title,
    article.url,
    article.body,
    article.tags,
    article.accessGroups,
    article.locale,
    article.sourcePath,
    chunking.maxTokens,
    chunking.overlapTokens,
    chunking.tokenizer.id,
  ]);
  return createHash('sha256').update(material).digest('hex');
}

/**
 * Incremental sync of one source into a store: new articles are chunked and added, changed ones
 * (by `articleHash`) re-chunked and replaced atomically, unchanged ones skipped, and articles no
 * longer in the source deleted — except those whose file, or a folder they are in (an error whose
 * `sourcePath` ends in `/`), failed to read this time; and none at all when the source itself
 * failed or returned nothing while the store still has articles from it (`swept: false`).
 *
 * Never throws for a bad item or an unavailable source (both are reported in the summary); store
 * errors do propagate, since continuing would lose writes silently.
 */
export async function syncSource(
  source: Source,
  store: KnowledgeStore,
  options: SyncOptions,
): Promise<SyncSummary> {
  const started = performance.now();
  const summary: SyncSummary = {
    source: source.name,
    added: 0,
    updated: 0,
    unchanged: 0,
    deleted: 0,
    failed: 0,
    chunks: 0,
    seconds: 0,
    errors: [],
    swept: false,
  };
  const known = new Map((await store.listArticleHashes(source.name)).map((h) => [h.articleId, h]));
  const seen = new Set<string>();
  /** Files that failed, and folders (`sub/`, with the trailing slash) that could not be read. */
  const failedPaths = new Set<string>();
  const failedDirs: string[] = [];
  let processed = 0;
  const finish = (): SyncSummary => {
    summary.seconds = Math.round(performance.now() - started) / 1000;
    options.onProgress?.({ source: source.name, processed, done: true });
    return summary;
  };

  // Only the source's own iteration is guarded: a source that throws is reported and deletes
  // nothing, while store errors (a full disk, a lost connection) propagate to the caller.
  let iterator: AsyncIterator<SourceItem>;
  try {
    iterator = source.articles()[Symbol.asyncIterator]();
  } catch (err) {
    summary.sourceError = (err as Error).message;
    return finish();
  }
  let exhausted = false;
  try {
    for (;;) {
      let next: IteratorResult<SourceItem>;
      try {
        next = await iterator.next();
      } catch (err) {
        exhausted = true; // a generator that threw is finished; there is nothing to close
        summary.sourceError = (err as Error).message;
        return finish();
      }
      if (next.done) {
        exhausted = true;
        break;
      }
      const item = next.value;
      processed++;
      if (!item.ok) {
        summary.failed++;
        summary.errors.push(item.error);
        if (item.error.sourcePath.endsWith('/')) failedDirs.push(item.error.sourcePath);
        else failedPaths.add(item.error.sourcePath);
        options.onProgress?.({ source: source.name, processed });
        continue;
      }
      const { article } = item;
      if (seen.has(article.id)) {
        // Two files claiming one id would overwrite each other on every sync; report the second.
        summary.failed++;
        summary.errors.push({
          sourcePath: article.sourcePath,
          code: 'duplicate-id',
          message: `article id ${article.id} is already used by another file in source ${source.name}`,
        });
        continue;
      }
      seen.add(article.id);
      const hash = articleHash(article, options.chunking);
      const previous = known.get(article.id);
      if (previous && previous.contentHash === hash && !options.force) {
        summary.unchanged++;
      } else {
        const chunks = chunkArticle(article, options.chunking);
        await store.upsertArticle(article, chunks, hash);
        summary.chunks += chunks.length;
        if (previous) summary.updated++;
        else summary.added++;
      }
      options.onProgress?.({ source: source.name, processed, article: article.sourcePath });
    }
  } finally {
    // Leaving early (a store error): let the source release its files and connections.
    if (!exhausted) await iterator.return?.().catch(() => undefined);
  }

  if (processed === 0 && known.size > 0) {
    // An empty answer from a source that had articles looks like an unmounted share or an
    // emptied export far more often than like a help center that deleted everything.
    summary.sourceError = `source returned no articles; nothing deleted (${known.size} known)`;
    return finish();
  }

  const spared = (sourcePath: string): boolean =>
    failedPaths.has(sourcePath) || failedDirs.some((dir) => sourcePath.startsWith(dir));
  const gone = [...known.values()]
    .filter((h) => !seen.has(h.articleId) && !spared(h.sourcePath))
    .map((h) => h.articleId);
  if (gone.length > 0) summary.deleted = await store.deleteArticles(source.name, gone);
  summary.swept = true;
  return finish();
}

/** One summary line, e.g. `examples: 3 added, 1 updated, 17 unchanged, 0 deleted, 0 failed; 12 chunks in 0.4 s`. */
export function formatSyncSummary(s: SyncSummary): string {
  const head = `${s.source}: ${s.added} added, ${s.updated} updated, ${s.unchanged} unchanged, ${s.deleted} deleted, ${s.failed} failed; ${s.chunks} chunks in ${s.seconds.toFixed(1)} s`;
  return s.sourceError ? `${head} — source failed, nothing deleted: ${s.sourceError}` : head;
}
