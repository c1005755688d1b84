import { randomUUID } from 'node:crypto';
import { stemmer } from 'stemmer';
import weaviate, {
  type Collection,
  Filters,
  type FilterValue,
  generateUuid5,
  type WeaviateClient,
  type WeaviateObject,
} from 'weaviate-client';
import { embeddingMismatch } from '../embedder.ts';
import { SupportbotError } from '../errors.ts';
import type {
  ArticleHash,
  ChunkVector,
  ChunkWithoutVector,
  EmbeddingInfo,
  ExportedArticle,
  HybridSearchOptions,
  KnowledgeStore,
} from '../knowledge-store.ts';
import { indexableText } from '../text.ts';
import type { Article, Chunk, SearchFilter, SearchHit, StoredChunk } from '../types.ts';
import {
  buildMatchExpression,
  DEFAULT_ALPHA,
  DEFAULT_BM25_WEIGHTS,
  DEFAULT_MAX_QUERY_TERMS,
} from './sqlite.ts';

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

/**
 * Options of `WeaviateKnowledgeStore.connect`.
 *
 * Weaviate's REST API (`/v1/schema`, `/v1/meta`, tenants) is at `url`; its gRPC API (search,
 * batch, delete, aggregate: https://docs.weaviate.io/weaviate/api/grpc) at `grpcUrl`.
 */
export interface WeaviateKnowledgeStoreOptions {
  /** HTTP(S) base URL, e.g. `http://localhost:8080` (`WEAVIATE_URL`). */
  url: string;
  /**
   * gRPC address as a URL (`http://host:50051`, `https://…` for TLS) (`WEAVIATE_GRPC_URL`).
   * Default: the host of `url` with port 50051, TLS when `url` is https.
   */
  grpcUrl?: string;
  /** API key, sent as `Authorization: Bearer <key>` (`WEAVIATE_API_KEY`). */
  apiKey?: string;
  /**
   * Name of the chunk collection (a GraphQL class name: starts upper-case, `[A-Za-z0-9_]`).
   * Article records live in `<collection>Article`. Default `SupportbotChunk`.
   */
  collection?: string;
  /**
   * The tenant (one per Slack workspace / Discord guild; Weaviate multi-tenancy keeps each tenant
   * in its own shard with its own inverted and vector index). Default `default`. Letters, digits,
   * `_` and `-`, 1–64 characters (Weaviate's tenant name rule).
   */
  tenant?: string;
  /**
   * Tokenization of the searchable properties. The store analyses text itself before Weaviate
   * sees it (NFKC, lower case, Porter stems for Latin words, CJK runs as their characters plus
   * overlapping bigrams: the terms the SQLite store matches), so the default `whitespace` keeps
   * those terms as they are, and one index serves every locale of a tenant.
   *
   * Why not Weaviate's own per-locale tokenizers: Weaviate does not stem (`word` would not let
   * "refunds" find "refunded"); a property has one tokenization, so per-locale tokenizers mean
   * per-locale properties and per-locale BM25 statistics; `trigram` cannot find two-character
   * Chinese words (发票 in 如何申请退款和发票 has no trigram of its own); `gse` (Chinese/Japanese
   * segmentation) and `kagome_ja`/`kagome_kr` need server flags (`ENABLE_TOKENIZER_GSE`, …).
   * `word` gives the same result for our analysed text except that it splits words with
   * combining marks; `trigram`/`gse` are accepted for a CJK-only tenant on a server with the flag,
   * but then index the client-side bigrams again. See
   * https://docs.weaviate.io/weaviate/config-refs/collections#tokenization
   */
  tokenization?: 'whitespace' | 'word' | 'trigram' | 'gse';
  /**
   * Vectorizer of the chunk collection: `none` (the default; our `Embedder` makes the vectors and
   * they are given with `upsertArticle`/`upsertVectors`) or the name of a Weaviate module
   * (`text2vec-transformers`, `text2vec-openai`, …) that vectorizes `title` and `text` itself.
   * The module must be enabled on the server; the store then searches hybrid/vector by query
   * text when no query vector is given. Changing it needs a new collection.
   */
  vectorizer?: string;
  /** BM25F boosts of title / heading path / body (default: the SQLite store's 4 / 2 / 1). */
  weights?: { title: number; headings: number; body: number };
  /**
   * Retries of a transient failure (gRPC DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED; HTTP 429/5xx; a
   * reset connection). gRPC UNAVAILABLE is retried by the client itself (5 attempts, exponential
   * backoff from 1 s) and then reported as `store-unavailable`. Default 4.
   */
  retries?: number;
  /** First backoff delay in ms; doubles per retry, with ±50 % jitter, capped at 5 s. Default 200. */
  retryBaseMs?: number;
  /**
   * Per-request timeouts in seconds. Defaults: query 10 (the client's 30 is long for a chat
   * reply; it also bounds the client's UNAVAILABLE retries), insert 90, init 2. A timeout is
   * reported as `store-unavailable`.
   */
  timeoutSeconds?: { query?: number; insert?: number; init?: number };
  /**
   * The server's QUERY_MAXIMUM_RESULTS (default 10,000): the most objects one BatchDelete deletes
   * (a delete that hit it is repeated) and the most chunks `exportArticles` reads per article.
   */
  maxResults?: number;
  /** BatchObjects requests in flight at once while writing (default 16; see `#insert` for why one object each). */
  insertConcurrency?: number;
}

/** Largest `k` a search honours (Weaviate's default QUERY_MAXIMUM_RESULTS is 10,000). */
const MAX_K = 1000;
/** Object ids per fetch-by-id request in `getChunks` (one request per retrieved answer is typical). */
const CHUNK_BY_ID_BATCH = 200;
/** Page size when walking a collection with the cursor API (`after`). */
const PAGE = 1000;
const TENANT_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const CLASS_NAME = /^[A-Z][A-Za-z0-9_]{0,200}$/;

/** Properties of the chunk objects returned by searches (everything but the analysed text). */
const CHUNK_RETURN = [
  'chunkId',
  'source',
  'articleId',
  'chunkIndex',
  'headingPath',
  'text',
  'tokenCount',
  'spanStart',
  'spanEnd',
  'title',
  'url',
  'sourcePath',
  'updatedAt',
  'tags',
  'accessGroups',
  'locale',
  'hasVector',
  'writeId',
] as const;

/** The chunk object's properties as stored. */
interface ChunkProps {
  chunkId: string;
  source: string;
  articleId: string;
  chunkIndex: number;
  headingPath: string[];
  text: string;
  tokenCount: number;
  spanStart: number;
  spanEnd: number;
  title: string;
  url?: string | null;
  sourcePath: string;
  updatedAt: string;
  tags: string[];
  accessGroups: string[];
  isPublic: boolean;
  locale: string;
  localeRanges: string[];
  titleSearch: string;
  headingsSearch: string;
  bodySearch: string;
  hasVector: boolean;
  writeId: string;
}

/** Properties of the article records (`kind: 'article'`) and the embedding record (`kind: 'embedding'`). */
interface ArticleProps {
  kind: 'article' | 'embedding';
  source: string;
  articleId: string;
  title: string;
  url?: string | null;
  sourcePath: string;
  updatedAt: string;
  tags: string[];
  accessGroups: string[];
  locale: string;
  contentHash: string;
  embeddingModel?: string;
  embeddingDimensions?: number;
}

// ---------------------------------------------------------------------------------------------
// Text analysis and ids
// ---------------------------------------------------------------------------------------------

const CJK = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}\u30fc]/u;
const TERM =
  /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}\u30fc]+|(?:(?![\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}\u30fc])[\p{L}\p{N}\p{M}])+/gu;

/** Porter stem (M. F. Porter, 1980) for plain ASCII words, like SQLite FTS5's `porter` tokenizer; other words as they are. */
function stem(term: string): string {
  return /^[a-z]+$/.test(term) ? stemmer(term) : term;
}

/**
 * The terms indexed for a text, space-separated, for a `whitespace`-tokenized property: NFKC,
 * lower case, diacritics kept (both sides are analysed alike), Porter-stemmed ASCII words, and
 * each CJK run as its characters plus its overlapping bigrams (a one-character query finds the
 * character, a longer one its bigrams, as in Lucene's CJKAnalyzer). Weaviate does not stem, so
 * doing it here is what lets "refunds" find "refunded", as the embedded store does.
 */
export function analyzeForIndex(text: string): string {
  const out: string[] = [];
  for (const [run] of indexableText(text).normalize('NFKC').toLowerCase().matchAll(TERM)) {
    if (CJK.test(run[0] ?? '')) {
      const chars = Array.from(run);
      out.push(...chars);
      for (let i = 0; i + 1 < chars.length; i++) out.push(`${chars[i]}${chars[i + 1]}`);
    } else out.push(stem(run));
  }
  return out.join(' ');
}

/**
 * The BM25 query terms for user text, or `null` when nothing searchable is left: the same terms,
 * stop-word rule and term cap as the SQLite store (`buildMatchExpression`), stemmed like the
 * index. CJK bigram phrases (`"日 本"`) become the bigram token `日本`.
 */
export function analyzeQuery(query: string, maxTerms = DEFAULT_MAX_QUERY_TERMS): string | null {
  const match = buildMatchExpression(query, maxTerms);
  if (match === null) return null;
  const terms = new Set<string>();
  for (const quoted of match.split(' OR ')) {
    const term = quoted.slice(1, -1).replaceAll('""', '"');
    terms.add(CJK.test(term) ? term.replace(' ', '') : stem(term));
  }
  const text = [...terms].filter((t) => /\S/.test(t) && !/\s/.test(t)).join(' ');
  return text === '' ? null : text;
}

/**
 * Deterministic object ids: UUIDv5 of a JSON array of the parts. The client's
 * `generateUuid5(id, ns)` hashes `id + ns` concatenated, so `("a:b", "c")` and `("a", "b:c")`
 * would collide with a plain join; a JSON array is an unambiguous encoding (quotes and
 * separators inside the parts are escaped), so different parts always give different names.
 */
export function objectId(kind: 'chunk' | 'article' | 'meta', ...parts: (string | number)[]): string {
  return generateUuid5(JSON.stringify([kind, ...parts]));
}

/**
 * The object ids a chunk id can name: `Chunk.id` is `${source}:${articleId}#${index}`, and since
 * a source or an article id may itself contain `:` (or an article id `#`), every split at a `:`
 * before the last `#` is a candidate; `index` must be a canonical non-negative integer. `[]` for
 * an id not of that form. The caller keeps only objects whose stored `chunkId` is the id.
 */
export function chunkObjectIds(chunkId: string): string[] {
  const hash = chunkId.lastIndexOf('#');
  if (hash < 0) return [];
  const index = chunkId.slice(hash + 1);
  if (!/^(0|[1-9][0-9]*)$/.test(index) || !Number.isSafeInteger(Number(index))) return [];
  const prefix = chunkId.slice(0, hash);
  const out: string[] = [];
  for (let colon = prefix.indexOf(':'); colon >= 0; colon = prefix.indexOf(':', colon + 1)) {
    out.push(objectId('chunk', prefix.slice(0, colon), prefix.slice(colon + 1), Number(index)));
  }
  return out;
}

/** Lower-cased BCP 47 prefixes of a locale (`en-US` → `en`, `en-us`), for RFC 4647 basic filtering by equality. */
export function localeRanges(locale: string): string[] {
  const parts = locale.toLowerCase().split('-');
  return parts.map((_, i) => parts.slice(0, i + 1).join('-')).filter((r) => r !== '');
}

// ---------------------------------------------------------------------------------------------
// Errors and retries
// ---------------------------------------------------------------------------------------------

/** Failures worth a retry: overload and deadline statuses, HTTP 429/5xx, a reset connection. */
const RETRYABLE =
  /\b(DEADLINE_EXCEEDED|RESOURCE_EXHAUSTED)\b|ECONNRESET|socket hang up|status code: (429|5\d\d)\b/;
/**
 * Failures that mean Weaviate is down. gRPC UNAVAILABLE arrives here only after the client's own
 * retries (weaviate-client retries it 5 times with exponential backoff from 1 s), so retrying
 * again would only keep a caller waiting; the same for a refused connection and a request timeout.
 */
const DOWN =
  /\bUNAVAILABLE\b|ECONNREFUSED|fetch failed|No connection established|timed out|gRPC health check/;

/**
 * How to treat a client error: `retry` (backoff and try again), `down` (Weaviate unreachable:
 * `store-unavailable` at once) or `fail` (a real error: pass it on).
 */
export function classifyError(err: unknown): 'retry' | 'down' | 'fail' {
  const e = err as { code?: unknown; message?: unknown; name?: unknown; cause?: unknown };
  if (e?.name === 'WeaviateUnexpectedStatusCodeError' && typeof e.code === 'number') {
    return e.code === 429 || e.code >= 500 ? 'retry' : 'fail';
  }
  if (e?.name === 'WeaviateRequestTimeoutError') return 'down';
  const cause = e?.cause as { code?: string; message?: string } | undefined;
  const text = `${String(e?.message ?? '')} ${String(cause?.code ?? '')} ${String(cause?.message ?? '')}`;
  if (RETRYABLE.test(text)) return 'retry';
  if (DOWN.test(text)) return 'down';
  return 'fail';
}

/** A URL for messages and logs: origin and path, never a `user:password@` part. */
function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname.replace(/\/+$/, '')}`;
  } catch {
    return '(invalid URL)';
  }
}

function unavailable(url: string, err: unknown): SupportbotError {
  const detail = (err as Error)?.message ?? String(err);
  return new SupportbotError(
    'store-unavailable',
    `Weaviate at ${safeUrl(url)} is not reachable: ${detail.slice(0, 300)}`,
    {
      cause: err,
    },
  );
}

// ---------------------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------------------

type AnyCollection = Collection<undefined, string>;

/**
 * The production knowledge store on Weaviate (client `weaviate-client` 3.12, server >= 1.27).
 *
 * Layout: the chunk collection (`options.collection`, default `SupportbotChunk`) holds one object
 * per chunk with the article fields denormalized (filters need them on the chunk), the analysed
 * search text in `titleSearch`/`headingsSearch`/`bodySearch` and, with vectorizer `none`, our
 * vector; `<collection>Article` holds one record per article (content hash, fields for export)
 * and the embedding-model record. Both are multi-tenant; this store reads and writes one tenant.
 *
 * Ids: chunk objects are `objectId('chunk', source, articleId, index)`, article records
 * `objectId('article', source, articleId)`, so a re-sync overwrites the same objects.
 *
 * Replacing an article (`upsertArticle`) is three requests, because Weaviate has no transactions
 * over several objects: (1) BatchObjects writes the new chunks, tagged with a fresh `writeId`; a
 * chunk index the article already had is overwritten in place (each object is replaced
 * atomically); (2) BatchDelete removes the article's chunks at indices the new version no longer
 * has (and not written by this call: another `writeId`); (3) the article record with the new
 * content hash is written last, so a crash before it leaves the old hash and the next sync redoes
 * the article. A concurrent
 * search therefore never sees the article without chunks (unless it now has none), but between
 * (1) and (2) it can see new chunks beside old chunks of higher indices, and during (1) a mix of
 * old and new chunks (objects become visible one by one). Two writers of one article at once are
 * not serialized (the sync's single-flight lock does that); they cannot empty it, though.
 * Deleting articles is a BatchDelete by filter (`source`, `articleId`), chunks before the record.
 *
 * Search: BM25 (Weaviate's BM25F over the three search properties with boosts 4/2/1, k1 = 1.2,
 * b = 0.75), nearVector (cosine distance; score = 1 − distance), or hybrid with `alpha` and
 * `rankedFusion`/`relativeScoreFusion`; filters (source, tags, locale ranges, public or shared
 * access group) are Weaviate `where` filters, applied before ranking and the limit.
 * `HybridSearchOptions.candidates` is not used: Weaviate picks the sub-search sizes.
 *
 * Failures: transient errors are retried with exponential backoff; when Weaviate stays down a
 * call throws SupportbotError `store-unavailable`; a batch with per-object errors throws
 * `store-write-failed` naming the first errors.
 */
export class WeaviateKnowledgeStore implements KnowledgeStore {
  readonly id: string;
  readonly tenant: string;
  readonly collectionName: string;
  readonly articleCollectionName: string;
  readonly #options: Required<
    Pick<WeaviateKnowledgeStoreOptions, 'retries' | 'retryBaseMs' | 'insertConcurrency' | 'maxResults'>
  > &
    WeaviateKnowledgeStoreOptions;
  #client: WeaviateClient | null;
  readonly #chunks: AnyCollection;
  readonly #articles: AnyCollection;
  readonly #queryProperties: string[];
  /** The vectorizer module of the chunk collection, or null with our own vectors (`none`). */
  readonly #module: string | null;
  /** Cached embedding record; re-read at most every EMBEDDING_TTL_MS (another process may set it). */
  #embedding: { info: EmbeddingInfo | null; readAt: number } | null = null;

  private constructor(client: WeaviateClient, options: WeaviateKnowledgeStoreOptions, tenant: string) {
    this.#client = client;
    this.#options = {
      retries: 4,
      retryBaseMs: 200,
      insertConcurrency: 16,
      maxResults: 10_000,
      ...options,
    };
    this.tenant = tenant;
    this.collectionName = options.collection ?? 'SupportbotChunk';
    this.articleCollectionName = `${this.collectionName}Article`;
    this.id = `weaviate:${safeUrl(options.url)}/${this.collectionName}#${tenant}`;
    this.#chunks = client.collections.use(this.collectionName).withTenant(tenant) as AnyCollection;
    this.#articles = client.collections.use(this.articleCollectionName).withTenant(tenant) as AnyCollection;
    this.#module = options.vectorizer && options.vectorizer !== 'none' ? options.vectorizer : null;
    const w = options.weights ?? DEFAULT_BM25_WEIGHTS;
    this.#queryProperties = [
      `titleSearch^${w.title}`,
      `headingsSearch^${w.headings}`,
      `bodySearch^${w.body}`,
    ];
  }

  /**
   * Connects (checking `/v1/meta` and the gRPC health service), creates both collections with
   * their explicit schema when missing, and the tenant when missing.
   *
   * @throws SupportbotError `store-unavailable` (Weaviate unreachable after retries),
   *   `invalid-option` (bad URL, collection or tenant name), `store-error` (refused: a wrong API
   *   key, a collection schema the server cannot create, e.g. a module it lacks).
   */
  static async connect(options: WeaviateKnowledgeStoreOptions): Promise<WeaviateKnowledgeStore> {
    const tenant = options.tenant ?? 'default';
    if (!TENANT_NAME.test(tenant)) {
      throw new SupportbotError(
        'invalid-option',
        `Weaviate tenant must match ${TENANT_NAME}, got ${JSON.stringify(tenant)}`,
      );
    }
    const collection = options.collection ?? 'SupportbotChunk';
    if (!CLASS_NAME.test(collection)) {
      throw new SupportbotError(
        'invalid-option',
        `Weaviate collection must start with an upper-case letter and hold only letters, digits and _, got ${JSON.stringify(collection)}`,
      );
    }
    let http: URL;
    let grpc: URL;
    try {
      http = new URL(options.url);
      grpc = new URL(options.grpcUrl ?? `${http.protocol}//${http.hostname}:50051`);
    } catch (err) {
      throw new SupportbotError('invalid-option', `invalid Weaviate URL: ${(err as Error).message}`);
    }
    const httpSecure = http.protocol === 'https:';
    const grpcSecure = grpc.protocol === 'https:' || grpc.protocol === 'grpcs:';
    const connectOnce = () =>
      weaviate.connectToCustom({
        httpHost: http.hostname,
        httpPort: Number(http.port) || (httpSecure ? 443 : 80),
        httpPath: http.pathname.replace(/\/+$/, ''),
        httpSecure,
        grpcHost: grpc.hostname,
        grpcPort: Number(grpc.port) || (grpcSecure ? 443 : 50051),
        grpcSecure,
        authCredentials: options.apiKey ? new weaviate.ApiKey(options.apiKey) : undefined,
        timeout: { query: 10, insert: 90, init: 2, ...options.timeoutSeconds },
      });
    const retries = options.retries ?? 4;
    const base = options.retryBaseMs ?? 200;
    let client: WeaviateClient | undefined;
    for (let attempt = 0; ; attempt++) {
      try {
        client = await connectOnce();
        break;
      } catch (err) {
        // Start-up errors are wrapped (WeaviateStartUpError): a refused connection or a dead gRPC
        // port means down at once; 5xx/429 are retried; anything else (a 401) is a real error.
        const kind = classifyError(err);
        if (kind === 'fail') {
          throw new SupportbotError(
            'store-error',
            `Weaviate at ${safeUrl(options.url)}: ${(err as Error).message}`,
            {
              cause: err,
            },
          );
        }
        if (kind === 'down' || attempt >= retries) throw unavailable(options.url, err);
        await sleep(backoff(base, attempt));
      }
    }
    const store = new WeaviateKnowledgeStore(client, options, tenant);
    try {
      await store.#ensureSchema();
    } catch (err) {
      await client.close().catch(() => {});
      throw err;
    }
    return store;
  }

  /** The collection definitions this store creates (exported for tests and the runbook). */
  static schema(options: Pick<WeaviateKnowledgeStoreOptions, 'collection' | 'tokenization' | 'vectorizer'>) {
    const collection = options.collection ?? 'SupportbotChunk';
    const tokenization = options.tokenization ?? 'whitespace';
    const field = (name: string, dataType: 'text' | 'text[]') =>
      ({
        name,
        dataType,
        tokenization: 'field',
        indexFilterable: true,
        indexSearchable: false,
        skipVectorization: true,
      }) as const;
    const stored = (name: string, dataType: 'text' | 'text[]' | 'int' | 'boolean', vectorize = false) =>
      ({
        name,
        dataType,
        indexFilterable: false,
        ...(dataType === 'text' || dataType === 'text[]'
          ? { indexSearchable: false, tokenization: 'word' as const }
          : {}),
        skipVectorization: !vectorize,
      }) as const;
    const searchable = (name: string) =>
      ({
        name,
        dataType: 'text',
        tokenization,
        indexSearchable: true,
        indexFilterable: true,
        skipVectorization: true,
      }) as const;
    const vectorizer = options.vectorizer && options.vectorizer !== 'none' ? options.vectorizer : null;
    const none = weaviate.configure.vectorizer.none({
      vectorIndexConfig: weaviate.configure.vectorIndex.hnsw({ distanceMetric: 'cosine' }),
    });
    const chunkVectors = vectorizer
      ? { ...none, properties: ['title', 'text'], vectorizer: { name: vectorizer, config: {} } }
      : none;
    const multiTenancy = weaviate.configure.multiTenancy({ enabled: true, autoTenantCreation: false });
    // No stop-word preset: the query analysis already drops stop words the way the SQLite store
    // does (keeping them when nothing else is left, e.g. "how to").
    const inverted = { bm25b: 0.75, bm25k1: 1.2, stopwordsPreset: 'none' as const };
    return {
      chunks: {
        name: collection,
        description: 'supportbot help-center chunks (one object per chunk; article fields denormalized)',
        properties: [
          field('chunkId', 'text'),
          field('source', 'text'),
          field('articleId', 'text'),
          { name: 'chunkIndex', dataType: 'int', indexFilterable: true, skipVectorization: true } as const,
          stored('headingPath', 'text[]'),
          stored('text', 'text', true),
          stored('tokenCount', 'int'),
          stored('spanStart', 'int'),
          stored('spanEnd', 'int'),
          stored('title', 'text', true),
          stored('url', 'text'),
          stored('sourcePath', 'text'),
          stored('updatedAt', 'text'),
          field('tags', 'text[]'),
          field('accessGroups', 'text[]'),
          { name: 'isPublic', dataType: 'boolean', indexFilterable: true, skipVectorization: true } as const,
          stored('locale', 'text'),
          field('localeRanges', 'text[]'),
          searchable('titleSearch'),
          searchable('headingsSearch'),
          searchable('bodySearch'),
          { name: 'hasVector', dataType: 'boolean', indexFilterable: true, skipVectorization: true } as const,
          field('writeId', 'text'),
        ],
        vectorizers: chunkVectors,
        multiTenancy,
        invertedIndex: weaviate.configure.invertedIndex(inverted),
      },
      articles: {
        name: `${collection}Article`,
        description: 'supportbot articles (content hash per article) and the embedding-model record',
        properties: [
          field('kind', 'text'),
          field('source', 'text'),
          field('articleId', 'text'),
          stored('title', 'text'),
          stored('url', 'text'),
          stored('sourcePath', 'text'),
          stored('updatedAt', 'text'),
          stored('tags', 'text[]'),
          stored('accessGroups', 'text[]'),
          stored('locale', 'text'),
          stored('contentHash', 'text'),
          stored('embeddingModel', 'text'),
          stored('embeddingDimensions', 'int'),
        ],
        vectorizers: weaviate.configure.vectorizer.none(),
        multiTenancy,
      },
    };
  }

  async #ensureSchema(): Promise<void> {
    const client = this.#open();
    const schema = WeaviateKnowledgeStore.schema(this.#options);
    for (const def of [schema.chunks, schema.articles]) {
      const exists = await this.#retry(() => client.collections.exists(def.name));
      if (!exists) {
        try {
          // biome-ignore lint/suspicious/noExplicitAny: the client's create() generics do not model a schema built at run time
          await this.#retry(() => client.collections.create(def as any));
        } catch (err) {
          // Another replica may have created it in between.
          if (!(await this.#retry(() => client.collections.exists(def.name)))) {
            if (err instanceof SupportbotError) throw err;
            throw new SupportbotError(
              'store-error',
              `Weaviate refused to create collection ${def.name}: ${(err as Error).message}`,
              { cause: err },
            );
          }
        }
      }
      const handle = client.collections.use(def.name);
      const existing = await this.#retry(() => handle.tenants.getByName(this.tenant));
      if (!existing) {
        await this.#retry(() => handle.tenants.create([{ name: this.tenant }])).catch(async (err) => {
          if (!(await this.#retry(() => handle.tenants.getByName(this.tenant)))) throw err;
        });
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Writes
  // -------------------------------------------------------------------------------------------

  /**
   * See the class docs for the order of writes and what a concurrent reader sees.
   *
   * @throws SupportbotError `chunk-mismatch`, `embedding-not-set`, `embedding-mismatch`,
   *   `invalid-option` (nothing written), `store-write-failed` (a batch reported object errors),
   *   `store-unavailable`, `store-closed`.
   */
  async upsertArticle(
    article: Article,
    chunks: Chunk[],
    contentHash: string,
    vectors?: Float32Array[],
  ): Promise<void> {
    this.#open();
    for (const chunk of chunks) {
      if (chunk.source !== article.source || chunk.articleId !== article.id) {
        throw new SupportbotError(
          'chunk-mismatch',
          `chunk ${chunk.id} belongs to ${chunk.source}/${chunk.articleId}, not to ${article.source}/${article.id}`,
        );
      }
    }
    if (this.#module !== null && vectors?.length) {
      throw new SupportbotError(
        'invalid-option',
        `the collection is vectorized by ${this.#module}; do not pass vectors`,
      );
    }
    if (vectors !== undefined) await this.#checkVectors(vectors, chunks.length);
    const writeId = randomUUID();
    const objects = chunks.map((chunk, i) => ({
      id: objectId('chunk', article.source, article.id, chunk.index),
      // A vectorizer module embeds every object on write, so no chunk waits for our embedder.
      properties: chunkProps(article, chunk, writeId, this.#module !== null || vectors?.[i] !== undefined),
      vector: vectors?.[i],
    }));
    await this.#insert(this.#chunks, objects);
    // Only indices the new version does not have: two writers racing on one article (which the
    // sync's single-flight lock prevents) can then lose each other's extra chunks, but can never
    // delete every chunk of the article.
    const stale = Filters.and(
      this.#chunks.filter.byProperty('source').equal(article.source),
      this.#chunks.filter.byProperty('articleId').equal(article.id),
      this.#chunks.filter.byProperty('chunkIndex').greaterOrEqual(chunks.length),
      this.#chunks.filter.byProperty('writeId').notEqual(writeId),
    );
    await this.#deleteMany(this.#chunks, stale);
    await this.#insert(this.#articles, [
      { id: objectId('article', article.source, article.id), properties: articleProps(article, contentHash) },
    ]);
  }

  async deleteArticles(source: string, articleIds: string[]): Promise<number> {
    this.#open();
    const ids = [...new Set(articleIds)];
    if (ids.length === 0) return 0;
    let existed = 0;
    // containsAny with thousands of values is one request; keep requests moderate.
    for (let i = 0; i < ids.length; i += 500) {
      const part = ids.slice(i, i + 500);
      const where = (c: AnyCollection) =>
        Filters.and(
          c.filter.byProperty('source').equal(source),
          c.filter.byProperty('articleId').containsAny(part),
        );
      // Chunks first: an article record without chunks is harmless (its hash just goes), the
      // reverse would leave orphan chunks no listArticleHashes can find.
      await this.#deleteMany(this.#chunks, where(this.#chunks));
      const kind = this.#articles.filter.byProperty('kind').equal('article');
      existed += await this.#deleteMany(this.#articles, Filters.and(kind, where(this.#articles)));
    }
    return existed;
  }

  async listArticleHashes(source: string): Promise<ArticleHash[]> {
    const out: ArticleHash[] = [];
    // Weaviate's cursor (`after`) cannot be combined with filters, so this walks every record of
    // the tenant and keeps one source's; records are small (no text, no vector).
    for await (const obj of this.#walk(this.#articles, [
      'kind',
      'source',
      'articleId',
      'sourcePath',
      'contentHash',
    ])) {
      const p = obj.properties as unknown as ArticleProps;
      if (p.kind === 'article' && p.source === source) {
        out.push({ articleId: p.articleId, sourcePath: p.sourcePath, contentHash: p.contentHash });
      }
    }
    return out.sort((a, b) => (a.articleId < b.articleId ? -1 : a.articleId > b.articleId ? 1 : 0));
  }

  /**
   * As the seam says. A chunk's object id is `objectId('chunk', source, articleId, index)` and its
   * id is `${source}:${articleId}#${index}` (`Chunk.id`), so each id maps to the object ids of
   * its possible splits (one per `:` before the `#`: sources and article ids may contain `:`);
   * those are fetched by id, `CHUNK_BY_ID_BATCH` per request (a `containsAny` filter on the id,
   * https://weaviate.io/developers/weaviate/search/filters, "Filter by id"), and an object counts
   * only when its stored `chunkId` is the one asked for. Ids not of that form are unknown.
   *
   * @throws SupportbotError `store-unavailable`, `store-closed`.
   */
  async getChunks(ids: string[]): Promise<StoredChunk[]> {
    this.#open();
    // Object id -> the ids asked for that name it (two ids name one object when they split alike).
    const askedAt = new Map<string, Set<string>>();
    for (const id of new Set(ids)) {
      for (const uuid of chunkObjectIds(id)) askedAt.set(uuid, (askedAt.get(uuid) ?? new Set()).add(id));
    }
    const uuids = [...askedAt.keys()];
    const found = new Map<string, StoredChunk>();
    const batch = Math.min(CHUNK_BY_ID_BATCH, this.#options.maxResults);
    for (let i = 0; i < uuids.length; i += batch) {
      const part = uuids.slice(i, i + batch);
      const res = await this.#retry(() =>
        this.#chunks.query.fetchObjects({
          filters: this.#chunks.filter.byId().containsAny(part),
          limit: part.length,
          returnProperties: [...CHUNK_RETURN],
        }),
      );
      for (const o of res.objects) {
        const props = o.properties as unknown as ChunkProps;
        // The object must hold the chunk its id was asked for, not merely some chunk asked for.
        if (askedAt.get(o.uuid.toLowerCase())?.has(props.chunkId))
          found.set(props.chunkId, toStoredChunk(props));
      }
    }
    return ids.flatMap((id) => {
      const chunk = found.get(id);
      return chunk ? [chunk] : [];
    });
  }

  // -------------------------------------------------------------------------------------------
  // Search
  // -------------------------------------------------------------------------------------------

  /**
   * BM25, vector or hybrid search (see `HybridSearchOptions` and the class docs). `k` is clamped
   * to 0..1000. Never throws on query text.
   *
   * @throws SupportbotError `embedding-mismatch` (query vector of another length),
   *   `invalid-option` (mode `vector` without a vector, alpha outside 0..1), `store-unavailable`.
   */
  async search(query: string, options: HybridSearchOptions): Promise<SearchHit[]> {
    this.#open();
    const k = Math.min(MAX_K, Math.max(0, Math.floor(Number.isFinite(options.k) ? options.k : 0)));
    const text = analyzeQuery(String(query ?? ''));
    const byText = this.#module !== null && options.vector === undefined && options.mode !== 'bm25';
    if (options.mode === 'vector' && options.vector === undefined && !byText) {
      throw new SupportbotError('invalid-option', 'vector search needs a query vector');
    }
    const alpha = options.alpha ?? DEFAULT_ALPHA;
    if (!(alpha >= 0 && alpha <= 1)) {
      throw new SupportbotError('invalid-option', `alpha must be between 0 and 1, got ${alpha}`);
    }
    const info = options.vector !== undefined ? await this.#embeddingInfo(true) : null;
    let mode: 'bm25' | 'vector' | 'hybrid' = 'bm25';
    if (info !== null && options.vector !== undefined) {
      if (options.vector.length !== info.dimensions) {
        throw embeddingMismatch(info, { model: 'the query embedder', dimensions: options.vector.length });
      }
      mode = options.mode ?? 'hybrid';
    }
    // With a vectorizer module Weaviate embeds the raw query text itself.
    if (byText) mode = options.mode ?? 'hybrid';
    if (k === 0 || (text === null && mode === 'bm25')) return [];
    const filters = this.#filters(options.filter);
    if (filters === 'none') return [];
    const common = { limit: k, filters, returnProperties: [...CHUNK_RETURN] };
    const q = this.#chunks.query;
    const vector = mode === 'bm25' || byText ? [] : Array.from(options.vector as Float32Array);
    // A hybrid search whose text has no searchable term fuses the vector list alone: asked for
    // here as a nearVector search and scored as Weaviate's fusion scores a lone list, so no
    // empty keyword query is sent.
    const lone = mode === 'hybrid' && text === null && !byText;
    if (lone && alpha === 0) return [];
    const res = await this.#retry(async () => {
      if (mode === 'bm25') {
        return q.bm25(text ?? '', {
          ...common,
          queryProperties: this.#queryProperties,
          returnMetadata: ['score'],
        });
      }
      if (byText && mode === 'vector') {
        return q.nearText(String(query), { ...common, returnMetadata: ['distance'] });
      }
      if (mode === 'vector' || lone) return q.nearVector(vector, { ...common, returnMetadata: ['distance'] });
      return q.hybrid(text ?? '', {
        ...common,
        // The keyword part searches the analysed terms; the vector part embeds the raw text.
        vector: byText ? { query: String(query) } : vector,
        alpha,
        fusionType: options.fusion === 'relative' ? 'RelativeScore' : 'Ranked',
        queryProperties: this.#queryProperties,
        returnMetadata: ['score'],
      });
    });
    const objects = res.objects;
    const loneScores = lone
      ? fuseAlone(
          objects.map((o) => 1 - (o.metadata?.distance ?? 1)),
          alpha,
          options.fusion ?? 'rrf',
        )
      : null;
    return objects.map((obj, i) => ({
      chunk: toStoredChunk(obj.properties as unknown as ChunkProps),
      score:
        loneScores?.[i] ??
        (mode === 'vector' ? 1 - (obj.metadata?.distance ?? 1) : (obj.metadata?.score ?? 0)),
      rank: i + 1,
    }));
  }

  /** Weaviate filter for a SearchFilter, or `'none'` when it can match nothing (an empty list). */
  #filters(filter: SearchFilter | undefined): FilterValue | 'none' {
    const f = this.#chunks.filter;
    const parts: FilterValue[] = [];
    if (filter?.sources !== undefined) {
      if (filter.sources.length === 0) return 'none';
      parts.push(f.byProperty('source').containsAny(filter.sources));
    }
    if (filter?.tags !== undefined) {
      if (filter.tags.length === 0) return 'none';
      parts.push(f.byProperty('tags').containsAny(filter.tags));
    }
    if (filter?.locales !== undefined) {
      if (filter.locales.length === 0) return 'none';
      parts.push(f.byProperty('localeRanges').containsAny(filter.locales.map((l) => l.toLowerCase())));
    }
    const groups = filter?.accessGroups ?? [];
    const isPublic = f.byProperty('isPublic').equal(true);
    parts.push(
      groups.length === 0 ? isPublic : Filters.or(isPublic, f.byProperty('accessGroups').containsAny(groups)),
    );
    return parts.length === 1 ? (parts[0] as FilterValue) : Filters.and(...parts);
  }

  // -------------------------------------------------------------------------------------------
  // Vectors
  // -------------------------------------------------------------------------------------------

  async embeddingInfo(): Promise<EmbeddingInfo | null> {
    const info = await this.#embeddingInfo(true);
    return info ? { ...info } : null;
  }

  /**
   * See the seam. `reset` drops every vector of the tenant by re-creating the tenant's shard
   * (a new HNSW index, which also frees the old dimension) and writing the chunks back without
   * vectors; searches during a reset see no chunks.
   *
   * @throws SupportbotError `embedding-mismatch`, `invalid-option`, `store-unavailable`.
   */
  async setEmbeddingInfo(info: EmbeddingInfo, options: { reset?: boolean } = {}): Promise<void> {
    this.#open();
    if (!Number.isInteger(info.dimensions) || info.dimensions < 1 || info.dimensions > 65535) {
      throw new SupportbotError(
        'invalid-option',
        `embedding dimensions must be an integer in 1..65535, got ${info.dimensions}`,
      );
    }
    if (!info.model) throw new SupportbotError('invalid-option', 'embedding model id must not be empty');
    const current = await this.#embeddingInfo(true);
    const same = current?.model === info.model && current?.dimensions === info.dimensions;
    if (same && !options.reset) return;
    if (current && !options.reset) throw embeddingMismatch(current, info);
    if (options.reset) await this.#dropVectors();
    await this.#insert(this.#articles, [
      {
        id: objectId('meta', 'embedding'),
        properties: {
          kind: 'embedding',
          source: '',
          articleId: '',
          embeddingModel: info.model,
          embeddingDimensions: info.dimensions,
        },
      },
    ]);
    this.#embedding = { info: { ...info }, readAt: Date.now() };
  }

  /** As the seam says, each with its `writeId` (see `upsertVectors`). */
  async listChunksWithoutVectors(limit: number): Promise<ChunkWithoutVector[]> {
    this.#open();
    const n = Math.min(MAX_K, Math.max(0, Math.floor(limit)));
    if (n === 0) return [];
    // biome-ignore lint/suspicious/noExplicitAny: the untyped collection's sort builder types its keys as never
    const s = this.#chunks.sort as any;
    const res = await this.#retry(() =>
      this.#chunks.query.fetchObjects({
        filters: this.#chunks.filter.byProperty('hasVector').equal(false),
        sort: s.byProperty('source').byProperty('articleId').byProperty('chunkIndex'),
        limit: n,
        returnProperties: [...CHUNK_RETURN],
      }),
    );
    return res.objects.map((o) => {
      const props = o.properties as unknown as ChunkProps;
      return { ...toStoredChunk(props), writeId: props.writeId };
    });
  }

  /**
   * Re-writes each named chunk with its vector (Weaviate replaces whole objects). A vector given
   * with a `writeId` is skipped when the chunk now holds another write's text: embedding takes
   * seconds, and a sync may rewrite the chunk (same object id, new text, new `writeId`) meanwhile.
   * Weaviate has no conditional write, so a rewrite landing between this method's read and its
   * batch write (milliseconds, not the embedding's seconds) can still be overwritten.
   */
  async upsertVectors(vectors: ChunkVector[]): Promise<number> {
    this.#open();
    await this.#checkVectors(
      vectors.map((v) => v.vector),
      vectors.length,
    );
    if (vectors.length === 0) return 0;
    const byId = new Map(vectors.map((v) => [v.chunkId, v]));
    let written = 0;
    const ids = [...byId.keys()];
    for (let i = 0; i < ids.length; i += 200) {
      const part = ids.slice(i, i + 200);
      const res = await this.#retry(() =>
        this.#chunks.query.fetchObjects({
          filters: this.#chunks.filter.byProperty('chunkId').containsAny(part),
          limit: part.length * 2,
        }),
      );
      const objects = res.objects.flatMap((o) => {
        const props = o.properties as unknown as ChunkProps;
        const given = byId.get(props.chunkId);
        if (!given) return [];
        // Rewritten since it was listed: the vector is of text the chunk no longer holds.
        if (given.writeId !== undefined && given.writeId !== props.writeId) return [];
        return [{ id: o.uuid, properties: { ...props, hasVector: true }, vector: given.vector }];
      });
      if (objects.length > 0) await this.#insert(this.#chunks, objects);
      written += objects.length;
    }
    return written;
  }

  /**
   * Chunk counts per term, one Aggregate request (objects count with a filter) per term. Terms
   * come as `core/text.ts#contentTerms` makes them (lower-case, already Porter-stemmed, so not
   * stemmed again); a CJK word is looked up as its bigrams, all of which must be in the chunk.
   * A chunk counts when the term is in its title, headings or body.
   */
  async documentFrequencies(terms: string[]): Promise<{ documents: number; df: Record<string, number> }> {
    this.#open();
    const f = this.#chunks.filter;
    const df: Record<string, number> = {};
    for (const term of new Set(terms)) {
      const value = CJK.test(term)
        ? (analyzeQuery(term) ?? '')
        : term.normalize('NFKC').toLowerCase().replace(/\s+/g, '');
      if (value === '') {
        df[term] = 0;
        continue;
      }
      const where = Filters.or(
        f.byProperty('titleSearch').equal(value),
        f.byProperty('headingsSearch').equal(value),
        f.byProperty('bodySearch').equal(value),
      );
      df[term] = (await this.#retry(() => this.#chunks.aggregate.overAll({ filters: where }))).totalCount;
    }
    const documents = (await this.#retry(() => this.#chunks.aggregate.overAll())).totalCount;
    return { documents, df };
  }

  async stats(): Promise<{ articles: number; chunks: number; sources: Record<string, number> }> {
    this.#open();
    const chunks = (await this.#retry(() => this.#chunks.aggregate.overAll())).totalCount;
    const counts = new Map<string, number>();
    for await (const obj of this.#walk(this.#articles, ['kind', 'source'])) {
      const p = obj.properties as unknown as ArticleProps;
      if (p.kind === 'article') counts.set(p.source, (counts.get(p.source) ?? 0) + 1);
    }
    const sources: Record<string, number> = {};
    let articles = 0;
    for (const source of [...counts.keys()].sort()) {
      sources[source] = counts.get(source) ?? 0;
      articles += sources[source] ?? 0;
    }
    return { articles, chunks, sources };
  }

  /**
   * Every article with its content hash, chunks in index order and their vectors (`null` for a
   * chunk without one), for `supportbot migrate`. `article.body` is `''`: stores keep chunks,
   * not bodies. Order: by source, then article id.
   */
  async *exportArticles(): AsyncGenerator<ExportedArticle> {
    this.#open();
    const records: ArticleProps[] = [];
    for await (const obj of this.#walk(this.#articles)) {
      const p = obj.properties as unknown as ArticleProps;
      if (p.kind === 'article') records.push(p);
    }
    records.sort((a, b) => compare(a.source, b.source) || compare(a.articleId, b.articleId));
    for (const p of records) {
      const res = await this.#retry(() =>
        this.#chunks.query.fetchObjects({
          filters: Filters.and(
            this.#chunks.filter.byProperty('source').equal(p.source),
            this.#chunks.filter.byProperty('articleId').equal(p.articleId),
          ),
          limit: this.#options.maxResults,
          includeVector: true,
          returnProperties: [...CHUNK_RETURN],
        }),
      );
      const items = res.objects
        .map((o) => ({ props: o.properties as unknown as ChunkProps, vector: vectorOf(o) }))
        .sort((a, b) => a.props.chunkIndex - b.props.chunkIndex);
      yield {
        article: {
          id: p.articleId,
          source: p.source,
          title: p.title,
          url: p.url ?? null,
          sourcePath: p.sourcePath,
          body: '',
          updatedAt: p.updatedAt,
          tags: p.tags ?? [],
          accessGroups: p.accessGroups ?? [],
          locale: p.locale,
        },
        contentHash: p.contentHash,
        chunks: items.map(({ props }) => {
          const { title, url, sourcePath, tags, accessGroups, locale, updatedAt, ...chunk } =
            toStoredChunk(props);
          return chunk;
        }),
        vectors: items.map(({ props, vector }) => (props.hasVector && vector ? vector : null)),
      };
    }
  }

  async close(): Promise<void> {
    const client = this.#client;
    this.#client = null;
    await client?.close();
  }

  // -------------------------------------------------------------------------------------------
  // Internals
  // -------------------------------------------------------------------------------------------

  #open(): WeaviateClient {
    if (this.#client === null)
      throw new SupportbotError('store-closed', `knowledge store ${this.id} is closed`);
    return this.#client;
  }

  /**
   * Runs `fn`, retrying transient failures (`classifyError` → `retry`) with exponential backoff
   * and jitter (base × 2^attempt, capped at 5 s); after the last retry, or at once when Weaviate
   * is down (`down`), throws `store-unavailable`. Other errors pass through unchanged.
   */
  async #retry<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (err instanceof SupportbotError) throw err;
        const kind = classifyError(err);
        if (kind === 'fail') throw err;
        if (kind === 'down' || attempt >= this.#options.retries) throw unavailable(this.#options.url, err);
        await sleep(backoff(this.#options.retryBaseMs, attempt));
      }
    }
  }

  /**
   * Writes objects with gRPC BatchObjects, one object per request, up to `insertConcurrency`
   * requests at a time; any per-object error throws `store-write-failed` naming the first ones
   * (after every request has finished, so a failure never leaves requests running).
   *
   * Why one object per request: `collection.data.insertMany` of weaviate-client 3.12.1 serializes
   * a batch one object per timer tick and polls for the end every 500 ms
   * (`Serialize.batchObjects`), so any batch of two or more objects takes at least 500 ms, while
   * a batch of one returns as soon as the server answers. Measured against the local fake: an
   * article of 2 chunks took 510 ms with one insertMany, a few ms this way.
   */
  async #insert(
    collection: AnyCollection,
    objects: { id: string; properties: object; vector?: Float32Array | number[] }[],
  ): Promise<void> {
    const errors: string[] = [];
    let failed = 0;
    let next = 0;
    const worker = async () => {
      while (next < objects.length) {
        const index = next++;
        const o = objects[index] as (typeof objects)[number];
        const object = {
          id: o.id,
          // biome-ignore lint/suspicious/noExplicitAny: properties are built from the typed Props interfaces above
          properties: o.properties as any,
          // The collection's one vector is the named vector `default` (see `schema`); naming it
          // avoids relying on the server mapping an unnamed vector onto it.
          ...(o.vector ? { vectors: { default: Array.from(o.vector) } } : {}),
        };
        try {
          const res = await this.#retry(() => collection.data.insertMany([object]));
          if (res.hasErrors) {
            failed++;
            for (const e of Object.values(res.errors)) errors.push(`#${index} ${e.message}`);
          }
        } catch (err) {
          failed++;
          errors.push(`#${index} ${(err as Error).message}`);
          if (err instanceof SupportbotError && err.code === 'store-unavailable') throw err;
        }
      }
    };
    const workers = Array.from({ length: Math.min(this.#options.insertConcurrency, objects.length) }, worker);
    const settled = await Promise.allSettled(workers);
    const down = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (down) throw down.reason;
    if (failed > 0) {
      throw new SupportbotError(
        'store-write-failed',
        `Weaviate rejected ${failed} of ${objects.length} objects in ${collection.name}: ${errors.slice(0, 3).join('; ')}`,
      );
    }
  }

  /**
   * BatchDelete by filter; returns how many objects were deleted. One request deletes at most
   * QUERY_MAXIMUM_RESULTS objects (10,000 by default; docs: manage-objects/delete#delete-multiple-objects),
   * so it repeats until a request deletes nothing: the server's cap may be lower than the
   * configured `maxResults`, and a capped reply cannot be told from "that was all". Not verbose: a
   * reply would list every object. A partial failure throws `store-write-failed`.
   */
  async #deleteMany(collection: AnyCollection, where: FilterValue): Promise<number> {
    let deleted = 0;
    for (;;) {
      const res = await this.#retry(() => collection.data.deleteMany(where));
      if (res.failed > 0) {
        throw new SupportbotError(
          'store-write-failed',
          `Weaviate failed to delete ${res.failed} of ${res.matches} objects in ${collection.name}`,
        );
      }
      deleted += res.successful;
      // Only a pass that deleted nothing proves nothing is left (one extra request per call).
      if (res.successful === 0) return deleted;
    }
  }

  /** Every object of a collection's tenant, via the cursor API (`after` = last uuid). */
  async *#walk(
    collection: AnyCollection,
    returnProperties?: string[],
  ): AsyncGenerator<WeaviateObject<undefined, undefined>> {
    const page = Math.min(PAGE, this.#options.maxResults);
    let after: string | undefined;
    for (;;) {
      const res = await this.#retry(() =>
        collection.query.fetchObjects({
          after,
          limit: page,
          ...(returnProperties ? { returnProperties } : {}),
        }),
      );
      for (const obj of res.objects) yield obj as WeaviateObject<undefined, undefined>;
      if (res.objects.length < page) return;
      after = res.objects[res.objects.length - 1]?.uuid;
    }
  }

  async #embeddingInfo(fresh: boolean): Promise<EmbeddingInfo | null> {
    this.#open();
    const cached = this.#embedding;
    if (cached && (!fresh || Date.now() - cached.readAt < EMBEDDING_TTL_MS)) return cached.info;
    const obj = await this.#retry(() => this.#articles.query.fetchObjectById(objectId('meta', 'embedding')));
    const p = obj?.properties as unknown as ArticleProps | undefined;
    const info =
      p?.embeddingModel && Number.isInteger(p.embeddingDimensions)
        ? { model: p.embeddingModel, dimensions: p.embeddingDimensions as number }
        : null;
    this.#embedding = { info, readAt: Date.now() };
    return info;
  }

  async #checkVectors(vectors: Float32Array[], expected: number): Promise<void> {
    if (vectors.length !== expected) {
      throw new SupportbotError('chunk-mismatch', `got ${vectors.length} vectors for ${expected} chunks`);
    }
    if (vectors.length === 0) return;
    const info = await this.#embeddingInfo(false);
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

  /** Reads every chunk, re-creates the tenant in the chunk collection, writes the chunks back without vectors. */
  async #dropVectors(): Promise<void> {
    const all: { id: string; properties: ChunkProps }[] = [];
    for await (const obj of this.#walk(this.#chunks)) {
      all.push({
        id: obj.uuid,
        properties: { ...(obj.properties as unknown as ChunkProps), hasVector: false },
      });
    }
    const articles: { id: string; properties: ArticleProps }[] = [];
    for await (const obj of this.#walk(this.#articles)) {
      const p = obj.properties as unknown as ArticleProps;
      if (p.kind === 'article') articles.push({ id: obj.uuid, properties: p });
    }
    // The chunk tenant is emptied and refilled below. Blank every article's content hash first,
    // so that a crash or failed write in between makes the next sync re-chunk every article
    // instead of trusting unchanged hashes over an empty tenant; restore them once the chunks are
    // back.
    await this.#insert(
      this.#articles,
      articles.map((a) => ({ id: a.id, properties: { ...a.properties, contentHash: '' } })),
    );
    const handle = this.#open().collections.use(this.collectionName);
    await this.#retry(() => handle.tenants.remove([{ name: this.tenant }]));
    await this.#retry(() => handle.tenants.create([{ name: this.tenant }]));
    await this.#insert(this.#chunks, all);
    await this.#insert(this.#articles, articles);
  }
}

/** How long a read embedding record is trusted before a vector search re-reads it. */
const EMBEDDING_TTL_MS = 5_000;

function chunkProps(article: Article, chunk: Chunk, writeId: string, hasVector: boolean): ChunkProps {
  return {
    chunkId: chunk.id,
    source: article.source,
    articleId: article.id,
    chunkIndex: chunk.index,
    headingPath: chunk.headingPath,
    text: chunk.text,
    tokenCount: chunk.tokenCount,
    spanStart: chunk.span.start,
    spanEnd: chunk.span.end,
    title: article.title,
    // A missing property reads back as absent; null is not a storable text value.
    ...(article.url === null ? {} : { url: article.url }),
    sourcePath: article.sourcePath,
    updatedAt: article.updatedAt,
    tags: article.tags,
    accessGroups: article.accessGroups,
    isPublic: article.accessGroups.length === 0,
    locale: article.locale,
    localeRanges: localeRanges(article.locale),
    titleSearch: analyzeForIndex(article.title),
    headingsSearch: analyzeForIndex(chunk.headingPath.join('\n')),
    bodySearch: analyzeForIndex(chunk.text),
    hasVector,
    writeId,
  };
}

function articleProps(article: Article, contentHash: string): ArticleProps {
  return {
    kind: 'article',
    source: article.source,
    articleId: article.id,
    title: article.title,
    ...(article.url === null ? {} : { url: article.url }),
    sourcePath: article.sourcePath,
    updatedAt: article.updatedAt,
    tags: article.tags,
    accessGroups: article.accessGroups,
    locale: article.locale,
    contentHash,
  };
}

function toStoredChunk(p: ChunkProps): StoredChunk {
  return {
    id: p.chunkId,
    articleId: p.articleId,
    source: p.source,
    index: p.chunkIndex,
    headingPath: p.headingPath ?? [],
    text: p.text ?? '',
    tokenCount: p.tokenCount,
    span: { start: p.spanStart, end: p.spanEnd },
    title: p.title ?? '',
    url: p.url ?? null,
    sourcePath: p.sourcePath,
    tags: p.tags ?? [],
    accessGroups: p.accessGroups ?? [],
    locale: p.locale,
    updatedAt: p.updatedAt,
  };
}

/** The object's vector as a Float32Array (the single unnamed or `default` named vector), or null. */
function vectorOf(obj: { vectors?: unknown }): Float32Array | null {
  const vectors = obj.vectors as Record<string, number[]> | undefined;
  const v = vectors?.default ?? Object.values(vectors ?? {})[0];
  return Array.isArray(v) && v.length > 0 ? Float32Array.from(v) : null;
}

/**
 * Fused scores of a single ranked list (the vector list of a hybrid search with no keyword part),
 * as Weaviate's fusion scores it: rankedFusion `alpha / (60 + rank)` with a 0-based rank;
 * relativeScoreFusion `alpha ·` the min-max normalized score (all 1 when the scores are equal).
 * Source: https://docs.weaviate.io/weaviate/concepts/search/hybrid-search#fusion-strategies
 */
function fuseAlone(scores: number[], alpha: number, fusion: 'rrf' | 'relative'): number[] {
  if (fusion === 'rrf') return scores.map((_, i) => alpha / (60 + i));
  const min = Math.min(...scores);
  const max = Math.max(...scores);
  return scores.map((x) => alpha * (max > min ? (x - min) / (max - min) : 1));
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function backoff(base: number, attempt: number): number {
  const delay = Math.min(5_000, base * 2 ** attempt);
  return delay * (0.5 + Math.random());
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------------------------------------
// Configuration helpers (for the runtime and `supportbot migrate`)
// ---------------------------------------------------------------------------------------------

/**
 * A valid Weaviate tenant name for one chat workspace: `<platform>-<id>` (`slack-T024BE7LD`,
 * `discord-81384788765712384`), characters outside `[A-Za-z0-9_-]` replaced by `_`, at most 64
 * characters (Weaviate's tenant name rule). Deterministic, so every replica picks the same tenant.
 */
export function tenantName(platform: string, workspaceId: string): string {
  return `${platform}-${workspaceId}`.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64);
}

/**
 * Store options from environment variables (names as in `deploy/.env.example`):
 * `WEAVIATE_URL` (required), `WEAVIATE_GRPC_URL` (default: the URL's host, port 50051),
 * `WEAVIATE_API_KEY`, `WEAVIATE_COLLECTION` (default `SupportbotChunk`), `WEAVIATE_TENANT`
 * (default `default`), `WEAVIATE_VECTORIZER` (default `none`: our embedder's vectors),
 * `WEAVIATE_TOKENIZATION` (default `whitespace`). Empty values count as unset.
 *
 * @throws SupportbotError `config-invalid` when `WEAVIATE_URL` is missing or a value is malformed.
 */
export function weaviateOptionsFromEnv(
  env: Record<string, string | undefined>,
): WeaviateKnowledgeStoreOptions {
  const get = (name: string) => {
    const value = env[name]?.trim();
    return value ? value : undefined;
  };
  const url = get('WEAVIATE_URL');
  if (!url) throw new SupportbotError('config-invalid', 'KNOWLEDGE_STORE=weaviate needs WEAVIATE_URL');
  for (const name of ['WEAVIATE_URL', 'WEAVIATE_GRPC_URL']) {
    const value = get(name);
    if (value && !URL.canParse(value)) {
      throw new SupportbotError('config-invalid', `${name} is not a URL: ${JSON.stringify(value)}`);
    }
  }
  const tokenization = get('WEAVIATE_TOKENIZATION');
  if (tokenization && !['whitespace', 'word', 'trigram', 'gse'].includes(tokenization)) {
    throw new SupportbotError(
      'config-invalid',
      `WEAVIATE_TOKENIZATION must be whitespace, word, trigram or gse, got ${JSON.stringify(tokenization)}`,
    );
  }
  const tenant = get('WEAVIATE_TENANT');
  if (tenant && !TENANT_NAME.test(tenant)) {
    throw new SupportbotError(
      'config-invalid',
      `WEAVIATE_TENANT must match ${TENANT_NAME}, got ${JSON.stringify(tenant)}`,
    );
  }
  const collection = get('WEAVIATE_COLLECTION');
  if (collection && !CLASS_NAME.test(collection)) {
    throw new SupportbotError(
      'config-invalid',
      `WEAVIATE_COLLECTION must start with an upper-case letter and hold only letters, digits and _, got ${JSON.stringify(collection)}`,
    );
  }
  return {
    url,
    grpcUrl: get('WEAVIATE_GRPC_URL'),
    apiKey: get('WEAVIATE_API_KEY'),
    collection,
    tenant,
    vectorizer: get('WEAVIATE_VECTORIZER'),
    tokenization: tokenization as WeaviateKnowledgeStoreOptions['tokenization'],
  };
}
