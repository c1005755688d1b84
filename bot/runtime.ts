import path from 'node:path';
import type { Logger } from 'pino';
import { type RequestScope, routeAdapter } from '../core/adapters.ts';
import { answer } from '../core/answer.ts';
import type { Config, SourceConfig } from '../core/config.ts';
import { checkEmbeddingInfo, createEmbedder, type Embedder } from '../core/embedder.ts';
import { SupportbotError } from '../core/errors.ts';
import type { Generator } from '../core/generator.ts';
import { createGenerator } from '../core/generators/index.ts';
import { SqliteKnowledgeStore } from '../core/knowledge-store/sqlite.ts';
import type { WeaviateKnowledgeStoreOptions } from '../core/knowledge-store/weaviate.ts';
import type { KnowledgeStore } from '../core/knowledge-store.ts';
import { createReranker, type Reranker } from '../core/reranker.ts';
import { type RetrievalSettings, retrieve } from '../core/retrieve.ts';
import { RedisStateStore } from '../core/state-store/redis.ts';
import { SqliteStateStore } from '../core/state-store/sqlite.ts';
import type { StateStore } from '../core/state-store.ts';
import { cl100kTokenizer, type Tokenizer } from '../core/tokenizer.ts';
import type { AnswerResult, SearchFilter, SearchHit, Turn } from '../core/types.ts';
import type { ChunkOptions } from '../sync/chunker.ts';
import { lastSyncResults, runSyncJob } from '../sync/scheduler.ts';
import type { Source } from '../sync/source.ts';
import { createFolderSource } from '../sync/sources/folder.ts';
import { createWebsiteSource } from '../sync/sources/website.ts';
import { createZendeskSource } from '../sync/sources/zendesk.ts';
import { type SyncProgress, type SyncSummary, syncSource } from '../sync/sync.ts';
import { createLogger } from './logging.ts';
import type { BotMetrics } from './metrics.ts';

/** Options of `Runtime.ask`. */
export interface AskOptions {
  /** Earlier turns of the thread, oldest first. */
  history?: Turn[];
  filter?: SearchFilter;
  signal?: AbortSignal;
  /** Where the question came from, for adapter routing. */
  scope?: RequestScope;
  /** Streamed reply text from an LLM (not called for extractive answers). */
  onToken?: (text: string) => void;
}

/**
 * The composition root: builds the stores, sources and generator from a `Config` once, so the
 * CLI, the console chat and the platform bots share one wiring. `close()` releases everything.
 */
export class Runtime {
  readonly knowledge: KnowledgeStore;
  readonly state: StateStore;
  readonly sources: Source[];
  readonly tokenizer: Tokenizer = cl100kTokenizer;
  readonly log: Logger;
  /** The LLM generator (`llm.backend`), or null for the extractive default. */
  generator: Generator | null = null;
  /** Query/passage embedder (`embedding.model`), or null: BM25 only. */
  embedder: Embedder | null = null;
  /** Cross-encoder reranker (`reranker.model`), or null. */
  reranker: Reranker | null = null;
  /**
   * The adapter the registry promoted (`training/registry.ts`, kept current by serve's
   * `PromotedAdapterWatcher`): it replaces `llm.adapters.default`; explicit routes still win.
   * `undefined` until known, `null` for the base model.
   */
  promotedAdapter: string | null | undefined = undefined;
  /** Prometheus metrics, set by `serve` (`bot/metrics.ts`); null for one-shot commands. */
  metrics: BotMetrics | null = null;

  /**
   * Builds the runtime over the embedded SQLite stores, or over a given state store (see `open`).
   * @throws SupportbotError from the stores (e.g. an unwritable data dir).
   */
  constructor(
    readonly config: Config & { configFile?: string | null },
    stores: { state?: StateStore; knowledge?: KnowledgeStore } = {},
  ) {
    this.log = createLogger(config.log.level);
    const file = path.join(config.dataDir, 'supportbot.sqlite');
    this.knowledge = stores.knowledge ?? SqliteKnowledgeStore.open(file);
    this.state = stores.state ?? SqliteStateStore.open(file);
    this.sources = config.sources.map((s) => createSource(s, path.join(config.dataDir, 'sources')));
  }

  /**
   * The runtime for a config, connecting to Redis for the state store when `state.redisUrl`
   * (`REDIS_URL`) is set — what several replicas share — and to the embedded SQLite file
   * otherwise.
   * @throws SupportbotError `store-unavailable` when Redis does not answer.
   */
  static async open(config: Config & { configFile?: string | null }): Promise<Runtime> {
    const state = config.state.redisUrl
      ? await RedisStateStore.connect(config.state.redisUrl, { keyPrefix: config.state.redisKeyPrefix })
      : undefined;
    let knowledge: KnowledgeStore | undefined;
    try {
      if (config.knowledgeStore.type === 'weaviate') {
        // Loaded only when configured: the Weaviate client brings gRPC with it.
        const { WeaviateKnowledgeStore } = await import('../core/knowledge-store/weaviate.ts');
        knowledge = await WeaviateKnowledgeStore.connect(weaviateOptions(config));
      }
    } catch (err) {
      await state?.close();
      throw err;
    }
    const rt = new Runtime(config, { state, knowledge });
    try {
      rt.generator = await createGenerator(config);
      const e = config.embedding;
      if (e.model) {
        rt.embedder = await createEmbedder({
          model: e.model,
          baseUrl: e.baseUrl,
          apiKey: e.apiKey,
          batchSize: e.batchSize,
          cacheDirs: e.cacheDirs.length ? e.cacheDirs : undefined,
        });
      }
      if (config.reranker.model) rt.reranker = await createReranker({ model: config.reranker.model });
    } catch (err) {
      await rt.close();
      throw err;
    }
    rt.log.info(
      {
        generator: rt.generator?.id ?? 'extractive',
        embedder: rt.embedder?.id ?? null,
        reranker: rt.reranker?.id ?? null,
      },
      'models ready',
    );
    return rt;
  }

  get chunking(): ChunkOptions {
    return { ...this.config.chunking, tokenizer: this.tokenizer };
  }

  /**
   * @throws SupportbotError `unknown-source` when a name is not a configured source, naming the
   *   configured ones.
   */
  checkSourceNames(names: string[]): void {
    const unknown = names.filter((n) => !this.sources.some((s) => s.name === n));
    if (unknown.length > 0) {
      throw new SupportbotError(
        'unknown-source',
        `unknown source ${unknown.join(', ')}; configured: ${this.sources.map((s) => s.name).join(', ')}`,
      );
    }
  }

  /**
   * Syncs the named sources (all when `names` is empty), each as one job under its single-flight
   * lock in the state store (`sync/scheduler.ts#runSyncJob`), the same job the schedule and
   * `/support sync` run: a source another process is syncing is skipped and reported as busy
   * (a summary with `sourceError`), never synced twice at once.
   * @throws SupportbotError `unknown-source` naming the configured sources.
   */
  async syncJobs(
    names: string[] = [],
    options: {
      force?: boolean;
      reembed?: boolean;
      requestedBy?: string;
      onProgress?: (p: SyncProgress) => void;
    } = {},
  ): Promise<SyncSummary[]> {
    this.checkSourceNames(names);
    const summaries: SyncSummary[] = [];
    for (const source of this.sources.filter((s) => names.length === 0 || names.includes(s.name))) {
      const result = await runSyncJob({
        state: this.state,
        source: source.name,
        requestedBy: options.requestedBy,
        log: this.log,
        runSync: (name, context) => this.syncOne(name, { ...options, signal: context.signal }),
      });
      if (result.status === 'busy') {
        this.metrics?.observeSync(source.name, 'busy');
        summaries.push(busySummary(source.name));
      } else if (result.summary) summaries.push(result.summary);
      else throw result.error;
    }
    return summaries;
  }

  /**
   * Syncs one source and records the result in the metrics: the `runSync` of every sync job
   * (`syncJobs` for the CLI and `/support sync`, and the schedule in `serve`), called under the
   * source's lock.
   * @throws what `sync` throws (recorded as a failed sync first).
   */
  async syncOne(
    name: string,
    options: {
      force?: boolean;
      reembed?: boolean;
      signal?: AbortSignal;
      onProgress?: (p: SyncProgress) => void;
    } = {},
  ): Promise<SyncSummary> {
    try {
      const summary = (await this.sync([name], options))[0] as SyncSummary;
      this.metrics?.observeSync(name, summary.sourceError ? 'failed' : 'succeeded', summary);
      return summary;
    } catch (err) {
      this.metrics?.observeSync(name, 'failed');
      throw err;
    }
  }

  /**
   * Syncs the named sources (all when `names` is empty), without the job lock (`syncJobs` takes it).
   * @throws SupportbotError `unknown-source` naming the configured sources.
   */
  async sync(
    names: string[] = [],
    options: {
      force?: boolean;
      reembed?: boolean;
      signal?: AbortSignal;
      onProgress?: (p: SyncProgress) => void;
    } = {},
  ): Promise<SyncSummary[]> {
    this.checkSourceNames(names);
    if (options.reembed && !this.embedder) {
      throw new SupportbotError('no-embedder', '--reembed needs an embedding model: set EMBEDDING_MODEL');
    }
    const summaries: SyncSummary[] = [];
    for (const source of this.sources.filter((s) => names.length === 0 || names.includes(s.name))) {
      const summary = await syncSource(source, this.knowledge, {
        chunking: this.chunking,
        embedder: this.embedder ?? undefined,
        ...options,
      });
      // Callers print the summary with its errors; the log keeps the detail without repeating it on stderr.
      for (const e of summary.errors) this.log.debug({ source: source.name, ...e }, 'skipped a file');
      summaries.push(summary);
    }
    return summaries;
  }

  /** True when the knowledge store holds no chunk yet (first run). */
  async isEmpty(): Promise<boolean> {
    return (await this.knowledge.stats()).chunks === 0;
  }

  /** Configured sources that have no article in the store yet (never synced, or newly added). */
  async unsyncedSources(): Promise<string[]> {
    const counts = (await this.knowledge.stats()).sources;
    return this.sources.filter((s) => !counts[s.name]).map((s) => s.name);
  }

  /**
   * Deletes the articles of every source in the store that is no longer configured, so that a
   * source removed from the config stops being searched and cited. Resolves to what was deleted.
   */
  async pruneUnconfigured(): Promise<{ source: string; deleted: number }[]> {
    const configured = new Set(this.sources.map((s) => s.name));
    const pruned: { source: string; deleted: number }[] = [];
    for (const source of Object.keys((await this.knowledge.stats()).sources).sort()) {
      if (configured.has(source)) continue;
      const ids = (await this.knowledge.listArticleHashes(source)).map((h) => h.articleId);
      const deleted = ids.length > 0 ? await this.knowledge.deleteArticles(source, ids) : 0;
      this.log.info({ source, deleted }, 'pruned a source that is no longer configured');
      pruned.push({ source, deleted });
    }
    return pruned;
  }

  /**
   * `filter` limited to the configured sources: articles left in the store by a source removed
   * from the config (until `sync` prunes them) are never searched or cited. A caller's
   * `sources` are narrowed to the configured ones, never widened.
   */
  scopeFilter(filter: SearchFilter = {}): SearchFilter {
    const configured = this.sources.map((s) => s.name);
    const sources = filter.sources ? filter.sources.filter((s) => configured.includes(s)) : configured;
    return { ...filter, sources };
  }

  /**
   * `core.answer()` with this runtime's stores, generator and settings, over the configured
   * sources only. `scope` (platform, workspace, channel) picks the LoRA adapter through
   * `llm.adapters.routes`.
   */
  async ask(question: string, options: AskOptions = {}): Promise<AnswerResult> {
    const result = await answer(question, {
      ...(await this.retrievalOptions()),
      signal: options.signal,
      store: this.knowledge,
      generator: this.generator ?? undefined,
      adapter: this.generator ? this.adapterFor(options.scope) : undefined,
      onToken: options.onToken,
      topK: this.config.retrieval.topK,
      abstainThreshold: this.config.answer.abstainThreshold,
      maxAnswerChars: this.config.answer.maxAnswerChars,
      filter: this.scopeFilter(options.filter),
      history: options.history ?? [],
    });
    this.metrics?.observeAnswer(result);
    return result;
  }

  /** Embedder (when the store's vectors match it), reranker and hybrid settings for `retrieve()`. */
  private async retrievalOptions(mode?: RetrievalSettings['mode']) {
    const embedder = (await this.vectorsReady()) ? (this.embedder ?? undefined) : undefined;
    const retrieval: RetrievalSettings = {
      mode: mode ?? this.config.retrieval.mode,
      alpha: this.config.retrieval.alpha,
      fusion: this.config.retrieval.fusion,
      candidates: this.config.reranker.candidates,
    };
    return { embedder, reranker: this.reranker ?? undefined, retrieval };
  }

  /**
   * The top-k chunks for a query as `answer()` retrieves them (hybrid and reranked when models are
   * configured), over the configured sources.
   * @throws SupportbotError `embedding-mismatch` (run `supportbot sync --reembed`).
   */
  async search(
    query: string,
    options: { k: number; filter?: SearchFilter; mode?: RetrievalSettings['mode'] },
  ): Promise<{ hits: SearchHit[]; mode: string }> {
    return retrieve(query, {
      store: this.knowledge,
      topK: options.k,
      filter: this.scopeFilter(options.filter),
      ...(await this.retrievalOptions(options.mode)),
    });
  }

  /**
   * Whether vector search can be used: an embedder is configured and the store's vectors come
   * from it. False while the store has no vectors yet (BM25 until a sync embeds them).
   * @throws SupportbotError `embedding-mismatch` when the vectors come from another model (the
   *   message says to run `supportbot sync --reembed`).
   */
  async vectorsReady(): Promise<boolean> {
    if (!this.embedder || !this.knowledge.embeddingInfo) return false;
    return checkEmbeddingInfo(await this.knowledge.embeddingInfo(), this.embedder) === 'ready';
  }

  /** One line naming the retrieval path, for `status`. */
  async describeRetrieval(): Promise<string> {
    if (!this.embedder) return 'BM25 (SQLite FTS5); no embedding model configured';
    const rerank = this.reranker ? `, reranked by ${this.reranker.id}` : '';
    let vectors: string;
    try {
      vectors = (await this.vectorsReady())
        ? 'vectors ready'
        : 'no vectors yet: BM25 until `supportbot sync`';
    } catch (err) {
      vectors = (err as Error).message;
    }
    const mode = this.config.retrieval.mode ?? 'hybrid';
    const fusion =
      mode === 'hybrid' ? ` (${this.config.retrieval.fusion}, alpha ${this.config.retrieval.alpha})` : '';
    return `${mode}${fusion} with ${this.embedder.id}${rerank}; ${vectors}`;
  }

  /** The adapter for a request: its route, else the promoted adapter, else the configured default. */
  adapterFor(scope?: RequestScope): string | null | undefined {
    const adapters = this.config.llm.adapters;
    const fallback = this.promotedAdapter !== undefined ? this.promotedAdapter : adapters.default;
    return routeAdapter({ ...adapters, default: fallback }, scope ?? {});
  }

  /** One line naming the generator and its default adapter, for `status` and start-up. */
  describeGenerator(): string {
    const llm = this.config.llm;
    if (!this.generator) return 'extractive (no LLM)';
    const adapter = llm.adapters.default ? `, default adapter ${llm.adapters.default}` : '';
    const routes = llm.adapters.routes.length ? `, ${llm.adapters.routes.length} adapter routes` : '';
    return `${this.generator.id}${adapter}${routes} (extractive fallback)`;
  }

  /**
   * What `supportbot status` and `/support status` show: configuration in use, store contents,
   * and the latest jobs (sync, retrain) from the state store. `lines` is the human rendering.
   */
  async status() {
    const stats = await this.knowledge.stats();
    const jobs = await this.state.listJobs({ limit: 5 });
    const lastSync = await lastSyncResults(this.state);
    const status = {
      configFile: this.config.configFile ?? null,
      dataDir: this.config.dataDir,
      knowledgeStore: this.knowledge.id,
      stateStore: this.state.id,
      retrieval: await this.describeRetrieval(),
      generator: this.describeGenerator(),
      tokenizer: this.tokenizer.id,
      sources: this.config.sources.map((s) => {
        const last = lastSync.get(s.name);
        return {
          name: s.name,
          type: s.type,
          location: sourceLocation(s),
          dialect: s.type === 'folder' ? s.dialect : s.type,
          schedule: s.schedule ?? null,
          articles: stats.sources[s.name] ?? 0,
          lastSync: last
            ? { state: last.state, finishedAt: last.finishedAt ?? null, message: last.message ?? null }
            : null,
        };
      }),
      articles: stats.articles,
      chunks: stats.chunks,
      jobs: jobs.map((j) => ({
        id: j.id,
        kind: j.kind,
        state: j.state,
        startedAt: j.startedAt,
        finishedAt: j.finishedAt ?? null,
        message: j.message ?? null,
      })),
    };
    const lines = [
      `config:     ${status.configFile ?? '(none: embedded defaults)'}`,
      `data dir:   ${status.dataDir}`,
      `store:      ${status.knowledgeStore}`,
      `state:      ${status.stateStore}`,
      `retrieval:  ${status.retrieval}`,
      `generator:  ${status.generator}`,
      `indexed:    ${status.articles} articles, ${status.chunks} chunks`,
      ...status.sources.map(
        (s) =>
          `source:     ${s.name} (${s.type}, ${s.dialect}) ${s.location}: ${s.articles} articles` +
          (s.schedule ? `; schedule ${s.schedule}` : '') +
          (s.lastSync
            ? `; last sync ${s.lastSync.state}${s.lastSync.finishedAt ? ` ${s.lastSync.finishedAt}` : ''}`
            : ''),
      ),
      ...status.jobs.map(
        (j) =>
          `job:        ${j.kind} ${j.state} since ${j.startedAt}${j.finishedAt ? `, finished ${j.finishedAt}` : ''}${j.message ? ` — ${j.message}` : ''}`,
      ),
    ];
    return { ...status, lines };
  }

  async close(): Promise<void> {
    await this.generator?.dispose?.();
    await this.embedder?.close();
    await this.reranker?.close();
    await this.knowledge.close();
    await this.state.close();
  }
}

/** Weaviate store options from the `knowledgeStore.weaviate` config (`WEAVIATE_*`). */
export function weaviateOptions(config: Config): WeaviateKnowledgeStoreOptions {
  const w = config.knowledgeStore.weaviate;
  return {
    url: w.url as string,
    grpcUrl: w.grpcUrl,
    apiKey: w.apiKey,
    collection: w.collection,
    tenant: w.tenant,
    vectorizer: w.vectorizer,
    tokenization: w.tokenization,
  };
}

/** The source for a config entry, by its `type`; HTTP sources keep their caches under `cacheDir`. */
function createSource(config: SourceConfig, cacheDir: string): Source {
  switch (config.type) {
    case 'folder':
      return createFolderSource(config);
    case 'zendesk':
      return createZendeskSource(config, { cacheDir });
    case 'website':
      return createWebsiteSource(config, { cacheDir });
  }
}

/** Where a source reads from, for `status`. */
function sourceLocation(config: SourceConfig): string {
  switch (config.type) {
    case 'folder':
      return config.path;
    case 'zendesk':
      return config.baseUrl ?? `https://${config.subdomain}.zendesk.com`;
    case 'website':
      return config.sitemapUrl;
  }
}

/** The summary of a source skipped because another process holds its sync lock. */
function busySummary(source: string): SyncSummary {
  return {
    source,
    added: 0,
    updated: 0,
    unchanged: 0,
    deleted: 0,
    failed: 0,
    chunks: 0,
    seconds: 0,
    errors: [],
    swept: false,
    sourceError: 'another sync of this source is running (skipped)',
  };
}
