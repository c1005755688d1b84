/**
 * `config.json` of a Hugging Face Llama-family causal LM (model_type llama, mistral, qwen2,
 * smollm uses llama), reduced to what the forward pass needs. Field names and defaults follow
 * transformers' `LlamaConfig` / `Qwen2Config`.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';

export interface LlamaConfig {
  modelType: string;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** q/k/v projections carry a bias (Qwen2 always; Llama when `attention_bias`). */
  attentionBias: boolean;
  /** The output projection is the embedding matrix (no `lm_head.weight`). */
  tieWordEmbeddings: boolean;
  maxPositionEmbeddings: number;
  bosTokenId: number | null;
  eosTokenId: number | number[] | null;
}

/** Model types whose architecture is the Llama block this module implements. */
export const SUPPORTED_MODEL_TYPES = ['llama', 'mistral', 'qwen2'] as const;

/**
 * Normalises a parsed config.json.
 * @throws Error for an unsupported model_type, a rope_scaling this implementation does not do,
 *   or heads that do not divide the hidden size.
 */
export function parseLlamaConfig(j: Record<string, unknown>): LlamaConfig {
  const modelType = String(j.model_type ?? 'llama');
  if (!(SUPPORTED_MODEL_TYPES as readonly string[]).includes(modelType))
    throw new Error(
      `model_type "${modelType}" is not supported (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`,
    );
  const scaling = j.rope_scaling as { rope_type?: string; type?: string } | null | undefined;
  const ropeType = scaling?.rope_type ?? scaling?.type;
  if (scaling && ropeType !== 'default')
    throw new Error(`rope_scaling "${ropeType}" is not supported by the tfjs trainer`);
  const num = (k: string, d?: number): number => {
    const v = j[k];
    if (typeof v === 'number') return v;
    if (d !== undefined) return d;
    throw new Error(`config.json lacks ${k}`);
  };
  const hiddenSize = num('hidden_size');
  const numHeads = num('num_attention_heads');
  const headDim = num('head_dim', hiddenSize / numHeads);
  if (!Number.isInteger(headDim) || headDim % 2 !== 0)
    throw new Error(`head_dim ${headDim} must be an even integer`);
  return {
    modelType,
    vocabSize: num('vocab_size'),
    hiddenSize,
    intermediateSize: num('intermediate_size'),
    numLayers: num('num_hidden_layers'),
    numHeads,
    numKvHeads: num('num_key_value_heads', numHeads),
    headDim,
    rmsNormEps: num('rms_norm_eps', 1e-6),
    ropeTheta: num('rope_theta', 10000),
    attentionBias: modelType === 'qwen2' ? true : Boolean(j.attention_bias),
    tieWordEmbeddings: Boolean(j.tie_word_embeddings ?? false),
    maxPositionEmbeddings: num('max_position_embeddings', 2048),
    bosTokenId: typeof j.bos_token_id === 'number' ? j.bos_token_id : null,
    eosTokenId: (j.eos_token_id as number | number[] | undefined) ?? null,
  };
}

/** Reads and normalises `dir/config.json`. */
export async function loadLlamaConfig(dir: string): Promise<LlamaConfig> {
  return parseLlamaConfig(JSON.parse(await readFile(path.join(dir, 'config.json'), 'utf8')));
}
