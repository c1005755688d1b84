/**
 * GGUF LoRA export for llama.cpp, laid out as llama.cpp's own `convert_lora_to_gguf.py` writes
 * it (the revision node-llama-cpp 3.21.1 bundles): metadata `general.type = adapter`,
 * `general.architecture`, `adapter.type = lora`, `adapter.lora.alpha` (f32); for each adapted
 * base tensor `blk.{i}.<name>.weight` a pair `.lora_a` (ne = [in, r], i.e. PEFT's A [r, in] as
 * is) and `.lora_b` (ne = [r, out], PEFT's B [out, r] as is). llama.cpp computes
 * W·x + scale·(alpha/r)·B·(A·x) (`llama-adapter.cpp`, `build_lora_mm` in `llama-graph.cpp`).
 *
 * For GGUF architecture `llama` the converter permutes q_proj/k_proj rows for llama.cpp's RoPE
 * layout (`training/export/permute.ts`); the LoRA converter applies the same permutation to
 * lora_B of q and k (A is untouched: the permutation acts on output rows). Qwen2 (NEOX rope)
 * is not permuted.
 */
import { type LoraPair, loraAdapterGguf, writeGguf } from '../gguf/writer.ts';
import type { LoraAdapter, LoraModule } from '../lora/lora.ts';
import type { LlamaConfig } from '../model/config.ts';
import type { NamedTensor } from '../model/safetensors.ts';
import { permuteRowsForLlamaRope } from './permute.ts';

/** llama.cpp tensor name stem of each HF module (`llama-arch.cpp` LLM_TENSOR_ATTN_Q etc.). */
export const GGUF_MODULE_NAMES: Record<LoraModule, string> = {
  q_proj: 'attn_q',
  k_proj: 'attn_k',
  v_proj: 'attn_v',
  o_proj: 'attn_output',
  gate_proj: 'ffn_gate',
  up_proj: 'ffn_up',
  down_proj: 'ffn_down',
};

/** GGUF `general.architecture` of an HF model_type (mistral converts to llama). */
export function ggufArchitecture(config: LlamaConfig): 'llama' | 'qwen2' {
  return config.modelType === 'qwen2' ? 'qwen2' : 'llama';
}

/** The adapter's pairs in GGUF layout (B of q/k permuted for the llama architecture). */
export async function ggufLoraPairs(adapter: LoraAdapter, config: LlamaConfig): Promise<LoraPair[]> {
  const snap = await adapter.snapshot();
  const arch = ggufArchitecture(config);
  const pairs: LoraPair[] = [];
  for (const key of adapter.pairs.keys()) {
    const [layer, module] = key.split('.') as [string, LoraModule];
    const a = snap.get(`lora.${key}.A`) as NamedTensor;
    const b = snap.get(`lora.${key}.B`) as NamedTensor;
    const [rank, nIn] = a.shape as [number, number];
    const nOut = b.shape[0] as number;
    let bData = b.data;
    if (arch === 'llama' && (module === 'q_proj' || module === 'k_proj')) {
      const heads = module === 'q_proj' ? config.numHeads : config.numKvHeads;
      bData = permuteRowsForLlamaRope(bData, nOut, rank, heads);
    }
    pairs.push({
      target: `blk.${layer}.${GGUF_MODULE_NAMES[module]}.weight`,
      nIn,
      nOut,
      rank,
      a: a.data,
      b: bData,
    });
  }
  return pairs;
}

/**
 * Writes the adapter as a GGUF LoRA file that llama.cpp / node-llama-cpp loads with the base
 * model's GGUF (`createContext({lora: {adapters: [{filePath, scale: 1}]}})`).
 */
export async function exportGgufLora(
  adapter: LoraAdapter,
  config: LlamaConfig,
  file: string,
  options: { name?: string } = {},
): Promise<string> {
  const { metadata, tensors } = loraAdapterGguf({
    architecture: ggufArchitecture(config),
    alpha: adapter.config.alpha,
    pairs: await ggufLoraPairs(adapter, config),
    ...(options.name ? { name: options.name } : {}),
  });
  await writeGguf(file, metadata, tensors);
  return file;
}
