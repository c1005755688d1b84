import { SupportbotError } from './errors.ts';
import type { SearchHit, Turn } from './types.ts';

/** Input to a generator. `contexts` are numbered from 1 in the prompt: `[1]` is `contexts[0]`. */
export interface GenerateRequest {
  question: string;
  /** Earlier turns of the thread, oldest first (may be empty). */
  history: Turn[];
  /** Retrieved chunks, best first; the only knowledge the reply may use. */
  contexts: SearchHit[];
  /** Upper bound on the reply length in characters. */
  maxChars: number;
  /**
   * Cancels the request. An aborted request rejects with the signal's reason (or an `AbortError`)
   * and never falls back: the caller no longer wants an answer.
   */
  signal?: AbortSignal;
  /**
   * Name of the LoRA adapter to use (see `core/adapters.ts`); `undefined` uses the generator's
   * default, `null` forces the base model. Ignored by generators without adapters (extractive).
   */
  adapter?: string | null;
  /** Overrides the generator's own time limit for this request, in milliseconds. */
  timeoutMs?: number;
  /** Called with each piece of reply text as it is generated (streaming), in order. */
  onToken?: (text: string) => void;
}

/**
 * A generator's reply under the answer contract (DESIGN.md): Markdown whose `[n]` markers refer
 * to `contexts[n-1]`, or an escalation. The caller turns context numbers into article citations.
 */
export interface GenerateResult {
  text: string;
  /** 1-based context numbers the text cites, in order of first use. */
  cited: number[];
  /** Set when the reply ended with the escalation marker `ESCALATE: <reason>`. */
  escalate?: { reason: string };
  /** Set when the generator found nothing in the contexts that answers the question. */
  abstain?: boolean;
  /** Adapter that ran (its name), when one did. */
  adapter?: string;
  /** Model that ran: a GGUF file name, or the server's `model` value. */
  model?: string;
  /**
   * How many of `contexts` the prompt held (a prefix: the lowest-ranked are dropped first to fit
   * the context window). Markers beyond it were removed from `text`.
   */
  contextsUsed?: number;
  /** `[n]` markers the model wrote that referred to no supplied context and were removed. */
  invalidCitations?: number;
  /** Token counts, when the backend reports them. */
  usage?: { promptTokens?: number; completionTokens?: number };
  /** Milliseconds from the request to the first generated text (streaming backends). */
  firstTokenMs?: number;
}

/**
 * The generator seam. Implementations: `extractive` (no LLM, the embedded default),
 * `llama-cpp` (node-llama-cpp, GGUF base + GGUF LoRA adapters) and `openai` (any
 * OpenAI-compatible `/v1/chat/completions` server).
 */
export interface Generator {
  /** `extractive`, `llama-cpp:<model>`, `openai:<model>`. */
  readonly id: string;
  /**
   * Generates one reply; `request.onToken` receives the text as it streams.
   * @throws GeneratorError when the backend is down (`llm_unavailable`), refuses the request
   *   (`llm_rejected`) or exceeds its time limit (`llm_timeout`); `answer()` then falls back to
   *   extractive. Rejects with the abort reason when `request.signal` is aborted.
   */
  generate(request: GenerateRequest): Promise<GenerateResult>;
  /** The reply as an async stream of text pieces; same errors as `generate`. Optional. */
  stream?(request: Omit<GenerateRequest, 'onToken'>): AsyncIterable<string>;
  /** Releases models, contexts and connections. Optional. */
  dispose?(): Promise<void>;
}

/** Why a generator failed; `answer()` says the matching thing in the fallback note. */
export type GeneratorErrorCode = 'llm_unavailable' | 'llm_timeout' | 'llm_rejected' | 'llm_bad_response';

/** A generator failure that warrants the extractive fallback. */
export class GeneratorError extends SupportbotError {
  constructor(
    override readonly code: GeneratorErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
    this.name = 'GeneratorError';
  }
}

/**
 * Streams a `generate` call: runs `generate({...request, onToken})` and yields each piece.
 * Errors of the call surface from the iterator; leaving the loop early aborts the call.
 */
export async function* streamOf(
  generate: (request: GenerateRequest) => Promise<GenerateResult>,
  request: Omit<GenerateRequest, 'onToken'>,
): AsyncIterable<string> {
  const queue: string[] = [];
  let wake: (() => void) | null = null;
  let finished = false;
  let failure: { error: unknown } | null = null;
  const stop = new AbortController();
  const signal = request.signal ? AbortSignal.any([request.signal, stop.signal]) : stop.signal;
  const notify = () => {
    wake?.();
    wake = null;
  };
  const run = generate({
    ...request,
    signal,
    onToken: (t) => {
      queue.push(t);
      notify();
    },
  }).then(
    () => {
      finished = true;
      notify();
    },
    (error: unknown) => {
      failure = { error };
      finished = true;
      notify();
    },
  );
  try {
    while (true) {
      while (queue.length > 0) yield queue.shift() as string;
      if (finished) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
    if (failure) throw (failure as { error: unknown }).error;
  } finally {
    if (!finished) {
      stop.abort(new DOMException('stream closed by the consumer', 'AbortError'));
      await run;
    }
  }
}

/**
 * A signal that fires on the caller's `signal` or after `timeoutMs`, and tells which one fired.
 * `dispose()` clears the timer.
 */
export function deadline(
  signal: AbortSignal | undefined,
  timeoutMs: number,
): { signal: AbortSignal; timedOut: () => boolean; dispose: () => void } {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(
      new GeneratorError('llm_timeout', `the language model did not finish within ${timeoutMs} ms`),
    );
  }, timeoutMs);
  const onAbort = () => controller.abort(signal?.reason);
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });
  return {
    signal: controller.signal,
    timedOut: () => timedOut,
    dispose: () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    },
  };
}

/** The error to reject with when the caller's signal aborted: its reason, else an AbortError. */
export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('the request was aborted', 'AbortError');
}
