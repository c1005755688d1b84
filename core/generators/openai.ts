import { AdapterRegistry, type AdapterSpec } from '../adapters.ts';
import {
  abortReason,
  deadline,
  type GenerateRequest,
  type GenerateResult,
  type Generator,
  GeneratorError,
  streamOf,
} from '../generator.ts';
import { assemblePrompt, checkCitations, type PromptTokenizer, PromptTooLongError } from '../prompt.ts';
import { cl100kTokenizer } from '../tokenizer.ts';

export interface OpenAIGeneratorOptions {
  /** Base URL including the version prefix, e.g. `http://localhost:8000/v1` (`LLM_BASE_URL`). */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <apiKey>` when set (`LLM_API_KEY`). */
  apiKey?: string;
  /** `model` for requests without an adapter: the served base model (`LLM_MODEL`). */
  model: string;
  /** Named adapters; an adapter's `model` is sent as the request's `model` (vLLM `--lora-modules`). */
  adapters?: AdapterRegistry | Record<string, AdapterSpec>;
  defaultAdapter?: string | null;
  /** The served model's context window in tokens (the server does not say); default 8192. */
  contextSize?: number;
  /**
   * Tokenizer used to fit the prompt. Default cl100k_base, an estimate for other models' tokens;
   * pass the served model's own when it is at hand.
   */
  tokenizer?: PromptTokenizer;
  /** `max_tokens`; default 512. */
  maxTokens?: number;
  /** `temperature`; default 0. */
  temperature?: number;
  /** Time limit per request including retries, in milliseconds; default 60 000. */
  timeoutMs?: number;
  /** Attempts after the first when the server is unreachable, 429 or 5xx before any token; default 2. */
  retries?: number;
  /** First retry delay in milliseconds, doubled each time (`Retry-After` wins when given); default 250. */
  retryDelayMs?: number;
  tone?: string;
  /** Defaults to the global `fetch`. */
  fetch?: typeof fetch;
}

/** An HTTP answer worth another try (the server may come back), or not. */
class AttemptError extends Error {
  constructor(
    readonly retryable: boolean,
    readonly error: GeneratorError,
    readonly retryAfterMs?: number,
  ) {
    super(error.message);
  }
}

/**
 * The `openai` generator: any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, Ollama,
 * OpenAI). Protocol (OpenAI API reference, "Create chat completion", streaming): `POST
 * {baseUrl}/chat/completions` with JSON `{model, messages, stream: true, max_tokens,
 * temperature}`; the reply is `text/event-stream` whose events are `data: <chat.completion.chunk
 * JSON>` with the text in `choices[0].delta.content`, ending with `data: [DONE]`. An adapter is
 * selected by sending its served name as `model` (vLLM multi-LoRA with `--enable-lora
 * --lora-modules name=path`).
 *
 * Failures: unreachable server, 429 and 5xx are retried with backoff, but only before the first
 * token (a reply is never spliced from two attempts); 4xx is not retried. All become
 * GeneratorError (`llm_unavailable`, `llm_rejected`, `llm_timeout`, `llm_bad_response`) so
 * `answer()` falls back to extractive.
 */
export class OpenAIGenerator implements Generator {
  readonly id: string;
  readonly adapters: AdapterRegistry;
  readonly #o: OpenAIGeneratorOptions;
  readonly #endpoint: string;

  constructor(options: OpenAIGeneratorOptions) {
    this.#o = options;
    this.#endpoint = `${options.baseUrl.replace(/\/+$/, '')}/chat/completions`;
    this.id = `openai:${options.model}`;
    this.adapters =
      options.adapters instanceof AdapterRegistry
        ? options.adapters
        : new AdapterRegistry(options.adapters ?? {});
  }

  /** Adds or replaces an adapter served under `model` on the server; used from the next request. */
  registerAdapter(name: string, model: string): void {
    this.adapters.register(name, { model });
  }

  async generate(request: GenerateRequest): Promise<GenerateResult> {
    const o = this.#o;
    const started = performance.now();
    const maxTokens = o.maxTokens ?? 512;
    const requested = request.adapter === undefined ? (o.defaultAdapter ?? null) : request.adapter;
    let model = o.model;
    if (requested !== null) {
      const spec = this.adapters.get(requested);
      if (!spec) throw new GeneratorError('llm_rejected', `unknown adapter "${requested}"`);
      if (!spec.model)
        throw new GeneratorError('llm_rejected', `adapter "${requested}" has no served model name`);
      model = spec.model;
    }
    let prompt: ReturnType<typeof assemblePrompt>;
    try {
      prompt = assemblePrompt({
        question: request.question,
        history: request.history,
        contexts: request.contexts,
        tone: o.tone,
        maxChars: request.maxChars,
        contextWindow: o.contextSize ?? 8192,
        reserveForReply: maxTokens,
        tokenizer: o.tokenizer ?? cl100kTokenizer,
        // OpenAI's cookbook counts ~3 tokens of framing per message plus 3 to prime the reply.
        messageOverhead: 4,
      });
    } catch (err) {
      if (err instanceof PromptTooLongError)
        throw new GeneratorError('llm_rejected', err.message, { cause: err });
      throw err;
    }
    const body = JSON.stringify({
      model,
      messages: prompt.messages,
      stream: true,
      max_tokens: maxTokens,
      temperature: o.temperature ?? 0,
    });

    const limit = deadline(request.signal, request.timeoutMs ?? o.timeoutMs ?? 60_000);
    const state = {
      text: '',
      firstTokenMs: undefined as number | undefined,
      usage: undefined as GenerateResult['usage'],
    };
    try {
      const retries = o.retries ?? 2;
      for (let attempt = 0; ; attempt++) {
        try {
          await this.#attempt(body, limit.signal, request, state, started);
          break;
        } catch (err) {
          if (!(err instanceof AttemptError)) throw err;
          if (!err.retryable || state.text.length > 0 || attempt >= retries) throw err.error;
          const delay = err.retryAfterMs ?? (o.retryDelayMs ?? 250) * 2 ** attempt;
          await sleep(delay, limit.signal);
        }
      }
    } catch (err) {
      if (request.signal?.aborted) throw abortReason(request.signal);
      if (limit.timedOut()) throw limit.signal.reason;
      if (err instanceof GeneratorError) throw err;
      if (err instanceof AttemptError) throw err.error;
      throw new GeneratorError('llm_unavailable', `${this.#endpoint}: ${(err as Error).message}`, {
        cause: err,
      });
    } finally {
      limit.dispose();
    }

    const checked = checkCitations(state.text.trim(), prompt.contextsUsed);
    return {
      text: checked.text,
      cited: checked.cited,
      invalidCitations: checked.invalid,
      contextsUsed: prompt.contextsUsed,
      adapter: requested ?? undefined,
      model,
      usage: state.usage ?? { promptTokens: prompt.promptTokens },
      firstTokenMs: state.firstTokenMs,
    };
  }

  stream(request: Omit<GenerateRequest, 'onToken'>): AsyncIterable<string> {
    return streamOf((r) => this.generate(r), request);
  }

  /** One HTTP request; throws AttemptError for HTTP/connection failures, saying if a retry may help. */
  async #attempt(
    body: string,
    signal: AbortSignal,
    request: GenerateRequest,
    state: { text: string; firstTokenMs?: number; usage?: GenerateResult['usage'] },
    started: number,
  ): Promise<void> {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'text/event-stream',
    };
    if (this.#o.apiKey) headers.authorization = `Bearer ${this.#o.apiKey}`;
    let res: Response;
    try {
      res = await (this.#o.fetch ?? fetch)(this.#endpoint, { method: 'POST', headers, body, signal });
    } catch (err) {
      if (signal.aborted) throw err;
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const why = cause?.code ?? cause?.message ?? (err as Error).message;
      throw new AttemptError(
        true,
        new GeneratorError(
          'llm_unavailable',
          `cannot reach the language model at ${this.#endpoint}: ${why}`,
          { cause: err },
        ),
      );
    }
    if (!res.ok) {
      const detail = await errorDetail(res);
      const what = `the language model server answered ${res.status}${detail ? `: ${detail}` : ''}`;
      if (res.status === 401 || res.status === 403)
        throw new AttemptError(false, new GeneratorError('llm_rejected', `${what} (check LLM_API_KEY)`));
      if (res.status === 429 || res.status >= 500) {
        const after = Number(res.headers.get('retry-after'));
        throw new AttemptError(
          true,
          new GeneratorError('llm_unavailable', what),
          Number.isFinite(after) && after > 0 ? Math.min(after * 1000, 10_000) : undefined,
        );
      }
      throw new AttemptError(false, new GeneratorError('llm_rejected', what));
    }
    if (!res.body)
      throw new AttemptError(true, new GeneratorError('llm_bad_response', 'empty response body'));

    let done = false;
    for await (const data of sseData(res.body)) {
      if (data === '[DONE]') {
        done = true;
        break;
      }
      let chunk: ChatCompletionChunk;
      try {
        chunk = JSON.parse(data) as ChatCompletionChunk;
      } catch (err) {
        throw new GeneratorError('llm_bad_response', `not JSON in the event stream: ${data.slice(0, 80)}`, {
          cause: err,
        });
      }
      if (chunk.error) {
        const e = new GeneratorError(
          'llm_unavailable',
          `the language model server failed: ${chunk.error.message ?? 'error'}`,
        );
        throw state.text ? e : new AttemptError(true, e);
      }
      if (chunk.usage)
        state.usage = {
          promptTokens: chunk.usage.prompt_tokens,
          completionTokens: chunk.usage.completion_tokens,
        };
      const piece = chunk.choices?.[0]?.delta?.content;
      if (!piece) continue;
      const room = request.maxChars - state.text.length;
      const kept = piece.length > room ? piece.slice(0, room) : piece;
      if (!kept) continue;
      state.firstTokenMs ??= performance.now() - started;
      state.text += kept;
      request.onToken?.(kept);
      if (state.text.length >= request.maxChars) {
        done = true;
        break;
      }
    }
    if (!done) {
      const e = new GeneratorError('llm_unavailable', 'the event stream ended before data: [DONE]');
      throw state.text ? e : new AttemptError(true, e);
    }
  }
}

/** The fields of a `chat.completion.chunk` this generator reads. */
interface ChatCompletionChunk {
  choices?: Array<{ delta?: { content?: string | null }; finish_reason?: string | null }>;
  usage?: { prompt_tokens?: number; completion_tokens?: number };
  error?: { message?: string };
}

/**
 * The `data` of each event of a `text/event-stream` body (WHATWG HTML, "Server-sent events",
 * event stream interpretation): lines end in CRLF, LF or CR; `data:` lines (one optional space
 * after the colon) accumulate, joined by LF, and a blank line dispatches the event; lines starting
 * with `:` are comments; other fields are ignored.
 */
export async function* sseData(body: ReadableStream<Uint8Array>): AsyncIterable<string> {
  const decoder = new TextDecoder();
  let buffer = '';
  let data: string[] = [];
  const lines = function* (final: boolean): IterableIterator<string> {
    while (true) {
      const m = /\r\n|\n|\r/.exec(buffer);
      // A lone CR at the end may be the first half of CRLF: wait for more unless the stream ended.
      if (!m || (m[0] === '\r' && m.index === buffer.length - 1 && !final)) return;
      const line = buffer.slice(0, m.index);
      buffer = buffer.slice(m.index + m[0].length);
      yield line;
    }
  };
  const handle = (line: string): string | null => {
    if (line === '') {
      const event = data.length > 0 ? data.join('\n') : null;
      data = [];
      return event;
    }
    if (line.startsWith(':')) return null;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data.push(value);
    return null;
  };
  for await (const bytes of body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(bytes, { stream: true });
    for (const line of lines(false)) {
      const event = handle(line);
      if (event !== null) yield event;
    }
  }
  buffer += decoder.decode();
  for (const line of lines(true)) {
    const event = handle(line);
    if (event !== null) yield event;
  }
  // The spec discards an event not ended by a blank line at end of stream; so do we.
}

async function errorDetail(res: Response): Promise<string> {
  const text = (await res.text().catch(() => '')).trim();
  try {
    const json = JSON.parse(text) as { error?: { message?: string } | string; message?: string };
    const msg = typeof json.error === 'string' ? json.error : (json.error?.message ?? json.message);
    if (msg) return msg.slice(0, 200);
  } catch {
    // not JSON: fall through to the raw text
  }
  return text.slice(0, 200);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
