import type { Article, Chunk, SearchHit, SearchOptions } from './types.ts';

/** What a store keeps per article to decide whether a re-sync must re-chunk it. */
export interface ArticleHash {
  articleId: string;
  /** Path relative to the source root, so a sync can spare articles whose file failed to read. */
  sourcePath: string;
  /** sha256 hex of the normalized article (see `sync/hash.ts`). */
  contentHash: string;
}

/**
 * The knowledge store seam: where chunks live and are searched. Implementations: the embedded
 * SQLite store (`core/knowledge-store/sqlite.ts`, the default) and Weaviate (production).
 * Every implementation passes `test/contract/knowledge-store.contract.ts`.
 */
export interface KnowledgeStore {
  /** Short name for logs and `status` (`sqlite:/path/to/file`). */
  readonly id: string;

  /**
   * Replace all chunks of one article, atomically: a concurrent search sees either the old chunks
   * or the new ones, never a mix or none. `article.source` + `article.id` identify the article.
   */
  upsertArticle(article: Article, chunks: Chunk[], contentHash: string): Promise<void>;

  /** Delete articles and all their chunks. Unknown ids are ignored. Returns how many existed. */
  deleteArticles(source: string, articleIds: string[]): Promise<number>;

  /** Every article of a source with its content hash (for incremental sync). */
  listArticleHashes(source: string): Promise<ArticleHash[]>;

  /**
   * Top-k chunks for a query, best first, with filters applied before ranking. Full-text
   * (BM25) always; vector/hybrid when the store has vectors and `options.vector` is given.
   * An empty or punctuation-only query returns `[]`, never an error.
   */
  search(query: string, options: SearchOptions): Promise<SearchHit[]>;

  /**
   * Optional: in how many chunks each term occurs, for IDF weights. Terms are given as
   * `core/text.ts#contentTerms` makes them (lower-case, Porter-stemmed); `documents` is the
   * number of chunks. Stores that cannot tell leave it out and callers weigh terms equally.
   */
  documentFrequencies?(terms: string[]): Promise<{ documents: number; df: Record<string, number> }>;

  /** Counts for `status`. */
  stats(): Promise<{ articles: number; chunks: number; sources: Record<string, number> }>;

  /** Release files and connections. Further calls throw. */
  close(): Promise<void>;
}
