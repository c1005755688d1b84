/**
 * The base model's own tokenizer and chat template, read offline from its folder:
 * `tokenizer.json` (the Hugging Face tokenizers format, run by transformers.js'
 * `PreTrainedTokenizer`) and `tokenizer_config.json` (special tokens, `add_bos_token`,
 * `chat_template` — a Jinja template rendered by @huggingface/jinja through transformers.js'
 * `apply_chat_template`, as `transformers`' `apply_chat_template` does in Python).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { PreTrainedTokenizer } from '@huggingface/transformers';
import type { ChatMessage } from '../../core/prompt.ts';

/** Tokenizer + chat template of a base model. */
export class ChatTokenizer {
  readonly #tok: PreTrainedTokenizer;
  readonly #config: Record<string, unknown>;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly addBos: boolean;
  readonly hasChatTemplate: boolean;

  private constructor(tok: PreTrainedTokenizer, config: Record<string, unknown>) {
    this.#tok = tok;
    this.#config = config;
    const id = (name: string): number | null => {
      const v = config[name];
      const text = typeof v === 'string' ? v : (v as { content?: string } | undefined)?.content;
      if (!text) return null;
      const ids = tok.convert_tokens_to_ids([text]) as number[];
      return typeof ids[0] === 'number' ? ids[0] : null;
    };
    this.bosId = id('bos_token');
    this.eosId = id('eos_token');
    this.addBos = config.add_bos_token === true;
    this.hasChatTemplate = typeof config.chat_template === 'string' || Array.isArray(config.chat_template);
  }

  /**
   * Reads `dir/tokenizer.json` and `dir/tokenizer_config.json`.
   * @throws Error when either file is missing or invalid.
   */
  static async load(dir: string): Promise<ChatTokenizer> {
    const json = JSON.parse(await readFile(path.join(dir, 'tokenizer.json'), 'utf8'));
    const config = JSON.parse(await readFile(path.join(dir, 'tokenizer_config.json'), 'utf8'));
    return new ChatTokenizer(new PreTrainedTokenizer(json, config), config);
  }

  /** Token ids of `text`; special-token strings in it become their ids; no BOS/EOS added. */
  encode(text: string): number[] {
    return this.#tok.encode(text, { add_special_tokens: false });
  }

  decode(ids: number[]): string {
    return this.#tok.decode(ids, { skip_special_tokens: false });
  }

  /**
   * Renders chat messages with the model's template.
   * @param addGenerationPrompt append the assistant header (the prompt part of an example).
   * @throws Error when the model has no chat template.
   */
  render(messages: ChatMessage[], addGenerationPrompt: boolean): string {
    if (!this.hasChatTemplate)
      throw new Error('the base model has no chat_template in tokenizer_config.json');
    return this.#tok.apply_chat_template(
      messages as unknown as Parameters<PreTrainedTokenizer['apply_chat_template']>[0],
      {
        tokenize: false,
        add_generation_prompt: addGenerationPrompt,
      },
    ) as string;
  }

  /** A `tokenizer_config.json` value, e.g. `eos_token`. */
  configValue(key: string): unknown {
    return this.#config[key];
  }
}
