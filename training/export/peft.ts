/**
 * PEFT export: a folder with `adapter_config.json` and `adapter_model.safetensors` that PEFT's
 * `PeftModel.from_pretrained` and vLLM's `--lora-modules` load.
 *
 * Names and shapes as PEFT saves a LoRA on a `LlamaForCausalLM` (`get_peft_model_state_dict`,
 * adapter name stripped): `base_model.model.model.layers.{i}.self_attn.{q,k,v,o}_proj.lora_A.weight`
 * [r, in] and `...lora_B.weight` [out, r]; MLP modules under `.mlp.{gate,up,down}_proj`. The
 * config carries the `LoraConfig` fields PEFT writes (`peft_type` LORA, `task_type` CAUSAL_LM,
 * `r`, `lora_alpha`, `lora_dropout`, `target_modules`, `bias` none, `fan_in_fan_out` false, …).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { LORA_MODULES, type LoraAdapter, type LoraConfig, type LoraModule } from '../lora/lora.ts';
import { type NamedTensor, readSafetensors, writeSafetensors } from '../model/safetensors.ts';

const PARENT: Record<LoraModule, 'self_attn' | 'mlp'> = {
  q_proj: 'self_attn',
  k_proj: 'self_attn',
  v_proj: 'self_attn',
  o_proj: 'self_attn',
  gate_proj: 'mlp',
  up_proj: 'mlp',
  down_proj: 'mlp',
};

/** PEFT's state-dict prefix of one module. */
export function peftModulePrefix(layer: number, module: LoraModule): string {
  return `base_model.model.model.layers.${layer}.${PARENT[module]}.${module}`;
}

/** `adapter_config.json` content for a LoRA config. */
export function peftAdapterConfig(lora: LoraConfig, baseModelNameOrPath: string): Record<string, unknown> {
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: baseModelNameOrPath,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: null,
    lora_alpha: lora.alpha,
    lora_dropout: lora.dropout,
    modules_to_save: null,
    peft_type: 'LORA',
    r: lora.r,
    rank_pattern: {},
    revision: null,
    target_modules: [...lora.targetModules],
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: false,
  };
}

/** The adapter's tensors under PEFT's names (A [r, in], B [out, r], f32). */
export async function peftTensors(adapter: LoraAdapter): Promise<Map<string, NamedTensor>> {
  const snap = await adapter.snapshot();
  const out = new Map<string, NamedTensor>();
  for (const key of adapter.pairs.keys()) {
    const [layer, module] = key.split('.') as [string, LoraModule];
    const prefix = peftModulePrefix(Number(layer), module);
    out.set(`${prefix}.lora_A.weight`, snap.get(`lora.${key}.A`) as NamedTensor);
    out.set(`${prefix}.lora_B.weight`, snap.get(`lora.${key}.B`) as NamedTensor);
  }
  return out;
}

/**
 * Writes `dir/adapter_config.json` and `dir/adapter_model.safetensors` (f32, metadata
 * `format: pt` as PEFT writes it).
 * @returns the two file paths.
 */
export async function exportPeft(
  adapter: LoraAdapter,
  dir: string,
  options: { baseModelNameOrPath: string },
): Promise<{ config: string; weights: string }> {
  await mkdir(dir, { recursive: true });
  const config = path.join(dir, 'adapter_config.json');
  const weights = path.join(dir, 'adapter_model.safetensors');
  await writeFile(
    config,
    `${JSON.stringify(peftAdapterConfig(adapter.config, options.baseModelNameOrPath), null, 2)}\n`,
  );
  await writeSafetensors(weights, await peftTensors(adapter), { metadata: { format: 'pt' } });
  return { config, weights };
}

/**
 * Reads a PEFT LoRA folder back into `lora.<layer>.<module>.A|B` tensors (the `LoraAdapter.load`
 * format) and its config.
 * @throws Error on a tensor name that is not a PEFT LoRA name of a Llama layer.
 */
export async function readPeft(
  dir: string,
): Promise<{ config: Record<string, unknown>; tensors: Map<string, NamedTensor> }> {
  const config = JSON.parse(await readFile(path.join(dir, 'adapter_config.json'), 'utf8'));
  const st = await readSafetensors(path.join(dir, 'adapter_model.safetensors'));
  const tensors = new Map<string, NamedTensor>();
  const re = /^base_model\.model\.model\.layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.lora_([AB])\.weight$/;
  for (const [name, t] of st.tensors) {
    const m = re.exec(name);
    if (!m || !(LORA_MODULES as readonly string[]).includes(m[2] as string))
      throw new Error(`not a PEFT LoRA tensor name: ${name}`);
    tensors.set(`lora.${m[1]}.${m[2]}.${m[3]}`, t);
  }
  return { config, tensors };
}
