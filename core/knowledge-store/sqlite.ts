import type Database from 'better-sqlite3';
import * as sqliteVec from 'sqlite-vec';
import { embeddingMismatch } from '../embedder.ts';
import { SupportbotError } from '../errors.ts';
import { hybridWeights, type Ranked, reciprocalRankFusion, relativeScoreFusion } from '../fusion.ts';
import type {
  ArticleHash,
  EmbeddingInfo,
  ExportedArticle,
  HybridSearchOptions,
  KnowledgeStore,
} from '../knowledge-store.ts';
import { type Migration, openSqliteDatabase, runMigrations } from '../sqlite.ts';
import { indexableText } from '../text.ts';
import type { Article, Chunk, SearchFilter, SearchHit, StoredChunk } from '../types.ts';

// ---------------------------------------------------------------------------------------------
// Query text → safe FTS5 MATCH expression
// ---------------------------------------------------------------------------------------------

/**
 * Scripts written without spaces between words. unicode61 would index a whole run of them as one
 * token, so a word inside a sentence could never be found. Both the indexed text and the query
 * put every such character in its own token (see `toSearchText`), and the query searches
 * overlapping character bigrams as phrases, the classic CJK bigram approach (as in Lucene's
 * CJKAnalyzer), built from a unigram index.
 */
const CJK_CLASS = '\\p{Script=Han}\\p{Script=Hiragana}\\p{Script=Katakana}\\p{Script=Hangul}\\u30fc';
const CJK_CHAR = new RegExp(`[${CJK_CLASS}]`, 'gu');
const CJK_START = new RegExp(`^[${CJK_CLASS}]`, 'u');
/** A run of CJK characters, or a run of other letters, digits and combining marks. */
const TERM = new RegExp(`[${CJK_CLASS}]+|(?:(?![${CJK_CLASS}])[\\p{L}\\p{N}\\p{M}])+`, 'gu');

/** Longest term kept, in UTF-16 units; longer "words" are pasted blobs, not search terms. */
const MAX_TERM_LENGTH = 64;
/** Default cap on distinct terms per query; keeps pasted logs and 10k-char messages cheap. */
export const DEFAULT_MAX_QUERY_TERMS = 32;

/**
 * English stop words, dropped from a query only when at least one other term remains (a query
 * made only of them, like "how to", still searches them). BM25's IDF already discounts them;
 * dropping them mostly saves work and keeps them from outvoting rare terms in short chunks.
 */
const STOP_WORDS = new Set(
  (
    'a about above after again against all am an and any are as at be because been before being below ' +
    'between both but by can could did do does doing down during each few for from further had has have ' +
    'having he her here hers herself him himself his how i if in into is it its itself just me more most ' +
    'my myself no nor not now of off on once only or other our ours ourselves out over own same she should ' +
    'so some such than that the their theirs them themselves then there these they this those through to ' +
    'too under until up very was we were what when where which while who whom why will with would you your ' +
    'yours yourself yourselves s t d ll m re ve please thanks hi hello'
  ).split(' '),
);

/**
 * The text FTS5 indexes for a field: NFKC-normalized (full-width Latin and digits become ASCII,
 * ligatures split) and with each CJK character set apart as its own token.
 */
export function toSearchText(text: string): string {
  return indexableText(text).normalize('NFKC').replace(CJK_CHAR, ' $& ');
}

/**
 * Builds an FTS5 MATCH expression from arbitrary user text, or `null` when nothing searchable
 * is left (empty, punctuation or emoji only). Never throws.
 *
 * Every term is a quoted FTS5 string, so FTS5 syntax in the input (`AND`, `NEAR(`, `*`, `^`,
 * `col:`, quotes, parentheses) is only ever searched as words, never parsed. Terms are runs of
 * letters/digits/marks, lower-cased and de-duplicated; CJK runs become overlapping bigram phrases
 * (`"日 本" OR "本 語"`). Terms are ORed: BM25 ranks chunks containing more of them, and rarer
 * ones, higher, and one unknown word does not empty the result. At most `maxTerms` distinct terms
 * are kept, in order of appearance.
 */
export function buildMatchExpression(query: string, maxTerms = DEFAULT_MAX_QUERY_TERMS): string | null {
  const content: string[] = [];
  const stop: string[] = [];
  const seen = new Set<string>();
  const add = (term: string, list: string[]) => {
    if (seen.has(term) || list.length >= maxTerms) return;
    seen.add(term);
    list.push(term);
  };
  for (const [run] of query.normalize('NFKC').toLowerCase().matchAll(TERM)) {
    if (content.length >= maxTerms) break;
    if (CJK_START.test(run)) {
      const chars = Array.from(run);
      if (chars.length === 1) add(run, content);
      for (let i = 0; i + 1 < chars.length; i++) add(`${chars[i]} ${chars[i + 1]}`, content);
    } else if (run.length <= MAX_TERM_LENGTH) {
      add(run, STOP_WORDS.has(run) ? stop : content);
    }
  }
  const terms = content.length > 0 ? content : stop;
  if (terms.length === 0) return null;
  return terms.map((t) => `"${t.replaceAll('"', '""')}"`).join(' OR ');
}

// ---------------------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------------------

/**
 * Column weights for FTS5 `bm25()`. A term occurrence in a column counts `weight` times toward
 * the term frequency (FTS5 computes one BM25 per row over all columns, k1 = 1.2, b = 0.75, so
 * weights matter most for terms that are rare in the body). Each weight must be > 0.
 */
export interface Bm25Weights {
  /** The article title, repeated on each of its chunks. */
  title: number;
  /** The chunk's heading path. */
  headings: number;
  /** The chunk text. */
  body: number;
}

/**
 * Defaults: a title hit counts 4×, a heading hit 2×, a body hit 1×. Titles and headings are what
 * a help-center writer uses to say what a passage is about, and people ask in those words; 4/2/1
 * keeps a chunk under the right title/heading ahead of one with a passing mention in its body
 * without letting a title alone outrank a body that answers the question (tf saturates).
 */
export const DEFAULT_BM25_WEIGHTS: Readonly<Bm25Weights> = Object.freeze({ title: 4, headings: 2, body: 1 });

export interface SqliteKnowledgeStoreOptions {
  /** `bm25()` column weights; see `DEFAULT_BM25_WEIGHTS`. */
  weights?: Partial<Bm25Weights>;
  /** Cap on distinct query terms; see `buildMatchExpression`. Default 32. */
  maxQueryTerms?: number;
  /**
   * How the vector path applies filters (results are the same; only speed differs, see
   * bench/vector.ts): `two-pass` runs the KNN over everything, filters the best max(100, 2k),
   * and repeats restricted to the allowed chunks only when fewer than k survive; `prefilter`
   * always restricts the KNN to the allowed chunks (`pk IN (…)`); `auto` (the default) takes
   * `prefilter` when the filter names sources, tags or locales, else `two-pass`. Measured on 4k
   * chunks × 384 dims: with only the default public-only filter, which nearly every chunk passes,
   * two-pass took 2.3–2.6 ms against 3.5–3.9 ms (k = 5); with a source filter passing 25 % of
   * chunks, prefilter took 2.5–2.8 ms against 4.6–5.8 ms (k = 50) and tied at k = 5.
   */
  vectorFilter?: 'auto' | 'two-pass' | 'prefilter';
}

/** Tokenizer of the FTS5 table, recorded in `meta.fts_tokenizer`. */
export const FTS_TOKENIZER = 'porter unicode61 remove_diacritics 2';
/** Largest `k` a search honours. */
const MAX_K = 1000;
/** First-pass size of a BM25 search: max(MIN, k × FACTOR) best matches, then filtered. */
const LEXICAL_PREFETCH_MIN = 100;
const LEXICAL_PREFETCH_FACTOR = 20;
/** sqlite-vec's largest `k` in one KNN query (0.1.9: "the limit is 4096"). */
const VEC_MAX_K = 4096;
/** Hits each path contributes to a hybrid search: max(MIN, k × FACTOR), at most MAX_K. */
const HYBRID_CANDIDATES_MIN = 50;
const HYBRID_CANDIDATES_FACTOR = 4;
/** Default weight of the vector list in hybrid search (Weaviate's alpha). */
export const DEFAULT_ALPHA = 0.5;
/** Meta keys recording the embedding model of the vectors. */
const META_EMBEDDING_MODEL = 'embedding_model';
const META_EMBEDDING_DIMENSIONS = 'embedding_dimensions';
/** The sqlite-vec table; created when the embedding model is first set, since vec0 fixes the dimension. */
const VECTOR_TABLE = 'chunk_vectors';

/** Schema of the knowledge store, component `knowledge` in `schema_migrations`. */
export const KNOWLEDGE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'articles, chunks, chunks_fts, meta',
    up(db) {
      db.exec(`
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;

        CREATE TABLE articles (
          source TEXT NOT NULL,
          id TEXT NOT NULL,
          title TEXT NOT NULL,
          url TEXT,
          source_path TEXT NOT NULL,
          updated_at TEXT NOT NULL,
          tags TEXT NOT NULL CHECK (json_valid(tags)),
          access_groups TEXT NOT NULL CHECK (json_valid(access_groups)),
          locale TEXT NOT NULL,
          content_hash TEXT NOT NULL,
          PRIMARY KEY (source, id)
        ) STRICT;

        -- pk is the rowid alias that chunks_fts (and later a vec0 table) are keyed by; an explicit
        -- INTEGER PRIMARY KEY survives VACUUM, an implicit rowid may not. id is the chunk's key.
        CREATE TABLE chunks (
          pk INTEGER PRIMARY KEY,
          id TEXT NOT NULL UNIQUE,
          source TEXT NOT NULL,
          article_id TEXT NOT NULL,
          idx INTEGER NOT NULL,
          heading_path TEXT NOT NULL CHECK (json_valid(heading_path)),
          text TEXT NOT NULL,
          token_count INTEGER NOT NULL,
          span_start INTEGER NOT NULL,
          span_end INTEGER NOT NULL,
          UNIQUE (source, article_id, idx),
          FOREIGN KEY (source, article_id) REFERENCES articles (source, id)
        ) STRICT;

        -- Contentless: the text lives in chunks/articles; contentless_delete lets a chunk's row
        -- be deleted by rowid (SQLite >= 3.43). Rows are written by the store, not by triggers,
        -- because the indexed text is prepared in JS (toSearchText).
        CREATE VIRTUAL TABLE chunks_fts USING fts5(
          title, headings, body,
          content = '', contentless_delete = 1,
          tokenize = '${FTS_TOKENIZER}'
        );
      `);
      db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)').run('fts_tokenizer', FTS_TOKENIZER);
    },
  },
  {
    version: 2,
    name: 'chunks_vocab (document frequencies for IDF)',
    up(db) {
      // fts5vocab 'row': one row per indexed term with the number of chunks that hold it.
      db.exec(`CREATE VIRTUAL TABLE chunks_vocab USING fts5vocab(chunks_fts, 'row');`);
    },
  },
  {
    version: 3,
    name: 'chunk vectors (sqlite-vec vec0 keyed by chunks.pk, created when an embedding model is set)',
    // Nothing to create yet: the vec0 table's dimension is known only when an embedder is set
    // (see createVectorTable). The version still matters: a supportbot that predates vectors
    // would delete chunks without their vectors, so it must refuse this file (store-too-new).
    up() {},
  },
];

/** Creates the vec0 table for `dimensions`-long float vectors, compared by cosine distance. */
function createVectorTable(db: Database.Database, dimensions: number): void {
  db.exec(
    `CREATE VIRTUAL TABLE ${VECTOR_TABLE} USING vec0(pk INTEGER PRIMARY KEY, embedding float[${dimensions}] distance_metric=cosine)`,
  );
}

interface ChunkRow {
  pk: number;
  id: string;
  source: string;
  article_id: string;
  idx: number;
  heading_path: string;
  text: string;
  token_count: number;
  span_start: number;
  span_end: number;
  title: string;
  url: string | null;
  source_path: string;
  updated_at: string;
  tags: string;
  access_groups: string;
  locale: string;
}

/** One ranked list from one retrieval path, best first; fused lists share this shape. */
interface Candidate {
  pk: number;
  score: number;
}

/** A vector as sqlite-vec reads it: the raw little-endian float32 bytes. */
function vectorBlob(v: Float32Array): Buffer {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

/**
 * Named parameters of the shared filter clause. Arrays are bound as JSON text and expanded
 * with `json_each`, so one prepared statement serves every filter shape.
 */
interface FilterParams {
  sources: string | null;
  tags: string | null;
  locales: string | null;
  groups: string;
}

/**
 * SQL condition over `a` (articles) for a `SearchFilter`. Every retrieval path (BM25 now, vectors
 * later) uses this same clause, so filters apply before ranking and the limit in each path.
 * Sources, tags and access groups match exactly; locales match case-insensitively as BCP 47
 * language ranges (RFC 4647 basic filtering: `en` matches `en` and `en-US`). An empty list
 * matches nothing, except for access groups, where public articles stay visible.
 */
const FILTER_SQL = `
  (@sources IS NULL OR a.source IN (SELECT value FROM json_each(@sources)))
  AND (@tags IS NULL OR EXISTS (
    SELECT 1 FROM json_each(a.tags) t WHERE t.value IN (SELECT value FROM json_each(@tags))))
  AND (@locales IS NULL OR EXISTS (
    SELECT 1 FROM json_each(@locales) l
    WHERE lower(a.locale) = lower(l.value)
       OR substr(lower(a.locale), 1, length(l.value) + 1) = lower(l.value) || '-'))
  AND (json_array_length(a.access_groups) = 0 OR EXISTS (
    SELECT 1 FROM json_each(a.access_groups) g WHERE g.value IN (SELECT value FROM json_each(@groups))))`;

function filterParams(filter: SearchFilter | undefined): FilterParams {
  const list = (values: string[] | undefined) => (values === undefined ? null : JSON.stringify(values));
  return {
    sources: list(filter?.sources),
    tags: list(filter?.tags),
    locales: list(filter?.locales),
    groups: JSON.stringify(filter?.accessGroups ?? []),
  };
}

/**
 * The embedded knowledge store: one SQLite file with articles, chunks and an FTS5 index over
 * title + heading path + chunk text, ranked by BM25 with column weights.
 *
 * All methods are synchronous under the hood (better-sqlite3) and wrapped in promises for the
 * seam. Writes are single transactions; a search runs in one read transaction, so under WAL it
 * sees one committed state even while another connection or process writes.
 *
 * Vectors (optional) live in a sqlite-vec `vec0` table keyed by `chunks.pk`, created when the
 * embedding model is set (`setEmbeddingInfo`; model id and dimension are kept in `meta`). A search
 * builds ranked candidate lists (BM25, vector, each filtered before its limit), fuses them
 * (`core/fusion.ts`) and hydrates the winners.
 */
export class SqliteKnowledgeStore implements KnowledgeStore {
  readonly id: string;
  readonly weights: Readonly<Bm25Weights>;
  readonly maxQueryTerms: number;
  readonly vectorFilter: 'auto' | 'two-pass' | 'prefilter';
  #db: Database.Database | null;
  readonly #stmts: ReturnType<typeof prepareStatements>;
  /** Statements over the vec0 table; null while the store has no embedding model. */
  #vec: ReturnType<typeof prepareVectorStatements> | null = null;
  #embedding: EmbeddingInfo | null = null;

  /**
   * Wraps an open database and migrates it. Prefer `SqliteKnowledgeStore.open(file)`, which also
   * sets the pragmas. The store owns `db` from here on and closes it in `close()`.
   */
  constructor(db: Database.Database, options: SqliteKnowledgeStoreOptions = {}) {
    this.id = `sqlite:${db.name}`;
    this.weights = Object.freeze({ ...DEFAULT_BM25_WEIGHTS, ...options.weights });
    for (const [column, weight] of Object.entries(this.weights)) {
      // 0 would let a chunk that matches only in that column score 0, breaking `score > 0`.
      if (!Number.isFinite(weight) || weight <= 0) {
        throw new SupportbotError(
          'invalid-option',
          `bm25 weight for ${column} must be a number > 0, got ${weight}`,
        );
      }
    }
    this.maxQueryTerms = Math.max(1, Math.floor(options.maxQueryTerms ?? DEFAULT_MAX_QUERY_TERMS));
    this.vectorFilter = options.vectorFilter ?? 'auto';
    // Every connection loads sqlite-vec, so any process can read and delete vectors.
    sqliteVec.load(db);
    runMigrations(db, 'knowledge', KNOWLEDGE_MIGRATIONS);
    this.#db = db;
    this.#stmts = prepareStatements(db);
    this.#loadEmbeddingInfo();
  }

  /**
   * Opens or creates the store at `file` (parent folders are created).
   *
   * @throws SupportbotError `store-unopenable`, `store-too-new`.
   */
  static open(file: string, options: SqliteKnowledgeStoreOptions = {}): SqliteKnowledgeStore {
    const db = openSqliteDatabase(file);
    try {
      return new SqliteKnowledgeStore(db, options);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /** The schema version of the `knowledge` component. */
  get schemaVersion(): number {
    const row = this.#open()
      .prepare("SELECT MAX(version) AS v FROM schema_migrations WHERE component = 'knowledge'")
      .get() as { v: number };
    return row.v;
  }

  /** A value from the `meta` table (`fts_tokenizer`, later the embedding model), or `null`. */
  getMeta(key: string): string | null {
    const row = this.#open().prepare('SELECT value FROM meta WHERE key = ?').get(key) as
      | { value: string }
      | undefined;
    return row?.value ?? null;
  }

  setMeta(key: string, value: string): void {
    this.#open()
      .prepare(
        'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      )
      .run(key, value);
  }

  /**
   * @throws SupportbotError `chunk-mismatch` when a chunk names another article or source, or
   *   `vectors` does not have one vector per chunk; `embedding-not-set` when vectors are given
   *   before `setEmbeddingInfo`; `embedding-mismatch` for a vector of the wrong length (nothing is
   *   written in these cases); `store-closed`.
   */
  async upsertArticle(
    article: Article,
    chunks: Chunk[],
    contentHash: string,
    vectors?: Float32Array[],
  ): Promise<void> {
    const db = this.#open();
    if (vectors !== undefined) this.#checkVectors(vectors, chunks.length);
    for (const chunk of chunks) {
      if (chunk.source !== article.source || chunk.articleId !== article.id) {
        throw new SupportbotError(
          'chunk-mismatch',
          `chunk ${chunk.id} belongs to ${chunk.source}/${chunk.articleId}, not to ${article.source}/${article.id}`,
        );
      }
    }
    const s = this.#stmts;
    const title = toSearchText(article.title);
    const vec = this.#vec;
    const write = db.transaction(() => {
      vec?.deleteArticleVectors.run(article.source, article.id);
      s.deleteArticleFts.run(article.source, article.id);
      s.deleteArticleChunks.run(article.source, article.id);
      s.upsertArticle.run({
        source: article.source,
        id: article.id,
        title: article.title,
        url: article.url,
        source_path: article.sourcePath,
        updated_at: article.updatedAt,
        tags: JSON.stringify(article.tags),
        access_groups: JSON.stringify(article.accessGroups),
        locale: article.locale,
        content_hash: contentHash,
      });
      chunks.forEach((chunk, i) => {
        const { lastInsertRowid } = s.insertChunk.run({
          id: chunk.id,
          source: chunk.source,
          article_id: chunk.articleId,
          idx: chunk.index,
          heading_path: JSON.stringify(chunk.headingPath),
          text: chunk.text,
          token_count: chunk.tokenCount,
          span_start: chunk.span.start,
          span_end: chunk.span.end,
        });
        s.insertFts.run(
          lastInsertRowid,
          title,
          toSearchText(chunk.headingPath.join('\n')),
          toSearchText(chunk.text),
        );
        const vector = vectors?.[i];
        if (vec && vector) vec.insertVector.run(BigInt(lastInsertRowid), vectorBlob(vector));
      });
    });
    write.immediate();
  }

  async deleteArticles(source: string, articleIds: string[]): Promise<number> {
    const db = this.#open();
    const s = this.#stmts;
    const remove = db.transaction(() => {
      let existed = 0;
      for (const id of new Set(articleIds)) {
        this.#vec?.deleteArticleVectors.run(source, id);
        s.deleteArticleFts.run(source, id);
        s.deleteArticleChunks.run(source, id);
        existed += s.deleteArticle.run(source, id).changes;
      }
      return existed;
    });
    return remove.immediate();
  }

  async listArticleHashes(source: string): Promise<ArticleHash[]> {
    this.#open();
    const rows = this.#stmts.listHashes.all(source) as {
      id: string;
      source_path: string;
      content_hash: string;
    }[];
    return rows.map((r) => ({ articleId: r.id, sourcePath: r.source_path, contentHash: r.content_hash }));
  }

  /**
   * BM25, vector or hybrid search (see `HybridSearchOptions`). `k` is clamped to 0..1000. Never
   * throws on query text (see `buildMatchExpression`); an empty query text searches nothing in
   * BM25 mode, while the vector path of `vector`/`hybrid` still runs on `options.vector`.
   * Without stored vectors (no embedding model set) `options.vector` is ignored and the search is
   * BM25, as the seam promises.
   *
   * @throws SupportbotError `embedding-mismatch` when `options.vector` has another length than the
   *   stored vectors; `invalid-option` for mode `vector` without a vector, or alpha outside 0..1.
   */
  /**
   * As the seam says: one indexed lookup on `chunks.id` (UNIQUE) for all ids, joined with the
   * article's fields. @throws SupportbotError `store-closed`.
   */
  async getChunks(ids: string[]): Promise<StoredChunk[]> {
    this.#open();
    if (ids.length === 0) return [];
    const rows = this.#stmts.chunksById.all(JSON.stringify([...new Set(ids)])) as ChunkRow[];
    const byId = new Map(rows.map((r) => [r.id, r]));
    return ids.flatMap((id) => {
      const row = byId.get(id);
      return row ? [toStoredChunk(row)] : [];
    });
  }

  async search(query: string, options: HybridSearchOptions): Promise<SearchHit[]> {
    const db = this.#open();
    const k = Math.min(MAX_K, Math.max(0, Math.floor(Number.isFinite(options.k) ? options.k : 0)));
    const match = buildMatchExpression(String(query ?? ''), this.maxQueryTerms);
    // Another connection (a sync in another process) may have set or changed the embedding
    // model since this one opened: re-read it (two indexed lookups) when vectors are in play.
    if (options.vector !== undefined) this.#loadEmbeddingInfo();
    const mode = this.#mode(options);
    if (k === 0 || (match === null && mode === 'bm25')) return [];
    const filter = filterParams(options.filter);
    const vector = mode === 'bm25' ? null : this.#queryVector(options.vector);
    const alpha = options.alpha ?? DEFAULT_ALPHA;
    const weights = (() => {
      try {
        return hybridWeights(alpha);
      } catch (err) {
        throw new SupportbotError('invalid-option', (err as Error).message);
      }
    })();
    // One read transaction: the candidate lists and the hydrated rows come from the same snapshot.
    const run = db.transaction((): SearchHit[] => {
      if (mode === 'bm25' || vector === null) {
        return match === null ? [] : this.#hydrate(this.#lexicalCandidates(match, filter, k));
      }
      if (mode === 'vector') return this.#hydrate(this.#vectorCandidates(vector, filter, k));
      const wanted = Number.isFinite(options.candidates)
        ? Math.floor(options.candidates as number)
        : Math.max(HYBRID_CANDIDATES_MIN, k * HYBRID_CANDIDATES_FACTOR);
      const n = Math.min(MAX_K, Math.max(k, wanted));
      // Each list is cut to n candidates; a smaller first pass than the single-path default
      // (max(100, 2n) instead of 20n rows) keeps filtering cheap, and is as exact (see
      // #lexicalCandidates): only the speed of a restrictive filter's fallback changes.
      const prefetch = Math.max(LEXICAL_PREFETCH_MIN, 2 * n);
      const lexical =
        match === null || weights.keyword === 0 ? [] : this.#lexicalCandidates(match, filter, n, prefetch);
      const semantic = weights.vector === 0 ? [] : this.#vectorCandidates(vector, filter, n, prefetch);
      const lists = [
        { items: semantic.map(toRanked), weight: weights.vector },
        { items: lexical.map(toRanked), weight: weights.keyword },
      ];
      const fused =
        options.fusion === 'relative'
          ? relativeScoreFusion(lists, { limit: k })
          : reciprocalRankFusion(lists, { limit: k });
      return this.#hydrate(fused.map(({ key, score }) => ({ pk: key, score })));
    });
    return run();
  }

  // -------------------------------------------------------------------------------------------
  // Vectors
  // -------------------------------------------------------------------------------------------

  async embeddingInfo(): Promise<EmbeddingInfo | null> {
    this.#loadEmbeddingInfo(); // another process may have set it since this store opened
    return this.#embedding ? { ...this.#embedding } : null;
  }

  /**
   * Records the embedding model and creates the vec0 table for its dimension. See the seam; with
   * `reset` the old table is dropped and recreated in one transaction, so every chunk is then
   * listed by `listChunksWithoutVectors`.
   *
   * @throws SupportbotError `embedding-mismatch` (another model, without `reset`), `invalid-option`
   *   (dimension not an integer in 1..8192).
   */
  async setEmbeddingInfo(info: EmbeddingInfo, options: { reset?: boolean } = {}): Promise<void> {
    const db = this.#open();
    if (!Number.isInteger(info.dimensions) || info.dimensions < 1 || info.dimensions > 8192) {
      throw new SupportbotError(
        'invalid-option',
        `embedding dimensions must be an integer in 1..8192, got ${info.dimensions}`,
      );
    }
    if (!info.model) throw new SupportbotError('invalid-option', 'embedding model id must not be empty');
    const apply = db.transaction(() => {
      // Re-read inside the write lock: another process may have set it since this one opened.
      this.#loadEmbeddingInfo();
      const current = this.#embedding;
      const same = current?.model === info.model && current?.dimensions === info.dimensions;
      if (same && !options.reset) return;
      if (current && !options.reset) throw embeddingMismatch(current, info);
      this.#vec = null;
      db.exec(`DROP TABLE IF EXISTS ${VECTOR_TABLE}`);
      createVectorTable(db, info.dimensions);
      this.setMeta(META_EMBEDDING_MODEL, info.model);
      this.setMeta(META_EMBEDDING_DIMENSIONS, String(info.dimensions));
    });
    try {
      apply.immediate();
    } finally {
      this.#loadEmbeddingInfo();
    }
  }

  async listChunksWithoutVectors(limit: number): Promise<StoredChunk[]> {
    this.#open();
    const n = Math.max(0, Math.floor(limit));
    if (n === 0) return [];
    const vec = this.#vec;
    const rows = (vec ? vec.missingVectors.all(n) : this.#stmts.firstChunks.all(n)) as ChunkRow[];
    return rows.map(toStoredChunk);
  }

  /**
   * @throws SupportbotError `embedding-not-set`, `embedding-mismatch` (wrong vector length); nothing
   *   is written then.
   */
  async upsertVectors(vectors: { chunkId: string; vector: Float32Array }[]): Promise<number> {
    const db = this.#open();
    this.#checkVectors(
      vectors.map((v) => v.vector),
      vectors.length,
    );
    const vec = this.#vec;
    if (!vec) return 0;
    const write = db.transaction(() => {
      let written = 0;
      for (const { chunkId, vector } of vectors) {
        const pk = this.#stmts.chunkPk.get(chunkId) as number | undefined;
        if (pk === undefined) continue;
        vec.deleteVector.run(BigInt(pk));
        vec.insertVector.run(BigInt(pk), vectorBlob(vector));
        written++;
      }
      return written;
    });
    return write.immediate();
  }

  /** How many chunks have a vector (for `status` and tests). */
  vectorCount(): number {
    this.#open();
    return this.#vec ? (this.#vec.countVectors.get() as number) : 0;
  }

  /**
   * Chunk counts per term from the FTS5 index (`fts5vocab`, https://sqlite.org/fts5.html#the_fts5vocab_virtual_table_module).
   * Terms must be in the index's form: lower-case, Porter-stemmed (as `core/text.ts` makes them).
   */
  async documentFrequencies(terms: string[]): Promise<{ documents: number; df: Record<string, number> }> {
    const db = this.#open();
    const df: Record<string, number> = {};
    const lookup = db.prepare('SELECT doc FROM chunks_vocab WHERE term = ?').pluck();
    for (const term of new Set(terms)) df[term] = (lookup.get(term) as number | undefined) ?? 0;
    const { n: documents } = this.#stmts.countChunks.get() as { n: number };
    return { documents, df };
  }

  async stats(): Promise<{ articles: number; chunks: number; sources: Record<string, number> }> {
    this.#open();
    const perSource = this.#stmts.articlesPerSource.all() as { source: string; n: number }[];
    const { n: chunks } = this.#stmts.countChunks.get() as { n: number };
    const sources: Record<string, number> = {};
    let articles = 0;
    for (const row of perSource) {
      sources[row.source] = row.n;
      articles += row.n;
    }
    // `sources` counts articles per source.
    return { articles, chunks, sources };
  }

  /**
   * Every article with its content hash, chunks (index order) and vectors (`null` for a chunk
   * without one; absent while no embedding model is set), ordered by source then id. Reads one
   * article at a time, so a large store is not loaded at once; each article is read in its own
   * transaction (a concurrent sync may change articles not yet read).
   */
  async *exportArticles(): AsyncGenerator<ExportedArticle> {
    const db = this.#open();
    const keys = db.prepare('SELECT source, id FROM articles ORDER BY source, id').all() as {
      source: string;
      id: string;
    }[];
    const articleRow = db.prepare('SELECT * FROM articles WHERE source = ? AND id = ?');
    const chunkRows = db.prepare(`${HYDRATE_SELECT} WHERE c.source = ? AND c.article_id = ? ORDER BY c.idx`);
    for (const key of keys) {
      this.#loadEmbeddingInfo();
      const vec = this.#vec;
      const vectorOf = vec ? db.prepare(`SELECT embedding FROM ${VECTOR_TABLE} WHERE pk = ?`).pluck() : null;
      const read = db.transaction(() => {
        const a = articleRow.get(key.source, key.id) as
          | {
              source: string;
              id: string;
              title: string;
              url: string | null;
              source_path: string;
              updated_at: string;
              tags: string;
              access_groups: string;
              locale: string;
              content_hash: string;
            }
          | undefined;
        if (!a) return null;
        const rows = chunkRows.all(key.source, key.id) as ChunkRow[];
        const exported: ExportedArticle = {
          article: {
            id: a.id,
            source: a.source,
            title: a.title,
            url: a.url,
            sourcePath: a.source_path,
            body: '',
            updatedAt: a.updated_at,
            tags: JSON.parse(a.tags) as string[],
            accessGroups: JSON.parse(a.access_groups) as string[],
            locale: a.locale,
          },
          contentHash: a.content_hash,
          chunks: rows.map((row) => {
            const { title, url, sourcePath, tags, accessGroups, locale, updatedAt, ...chunk } =
              toStoredChunk(row);
            return chunk;
          }),
        };
        if (vectorOf) {
          exported.vectors = rows.map((row) => {
            const blob = vectorOf.get(BigInt(row.pk)) as Buffer | undefined;
            return blob
              ? new Float32Array(blob.buffer.slice(blob.byteOffset, blob.byteOffset + blob.byteLength))
              : null;
          });
        }
        return exported;
      });
      const exported = read();
      if (exported) yield exported;
    }
  }

  async close(): Promise<void> {
    const db = this.#db;
    this.#db = null;
    db?.close();
  }

  #loadEmbeddingInfo(): void {
    const model = this.getMeta(META_EMBEDDING_MODEL);
    const dimensions = Number(this.getMeta(META_EMBEDDING_DIMENSIONS));
    const db = this.#open();
    const table = db
      .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?")
      .get(VECTOR_TABLE);
    if (model && Number.isInteger(dimensions) && dimensions > 0 && table) {
      if (this.#embedding?.model !== model || this.#embedding?.dimensions !== dimensions || !this.#vec) {
        this.#vec = prepareVectorStatements(db);
      }
      this.#embedding = { model, dimensions };
    } else {
      this.#embedding = null;
      this.#vec = null;
    }
  }

  /** Resolves `options.mode`; see `HybridSearchOptions`. */
  #mode(options: HybridSearchOptions): 'bm25' | 'vector' | 'hybrid' {
    if (options.mode === 'vector' && options.vector === undefined) {
      throw new SupportbotError('invalid-option', 'vector search needs a query vector');
    }
    if (this.#vec === null) return 'bm25';
    if (options.mode) return options.vector === undefined ? 'bm25' : options.mode;
    return options.vector === undefined ? 'bm25' : 'hybrid';
  }

  /** Checks the query vector's length against the stored model; returns a unit-length copy. */
  #queryVector(vector: Float32Array | undefined): Float32Array | null {
    const info = this.#embedding;
    if (vector === undefined || info === null) return null;
    if (vector.length !== info.dimensions) {
      throw embeddingMismatch(info, { model: 'the query embedder', dimensions: vector.length });
    }
    const copy = Float32Array.from(vector);
    let sum = 0;
    for (const x of copy) sum += x * x;
    const norm = Math.sqrt(sum);
    if (norm > 0) for (let i = 0; i < copy.length; i++) copy[i] = (copy[i] as number) / norm;
    return copy;
  }

  #checkVectors(vectors: Float32Array[], expected: number): void {
    if (vectors.length !== expected) {
      throw new SupportbotError('chunk-mismatch', `got ${vectors.length} vectors for ${expected} chunks`);
    }
    if (vectors.length === 0) return;
    const info = this.#embedding;
    if (info === null) {
      throw new SupportbotError(
        'embedding-not-set',
        'vectors given before the store knows their embedding model (call setEmbeddingInfo first)',
      );
    }
    for (const v of vectors) {
      if (v.length !== info.dimensions)
        throw embeddingMismatch(info, { model: 'the given vectors', dimensions: v.length });
      if (!v.every(Number.isFinite))
        throw new SupportbotError('invalid-option', 'vectors must hold finite numbers');
    }
  }

  #open(): Database.Database {
    if (this.#db === null || !this.#db.open) {
      throw new SupportbotError('store-closed', `knowledge store ${this.id} is closed`);
    }
    return this.#db;
  }

  /**
   * BM25 candidates (score = -bm25, > 0, ties broken by `pk`), filtered in SQL before the limit.
   *
   * Two passes, because looking up the chunk and article of every match to filter it costs about
   * three times the ranking itself when a query has common words (measured over 10k chunks: 20 ms
   * for one pass, 6 ms with a 100-row prefetch).
   * First the best `prefetch` matches by BM25 alone are filtered; when at least `limit` survive,
   * they are exactly the answer (the top-`limit` rows that pass, in the global (score, pk) order,
   * are the first `limit` passing rows of any prefix of that order that holds `limit` of them).
   * Otherwise, a restrictive filter or few matches, every match is filtered and ranked.
   */
  #lexicalCandidates(
    match: string,
    filter: FilterParams,
    limit: number,
    prefetch = Math.max(LEXICAL_PREFETCH_MIN, limit * LEXICAL_PREFETCH_FACTOR),
  ): Candidate[] {
    const { title, headings, body } = this.weights;
    const params = { ...filter, match, limit, wt: title, wh: headings, wb: body };
    const first = this.#stmts.lexical.all({ ...params, prefetch }) as Candidate[];
    if (first.length >= limit) return first;
    return this.#stmts.lexical.all({ ...params, prefetch: -1 }) as Candidate[];
  }

  /**
   * Nearest chunks by cosine similarity (score = 1 − cosine distance), filtered before the limit.
   *
   * `two-pass` has the shape of `#lexicalCandidates`: sqlite-vec's KNN is exact
   * (brute force), so when at least `limit` of the best `prefetch` neighbours pass the filter
   * they are exactly the answer; otherwise the prefiltered KNN runs. `prefilter`: one KNN
   * restricted to the chunks that pass the filter (`pk IN (…filter…)`, which vec0 applies inside
   * its scan). `auto` picks per filter (see `SqliteKnowledgeStoreOptions.vectorFilter`).
   * bench/vector.ts measures both (and a plain `vec_distance_cosine` scan).
   */
  #vectorCandidates(
    vector: Float32Array,
    filter: FilterParams,
    limit: number,
    prefetch = Math.max(LEXICAL_PREFETCH_MIN, 2 * limit),
  ): Candidate[] {
    const vec = this.#vec;
    if (!vec) return [];
    const blob = vectorBlob(vector);
    const restrictive = filter.sources !== null || filter.tags !== null || filter.locales !== null;
    if (this.vectorFilter === 'prefilter' || (this.vectorFilter === 'auto' && restrictive))
      return vec.filterThenKnn.all({ ...filter, vector: blob, limit }) as Candidate[];
    const first = vec.knnThenFilter.all({
      ...filter,
      vector: blob,
      prefetch: Math.min(VEC_MAX_K, prefetch),
      limit,
    }) as Candidate[];
    if (first.length >= limit) return first;
    return vec.filterThenKnn.all({ ...filter, vector: blob, limit }) as Candidate[];
  }

  /** Loads the chunks of ranked candidates, keeping their order; assigns 1-based ranks. */
  #hydrate(candidates: Candidate[]): SearchHit[] {
    if (candidates.length === 0) return [];
    const rows = this.#stmts.hydrate.all(JSON.stringify(candidates.map((c) => c.pk))) as ChunkRow[];
    const byPk = new Map(rows.map((r) => [r.pk, r]));
    const hits: SearchHit[] = [];
    for (const candidate of candidates) {
      const row = byPk.get(candidate.pk);
      if (row) hits.push({ chunk: toStoredChunk(row), score: candidate.score, rank: hits.length + 1 });
    }
    return hits;
  }
}

function prepareStatements(db: Database.Database) {
  return {
    deleteArticleFts: db.prepare(
      'DELETE FROM chunks_fts WHERE rowid IN (SELECT pk FROM chunks WHERE source = ? AND article_id = ?)',
    ),
    deleteArticleChunks: db.prepare('DELETE FROM chunks WHERE source = ? AND article_id = ?'),
    deleteArticle: db.prepare('DELETE FROM articles WHERE source = ? AND id = ?'),
    upsertArticle: db.prepare(`
      INSERT INTO articles (source, id, title, url, source_path, updated_at, tags, access_groups, locale, content_hash)
      VALUES (@source, @id, @title, @url, @source_path, @updated_at, @tags, @access_groups, @locale, @content_hash)
      ON CONFLICT (source, id) DO UPDATE SET
        title = excluded.title, url = excluded.url, source_path = excluded.source_path,
        updated_at = excluded.updated_at, tags = excluded.tags, access_groups = excluded.access_groups,
        locale = excluded.locale, content_hash = excluded.content_hash`),
    insertChunk: db.prepare(`
      INSERT INTO chunks (id, source, article_id, idx, heading_path, text, token_count, span_start, span_end)
      VALUES (@id, @source, @article_id, @idx, @heading_path, @text, @token_count, @span_start, @span_end)`),
    insertFts: db.prepare('INSERT INTO chunks_fts (rowid, title, headings, body) VALUES (?, ?, ?, ?)'),
    listHashes: db.prepare('SELECT id, source_path, content_hash FROM articles WHERE source = ? ORDER BY id'),
    articlesPerSource: db.prepare(
      'SELECT source, COUNT(*) AS n FROM articles GROUP BY source ORDER BY source',
    ),
    countChunks: db.prepare('SELECT COUNT(*) AS n FROM chunks'),
    chunkPk: db.prepare('SELECT pk FROM chunks WHERE id = ?').pluck(),
    firstChunks: db.prepare(`${HYDRATE_SELECT} ORDER BY c.pk LIMIT ?`),
    // The inner query ranks matches by BM25 alone (no row lookups), keeping the best @prefetch
    // (-1 = all); the outer one applies the filter to those and keeps @limit. See
    // #lexicalCandidates for why a bounded prefetch gives the same answer.
    lexical: db.prepare(`
      SELECT f.pk AS pk, f.score AS score
      FROM (
        SELECT rowid AS pk, -bm25(chunks_fts, @wt, @wh, @wb) AS score
        FROM chunks_fts WHERE chunks_fts MATCH @match
        ORDER BY score DESC, rowid LIMIT @prefetch
      ) f
      JOIN chunks c ON c.pk = f.pk
      JOIN articles a ON a.source = c.source AND a.id = c.article_id
      WHERE ${FILTER_SQL}
      ORDER BY f.score DESC, f.pk
      LIMIT @limit`),
    hydrate: db.prepare(`${HYDRATE_SELECT} WHERE c.pk IN (SELECT value FROM json_each(?))`),
    chunksById: db.prepare(`${HYDRATE_SELECT} WHERE c.id IN (SELECT value FROM json_each(?))`),
  };
}

const HYDRATE_SELECT = `
      SELECT c.pk, c.id, c.source, c.article_id, c.idx, c.heading_path, c.text, c.token_count,
             c.span_start, c.span_end, a.title, a.url, a.source_path, a.updated_at, a.tags,
             a.access_groups, a.locale
      FROM chunks c JOIN articles a ON a.source = c.source AND a.id = c.article_id`;

/** Statements over the vec0 table (which exists only once an embedding model is set). */
function prepareVectorStatements(db: Database.Database) {
  return {
    insertVector: db.prepare(`INSERT INTO ${VECTOR_TABLE} (pk, embedding) VALUES (?, ?)`),
    deleteVector: db.prepare(`DELETE FROM ${VECTOR_TABLE} WHERE pk = ?`),
    deleteArticleVectors: db.prepare(
      `DELETE FROM ${VECTOR_TABLE} WHERE pk IN (SELECT pk FROM chunks WHERE source = ? AND article_id = ?)`,
    ),
    countVectors: db.prepare(`SELECT COUNT(*) FROM ${VECTOR_TABLE}`).pluck(),
    missingVectors: db.prepare(
      `${HYDRATE_SELECT} WHERE NOT EXISTS (SELECT 1 FROM ${VECTOR_TABLE} v WHERE v.pk = c.pk) ORDER BY c.pk LIMIT ?`,
    ),
    // KNN over every vector, then the filter on the best @prefetch (see #vectorCandidates). The
    // CTE is MATERIALIZED so SQLite does not flatten it: vec0 allows no ORDER BY but distance on
    // the KNN itself, and the outer ORDER BY breaks ties by pk for a deterministic order.
    knnThenFilter: db.prepare(`
      WITH v AS MATERIALIZED (
        SELECT pk, distance FROM ${VECTOR_TABLE} WHERE embedding MATCH @vector AND k = @prefetch
      )
      SELECT v.pk AS pk, 1 - v.distance AS score
      FROM v
      JOIN chunks c ON c.pk = v.pk
      JOIN articles a ON a.source = c.source AND a.id = c.article_id
      WHERE ${FILTER_SQL}
      ORDER BY v.distance, v.pk
      LIMIT @limit`),
    // KNN restricted to the chunks that pass the filter: vec0 takes the pk IN list into the scan.
    filterThenKnn: db.prepare(`
      WITH v AS MATERIALIZED (
        SELECT pk, distance FROM ${VECTOR_TABLE}
        WHERE embedding MATCH @vector AND k = @limit
          AND pk IN (
            SELECT c.pk FROM chunks c JOIN articles a ON a.source = c.source AND a.id = c.article_id
            WHERE ${FILTER_SQL})
      )
      SELECT pk, 1 - distance AS score FROM v ORDER BY distance, pk`),
  };
}

function toRanked(c: Candidate): Ranked<number> {
  return { key: c.pk, score: c.score };
}

function toStoredChunk(row: ChunkRow): StoredChunk {
  return {
    id: row.id,
    articleId: row.article_id,
    source: row.source,
    index: row.idx,
    headingPath: JSON.parse(row.heading_path) as string[],
    text: row.text,
    tokenCount: row.token_count,
    span: { start: row.span_start, end: row.span_end },
    title: row.title,
    url: row.url,
    sourcePath: row.source_path,
    tags: JSON.parse(row.tags) as string[],
    accessGroups: JSON.parse(row.access_groups) as string[],
    locale: row.locale,
    updatedAt: row.updated_at,
  };
}
