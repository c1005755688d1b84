/**
 * LoRA (Hu et al. 2021, arXiv 2106.09685) on the linear layers of the tfjs Llama: a frozen
 * base weight W [out, in] gets a trainable low-rank update so the layer computes
 * y = x·Wᵀ + (alpha/r)·dropout(x)·Aᵀ·Bᵀ, with A [r, in] and B [out, r] — PEFT's
 * `lora_A.weight` / `lora_B.weight` shapes, kept as-is so export is a copy.
 *
 * Initialisation follows PEFT's `LoraLayer.reset_lora_parameters` (init_lora_weights=True):
 * A ~ kaiming_uniform(a=√5), i.e. U(−1/√in, 1/√in), and B = 0, so a fresh adapter leaves the
 * model unchanged. The uniform draws come from a seeded PRNG (mulberry32), not tfjs' RNG, so
 * the same seed gives the same adapter on every backend.
 */
import * as tf from '@tensorflow/tfjs';
import type { LlamaConfig } from '../model/config.ts';
import type { NamedTensor } from '../model/safetensors.ts';

/** Linear layers of a Llama block, by their Hugging Face names. */
export const LORA_MODULES = [
  'q_proj',
  'k_proj',
  'v_proj',
  'o_proj',
  'gate_proj',
  'up_proj',
  'down_proj',
] as const;
export type LoraModule = (typeof LORA_MODULES)[number];

export interface LoraConfig {
  /** Rank r (≥ 1). */
  r: number;
  /** PEFT `lora_alpha`; the update is scaled by alpha/r. */
  alpha: number;
  /** Dropout probability on the LoRA branch's input during training (0 disables it). */
  dropout: number;
  /** Modules to adapt, in every layer; default q_proj, v_proj (PEFT's default for Llama). */
  targetModules: LoraModule[];
}

export const DEFAULT_LORA: LoraConfig = {
  r: 8,
  alpha: 16,
  dropout: 0.05,
  targetModules: ['q_proj', 'v_proj'],
};

/** [in, out] of a module for a config. */
export function moduleShape(config: LlamaConfig, module: LoraModule): [number, number] {
  const h = config.hiddenSize;
  const q = config.numHeads * config.headDim;
  const kv = config.numKvHeads * config.headDim;
  switch (module) {
    case 'q_proj':
      return [h, q];
    case 'k_proj':
    case 'v_proj':
      return [h, kv];
    case 'o_proj':
      return [q, h];
    case 'gate_proj':
    case 'up_proj':
      return [h, config.intermediateSize];
    case 'down_proj':
      return [config.intermediateSize, h];
  }
}

/** mulberry32 PRNG in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One adapted linear layer: A [r, in], B [out, r]. */
export interface LoraPairVars {
  a: tf.Variable;
  b: tf.Variable;
}

/** Key of a LoRA pair: `${layer}.${module}`. */
export const pairKey = (layer: number, module: LoraModule): string => `${layer}.${module}`;

/**
 * The trainable adapter. `enabled = false` turns every LoRA branch off (the base model), which
 * KTO uses as its reference policy.
 */
export class LoraAdapter {
  static #instances = 0;
  readonly config: LoraConfig;
  readonly pairs = new Map<string, LoraPairVars>();
  enabled = true;

  /**
   * @throws Error on r < 1, an unknown module, or an empty target list.
   */
  constructor(model: LlamaConfig, config: LoraConfig, seed = 0) {
    if (!(config.r >= 1 && Number.isInteger(config.r))) throw new Error(`LoRA rank must be an integer ≥ 1`);
    if (config.targetModules.length === 0) throw new Error('LoRA needs at least one target module');
    for (const m of config.targetModules)
      if (!(LORA_MODULES as readonly string[]).includes(m))
        throw new Error(`unknown LoRA target module "${m}" (known: ${LORA_MODULES.join(', ')})`);
    this.config = { ...config, targetModules: [...config.targetModules] };
    const rand = mulberry32(seed ^ 0x5eed);
    // tfjs variable names are global to the engine, so each adapter instance gets its own prefix.
    const instance = LoraAdapter.#instances++;
    for (let l = 0; l < model.numLayers; l++) {
      for (const m of LORA_MODULES) {
        if (!config.targetModules.includes(m)) continue;
        const [nIn, nOut] = moduleShape(model, m);
        const bound = 1 / Math.sqrt(nIn);
        const a = new Float32Array(config.r * nIn);
        for (let i = 0; i < a.length; i++) a[i] = (rand() * 2 - 1) * bound;
        const key = pairKey(l, m);
        this.pairs.set(key, {
          a: tf.variable(tf.tensor2d(a, [config.r, nIn]), true, `lora${instance}.${key}.A`),
          b: tf.variable(tf.zeros([nOut, config.r]), true, `lora${instance}.${key}.B`),
        });
      }
    }
  }

  /** alpha / r. */
  get scaling(): number {
    return this.config.alpha / this.config.r;
  }

  /** Trainable variables in a fixed order (layer, module, A then B). */
  variables(): tf.Variable[] {
    return [...this.pairs.values()].flatMap((p) => [p.a, p.b]);
  }

  /** Stable names of `variables()`, in the same order: `lora.<layer>.<module>.A|B`. */
  names(): string[] {
    return [...this.pairs.keys()].flatMap((k) => [`lora.${k}.A`, `lora.${k}.B`]);
  }

  get(layer: number, module: LoraModule): LoraPairVars | undefined {
    return this.enabled ? this.pairs.get(pairKey(layer, module)) : undefined;
  }

  /** Current values as `lora.<layer>.<module>.A|B` tensors (for checkpoints and exports). */
  async snapshot(): Promise<Map<string, NamedTensor>> {
    const out = new Map<string, NamedTensor>();
    for (const [key, p] of this.pairs) {
      out.set(`lora.${key}.A`, { shape: p.a.shape, data: (await p.a.data()) as Float32Array });
      out.set(`lora.${key}.B`, { shape: p.b.shape, data: (await p.b.data()) as Float32Array });
    }
    return out;
  }

  /**
   * Overwrites the values from a `snapshot()` map.
   * @throws Error when a tensor is missing or has another shape.
   */
  load(values: Map<string, NamedTensor>): void {
    for (const [key, p] of this.pairs) {
      for (const [which, v] of [
        ['A', p.a],
        ['B', p.b],
      ] as const) {
        const t = values.get(`lora.${key}.${which}`);
        if (!t || t.shape.join() !== v.shape.join())
          throw new Error(`LoRA tensor lora.${key}.${which} missing or of another shape`);
        tf.tidy(() => v.assign(tf.tensor(t.data, v.shape)));
      }
    }
  }

  dispose(): void {
    for (const p of this.pairs.values()) {
      p.a.dispose();
      p.b.dispose();
    }
    this.pairs.clear();
  }
}
