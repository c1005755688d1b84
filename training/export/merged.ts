/**
 * Merged export: a full Hugging Face model folder whose adapted weights are W + (alpha/r)·B·A
 * (what PEFT's `merge_and_unload()` produces), for servers that take no adapters. Copies
 * config.json and the tokenizer files; weights are written as one f32 `model.safetensors`.
 */
import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { LoraAdapter, LoraModule } from '../lora/lora.ts';
import { type NamedTensor, readModelWeights, writeSafetensors } from '../model/safetensors.ts';
import { peftModulePrefix } from './peft.ts';

const SIDE_FILES = [
  'config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
];

/** Writes the merged model to `outDir`; returns the weights file path. */
export async function exportMerged(adapter: LoraAdapter, baseDir: string, outDir: string): Promise<string> {
  await mkdir(outDir, { recursive: true });
  const weights = await readModelWeights(baseDir);
  const snap = await adapter.snapshot();
  const scaling = adapter.scaling;
  for (const key of adapter.pairs.keys()) {
    const [layer, module] = key.split('.') as [string, LoraModule];
    // The HF weight name is PEFT's prefix without `base_model.model.`.
    const name = `${peftModulePrefix(Number(layer), module).replace(/^base_model\.model\./, '')}.weight`;
    const w = weights.get(name);
    if (!w) throw new Error(`base weight ${name} not found`);
    const a = snap.get(`lora.${key}.A`) as NamedTensor;
    const b = snap.get(`lora.${key}.B`) as NamedTensor;
    const [r, nIn] = a.shape as [number, number];
    const nOut = b.shape[0] as number;
    const data = new Float32Array(w.data);
    for (let o = 0; o < nOut; o++)
      for (let k = 0; k < r; k++) {
        const bok = (b.data[o * r + k] as number) * scaling;
        if (bok === 0) continue;
        for (let i = 0; i < nIn; i++)
          data[o * nIn + i] = (data[o * nIn + i] as number) + bok * (a.data[k * nIn + i] as number);
      }
    weights.set(name, { shape: w.shape, data });
  }
  const file = path.join(outDir, 'model.safetensors');
  await writeSafetensors(file, weights, { metadata: { format: 'pt' } });
  for (const f of SIDE_FILES) {
    try {
      await copyFile(path.join(baseDir, f), path.join(outDir, f));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  return file;
}
