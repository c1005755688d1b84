import { countTokens, decode, encode } from 'gpt-tokenizer/encoding/cl100k_base';

/**
 * Counts tokens the way a model would. The chunker measures chunk sizes with it and prompt
 * assembly budgets context with it. Implementations: `cl100kTokenizer` (the default, OpenAI's
 * cl100k_base BPE via gpt-tokenizer, embedded, no download) and, when a model is configured, that
 * model's own `tokenizer.json`.
 */
export interface Tokenizer {
  /** Name for logs and the store's metadata, e.g. `cl100k_base`. */
  readonly id: string;
  /** Number of tokens in `text` (no special tokens added). */
  count(text: string): number;
  /** Token ids of `text`. */
  encode(text: string): number[];
  /** Text of token ids. May yield U+FFFD where ids cut a multi-byte character. */
  decode(ids: number[]): string;
}

/** cl100k_base, the BPE of GPT-3.5/4 (tiktoken); a good proxy for modern LLM token counts. */
export const cl100kTokenizer: Tokenizer = {
  id: 'cl100k_base',
  count: (text) => countTokens(text),
  encode: (text) => encode(text),
  decode: (ids) => decode(ids),
};
