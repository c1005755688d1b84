import { createHash } from 'node:crypto';
import { batches, type Embedder, passageText } from '../core/embedder.ts';
import { SupportbotError } from '../core/errors.ts';
import type { KnowledgeStore } from '../core/knowledge-store.ts';
import type { Article, Chunk } from '../core/types.ts';
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
  /** Chunks embedded by this sync (new and changed articles, plus any chunk that lacked a vector). */
  embedded?: number;
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
  /**
   * Embeds the chunks of new and changed articles (stored with them, atomically), then any chunk in
   * the store that has no vector yet (e.g. after embeddings were first turned on). The store must
   * keep vectors (`setEmbeddingInfo` and friends).
   */
  embedder?: Embedder;
  /**
   * With `embedder`: when the store's vectors were made by another model, drop them all and
   * re-embed every chunk, without re-chunking, instead of failing with `embedding-mismatch`.
   * (`supportbot sync --reembed`.) With the same model it only fills missing vectors; to redo
   * them all anyway, call `store.setEmbeddingInfo(info, { reset: true })` once first.
   */
  reembed?: boolean;
  /** Chunks per `embedPassages` call. Default 64. */
  embedBatchSize?: number;
  /**
   * Stops the sync: checked between items, between embedding batches and before anything is
   * deleted (a scheduled sync that lost its lock must not write or delete beside the new holder).
   * An aborted sync throws the signal's reason.
   */
  signal?: AbortSignal;
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
  const embedder = options.embedder;
  const embedBatch = Math.max(1, Math.floor(options.embedBatchSize ?? DEFAULT_EMBED_BATCH));
  if (embedder) {
    await prepareVectors(store, embedder, { reembed: options.reembed });
    summary.embedded = 0;
  }
  // New and changed articles wait here until enough chunks are collected for one embedding batch;
  // each article is still written in its own transaction, with its vectors.
  let pending: { article: Article; chunks: Chunk[]; hash: string }[] = [];
  let pendingChunks = 0;
  const flush = async () => {
    const batch = pending;
    pending = [];
    pendingChunks = 0;
    const texts = batch.flatMap(({ article, chunks }) =>
      chunks.map((c) => passageText({ title: article.title, headingPath: c.headingPath, text: c.text })),
    );
    const vectors =
      embedder && texts.length > 0 ? await embedAll(embedder, texts, embedBatch, options.signal) : [];
    let offset = 0;
    for (const { article, chunks, hash } of batch) {
      const own = embedder ? vectors.slice(offset, offset + chunks.length) : undefined;
      offset += chunks.length;
      await store.upsertArticle(article, chunks, hash, own);
    }
    if (embedder) summary.embedded = (summary.embedded ?? 0) + texts.length;
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
        // Articles read before the failure are counted as added/updated: write them.
        if (pending.length > 0) await flush();
        return finish();
      }
      if (next.done) {
        exhausted = true;
        break;
      }
      options.signal?.throwIfAborted();
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
        if (embedder) {
          pending.push({ article, chunks, hash });
          pendingChunks += chunks.length;
          if (pendingChunks >= embedBatch) await flush();
        } else {
          await store.upsertArticle(article, chunks, hash);
        }
        summary.chunks += chunks.length;
        if (previous) summary.updated++;
        else summary.added++;
      }
      options.onProgress?.({ source: source.name, processed, article: article.sourcePath });
    }
    if (pending.length > 0) await flush();
  } finally {
    // Leaving early (a store error): let the source release its files and connections.
    if (!exhausted) await iterator.return?.().catch(() => undefined);
  }
  if (embedder) {
    summary.embedded =
      (summary.embedded ?? 0) +
      (await embedMissingVectors(store, embedder, { batchSize: embedBatch, signal: options.signal }));
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
  options.signal?.throwIfAborted();
  if (gone.length > 0) summary.deleted = await store.deleteArticles(source.name, gone);
  summary.swept = true;
  return finish();
}

const DEFAULT_EMBED_BATCH = 64;

/**
 * Makes `store` ready for vectors of `embedder`: records its model id and dimension. A store
 * whose vectors come from another model throws SupportbotError `embedding-mismatch` ("run
 * `supportbot sync --reembed`"), unless `reembed` is set: then all vectors are dropped and every
 * chunk waits for `embedMissingVectors`. Call once per run, before syncing sources (syncSource
 * calls it itself); after the first call the model matches and later calls change nothing.
 *
 * @throws SupportbotError `embedding-mismatch`, `invalid-option` (the store keeps no vectors).
 */
export async function prepareVectors(
  store: KnowledgeStore,
  embedder: Embedder,
  options: { reembed?: boolean } = {},
): Promise<void> {
  if (!store.setEmbeddingInfo || !store.listChunksWithoutVectors || !store.upsertVectors) {
    throw new SupportbotError('invalid-option', `knowledge store ${store.id} cannot keep vectors`);
  }
  const info = { model: embedder.id, dimensions: embedder.dimensions };
  const current = (await store.embeddingInfo?.()) ?? null;
  // Reset only on a real change of model, so that calling this once per source (as syncSource
  // does) drops the old vectors once, not the ones the previous source just filled.
  const differs =
    current !== null && (current.model !== info.model || current.dimensions !== info.dimensions);
  await store.setEmbeddingInfo(info, { reset: options.reembed === true && differs });
}

/**
 * Embeds every chunk in the store that has no vector (all of them right after a reset), in
 * batches of `batchSize`, without re-chunking anything. Returns how many chunks were embedded.
 */
export async function embedMissingVectors(
  store: KnowledgeStore,
  embedder: Embedder,
  options: { batchSize?: number; signal?: AbortSignal; onProgress?: (embedded: number) => void } = {},
): Promise<number> {
  if (!store.listChunksWithoutVectors || !store.upsertVectors) return 0;
  const batchSize = Math.max(1, Math.floor(options.batchSize ?? DEFAULT_EMBED_BATCH));
  let embedded = 0;
  for (;;) {
    options.signal?.throwIfAborted();
    const missing = await store.listChunksWithoutVectors(batchSize);
    if (missing.length === 0) break;
    const vectors = await embedder.embedPassages(missing.map(passageText), { signal: options.signal });
    const written = await store.upsertVectors(
      // The writeId (when the store has one) makes the store skip a chunk rewritten meanwhile,
      // whose vector would belong to its old text; it is listed again on the next pass.
      missing.map((c, i) => ({ chunkId: c.id, writeId: c.writeId, vector: vectors[i] as Float32Array })),
    );
    // A chunk deleted meanwhile is skipped by upsertVectors; nothing written means no progress.
    if (written === 0) break;
    embedded += written;
    options.onProgress?.(embedded);
  }
  return embedded;
}

async function embedAll(
  embedder: Embedder,
  texts: string[],
  batchSize: number,
  signal: AbortSignal | undefined,
): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const batch of batches(texts, batchSize))
    out.push(...(await embedder.embedPassages(batch, { signal })));
  return out;
}

/** One summary line, e.g. `examples: 3 added, 1 updated, 17 unchanged, 0 deleted, 0 failed; 12 chunks in 0.4 s`. */
export function formatSyncSummary(s: SyncSummary): string {
  const head = `${s.source}: ${s.added} added, ${s.updated} updated, ${s.unchanged} unchanged, ${s.deleted} deleted, ${s.failed} failed; ${s.chunks} chunks in ${s.seconds.toFixed(1)} s`;
  return s.sourceError ? `${head} — source failed, nothing deleted: ${s.sourceError}` : head;
}
