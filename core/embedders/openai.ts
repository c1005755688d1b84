import {
  batches,
  checkBatchSize,
  type Embedder,
  type EmbedderOptions,
  type EmbeddingPrefixes,
  type EmbedOptions,
  normalizeInPlace,
  prefixesForModelName,
} from '../embedder.ts';
import { SupportbotError } from '../errors.ts';

export interface OpenAIEmbedderOptions extends EmbedderOptions {
  baseUrl: string;
  /** First retry delay in ms when the server gives no Retry-After; doubles per attempt. Default 500. */
  retryBaseMs?: number;
}

/** Longest wait honoured from a Retry-After header, so a misconfigured server cannot stall sync for hours. */
const MAX_RETRY_AFTER_MS = 60_000;

/** Response body of `POST /v1/embeddings` (OpenAI API reference, "Create embeddings"). */
interface EmbeddingsResponse {
  data?: { index?: number; embedding?: unknown }[];
  error?: { message?: string } | string;
}

/**
 * An OpenAI-compatible embeddings endpoint: `POST {base}/v1/embeddings` with
 * `{ model, input: string[], encoding_format: 'float' }`, answered by
 * `{ data: [{ index, embedding: number[] }] }` (OpenAI API reference, "Create embeddings"; the
 * same shape TEI, vLLM and Ollama serve). Inputs go in batches of `batchSize`; `data` is put back
 * in input order by `index`; vectors are L2-normalized here, since not every server does.
 *
 * Retries: 429 and 5xx answers and connection failures are retried up to `maxRetries` times,
 * waiting the `Retry-After` header's delay when given (seconds or an HTTP date, RFC 9110 §10.2.3,
 * capped at 60 s), else exponential backoff from `retryBaseMs` with jitter. Other 4xx fail at once.
 */
export class OpenAIEmbedder implements Embedder {
  readonly provider = 'openai';
  readonly modelId: string;
  readonly id: string;
  readonly url: string;
  #dimensions: number;
  readonly #apiKey: string | undefined;
  readonly #batchSize: number;
  readonly #prefixes: EmbeddingPrefixes;
  readonly #timeoutMs: number;
  readonly #maxRetries: number;
  readonly #retryBaseMs: number;

  private constructor(options: OpenAIEmbedderOptions) {
    this.modelId = options.model;
    this.id = `openai:${options.model}`;
    this.url = embeddingsUrl(options.baseUrl);
    this.#apiKey = options.apiKey;
    this.#batchSize = checkBatchSize(options.batchSize, 64);
    this.#prefixes = { ...prefixesForModelName(options.model), ...options.prefixes };
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#maxRetries = Math.max(0, options.maxRetries ?? 4);
    this.#retryBaseMs = options.retryBaseMs ?? 500;
    this.#dimensions = options.dimensions ?? 0;
  }

  /**
   * Builds the client; when `dimensions` is not given, embeds one probe text to learn it, so a
   * server that is down or serves another model fails here, at start-up.
   *
   * @throws SupportbotError `embedding-unavailable`, `embedding-failed`, `invalid-option`.
   */
  static async create(options: OpenAIEmbedderOptions): Promise<OpenAIEmbedder> {
    const embedder = new OpenAIEmbedder(options);
    if (embedder.#dimensions === 0) {
      const [probe] = await embedder.#embed(['dimension probe'], {});
      embedder.#dimensions = probe?.length ?? 0;
    }
    return embedder;
  }

  get dimensions(): number {
    return this.#dimensions;
  }

  embedQueries(texts: string[], options: EmbedOptions = {}): Promise<Float32Array[]> {
    return this.#embed(
      texts.map((t) => this.#prefixes.query + t),
      options,
    );
  }

  embedPassages(texts: string[], options: EmbedOptions = {}): Promise<Float32Array[]> {
    return this.#embed(
      texts.map((t) => this.#prefixes.passage + t),
      options,
    );
  }

  async close(): Promise<void> {}

  async #embed(texts: string[], options: EmbedOptions): Promise<Float32Array[]> {
    const out: Float32Array[] = [];
    for (const batch of batches(texts, this.#batchSize)) {
      options.signal?.throwIfAborted();
      const vectors = await this.#request(batch, options.signal);
      for (const v of vectors) {
        if (this.#dimensions > 0 && v.length !== this.#dimensions) {
          throw new SupportbotError(
            'embedding-failed',
            `embedding server ${this.url} returned ${v.length}-dimensional vectors for ${this.modelId}, expected ${this.#dimensions}`,
          );
        }
        out.push(v);
      }
    }
    return out;
  }

  async #request(input: string[], signal: AbortSignal | undefined): Promise<Float32Array[]> {
    const body = JSON.stringify({ model: this.modelId, input, encoding_format: 'float' });
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.#apiKey) headers.authorization = `Bearer ${this.#apiKey}`;
    let lastProblem = '';
    for (let attempt = 0; ; attempt++) {
      signal?.throwIfAborted();
      let response: Response;
      try {
        const timeout = AbortSignal.timeout(this.#timeoutMs);
        response = await fetch(this.url, {
          method: 'POST',
          headers,
          body,
          signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
        });
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        lastProblem = describeFetchError(err);
        if (attempt < this.#maxRetries) {
          await sleep(this.#backoff(attempt), signal);
          continue;
        }
        throw new SupportbotError(
          'embedding-unavailable',
          `embedding server ${this.url} is not reachable (${lastProblem}) after ${attempt + 1} attempts; is it running?`,
          { cause: err },
        );
      }
      const text = await response.text();
      if (response.ok) return this.#parse(text, input.length);
      lastProblem = `HTTP ${response.status}${serverMessage(text)}`;
      const retryable = response.status === 429 || response.status >= 500;
      if (retryable && attempt < this.#maxRetries) {
        const after = retryAfterMs(response.headers.get('retry-after'));
        await sleep(after ?? this.#backoff(attempt), signal);
        continue;
      }
      throw new SupportbotError(
        retryable ? 'embedding-unavailable' : 'embedding-failed',
        `embedding server ${this.url} answered ${lastProblem} for model ${this.modelId}${retryable ? ` after ${attempt + 1} attempts` : ''}`,
      );
    }
  }

  #parse(text: string, expected: number): Float32Array[] {
    let parsed: EmbeddingsResponse;
    try {
      parsed = JSON.parse(text) as EmbeddingsResponse;
    } catch (err) {
      throw new SupportbotError('embedding-failed', `embedding server ${this.url} sent invalid JSON`, {
        cause: err,
      });
    }
    const data = Array.isArray(parsed.data) ? parsed.data : [];
    const vectors: (Float32Array | undefined)[] = new Array(expected);
    data.forEach((item, position) => {
      const index = typeof item.index === 'number' ? item.index : position;
      if (Array.isArray(item.embedding) && item.embedding.every((x) => typeof x === 'number')) {
        vectors[index] = normalizeInPlace(Float32Array.from(item.embedding as number[]));
      }
    });
    if (data.length !== expected || vectors.some((v) => v === undefined) || vectors.length !== expected) {
      throw new SupportbotError(
        'embedding-failed',
        `embedding server ${this.url} returned ${data.length} usable embeddings for ${expected} inputs`,
      );
    }
    return vectors as Float32Array[];
  }

  #backoff(attempt: number): number {
    const base = this.#retryBaseMs * 2 ** attempt;
    return Math.min(30_000, base / 2 + Math.random() * base * 0.5);
  }
}

/** `{base}/v1/embeddings`, accepting a base that already ends in `/v1`. */
export function embeddingsUrl(baseUrl: string): string {
  let base: URL;
  try {
    base = new URL(baseUrl);
  } catch {
    throw new SupportbotError('invalid-option', `embedding base URL is not a URL: ${baseUrl}`);
  }
  const path = base.pathname.replace(/\/+$/, '');
  base.pathname = `${path.endsWith('/v1') ? path : `${path}/v1`}/embeddings`;
  return base.toString();
}

/**
 * Delay from a `Retry-After` value in ms: delay-seconds or an HTTP-date (RFC 9110 §10.2.3),
 * capped at 60 s; `null` when absent or unparseable.
 */
export function retryAfterMs(value: string | null, now = Date.now()): number | null {
  if (value === null || value.trim() === '') return null;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Math.min(MAX_RETRY_AFTER_MS, Number(trimmed) * 1000);
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return null;
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, date - now));
}

function serverMessage(text: string): string {
  try {
    const parsed = JSON.parse(text) as EmbeddingsResponse;
    const message = typeof parsed.error === 'string' ? parsed.error : parsed.error?.message;
    if (message) return `: ${message.slice(0, 200)}`;
  } catch {
    // not JSON: fall through to the raw text
  }
  const trimmed = text.trim().slice(0, 200);
  return trimmed ? `: ${trimmed}` : '';
}

function describeFetchError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  if (cause?.code) return cause.code;
  if ((err as Error).name === 'TimeoutError') return 'timed out';
  return cause?.message ?? (err as Error).message;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
