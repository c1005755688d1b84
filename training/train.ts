/**
 * `trainAdapter()`: the one call the `supportbot train` command and the `/support retrain` job
 * make. It loads a Hugging Face base model folder, tokenises a JSONL dataset with the model's
 * chat template, trains a LoRA adapter with tfjs (SFT or KTO, `training/trainer.ts`), and
 * exports it as PEFT (`peft/`), as a GGUF LoRA for llama.cpp (`adapter.gguf`, when the base
 * model's GGUF architecture is supported) and, on request, as merged weights (`merged/`).
 *
 * Output folder layout:
 * - `peft/adapter_config.json`, `peft/adapter_model.safetensors`
 * - `adapter.gguf`
 * - `merged/` (optional): config, tokenizer files, model.safetensors
 * - `checkpoints/checkpoint-<step>/` (resume with `resume: true`)
 * - `metrics.json`: the returned `TrainAdapterResult` without file contents
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { exportGgufLora } from './export/gguf-lora.ts';
import { exportMerged } from './export/merged.ts';
import { exportPeft } from './export/peft.ts';
import { DEFAULT_LORA, LoraAdapter, type LoraConfig } from './lora/lora.ts';
import { type BackendChoice, type BackendName, selectBackend } from './model/backend.ts';
import { readRecords, type TrainingRecord, tokenizeRecord } from './model/examples.ts';
import { LlamaModel } from './model/llama.ts';
import { ChatTokenizer } from './model/tokenizer.ts';
import {
  DEFAULT_HYPERPARAMETERS,
  latestCheckpoint,
  type TokenizedExample,
  type TrainHyperparameters,
  type TrainProgress,
  type TrainResult,
  trainLora,
} from './trainer.ts';

export interface TrainAdapterOptions {
  /** Hugging Face model folder: config.json, *.safetensors, tokenizer.json, tokenizer_config.json. */
  baseModel: string;
  /** Training JSONL (chat `messages` or `prompt`/`completion`/`label` records). */
  train: string;
  /** Validation JSONL; without it `validationFraction` of `train` is held out (seeded). */
  validation?: string;
  /** Held-out share when no validation file is given; default 0.1 (0 = none). */
  validationFraction?: number;
  outputDir: string;
  /** LoRA: r, alpha, dropout, targetModules (default r 8, alpha 16, dropout 0.05, q_proj+v_proj). */
  lora?: Partial<LoraConfig>;
  /** Trainer hyperparameters, incl. `objective` ('sft' default, or 'kto'). */
  hyper?: Partial<TrainHyperparameters>;
  /** Longest example in tokens (prompt cut from the left); default 1024. */
  maxSeqLength?: number;
  /** tfjs backend; default 'auto' (tfjs-node-gpu → tfjs-node → wasm → cpu). */
  backend?: BackendChoice;
  /** Continue from the newest checkpoint in `outputDir/checkpoints` when there is one. */
  resume?: boolean;
  /** Checkpoint every N optimizer steps as well as after every epoch. */
  checkpointEverySteps?: number;
  /** Name recorded as PEFT's `base_model_name_or_path`; default the base folder's path. */
  baseModelName?: string;
  /** Which exports to write; default peft and gguf, not merged. */
  exports?: { peft?: boolean; gguf?: boolean; merged?: boolean };
  signal?: AbortSignal;
  onProgress?: (p: TrainProgress) => void;
}

export interface TrainAdapterResult {
  backend: BackendName;
  objective: 'sft' | 'kto';
  examples: { train: number; validation: number; skippedUndesirable: number };
  lora: LoraConfig;
  hyper: TrainHyperparameters;
  metrics: TrainResult;
  files: { peft?: string; gguf?: string; merged?: string; metrics: string };
}

/** Seeded split: an example goes to validation when its hash-based draw falls under `fraction`. */
function split<T>(items: T[], fraction: number, seed: number): { train: T[]; validation: T[] } {
  if (fraction <= 0 || items.length < 2) return { train: items, validation: [] };
  const n = Math.max(1, Math.round(items.length * fraction));
  // Deterministic: a seeded shuffle, the first n held out.
  const order = items.map((_, i) => i);
  let s = seed >>> 0;
  for (let i = order.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    [order[i], order[j]] = [order[j] as number, order[i] as number];
  }
  const held = new Set(order.slice(0, n));
  return { train: items.filter((_, i) => !held.has(i)), validation: items.filter((_, i) => held.has(i)) };
}

/**
 * Trains and exports a LoRA adapter (see the module comment for the output layout).
 * @throws Error on an unsupported or incomplete base model folder, an invalid dataset line, or
 *   no usable training example; TrainingAbortedError when `signal` aborts (a checkpoint is kept).
 */
export async function trainAdapter(options: TrainAdapterOptions): Promise<TrainAdapterResult> {
  const backend = await selectBackend(options.backend ?? 'auto');
  const hyper: TrainHyperparameters = { ...DEFAULT_HYPERPARAMETERS, ...options.hyper };
  const lora: LoraConfig = { ...DEFAULT_LORA, ...options.lora };
  const maxLen = options.maxSeqLength ?? 1024;
  await mkdir(options.outputDir, { recursive: true });

  const tok = await ChatTokenizer.load(options.baseModel);
  const trainRecords = await readRecords(options.train);
  let validationRecords: TrainingRecord[] = options.validation ? await readRecords(options.validation) : [];
  let records = trainRecords;
  if (!options.validation) {
    const s = split(trainRecords, options.validationFraction ?? 0.1, hyper.seed);
    records = s.train;
    validationRecords = s.validation;
  }
  // SFT learns only from desirable replies; 👎 answers are never targets (issue 6).
  const usable = (r: TrainingRecord[]) => (hyper.objective === 'sft' ? r.filter((x) => x.desirable) : r);
  const skippedUndesirable = hyper.objective === 'sft' ? records.filter((r) => !r.desirable).length : 0;
  const train: TokenizedExample[] = usable(records).map((r) => tokenizeRecord(tok, r, maxLen));
  // Validation loss is the NLL of desirable replies under either objective.
  const validation: TokenizedExample[] = validationRecords
    .filter((r) => r.desirable)
    .map((r) => tokenizeRecord(tok, r, maxLen));
  if (train.length === 0) throw new Error('no usable training examples in the dataset');

  const model = await LlamaModel.load(options.baseModel);
  const adapter = new LoraAdapter(model.config, lora, hyper.seed);
  try {
    const checkpointDir = path.join(options.outputDir, 'checkpoints');
    const resumeFrom = options.resume ? await latestCheckpoint(checkpointDir) : null;
    const metrics = await trainLora(model, adapter, train, validation, {
      hyper,
      checkpointDir,
      ...(resumeFrom ? { resumeFrom } : {}),
      ...(options.checkpointEverySteps ? { checkpointEverySteps: options.checkpointEverySteps } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
    const want = { peft: true, gguf: true, merged: false, ...options.exports };
    const files: TrainAdapterResult['files'] = { metrics: path.join(options.outputDir, 'metrics.json') };
    if (want.peft) {
      files.peft = path.join(options.outputDir, 'peft');
      await exportPeft(adapter, files.peft, {
        baseModelNameOrPath: options.baseModelName ?? path.resolve(options.baseModel),
      });
    }
    if (want.gguf)
      files.gguf = await exportGgufLora(adapter, model.config, path.join(options.outputDir, 'adapter.gguf'));
    if (want.merged) {
      files.merged = path.join(options.outputDir, 'merged');
      await exportMerged(adapter, options.baseModel, files.merged);
    }
    const result: TrainAdapterResult = {
      backend,
      objective: hyper.objective,
      examples: { train: train.length, validation: validation.length, skippedUndesirable },
      lora,
      hyper,
      metrics,
      files,
    };
    await writeFile(files.metrics, `${JSON.stringify(result, null, 2)}\n`);
    return result;
  } finally {
    adapter.dispose();
    model.dispose();
  }
}
