import type { Article, Chunk, SearchHit, SearchOptions, StoredChunk } from './types.ts';

/** What a store keeps per article to decide whether a re-sync must re-chunk it. */
export interface ArticleHash {
  articleId: string;
  /** Path relative to the source root, so a sync can spare articles whose file failed to read. */
  sourcePath: string;
  /** sha256 hex of the normalized article (see `sync/hash.ts`). */
  contentHash: string;
}

/** Which embedding model made a store's vectors; vectors of different models are not comparable. */
export interface EmbeddingInfo {
  /** `Embedder.id`, e.g. `onnx:Xenova/all-MiniLM-L6-v2`. */
  model: string;
  /** Vector length. */
  dimensions: number;
}

/**
 * One article as a store holds it, for copying between stores (`supportbot migrate`).
 * `article.body` is `''`: stores keep chunks, not bodies. `vectors[i]` is the vector of
 * `chunks[i]`, or `null` when that chunk has none; absent when the store keeps no vectors.
 */
export interface ExportedArticle {
  article: Article;
  contentHash: string;
  /** In index order. */
  chunks: Chunk[];
  vectors?: (Float32Array | null)[];
}

/**
 * Search options with the retrieval mode. `SearchOptions.vector` is the query embedding (made by
 * the same `Embedder` as the stored vectors, unit length).
 *
 * - `mode`: `bm25` (full text only), `vector` (nearest chunks by cosine similarity), or `hybrid`
 *   (both lists fused). Default: `hybrid` when `vector` is given and the store has vectors, else
 *   `bm25`; stores without vectors always search BM25 only.
 * - `alpha`: weight of the vector list in `hybrid`, 0..1 like Weaviate's: 1 = pure vector,
 *   0 = pure BM25. Default 0.5.
 * - `fusion`: `rrf` (reciprocal rank fusion, k = 60, weighted by alpha) or `relative`
 *   (min-max-normalized scores weighted by alpha, Weaviate's relativeScoreFusion); see
 *   `core/fusion.ts`. Default `rrf`.
 * - `candidates`: how many hits each path contributes before fusion (default max(50, 4k)).
 *
 * Scores: `bm25` as in `SearchHit`; `vector` the cosine similarity (-1..1); `hybrid` the fused score.
 * Filters apply before ranking and before the limit in every path.
 */
export interface HybridSearchOptions extends SearchOptions {
  mode?: 'bm25' | 'vector' | 'hybrid';
  alpha?: number;
  fusion?: 'rrf' | 'relative';
  candidates?: number;
}

/**
 * The knowledge store seam: where chunks live and are searched. Implementations: the embedded
 * SQLite store (`core/knowledge-store/sqlite.ts`, the default) and Weaviate (production).
 * Every implementation passes `test/contract/knowledge-store.contract.ts`.
 */
/**
 * A chunk waiting for its vector. `writeId`, when the store gives one, names the write that stored
 * the chunk's current text: another sync rewriting the chunk gives it a new one.
 */
export type ChunkWithoutVector = StoredChunk & { writeId?: string };

/** The vector of one chunk for `upsertVectors`; `writeId` as listed by `listChunksWithoutVectors`. */
export interface ChunkVector {
  chunkId: string;
  vector: Float32Array;
  writeId?: string;
}

export interface KnowledgeStore {
  /** Short name for logs and `status` (`sqlite:/path/to/file`). */
  readonly id: string;

  /**
   * Replace all chunks of one article, atomically: a concurrent search sees either the old chunks
   * or the new ones, never a mix or none. `article.source` + `article.id` identify the article.
   * `vectors[i]`, when given, is the embedding of `chunks[i]` (stores with vectors only; the
   * store's embedding model must be set first, see `setEmbeddingInfo`); without them the new
   * chunks have no vector until `upsertVectors`.
   */
  upsertArticle(
    article: Article,
    chunks: Chunk[],
    contentHash: string,
    vectors?: Float32Array[],
  ): Promise<void>;

  /** Delete articles and all their chunks. Unknown ids are ignored. Returns how many existed. */
  deleteArticles(source: string, articleIds: string[]): Promise<number>;

  /** Every article of a source with its content hash (for incremental sync). */
  listArticleHashes(source: string): Promise<ArticleHash[]>;

  /**
   * Optional: chunks by id (`Chunk.id`, `${source}:${articleId}#${index}`), for rebuilding a past
   * answer's prompt from the chunk ids its `AnswerRecord` keeps (`training/dataset/chunks.ts`).
   * Returns the chunks found, in the order of `ids`; unknown ids (re-synced away, deleted, never
   * stored) are skipped, and an id given twice gives its chunk twice. No access filter applies:
   * the caller already holds the ids. Stores that leave it out cannot feed the training dataset.
   */
  getChunks?(ids: string[]): Promise<StoredChunk[]>;

  /**
   * Top-k chunks for a query, best first, with filters applied before ranking. Full-text
   * (BM25) always; vector/hybrid when the store has vectors and `options.vector` is given.
   * An empty or punctuation-only query returns `[]`, never an error.
   */
  search(query: string, options: HybridSearchOptions): Promise<SearchHit[]>;

  // --- Vectors: optional, for stores that keep embeddings. Stores without them leave these out
  // and search BM25 only. Every store with them passes the vector part of the contract suite.

  /** The embedding model of the stored vectors, or `null` before one is set. */
  embeddingInfo?(): Promise<EmbeddingInfo | null>;

  /**
   * Declares the embedding model for the vectors to come. The same model again is a no-op. A
   * different model or dimension throws SupportbotError `embedding-mismatch` (telling the user to
   * run `supportbot sync --reembed`). With `reset`, every stored vector is dropped (whatever the
   * model) and all chunks wait for re-embedding (`listChunksWithoutVectors`).
   */
  setEmbeddingInfo?(info: EmbeddingInfo, options?: { reset?: boolean }): Promise<void>;

  /**
   * Up to `limit` chunks that have no vector yet, in a stable order (for filling or re-embedding).
   * A store whose vector write is not atomic with the chunk's text (Weaviate) also gives each
   * chunk's `writeId`, to hand back to `upsertVectors`.
   */
  listChunksWithoutVectors?(limit: number): Promise<ChunkWithoutVector[]>;

  /**
   * Sets the vectors of existing chunks by chunk id; unknown ids are ignored. A vector given with a
   * `writeId` is written only while the chunk is still the one of that write (its text is what was
   * embedded), else skipped. Returns how many were written.
   */
  upsertVectors?(vectors: ChunkVector[]): Promise<number>;

  /**
   * Optional: in how many chunks each term occurs, for IDF weights. Terms are given as
   * `core/text.ts#contentTerms` makes them (lower-case, Porter-stemmed); `documents` is the
   * number of chunks. Stores that cannot tell leave it out and callers weigh terms equally.
   */
  documentFrequencies?(terms: string[]): Promise<{ documents: number; df: Record<string, number> }>;

  /**
   * Optional: every article with its content hash, chunks and vectors, ordered by source then
   * article id, for copying a store without re-chunking or re-embedding (`bot/migrate.ts`).
   */
  exportArticles?(): AsyncIterable<ExportedArticle>;

  /** Counts for `status`. */
  stats(): Promise<{ articles: number; chunks: number; sources: Record<string, number> }>;

  /** Release files and connections. Further calls throw. */
  close(): Promise<void>;
}
