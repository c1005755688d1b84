import { SupportbotError } from './errors.ts';

/**
 * The embedder seam: turns text into unit-length vectors for the vector half of hybrid search.
 * Shaped like the Vercel AI SDK's embedding-model spec (`provider`, `modelId`, one call per
 * batch): app code holds an `Embedder` and never learns which runtime is behind it.
 *
 * Implementations: a local ONNX model through transformers.js/onnxruntime-node
 * (`core/embedders/onnx.ts`) and an OpenAI-compatible `/v1/embeddings` server such as TEI, vLLM or
 * Ollama (`core/embedders/openai.ts`). None is the default: without one, search is BM25 only.
 */
export interface Embedder {
  /** `onnx` or `openai`. */
  readonly provider: string;
  /** The model as configured: a folder name or hub id (`Xenova/all-MiniLM-L6-v2`), or a server's model name. */
  readonly modelId: string;
  /**
   * What the knowledge store records next to its vectors (`onnx:<modelId>`): vectors made under
   * another id are not comparable, so a store refuses to mix them (`embedding-mismatch`).
   */
  readonly id: string;
  /** Length of every vector this embedder returns. */
  readonly dimensions: number;
  /**
   * Embeds search queries (with the model's query prefix, e.g. e5's `query: `). One vector per
   * text, in order, each a `Float32Array` of `dimensions` values with L2 norm 1 (a text that
   * embeds to the zero vector stays zero). Batches internally.
   *
   * @throws SupportbotError `embedding-failed` (runtime or server error), `embedding-unavailable`
   *   (server down), or the signal's reason when aborted.
   */
  embedQueries(texts: string[], options?: EmbedOptions): Promise<Float32Array[]>;
  /** Embeds passages (chunks) to store, with the model's passage prefix. Same shapes as `embedQueries`. */
  embedPassages(texts: string[], options?: EmbedOptions): Promise<Float32Array[]>;
  /** Releases the model session or connections. Idempotent. */
  close(): Promise<void>;
}

export interface EmbedOptions {
  /** Aborts between batches (and the in-flight HTTP request for servers). */
  signal?: AbortSignal;
}

/** Text put before queries and passages; e5 models need `query: ` / `passage: `. */
export interface EmbeddingPrefixes {
  query: string;
  passage: string;
}

/**
 * Plain options for `createEmbedder`, as the config layer has them (`EMBEDDING_MODEL`,
 * `EMBEDDING_BASE_URL`, …). With `baseUrl` the model is served over HTTP; without it `model` is a
 * local folder or a hub id found in the local cache (never downloaded).
 */
export interface EmbedderOptions {
  /** Local folder, hub id (`intfloat/e5-small-v2`), or the server's model name when `baseUrl` is set. */
  model: string;
  /** Base URL of an OpenAI-compatible server (`http://127.0.0.1:8080`, with or without `/v1`). */
  baseUrl?: string;
  /** Bearer token for the server. */
  apiKey?: string;
  /** Texts per model call or request. Default 32 (ONNX) / 64 (server). */
  batchSize?: number;
  /** Prefixes; by default taken from the model's own config or recognised from its name. */
  prefixes?: Partial<EmbeddingPrefixes>;
  /** ONNX only: tokens per text before truncation (default: the model's `max_seq_length`, else 512). */
  maxLength?: number;
  /** ONNX only: pooling when the model does not say (`1_Pooling/config.json`). Default `mean`. */
  pooling?: 'mean' | 'cls';
  /** ONNX only: extra folders holding downloaded models (hub cache layout or `<org>/<name>`). */
  cacheDirs?: string[];
  /** Server only: vector length, when known; otherwise one probe request finds it. */
  dimensions?: number;
  /** Server only: per-request timeout in ms (default 30 000) and retries on 429/5xx (default 4). */
  timeoutMs?: number;
  maxRetries?: number;
}

/**
 * Builds the configured embedder: OpenAI-compatible when `baseUrl` is given, else local ONNX.
 * Loads the model (or probes the server for its dimension) so that errors show at start-up.
 * The implementations are imported lazily, so BM25-only runs never load onnxruntime.
 *
 * @throws SupportbotError `model-not-found`, `embedding-unavailable`, `invalid-option`.
 */
export async function createEmbedder(options: EmbedderOptions): Promise<Embedder> {
  if (!options.model?.trim())
    throw new SupportbotError('invalid-option', 'embedding model must not be empty');
  if (options.baseUrl) {
    const { OpenAIEmbedder } = await import('./embedders/openai.ts');
    return OpenAIEmbedder.create({ ...options, baseUrl: options.baseUrl });
  }
  const { OnnxEmbedder } = await import('./embedders/onnx.ts');
  return OnnxEmbedder.load(options);
}

/** Rescales `v` in place to L2 norm 1 (the zero vector is left as is); returns it. */
export function normalizeInPlace(v: Float32Array): Float32Array {
  let sum = 0;
  for (const x of v) sum += x * x;
  const norm = Math.sqrt(sum);
  if (norm > 0) for (let i = 0; i < v.length; i++) v[i] = (v[i] as number) / norm;
  return v;
}

/**
 * Prefixes a model family needs when its own config does not say, recognised by name:
 * e5 (`intfloat/e5-*`, `multilingual-e5-*`: "query: " / "passage: ", per its model card),
 * nomic-embed ("search_query: " / "search_document: "), and BGE English v1.x (an instruction before
 * queries only). Other models get none.
 */
export function prefixesForModelName(model: string): EmbeddingPrefixes {
  const name = model.toLowerCase();
  if (/(^|[/_-])e5([_-]|$)/.test(name)) return { query: 'query: ', passage: 'passage: ' };
  if (name.includes('nomic-embed')) return { query: 'search_query: ', passage: 'search_document: ' };
  if (/bge-(small|base|large)-en/.test(name)) {
    return { query: 'Represent this sentence for searching relevant passages: ', passage: '' };
  }
  return { query: '', passage: '' };
}

/** Splits `items` into batches of at most `size` (size >= 1). */
export function batches<T>(items: readonly T[], size: number): T[][] {
  const n = Math.max(1, Math.floor(size));
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += n) out.push(items.slice(i, i + n));
  return out;
}

/** Validates a batch size option: an integer >= 1, else `invalid-option`. */
export function checkBatchSize(value: number | undefined, fallback: number): number {
  const size = value ?? fallback;
  if (!Number.isInteger(size) || size < 1) {
    throw new SupportbotError('invalid-option', `embedding batch size must be an integer >= 1, got ${size}`);
  }
  return size;
}

/**
 * The text embedded for a stored chunk: the article title and heading path above the chunk text,
 * so a chunk that never repeats its topic ("Select Confirm.") is still placed near it.
 */
export function passageText(chunk: { title: string; headingPath: readonly string[]; text: string }): string {
  const head = [chunk.title, ...chunk.headingPath].filter((s) => s.trim() !== '').join(' › ');
  return head ? `${head}\n${chunk.text}` : chunk.text;
}

/**
 * Start-up check of a store's vectors against the configured embedder (the runtime calls it
 * before answering): `ready` when they match, `empty` when the store has no vectors yet (search
 * stays BM25 until `supportbot sync` embeds the chunks).
 *
 * @throws SupportbotError `embedding-mismatch` when the vectors come from another model or
 *   dimension: comparing them with this embedder's queries would rank nonsense, and the store
 *   cannot tell from a bare vector of the same length.
 */
export function checkEmbeddingInfo(
  stored: { model: string; dimensions: number } | null,
  embedder: Pick<Embedder, 'id' | 'dimensions'>,
): 'ready' | 'empty' {
  if (stored === null) return 'empty';
  if (stored.model === embedder.id && stored.dimensions === embedder.dimensions) return 'ready';
  throw embeddingMismatch(stored, { model: embedder.id, dimensions: embedder.dimensions });
}

/** The `embedding-mismatch` error: which model made the stored vectors, which is given, and the fix. */
export function embeddingMismatch(
  stored: { model: string; dimensions: number },
  given: { model: string; dimensions: number },
): SupportbotError {
  return new SupportbotError(
    'embedding-mismatch',
    `the knowledge store holds vectors of ${stored.model} (${stored.dimensions} dimensions) but the embedder is ${given.model} (${given.dimensions} dimensions); run \`supportbot sync --reembed\` to re-embed every chunk`,
  );
}
