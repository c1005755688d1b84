import { SupportbotError } from '../core/errors.ts';
import type { ExportedArticle, KnowledgeStore } from '../core/knowledge-store.ts';

/** Counts after each copied article (for a progress line) and in the result. */
export interface MigrateProgress {
  articles: number;
  chunks: number;
  /** Vectors copied; chunks without one stay without one in the target. */
  vectors: number;
}

export interface MigrateOptions {
  /** Called after each article is written to the target. */
  onProgress?: (progress: MigrateProgress) => void;
  /** Articles written at the same time (default 4; the target's writes are independent per article). */
  concurrency?: number;
}

export interface MigrateResult extends MigrateProgress {
  /** The embedding model the vectors belong to, or `null` when the source has none. */
  embedding: { model: string; dimensions: number } | null;
  durationMs: number;
}

/**
 * Copies every article of `from` into `to` (`supportbot migrate --from sqlite --to weaviate`, and
 * back): article fields, content hashes, chunks as they are (ids, spans, heading paths, token
 * counts) and their vectors, so nothing is re-chunked or re-embedded. Articles already in `to`
 * are replaced by id; articles only in `to` are left alone. The next incremental sync of the
 * target sees the copied hashes and skips unchanged articles.
 *
 * The target's embedding model is set to the source's first (`setEmbeddingInfo`), so a target
 * holding vectors of another model fails with `embedding-mismatch` before anything is written.
 *
 * @throws SupportbotError `invalid-option` when `from` cannot export (no `exportArticles`) or the
 *   source has vectors and the target cannot store them; `embedding-mismatch`; any write error of
 *   the target (`store-write-failed`, `store-unavailable`), after which the articles copied so
 *   far stay copied and a re-run completes the rest.
 */
export async function migrateKnowledge(
  from: KnowledgeStore,
  to: KnowledgeStore,
  options: MigrateOptions = {},
): Promise<MigrateResult> {
  const started = performance.now();
  if (!from.exportArticles) {
    throw new SupportbotError('invalid-option', `${from.id} cannot export its articles`);
  }
  const embedding = (await from.embeddingInfo?.()) ?? null;
  if (embedding) {
    if (!to.setEmbeddingInfo || !to.upsertVectors) {
      throw new SupportbotError(
        'invalid-option',
        `${from.id} holds vectors (${embedding.model}) but ${to.id} cannot store vectors`,
      );
    }
    await to.setEmbeddingInfo(embedding);
  }
  const progress: MigrateProgress = { articles: 0, chunks: 0, vectors: 0 };
  const concurrency = Math.max(1, Math.floor(options.concurrency ?? 4));
  const running = new Set<Promise<void>>();
  let failure: unknown = null;
  for await (const item of from.exportArticles()) {
    if (failure) break;
    const task = copyArticle(to, item, embedding !== null)
      .then((copied) => {
        progress.articles++;
        progress.chunks += item.chunks.length;
        progress.vectors += copied;
        options.onProgress?.({ ...progress });
      })
      .catch((err: unknown) => {
        failure ??= err;
      })
      .finally(() => running.delete(task));
    running.add(task);
    if (running.size >= concurrency) await Promise.race(running);
  }
  await Promise.all(running);
  if (failure) throw failure;
  return { ...progress, embedding, durationMs: performance.now() - started };
}

/** Writes one exported article; returns how many vectors it wrote. */
async function copyArticle(to: KnowledgeStore, item: ExportedArticle, withVectors: boolean): Promise<number> {
  const vectors = withVectors ? (item.vectors ?? []) : [];
  const present = vectors.filter((v): v is Float32Array => v !== null);
  if (present.length > 0 && present.length === item.chunks.length) {
    await to.upsertArticle(item.article, item.chunks, item.contentHash, present);
    return present.length;
  }
  await to.upsertArticle(item.article, item.chunks, item.contentHash);
  if (present.length === 0 || !to.upsertVectors) return 0;
  // Some chunks had no vector yet (a sync that had not finished embedding): copy those that had.
  const partial = item.chunks.flatMap((chunk, i) => {
    const vector = vectors[i];
    return vector ? [{ chunkId: chunk.id, vector }] : [];
  });
  return to.upsertVectors(partial);
}
