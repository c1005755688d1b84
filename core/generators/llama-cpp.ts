import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  type ChatHistoryItem,
  type ChatWrapper,
  GeneralChatWrapper,
  getLlama,
  type Llama,
  LlamaChat,
  type LlamaContext,
  type LlamaContextSequence,
  LlamaLogLevel,
  type LlamaModel,
  resolveChatWrapper,
  type Token,
} from 'node-llama-cpp';
import { AdapterRegistry, type AdapterSpec, adapterFileKey } from '../adapters.ts';
import { SupportbotError } from '../errors.ts';
import {
  abortReason,
  deadline,
  type GenerateRequest,
  type GenerateResult,
  type Generator,
  GeneratorError,
  streamOf,
} from '../generator.ts';
import {
  assemblePrompt,
  type ChatMessage,
  checkCitations,
  type PromptTokenizer,
  PromptTooLongError,
} from '../prompt.ts';

export interface LlamaCppGeneratorOptions {
  /** GGUF base model file (`LLM_MODEL_PATH`). */
  modelPath: string;
  /** Named adapters (`llm.adapters.map`); a registry is shared, so registrations elsewhere show up here. */
  adapters?: AdapterRegistry | Record<string, AdapterSpec>;
  /** Adapter used when a request names none; `null` (default) is the base model. */
  defaultAdapter?: string | null;
  /** Context window in tokens; default the model's training context, at most 4096. */
  contextSize?: number;
  /** Concurrent requests per adapter (sequences of its context); default 2. */
  sequencesPerAdapter?: number;
  /** Adapter contexts kept alive; the least recently used idle one is freed beyond it. Default 4. */
  maxAdapterContexts?: number;
  /** CPU threads per context; default node-llama-cpp's choice. Tests pass 1. */
  threads?: number;
  /** Longest reply in tokens (also reserved in the context window); default 512. */
  maxTokens?: number;
  /** Sampling temperature; default 0 (greedy, deterministic). */
  temperature?: number;
  /** Time limit per request in milliseconds, queueing included; default 60 000. */
  timeoutMs?: number;
  /** Tone paragraph of the system prompt (see `core/prompt.ts`). */
  tone?: string;
  /**
   * Chat format. Default: the GGUF's own `tokenizer.chat_template` (node-llama-cpp's
   * `resolveChatWrapper` maps known templates to its built-in wrappers and runs others as
   * Jinja); a GGUF without a template gets node-llama-cpp's `GeneralChatWrapper`
   * (`### User` / `### Response`-style plain-text turns), which needs no special tokens.
   */
  chatWrapper?: ChatWrapper;
  /** Share a `Llama` runtime; otherwise one is created (CPU unless `gpu` is set) and owned. */
  llama?: Llama;
  gpu?: false | 'auto';
  /** Receives llama.cpp's log lines (the real reason behind "Failed to load model"). */
  logger?: (level: string, message: string) => void;
}

/** One adapter's context and its sequences (node-llama-cpp applies LoRA per context). */
interface Pool {
  key: string;
  context: LlamaContext;
  free: LlamaContextSequence[];
  waiters: Array<(seq: LlamaContextSequence) => void>;
  /** Requests holding or waiting for one of its sequences. */
  busy: number;
  lastUsed: number;
  /** Set when the adapter's file changed: freed as soon as it is idle. */
  retired: boolean;
  /** Set (synchronously) when its context is being disposed: never hand it out again. */
  closed: boolean;
}

const BASE = 'base';

/**
 * The `llama-cpp` generator: one GGUF base model loaded with node-llama-cpp 3.21.1, and a small
 * pool of contexts, one per LoRA adapter in use (LoRA is applied per context:
 * `model.createContext({lora: {adapters: [{filePath, scale}]}})`), each with
 * `sequencesPerAdapter` sequences for concurrent requests. The adapter is chosen per request
 * (`request.adapter`, else `defaultAdapter`) and resolved by name through the registry on every
 * request; the pool is keyed by the adapter file's path, size and mtime, so `registerAdapter` or
 * a file replaced in place takes effect on the next request without a restart.
 *
 * Prompts come from `core/prompt.ts`, fitted to the context window with the model's own
 * tokenizer and chat template; generation stops at the end-of-generation token, `maxTokens`, or
 * `maxChars`. Create with `LlamaCppGenerator.load()`, free with `dispose()`.
 */
export class LlamaCppGenerator implements Generator {
  readonly id: string;
  readonly model: LlamaModel;
  readonly chatWrapper: ChatWrapper;
  readonly contextSize: number;
  readonly adapters: AdapterRegistry;
  readonly #options: LlamaCppGeneratorOptions;
  readonly #llama: Llama;
  readonly #ownsLlama: boolean;
  readonly #pools = new Map<string, Promise<Pool>>();
  readonly #tokenizer: PromptTokenizer;
  /** Adapter file version (path, size, mtime) → the path it is loaded from; see `#loadPath`. */
  readonly #versions = new Map<string, string>();
  #linkDir: string | null = null;
  #disposed = false;

  private constructor(
    options: LlamaCppGeneratorOptions,
    llama: Llama,
    ownsLlama: boolean,
    model: LlamaModel,
  ) {
    this.#options = options;
    this.#llama = llama;
    this.#ownsLlama = ownsLlama;
    this.model = model;
    this.id = `llama-cpp:${path.basename(options.modelPath)}`;
    this.adapters =
      options.adapters instanceof AdapterRegistry
        ? options.adapters
        : new AdapterRegistry(options.adapters ?? {});
    this.contextSize = options.contextSize ?? Math.min(model.trainContextSize, 4096);
    const template = model.fileInfo.metadata.tokenizer?.chat_template;
    this.chatWrapper =
      options.chatWrapper ?? (template ? resolveChatWrapper(model) : null) ?? new GeneralChatWrapper();
    this.#tokenizer = {
      count: (text) => model.tokenize(text).length,
      encode: (text) => model.tokenize(text) as number[],
      decode: (ids) => model.detokenize(ids as Token[]),
    };
  }

  /**
   * Loads the base model (and a CPU `Llama` runtime unless one is passed).
   * @throws GeneratorError `llm_unavailable` when the file is missing or not a loadable GGUF;
   *   the llama.cpp reason goes to `options.logger`.
   */
  static async load(options: LlamaCppGeneratorOptions): Promise<LlamaCppGenerator> {
    const ownsLlama = !options.llama;
    const llama =
      options.llama ??
      (await getLlama({
        gpu: options.gpu ?? false,
        logLevel: LlamaLogLevel.warn,
        logger: options.logger ? (level, message) => options.logger?.(level, message) : undefined,
      }));
    try {
      const model = await llama.loadModel({ modelPath: options.modelPath });
      return new LlamaCppGenerator(options, llama, ownsLlama, model);
    } catch (err) {
      if (ownsLlama) await llama.dispose();
      throw new GeneratorError(
        'llm_unavailable',
        `cannot load GGUF model ${options.modelPath}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
  }

  /**
   * Adds or replaces a named adapter at runtime (e.g. after training promotes one); the next
   * request naming it uses the new file.
   * @throws SupportbotError `adapter_invalid` for a bad name.
   */
  registerAdapter(name: string, filePath: string, scale = 1): void {
    this.adapters.register(name, { path: path.resolve(filePath), scale });
  }

  /** The model's tokenizer, for prompt assembly and the chunker. */
  get tokenizer(): PromptTokenizer {
    return this.#tokenizer;
  }

  /** Exact prompt size: the messages rendered by the chat template, tokenized by the model. */
  countMessages(messages: ChatMessage[]): number {
    const state = this.chatWrapper.generateContextState({ chatHistory: toChatHistory(messages) });
    return state.contextText.tokenize(this.model.tokenizer).length;
  }

  async generate(request: GenerateRequest): Promise<GenerateResult> {
    if (this.#disposed) throw new GeneratorError('llm_unavailable', 'the llama-cpp generator was disposed');
    const started = performance.now();
    const o = this.#options;
    const maxTokens = o.maxTokens ?? 512;
    const { adapterName, spec } = this.#resolveAdapter(request.adapter);
    const limit = deadline(request.signal, request.timeoutMs ?? o.timeoutMs ?? 60_000);
    // A third reason to stop: the reply reached maxChars. It ends generation without an error.
    const lengthStop = new AbortController();
    const signal = AbortSignal.any([limit.signal, lengthStop.signal]);
    let prompt: ReturnType<typeof assemblePrompt>;
    try {
      prompt = assemblePrompt({
        question: request.question,
        history: request.history,
        contexts: request.contexts,
        tone: o.tone,
        maxChars: request.maxChars,
        contextWindow: this.contextSize,
        reserveForReply: maxTokens,
        tokenizer: this.#tokenizer,
        countMessages: (m) => this.countMessages(m),
      });
    } catch (err) {
      limit.dispose();
      if (err instanceof PromptTooLongError)
        throw new GeneratorError('llm_rejected', err.message, { cause: err });
      throw err;
    }

    let pool: Pool | undefined;
    let sequence: LlamaContextSequence | undefined;
    let text = '';
    let completionTokens = 0;
    let firstTokenMs: number | undefined;
    try {
      pool = await this.#pool(spec);
      sequence = await this.#acquire(pool, signal);
      const chat = new LlamaChat({ contextSequence: sequence, chatWrapper: this.chatWrapper });
      try {
        await chat.generateResponse(toChatHistory(prompt.messages), {
          maxTokens,
          temperature: o.temperature ?? 0,
          signal,
          stopOnAbortSignal: false,
          onToken: (tokens) => {
            completionTokens += tokens.length;
          },
          onTextChunk: (chunk) => {
            if (lengthStop.signal.aborted || !chunk) return;
            firstTokenMs ??= performance.now() - started;
            const room = request.maxChars - text.length;
            const piece = chunk.length > room ? chunk.slice(0, room) : chunk;
            text += piece;
            if (piece) request.onToken?.(piece);
            if (text.length >= request.maxChars) lengthStop.abort();
          },
        });
      } finally {
        chat.dispose({ disposeSequence: false });
      }
    } catch (err) {
      if (!lengthStop.signal.aborted || limit.signal.aborted) {
        if (request.signal?.aborted) throw abortReason(request.signal);
        if (limit.timedOut()) throw limit.signal.reason;
        if (err instanceof GeneratorError) throw err;
        // A missing adapter file (SupportbotError adapter_missing) or a native failure.
        const why =
          err instanceof SupportbotError
            ? err.message
            : `llama.cpp generation failed: ${(err as Error).message}`;
        throw new GeneratorError('llm_unavailable', why, { cause: err });
      }
    } finally {
      limit.dispose();
      if (pool) this.#release(pool, sequence);
    }

    const checked = checkCitations(text.trim(), prompt.contextsUsed);
    return {
      text: checked.text,
      cited: checked.cited,
      invalidCitations: checked.invalid,
      contextsUsed: prompt.contextsUsed,
      adapter: adapterName ?? undefined,
      model: path.basename(o.modelPath),
      usage: { promptTokens: prompt.promptTokens, completionTokens },
      firstTokenMs,
    };
  }

  stream(request: Omit<GenerateRequest, 'onToken'>): AsyncIterable<string> {
    return streamOf((r) => this.generate(r), request);
  }

  /** Frees every context and the model (and the runtime when this generator created it). */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    const pools = await Promise.allSettled(this.#pools.values());
    this.#pools.clear();
    for (const p of pools) if (p.status === 'fulfilled' && !p.value.closed) await p.value.context.dispose();
    await this.model.dispose();
    if (this.#ownsLlama) await this.#llama.dispose();
    if (this.#linkDir) await rm(this.#linkDir, { recursive: true, force: true });
  }

  /** Live contexts, for status and tests: pool key (`base` or adapter file, size, mtime, scale) and busy sequences. */
  async poolStats(): Promise<Array<{ key: string; busy: number; retired: boolean }>> {
    const pools = await Promise.allSettled(this.#pools.values());
    return pools.flatMap((p) =>
      p.status === 'fulfilled' ? [{ key: p.value.key, busy: p.value.busy, retired: p.value.retired }] : [],
    );
  }

  #resolveAdapter(requested: string | null | undefined): {
    adapterName: string | null;
    spec: AdapterSpec | null;
  } {
    const name = requested === undefined ? (this.#options.defaultAdapter ?? null) : requested;
    if (name === null) return { adapterName: null, spec: null };
    const spec = this.adapters.get(name);
    if (!spec) throw new GeneratorError('llm_rejected', `unknown adapter "${name}"`);
    if (!spec.path)
      throw new GeneratorError('llm_rejected', `adapter "${name}" has no GGUF path (llama-cpp needs one)`);
    return { adapterName: name, spec };
  }

  async #pool(spec: AdapterSpec | null): Promise<Pool> {
    const filePath = spec?.path;
    const fileKey = filePath ? await adapterFileKey(filePath) : BASE;
    const key = filePath ? `${fileKey}\u0000${spec?.scale ?? 1}` : BASE;
    let pending = this.#pools.get(key);
    if (!pending) {
      // Contexts of the same file with another size/mtime are stale versions: retire them.
      if (filePath) {
        for (const [other, p] of this.#pools) {
          if (other !== key && other.startsWith(`${filePath}\u0000`)) {
            this.#pools.delete(other);
            void p.then((old) => this.#retire(old));
          }
        }
      }
      pending = (filePath ? this.#loadPath(filePath, fileKey) : Promise.resolve(undefined)).then((loadPath) =>
        this.#createPool(key, loadPath, spec?.scale ?? 1),
      );
      this.#pools.set(key, pending);
      pending.catch(() => this.#pools.delete(key));
      await this.#evictIdle(key);
    }
    const pool = await pending;
    // Evicted or retired while we waited for it: look again.
    if (pool.closed) return this.#pool(spec);
    // Reserve it synchronously, so eviction (which checks `busy`) cannot close it under us.
    pool.busy++;
    pool.lastUsed = performance.now();
    return pool;
  }

  /**
   * The path to load an adapter version from. node-llama-cpp caches LoRA adapters by path for the
   * model's lifetime (`LlamaModel._loraAdapters`), so a file replaced in place would keep serving
   * the old weights: the first version of a file loads from its own path, each later version
   * through a new symlink to it in a private temp folder (removed on `dispose()`). Every version
   * stays in memory until the generator is disposed; a promoted file should be written atomically
   * (write elsewhere, then rename over it).
   */
  async #loadPath(filePath: string, fileKey: string): Promise<string> {
    const known = this.#versions.get(fileKey);
    if (known) return known;
    const seen = [...this.#versions.keys()].some((k) => k.startsWith(`${filePath}\u0000`));
    let loadPath = filePath;
    if (seen) {
      this.#linkDir ??= await mkdtemp(path.join(tmpdir(), 'supportbot-lora-'));
      loadPath = path.join(this.#linkDir, `v${this.#versions.size}-${path.basename(filePath)}`);
      await symlink(filePath, loadPath);
    }
    this.#versions.set(fileKey, loadPath);
    return loadPath;
  }

  async #createPool(key: string, filePath: string | undefined, scale: number): Promise<Pool> {
    const o = this.#options;
    try {
      const context = await this.model.createContext({
        contextSize: this.contextSize,
        sequences: o.sequencesPerAdapter ?? 2,
        ...(o.threads ? { threads: o.threads } : {}),
        ...(filePath ? { lora: { adapters: [{ filePath, scale }] } } : {}),
      });
      return {
        key,
        context,
        free: [],
        waiters: [],
        busy: 0,
        lastUsed: performance.now(),
        retired: false,
        closed: false,
      };
    } catch (err) {
      const what = filePath ? `LoRA adapter ${filePath}` : 'a context';
      throw new GeneratorError('llm_unavailable', `cannot create ${what}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  /** Frees least recently used idle pools beyond `maxAdapterContexts` (never `keep`). */
  async #evictIdle(keep: string): Promise<void> {
    const max = this.#options.maxAdapterContexts ?? 4;
    if (this.#pools.size <= max) return;
    const settled: Pool[] = [];
    for (const [key, p] of this.#pools) {
      if (key === keep) continue;
      const pool = await p.catch(() => null);
      if (pool && pool.busy === 0) settled.push(pool);
    }
    settled.sort((a, b) => a.lastUsed - b.lastUsed);
    for (const pool of settled) {
      if (this.#pools.size <= max) break;
      if (pool.busy > 0 || pool.closed) continue;
      this.#pools.delete(pool.key);
      this.#close(pool);
    }
  }

  #retire(pool: Pool): void {
    pool.retired = true;
    if (pool.busy === 0) this.#close(pool);
  }

  #close(pool: Pool): void {
    if (pool.closed) return;
    pool.closed = true;
    void pool.context.dispose();
  }

  /** A sequence of a pool reserved by `#pool`; waits (abortably) when all are in use. */
  #acquire(pool: Pool, signal: AbortSignal): Promise<LlamaContextSequence> {
    signal.throwIfAborted();
    const free = pool.free.pop();
    if (free) return Promise.resolve(free);
    if (pool.context.sequencesLeft > 0) return Promise.resolve(pool.context.getSequence());
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        pool.waiters.splice(pool.waiters.indexOf(waiter), 1);
        reject(signal.reason);
      };
      const waiter = (seq: LlamaContextSequence) => {
        signal.removeEventListener('abort', onAbort);
        resolve(seq);
      };
      pool.waiters.push(waiter);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Ends a reservation, handing the sequence (if any) to the next waiter. */
  #release(pool: Pool, sequence: LlamaContextSequence | undefined): void {
    pool.busy--;
    if (sequence) {
      const next = pool.waiters.shift();
      if (next) next(sequence);
      else pool.free.push(sequence);
    }
    if (pool.retired && pool.busy === 0) this.#close(pool);
  }
}

/**
 * Our chat messages as node-llama-cpp chat history, ending with an empty model turn (the one to
 * generate).
 */
function toChatHistory(messages: ChatMessage[]): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = messages.map((m) =>
    m.role === 'system'
      ? { type: 'system', text: m.content }
      : m.role === 'user'
        ? { type: 'user', text: m.content }
        : { type: 'model', response: [m.content] },
  );
  history.push({ type: 'model', response: [] });
  return history;
}
