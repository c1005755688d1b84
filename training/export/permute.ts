/**
 * The q/k row permutation between Hugging Face's RoPE layout and llama.cpp's for
 * `LLM_ARCH_LLAMA` (see `training/model/llama.ts` for why it exists).
 *
 * Source: `LlamaModel.permute` in llama.cpp's `convert_hf_to_gguf.py` (the revision bundled with
 * node-llama-cpp 3.21.1): `w.reshape(n_head, 2, rows // n_head // 2, *rest).swapaxes(1, 2)`,
 * where n_head is the KV head count for k_proj. Within each head of d rows, output row 2j + t
 * takes input row t·d/2 + j (j < d/2, t ∈ {0, 1}). It applies to the q/k weights, their biases,
 * and — because the permutation acts on output rows — to a LoRA pair's B matrix (A is unchanged),
 * which is what `convert_lora_to_gguf.py` does through its LoRA tensor wrapper.
 */

/**
 * Permutes the rows of a row-major [rows, cols] matrix (or a bias, cols = 1) from the HF layout
 * into llama.cpp's.
 * @throws Error when rows is not a multiple of 2·nHead.
 */
export function permuteRowsForLlamaRope(
  data: Float32Array,
  rows: number,
  cols: number,
  nHead: number,
): Float32Array {
  const d = rows / nHead;
  if (!Number.isInteger(d) || d % 2 !== 0)
    throw new Error(`rows ${rows} are not a multiple of 2 × ${nHead} heads`);
  const out = new Float32Array(data.length);
  for (let h = 0; h < nHead; h++)
    for (let j = 0; j < d / 2; j++)
      for (let t = 0; t < 2; t++) {
        const dst = h * d + 2 * j + t;
        const src = h * d + t * (d / 2) + j;
        out.set(data.subarray(src * cols, (src + 1) * cols), dst * cols);
      }
  return out;
}
