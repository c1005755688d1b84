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
  signal?: AbortSignal;
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
}

/**
 * The generator seam. Implementations: `extractive` (no LLM, the embedded default), and in a
 * later issue node-llama-cpp (GGUF + LoRA adapters) and OpenAI-compatible servers.
 */
export interface Generator {
  /** `extractive`, `llama-cpp:<model>`, `openai:<model>`. */
  readonly id: string;
  /** @throws when the backend is down or times out; `answer()` then falls back to extractive. */
  generate(request: GenerateRequest): Promise<GenerateResult>;
}
