/**
 * A Llama-family decoder (Llama, Mistral, Qwen2, SmolLM, TinyLlama) in tfjs, for LoRA training
 * and for checking against llama.cpp. Architecture as in transformers' `modeling_llama.py`:
 * token embedding → N × [RMSNorm → self-attention (RoPE, grouped-query, causal) → residual →
 * RMSNorm → SwiGLU MLP → residual] → RMSNorm → LM head (or the tied embedding matrix).
 *
 * RoPE layout. This module keeps Hugging Face's weights untouched and applies RoPE the HF way,
 * "rotate_half": within each head of dimension d, component i pairs with i + d/2 and
 * rotates by position·θ^(−2i/d) (`apply_rotary_pos_emb`). llama.cpp's `LLM_ARCH_LLAMA` instead
 * rotates adjacent pairs (2i, 2i+1) (`LLAMA_ROPE_TYPE_NORM`), so llama.cpp's HF→GGUF converter
 * permutes the rows of q_proj and k_proj per head: GGUF row h·d + 2j + t = HF row h·d + t·d/2 + j
 * (`permute()` in convert_hf_to_gguf.py; for k with the KV head count). Both then compute the
 * same attention. Qwen2 GGUFs use NEOX rope (rotate_half too) and are not permuted. See
 * `training/export/gguf-lora.ts`, which applies the same permutation to LoRA B matrices.
 *
 * Weights are frozen tf.Tensors (never variables), so gradients flow only into LoRA variables.
 */
import * as tf from '@tensorflow/tfjs';
import type { LoraAdapter, LoraModule } from '../lora/lora.ts';
import { type LlamaConfig, loadLlamaConfig } from './config.ts';
import { type NamedTensor, readModelWeights } from './safetensors.ts';

interface Linear {
  /** Weight transposed to [in, out], so y = x·wT. */
  wT: tf.Tensor2D;
  bias?: tf.Tensor1D;
}

interface Layer {
  inputNorm: tf.Tensor1D;
  postNorm: tf.Tensor1D;
  q: Linear;
  k: Linear;
  v: Linear;
  o: Linear;
  gate: Linear;
  up: Linear;
  down: Linear;
}

export interface ForwardOptions {
  /** Adapter to apply (its `enabled` flag is honoured). */
  lora?: LoraAdapter | null;
  /** Training mode: LoRA dropout active. */
  training?: boolean;
  /** Seed for this call's dropout masks, so runs (and resumed runs) are reproducible. */
  dropoutSeed?: number;
}

/** The frozen base model. `dispose()` frees its tensors. */
export class LlamaModel {
  readonly config: LlamaConfig;
  readonly #embed: tf.Tensor2D;
  /** LM head transposed, [hidden, vocab]. */
  readonly #headT: tf.Tensor2D;
  readonly #finalNorm: tf.Tensor1D;
  readonly #layers: Layer[];
  readonly #ropeCache = new Map<number, { cos: tf.Tensor2D; sin: tf.Tensor2D }>();

  private constructor(config: LlamaConfig, weights: Map<string, NamedTensor>) {
    this.config = config;
    const take = (name: string, shape?: number[]): NamedTensor => {
      const t = weights.get(name);
      if (!t) throw new Error(`weight ${name} is missing from the checkpoint`);
      if (shape && t.shape.join() !== shape.join())
        throw new Error(`weight ${name} has shape [${t.shape}], expected [${shape}]`);
      return t;
    };
    const c = config;
    const vec = (name: string, n: number) => tf.tensor1d(take(name, [n]).data);
    const transposed = (name: string, nOut: number, nIn: number): tf.Tensor2D => {
      const w = tf.tensor2d(take(name, [nOut, nIn]).data, [nOut, nIn]);
      const t = tf.transpose(w) as tf.Tensor2D;
      w.dispose();
      return t;
    };
    const linear = (prefix: string, nIn: number, nOut: number, bias: boolean): Linear => ({
      wT: transposed(`${prefix}.weight`, nOut, nIn),
      ...(bias ? { bias: vec(`${prefix}.bias`, nOut) } : {}),
    });
    this.#embed = tf.tensor2d(take('model.embed_tokens.weight', [c.vocabSize, c.hiddenSize]).data, [
      c.vocabSize,
      c.hiddenSize,
    ]);
    this.#headT =
      c.tieWordEmbeddings || !weights.has('lm_head.weight')
        ? (tf.transpose(this.#embed) as tf.Tensor2D)
        : transposed('lm_head.weight', c.vocabSize, c.hiddenSize);
    this.#finalNorm = vec('model.norm.weight', c.hiddenSize);
    const q = c.numHeads * c.headDim;
    const kv = c.numKvHeads * c.headDim;
    this.#layers = [];
    for (let l = 0; l < c.numLayers; l++) {
      const p = `model.layers.${l}`;
      this.#layers.push({
        inputNorm: vec(`${p}.input_layernorm.weight`, c.hiddenSize),
        postNorm: vec(`${p}.post_attention_layernorm.weight`, c.hiddenSize),
        q: linear(`${p}.self_attn.q_proj`, c.hiddenSize, q, c.attentionBias),
        k: linear(`${p}.self_attn.k_proj`, c.hiddenSize, kv, c.attentionBias),
        v: linear(`${p}.self_attn.v_proj`, c.hiddenSize, kv, c.attentionBias),
        o: linear(`${p}.self_attn.o_proj`, q, c.hiddenSize, false),
        gate: linear(`${p}.mlp.gate_proj`, c.hiddenSize, c.intermediateSize, false),
        up: linear(`${p}.mlp.up_proj`, c.hiddenSize, c.intermediateSize, false),
        down: linear(`${p}.mlp.down_proj`, c.intermediateSize, c.hiddenSize, false),
      });
    }
  }

  /** Builds the model from a config and HF-named weights (f32 values, PyTorch shapes). */
  static fromWeights(config: LlamaConfig, weights: Map<string, NamedTensor>): LlamaModel {
    return new LlamaModel(config, weights);
  }

  /**
   * Loads `dir/config.json` and the safetensors weights.
   * @throws Error on a missing file, an unsupported config, or a weight of the wrong shape.
   */
  static async load(dir: string): Promise<LlamaModel> {
    const config = await loadLlamaConfig(dir);
    return new LlamaModel(config, await readModelWeights(dir));
  }

  /** cos/sin tables [T, headDim] in the rotate_half layout (frequencies repeated twice). */
  #rope(T: number): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
    const hit = this.#ropeCache.get(T);
    if (hit) return hit;
    const d = this.config.headDim;
    const cos = new Float32Array(T * d);
    const sin = new Float32Array(T * d);
    for (let t = 0; t < T; t++)
      for (let i = 0; i < d / 2; i++) {
        // Same float64 angle as HF's inv_freq = 1/θ^(2i/d), then cast, to stay close to both runtimes.
        const angle = t / this.config.ropeTheta ** ((2 * i) / d);
        cos[t * d + i] = cos[t * d + i + d / 2] = Math.cos(angle);
        sin[t * d + i] = sin[t * d + i + d / 2] = Math.sin(angle);
      }
    const out = { cos: tf.keep(tf.tensor2d(cos, [T, d])), sin: tf.keep(tf.tensor2d(sin, [T, d])) };
    this.#ropeCache.set(T, out);
    return out;
  }

  #rmsNorm(x: tf.Tensor, w: tf.Tensor1D): tf.Tensor {
    const variance = tf.mean(tf.square(x), -1, true);
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, this.config.rmsNormEps))), w);
  }

  #linear(
    x2d: tf.Tensor2D,
    lin: Linear,
    layer: number,
    module: LoraModule,
    opts: ForwardOptions,
  ): tf.Tensor2D {
    let y: tf.Tensor = tf.matMul(x2d, lin.wT);
    if (lin.bias) y = tf.add(y, lin.bias);
    const pair = opts.lora?.get(layer, module);
    if (pair && opts.lora) {
      const cfg = opts.lora.config;
      let xin: tf.Tensor2D = x2d;
      if (opts.training && cfg.dropout > 0) {
        const seed = ((opts.dropoutSeed ?? 0) * 131 + layer * 16 + (module.charCodeAt(0) % 16)) >>> 0;
        xin = tf.dropout(x2d, cfg.dropout, undefined, seed) as tf.Tensor2D;
      }
      const delta = tf.matMul(tf.matMul(xin, pair.a, false, true), pair.b, false, true);
      y = tf.add(y, tf.mul(delta, opts.lora.scaling));
    }
    return y as tf.Tensor2D;
  }

  /**
   * Logits for a batch of token sequences.
   * @param ids int32 [B, T] token ids (right-padded sequences are fine: attention is causal, so
   *   padding never affects earlier positions).
   * @returns float32 [B, T, vocab] logits; position t predicts token t+1.
   */
  forward(ids: tf.Tensor2D, opts: ForwardOptions = {}): tf.Tensor3D {
    return tf.tidy(() => {
      const [B, T] = ids.shape;
      return tf.reshape(this.logits(this.hidden(ids, opts)), [B, T, this.config.vocabSize]) as tf.Tensor3D;
    });
  }

  /** LM head: final hidden states [N, hidden] → logits [N, vocab]. */
  logits(hidden: tf.Tensor2D): tf.Tensor2D {
    return tf.matMul(hidden, this.#headT);
  }

  /**
   * The final (normed) hidden states, [B·T, hidden], row b·T + t for position t of sequence b.
   * Training takes only the reply rows through the LM head (`logits`), which saves the
   * [B·T, vocab] logits of prompt positions — the largest tensor for real vocabularies.
   */
  hidden(ids: tf.Tensor2D, opts: ForwardOptions = {}): tf.Tensor2D {
    return tf.tidy(() => {
      const c = this.config;
      const [B, T] = ids.shape;
      const H = c.numHeads;
      const Hkv = c.numKvHeads;
      const D = c.headDim;
      const group = H / Hkv;
      const { cos, sin } = this.#rope(T);
      // Additive causal mask [T, T]: 0 on and below the diagonal, −1e9 above.
      const mask = tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([T, T]), -1, 0)), -1e9);
      const groupMask = group > 1 ? tf.tile(mask, [group, 1]) : mask;
      const rope = (x: tf.Tensor): tf.Tensor => {
        // x [B, heads, T, D]; rotate_half(x) = concat(−x[..., d/2:], x[..., :d/2]).
        const [x1, x2] = tf.split(x, 2, -1) as [tf.Tensor, tf.Tensor];
        const rotated = tf.concat([tf.neg(x2), x1], -1);
        return tf.add(tf.mul(x, cos), tf.mul(rotated, sin));
      };
      let h: tf.Tensor = tf.gather(this.#embed, tf.reshape(ids, [-1]));
      h = tf.reshape(h, [B, T, c.hiddenSize]);
      this.#layers.forEach((L, l) => {
        const x = tf.reshape(this.#rmsNorm(h, L.inputNorm), [B * T, c.hiddenSize]) as tf.Tensor2D;
        const heads = (y: tf.Tensor2D, n: number) => tf.transpose(tf.reshape(y, [B, T, n, D]), [0, 2, 1, 3]);
        const q = rope(heads(this.#linear(x, L.q, l, 'q_proj', opts), H));
        const k = rope(heads(this.#linear(x, L.k, l, 'k_proj', opts), Hkv));
        const v = heads(this.#linear(x, L.v, l, 'v_proj', opts), Hkv);
        // Grouped-query attention without copying K/V (HF's repeat_kv gives query head h KV head
        // ⌊h / group⌋): query heads kv·group … kv·group + group − 1 are stacked into one
        // [group·T, D] block per KV head, so one batched matmul serves the whole group.
        // Scaling q by 1/√D before QKᵀ saves one [.., T, T] tensor (and its gradient).
        const qg = tf.reshape(tf.mul(q, 1 / Math.sqrt(D)), [B, Hkv, group * T, D]);
        const scores = tf.add(tf.matMul(qg, k, false, true), groupMask);
        const attn = tf.reshape(tf.matMul(tf.softmax(scores, -1), v), [B, H, T, D]);
        const merged = tf.reshape(tf.transpose(attn, [0, 2, 1, 3]), [B * T, H * D]) as tf.Tensor2D;
        h = tf.add(h, tf.reshape(this.#linear(merged, L.o, l, 'o_proj', opts), [B, T, c.hiddenSize]));
        const x2 = tf.reshape(this.#rmsNorm(h, L.postNorm), [B * T, c.hiddenSize]) as tf.Tensor2D;
        const g = this.#linear(x2, L.gate, l, 'gate_proj', opts);
        const act = tf.mul(
          tf.mul(g, tf.sigmoid(g)),
          this.#linear(x2, L.up, l, 'up_proj', opts),
        ) as tf.Tensor2D;
        h = tf.add(h, tf.reshape(this.#linear(act, L.down, l, 'down_proj', opts), [B, T, c.hiddenSize]));
      });
      return tf.reshape(this.#rmsNorm(h, this.#finalNorm), [B * T, c.hiddenSize]) as tf.Tensor2D;
    });
  }

  /**
   * The base weight of one linear module, [out, in] row-major f32 (HF layout), for merged export.
   */
  async baseWeight(layer: number, module: LoraModule): Promise<NamedTensor> {
    const L = this.#layers[layer];
    if (!L) throw new Error(`no layer ${layer}`);
    const key = {
      q_proj: 'q',
      k_proj: 'k',
      v_proj: 'v',
      o_proj: 'o',
      gate_proj: 'gate',
      up_proj: 'up',
      down_proj: 'down',
    }[module] as keyof Layer;
    const lin = L[key] as Linear;
    const w = tf.transpose(lin.wT);
    const data = (await w.data()) as Float32Array;
    const shape = w.shape;
    w.dispose();
    return { shape, data };
  }

  dispose(): void {
    const all: tf.Tensor[] = [this.#embed, this.#headT, this.#finalNorm];
    for (const L of this.#layers) {
      all.push(L.inputNorm, L.postNorm);
      for (const lin of [L.q, L.k, L.v, L.o, L.gate, L.up, L.down]) {
        all.push(lin.wT);
        if (lin.bias) all.push(lin.bias);
      }
    }
    for (const r of this.#ropeCache.values()) all.push(r.cos, r.sin);
    for (const t of all) if (!t.isDisposed) t.dispose();
    this.#ropeCache.clear();
  }
}
