/**
 * The training module wired to a `Runtime`: the dataset builder over its state and knowledge
 * stores with its generator's prompt settings, the adapter registry beside its state store, the
 * promotion-gate evaluator over its generator, and the trainer. The CLI (`training/cli.ts`) and
 * the bot's `/support retrain` (`retrainDependency`) share it.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import type { RetrainHandle } from '../bot/commands/support-command.ts';
import type { Runtime } from '../bot/runtime.ts';
import { SupportbotError } from '../core/errors.ts';
import type { Generator } from '../core/generator.ts';
import type { PromptTokenizer } from '../core/prompt.ts';
import { loadDatasets, subsample } from '../evals/datasets.ts';
import { sharedHelpcentersDir } from '../evals/helpcenters.ts';
import {
  buildFeedbackDataset,
  DEFAULT_MIN_EXAMPLES,
  DEFAULT_PROMPT_SETTINGS,
  type PromptSettings,
} from './dataset/build.ts';
import { knowledgeStoreChunkLookup } from './dataset/chunks.ts';
import type { BuiltDataset } from './dataset/types.ts';
import { type JobProgress, startTrainingJob, type TrainFn, type TrainingJobDeps } from './job.ts';
import {
  type AdapterEvaluator,
  AdapterVersionRegistry,
  adapterLoaderOf,
  gateEvaluator,
  openRegistryBackend,
} from './registry.ts';

/** The prompt settings the runtime's generator renders with (tone, window, reply budget, tokenizer). */
export function promptSettingsOf(rt: Runtime): PromptSettings {
  const g = rt.generator as (Generator & { contextSize?: number; tokenizer?: PromptTokenizer }) | null;
  return {
    tone: rt.config.llm.tone,
    maxChars: rt.config.answer.maxAnswerChars,
    contextWindow: g?.contextSize ?? rt.config.llm.contextSize ?? DEFAULT_PROMPT_SETTINGS.contextWindow,
    reserveForReply: rt.config.llm.maxTokens,
    tokenizer: g?.tokenizer ?? DEFAULT_PROMPT_SETTINGS.tokenizer,
    historyTurns: rt.config.bot.limits.historyTurns,
  };
}

/** The registry beside the runtime's state store. Close it (or its backend) when done. */
export async function registryOf(rt: Runtime): Promise<AdapterVersionRegistry> {
  return new AdapterVersionRegistry(await openRegistryBackend(rt.config));
}

/**
 * Builds the feedback dataset from the runtime's stores.
 * @throws DatasetTooSmallError below `minExamples` (default `DEFAULT_MIN_EXAMPLES`; 0 disables).
 */
export async function feedbackDatasetOf(
  rt: Runtime,
  options: { minExamples?: number; validationFraction?: number; since?: string } = {},
): Promise<BuiltDataset> {
  // The runtime's own store (SQLite or Weaviate): the chunks the answers were retrieved from.
  const chunks = knowledgeStoreChunkLookup(rt.knowledge);
  try {
    return await buildFeedbackDataset({
      state: rt.state,
      chunks,
      prompt: promptSettingsOf(rt),
      minExamples: options.minExamples ?? DEFAULT_MIN_EXAMPLES,
      ...(options.validationFraction !== undefined ? { validationFraction: options.validationFraction } : {}),
      ...(options.since ? { since: options.since } : {}),
    });
  } finally {
    await chunks.close();
  }
}

/**
 * The promotion-gate evaluator over the runtime's generator, on an eval dataset
 * (`evals/datasets.ts#loadDatasets` spec; default `helpcenter:examples`), or null when the
 * generator cannot load adapters (extractive, or an OpenAI-compatible server whose adapters are
 * served models, not files).
 */
export function evaluatorOf(
  rt: Runtime,
  options: { dataset?: string; sample?: number } = {},
): AdapterEvaluator | null {
  const generator = adapterLoaderOf(rt.generator);
  if (!generator) return null;
  const spec = options.dataset ?? 'helpcenter:examples';
  let dataset = loadDatasets(spec, {
    helpcentersRoot:
      spec.startsWith('helpcenter:') && spec !== 'helpcenter:examples' ? sharedHelpcentersDir() : null,
  })[0];
  if (!dataset) throw new SupportbotError('eval-dataset-empty', `${spec}: no dataset`);
  if (options.sample) dataset = subsample(dataset, options.sample, 1);
  return gateEvaluator({
    dataset,
    generator,
    settings: {
      topK: rt.config.retrieval.topK,
      abstainThreshold: rt.config.answer.abstainThreshold,
      maxAnswerChars: rt.config.answer.maxAnswerChars,
      chunking: { maxTokens: rt.config.chunking.maxTokens, overlapTokens: rt.config.chunking.overlapTokens },
    },
  });
}

/** Hyperparameter keys that configure the LoRA itself rather than the optimizer. */
const LORA_KEYS: Readonly<Record<string, string>> = {
  rank: 'r',
  r: 'r',
  alpha: 'alpha',
  dropout: 'dropout',
  targetModules: 'targetModules',
};

/**
 * The production trainer: `trainAdapter` of `training/train.ts` (the tfjs LoRA trainer), loaded
 * when first used so the CLI starts without tfjs. Hyperparameters `rank`/`r`, `alpha`, `dropout`
 * and `targetModules` configure the LoRA, every other key the trainer (`epochs`, `learningRate`,
 * `objective: 'kto'`, …). The trainer reads the prompt/completion/label files as they are.
 * @throws SupportbotError `adapter-export-missing` when the base model's architecture has no GGUF
 *   LoRA export (llama.cpp could not serve the adapter); the trainer's own errors.
 */
export const defaultTrainFn: TrainFn = async (opts) => {
  const { trainAdapter } = await import('./train.ts');
  const lora: Record<string, unknown> = {};
  const hyper: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(opts.hyperparameters)) {
    const loraKey = LORA_KEYS[k];
    if (loraKey) lora[loraKey] = v;
    else hyper[k] = v;
  }
  const validation = path.join(path.dirname(opts.datasetFile), 'validation.jsonl');
  const r = await trainAdapter({
    baseModel: opts.baseModelDir,
    train: opts.datasetFile,
    ...(existsSync(validation) && statSync(validation).size > 0 ? { validation } : {}),
    outputDir: opts.outputDir,
    lora,
    hyper,
    signal: opts.signal,
    onProgress: (p) =>
      opts.onProgress({
        fraction: p.totalSteps > 0 ? p.step / p.totalSteps : 0,
        epoch: p.epoch,
        step: p.step,
        totalSteps: p.totalSteps,
        loss: p.loss,
        ...(p.valLoss !== undefined ? { validationLoss: p.valLoss } : {}),
        tokensPerSecond: p.tokensPerSecond,
        etaSeconds: p.etaSeconds,
      }),
  });
  if (!r.files.gguf || !r.files.peft) {
    throw new SupportbotError(
      'adapter-export-missing',
      `the trainer wrote no ${r.files.gguf ? 'PEFT' : 'GGUF LoRA'} export for this base model, so llama.cpp cannot serve it`,
    );
  }
  const last = r.metrics.history.at(-1);
  return {
    adapterGguf: r.files.gguf,
    peftDir: r.files.peft,
    metrics: {
      trainLoss: last?.trainLoss ?? null,
      validationLoss: r.metrics.bestValLoss,
      initialValidationLoss: r.metrics.initialValLoss,
      tokensPerSecond: r.metrics.tokensPerSecond,
      steps: r.metrics.steps,
      epochs: r.metrics.epochsCompleted,
      seconds: r.metrics.seconds,
      trainExamples: r.examples.train,
      validationExamples: r.examples.validation,
    },
  };
};

export interface RetrainSettings {
  /** Hugging Face folder of the base model the adapters are trained on. */
  baseModelDir: string;
  hyperparameters?: Record<string, unknown>;
  /** Promote when the gate passes (default true for `/support retrain`). */
  autoPromote?: boolean;
  minExamples?: number;
  evalDataset?: string;
  /** Evaluate on a deterministic sample of this many questions. */
  evalSample?: number;
  train?: TrainFn;
}

/** Job dependencies over a runtime. The caller closes `deps.registry`. */
export async function trainingDepsOf(
  rt: Runtime,
  settings: Pick<RetrainSettings, 'minExamples' | 'evalDataset' | 'evalSample' | 'train'>,
): Promise<TrainingJobDeps> {
  return {
    state: rt.state,
    registry: await registryOf(rt),
    train: settings.train ?? defaultTrainFn,
    buildDataset: () => feedbackDatasetOf(rt, { minExamples: settings.minExamples }),
    evaluator: evaluatorOf(rt, { dataset: settings.evalDataset, sample: settings.evalSample }) ?? undefined,
    workDir: path.join(rt.config.dataDir, 'training', 'runs'),
  };
}

/**
 * Chat progress lines from job progress: each step message of the job (dataset built, evaluating, …)
 * once, and training at most once per quarter, so a long run posts a handful of messages, not one
 * per step.
 */
export function chatProgress(post: (text: string) => Promise<void>): (p: JobProgress) => void {
  let lastMessage = '';
  let lastQuarter = -1;
  return (p) => {
    if (p.phase === 'done' || p.message === lastMessage) return;
    if (p.phase === 'training') {
      const quarter = Math.floor(((p.fraction - 0.05) / 0.75) * 4 + 1e-9);
      if (quarter <= lastQuarter) return;
      lastQuarter = quarter;
    }
    lastMessage = p.message;
    post(p.message).catch(() => {});
  };
}

/**
 * The `SupportCommandDeps.retrain` dependency for `bot/serve.ts`: starts a job under the
 * `job:train` lock (null when one runs), runs it when the command's follow-up starts, and posts
 * progress to the channel.
 */
export function retrainDependency(
  rt: Runtime,
  settings: RetrainSettings,
): (requestedBy: string) => Promise<RetrainHandle | null> {
  return async (requestedBy) => {
    const deps = await trainingDepsOf(rt, settings);
    let onProgress: (p: JobProgress) => void = () => {};
    const job = await startTrainingJob(deps, {
      baseModelDir: settings.baseModelDir,
      hyperparameters: settings.hyperparameters,
      autoPromote: settings.autoPromote ?? true,
      requestedBy,
      onProgress: (p) => onProgress(p),
    }).catch(async (err) => {
      await deps.registry.close();
      throw err;
    });
    if (!job) {
      await deps.registry.close();
      return null;
    }
    return {
      jobId: job.jobId,
      async run(progress) {
        onProgress = chatProgress(progress);
        try {
          const r = await job.run();
          return `${r.version.name}: ${r.promoted ? 'promoted, it serves now' : r.gate ? (r.gate.pass ? 'gate passed, not promoted' : `not promoted, gate failed: ${r.gate.reasons.join('; ')}`) : 'registered as a candidate (no gate: the generator cannot load adapters)'}`;
        } finally {
          await deps.registry.close();
        }
      },
    };
  };
}
