/**
 * LoRA fine-tuning loop on the tfjs Llama (`training/model/llama.ts`): SFT (next-token
 * cross-entropy on reply tokens only) or KTO (Ethayarajh et al. 2024, "KTO: Model Alignment as
 * Prospect Theoretic Optimization", arXiv 2402.01306) on binary 👍/👎 feedback.
 *
 * Optimisation: AdamW with decoupled weight decay (Loshchilov & Hutter, arXiv 1711.05101, in
 * PyTorch's `torch.optim.AdamW` order: p ← p·(1 − lr·wd), then the bias-corrected Adam step);
 * linear warmup then cosine decay to 0 (transformers' `get_cosine_schedule_with_warmup`: the
 * multiplier at optimizer step s is s/warmup during warmup, then ½(1 + cos(π·progress)));
 * gradient accumulation (gradients of the summed loss over `gradAccumSteps` micro-batches,
 * normalised by the number of reply tokens — SFT — or examples — KTO — in the whole group, so
 * accumulation equals one big batch); global-norm clipping as `torch.nn.utils.clip_grad_norm_`
 * (g ← g·max_norm/(‖g‖ + 1e-6) when ‖g‖ > max_norm). Validation loss after each epoch, early
 * stopping with patience (the best adapter is restored at the end), checkpoints that hold the
 * adapter, the optimizer moments and the position in the data, so a resumed run reproduces an
 * uninterrupted one: the data order of epoch e is a seeded shuffle of (seed, e) and the dropout
 * masks of a micro-batch are seeded by (seed, optimizer step, micro-batch).
 *
 * KTO as implemented. With r(x, y) = log πθ(y|x) − log π_ref(y|x) (sums over the completion's
 * tokens; π_ref is the base model, i.e. the adapter switched off, so its log-probs are computed
 * once per example and cached), and z₀ the KL reference point, the loss of an example is
 * λ_D·(1 − σ(β(r − z₀))) if desirable, λ_U·(1 − σ(β(z₀ − r))) if undesirable (paper eq. 8).
 * Simplification: z₀ is estimated per micro-batch, not over the dataset, and is not
 * back-propagated (the paper and TRL's KTOTrainer detach it too): with `klEstimate =
 * 'mismatched'` (default, the paper's estimator) from mismatched pairs (x_i, y_{i+1 mod n}) of
 * the micro-batch, as max(0, mean r); with `'batch-mean'` from the batch's own r (cheaper, one
 * forward less; also used when a micro-batch holds a single example, where no mismatched pair
 * exists).
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { type LoraAdapter, mulberry32 } from './lora/lora.ts';
import type { LlamaModel } from './model/llama.ts';
import { type NamedTensor, readSafetensors, writeSafetensors } from './model/safetensors.ts';

/** One tokenised example: `ids = prompt ++ completion`; loss on the completion tokens. */
export interface TokenizedExample {
  ids: number[];
  /** Number of prompt tokens: ids[promptLength..] are the reply (the tokens the loss covers). */
  promptLength: number;
  /** KTO: true = desirable (👍), false = undesirable (👎). SFT ignores it. */
  desirable?: boolean;
}

/** A padded batch: position t of row b predicts `targets[b][t]` with weight `weights[b][t]`. */
export interface Batch {
  ids: number[][];
  targets: number[][];
  /** 1 where the target is a reply token, 0 elsewhere (prompt, padding, last position). */
  weights: number[][];
}

export type Objective = 'sft' | 'kto';

export interface TrainHyperparameters {
  objective: Objective;
  epochs: number;
  /** Examples per micro-batch (padded to the longest). */
  batchSize: number;
  gradAccumSteps: number;
  learningRate: number;
  weightDecay: number;
  /** Warmup, in optimizer steps. */
  warmupSteps: number;
  /** Global gradient-norm clip; 0 disables clipping. */
  maxGradNorm: number;
  adamBeta1: number;
  adamBeta2: number;
  adamEpsilon: number;
  seed: number;
  /** Epochs without a validation improvement of at least `minDelta` before stopping; 0 = never. */
  earlyStoppingPatience: number;
  minDelta: number;
  /** KTO β (paper default 0.1), λ_D and λ_U. */
  ktoBeta: number;
  desirableWeight: number;
  undesirableWeight: number;
  klEstimate: 'mismatched' | 'batch-mean';
}

export const DEFAULT_HYPERPARAMETERS: TrainHyperparameters = {
  objective: 'sft',
  epochs: 3,
  batchSize: 4,
  gradAccumSteps: 1,
  learningRate: 2e-4,
  weightDecay: 0,
  warmupSteps: 0,
  maxGradNorm: 1,
  adamBeta1: 0.9,
  adamBeta2: 0.999,
  adamEpsilon: 1e-8,
  seed: 42,
  earlyStoppingPatience: 2,
  minDelta: 0,
  ktoBeta: 0.1,
  desirableWeight: 1,
  undesirableWeight: 1,
  klEstimate: 'mismatched',
};

/** Progress report, emitted after every optimizer step and after each validation. */
export interface TrainProgress {
  phase: 'train' | 'validate' | 'done';
  epoch: number;
  /** Optimizer steps done so far, and in the whole schedule. */
  step: number;
  totalSteps: number;
  /** Loss of the last optimizer step (SFT: mean NLL per reply token; KTO: mean example loss). */
  loss: number;
  learningRate: number;
  gradNorm: number;
  /** Tokens (all non-padding positions through the forward pass) per second, this run so far. */
  tokensPerSecond: number;
  /** Seconds left, from this run's pace. */
  etaSeconds: number;
  valLoss?: number;
}

export interface EpochRecord {
  epoch: number;
  trainLoss: number;
  valLoss: number | null;
}

export interface TrainResult {
  steps: number;
  epochsCompleted: number;
  history: EpochRecord[];
  bestValLoss: number | null;
  /** Validation loss of the untrained adapter (B = 0, i.e. the base model), for comparison. */
  initialValLoss: number | null;
  stoppedEarly: boolean;
  /** True when `stopAfterSteps` ended the run before the schedule did. */
  interrupted: boolean;
  tokensPerSecond: number;
  seconds: number;
  lastCheckpoint: string | null;
}

export interface TrainLoopOptions {
  hyper?: Partial<TrainHyperparameters>;
  /** Directory for `checkpoint-<step>/` folders; none are written without it. */
  checkpointDir?: string;
  /** Also checkpoint every N optimizer steps (always at the end of each epoch). */
  checkpointEverySteps?: number;
  /** A checkpoint folder to continue from (its hyperparameters must match). */
  resumeFrom?: string;
  /** Stop (with a checkpoint) after this many optimizer steps in total — a budget or a test's interruption. */
  stopAfterSteps?: number;
  signal?: AbortSignal;
  onProgress?: (p: TrainProgress) => void;
}

/** Right-pads examples into a batch; `padId` fills padding (its weight is 0). */
export function makeBatch(examples: TokenizedExample[], padId = 0): Batch {
  const T = Math.max(...examples.map((e) => e.ids.length));
  const ids: number[][] = [];
  const targets: number[][] = [];
  const weights: number[][] = [];
  for (const e of examples) {
    const row = [...e.ids, ...new Array(T - e.ids.length).fill(padId)];
    ids.push(row);
    const tg: number[] = [];
    const w: number[] = [];
    for (let t = 0; t < T; t++) {
      const next = t + 1;
      const inReply = next < e.ids.length && next >= e.promptLength;
      tg.push(next < T ? (row[next] as number) : padId);
      w.push(inReply ? 1 : 0);
    }
    targets.push(tg);
    weights.push(w);
  }
  return { ids, targets, weights };
}

/**
 * Log-probability of every weighted target (the reply tokens), [N] in row-major (b, t) order,
 * and the batch row each belongs to. Only those N positions go through the LM head: a constant
 * 0/1 selection matrix [N, B·T] picks their hidden states (a matmul, whose gradient every
 * backend has — gather's gradient has no wasm kernel), so prompt positions cost no logits.
 */
export function replyLogProbs(
  model: LlamaModel,
  adapter: LoraAdapter | null,
  batch: Batch,
  opts: { training?: boolean; dropoutSeed?: number } = {},
): { logProbs: tf.Tensor1D; rows: number[] } {
  const B = batch.ids.length;
  const T = (batch.ids[0] as number[]).length;
  const V = model.config.vocabSize;
  const positions: number[] = [];
  const rows: number[] = [];
  const targets: number[] = [];
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++)
      if ((batch.weights[b] as number[])[t] === 1) {
        positions.push(b * T + t);
        rows.push(b);
        targets.push((batch.targets[b] as number[])[t] as number);
      }
  const logProbs = tf.tidy(() => {
    if (positions.length === 0) return tf.zeros([0]) as tf.Tensor1D;
    const hidden = model.hidden(tf.tensor2d(batch.ids, [B, T], 'int32'), { lora: adapter, ...opts });
    const select = tf.buffer([positions.length, B * T], 'float32');
    for (const [i, p] of positions.entries()) select.set(1, i, p);
    const logits = model.logits(tf.matMul(select.toTensor() as tf.Tensor2D, hidden));
    const oneHot = tf.oneHot(tf.tensor1d(targets, 'int32'), V);
    return tf.sum(tf.mul(tf.logSoftmax(logits, -1), oneHot), -1) as tf.Tensor1D;
  });
  return { logProbs, rows };
}

/**
 * Summed SFT loss of a batch: −Σ log p(reply token), a scalar; divide by the number of reply
 * tokens for the mean. Targets at weight-0 positions are never read.
 */
export function sftLossSum(
  model: LlamaModel,
  adapter: LoraAdapter | null,
  batch: Batch,
  opts: { training?: boolean; dropoutSeed?: number } = {},
): tf.Scalar {
  return tf.tidy(() => tf.neg(tf.sum(replyLogProbs(model, adapter, batch, opts).logProbs)) as tf.Scalar);
}

/** Σ over reply tokens of log p, per example: [B]. */
export function sequenceLogProbs(
  model: LlamaModel,
  adapter: LoraAdapter | null,
  batch: Batch,
  opts: { training?: boolean; dropoutSeed?: number } = {},
): tf.Tensor1D {
  return tf.tidy(() => {
    const { logProbs, rows } = replyLogProbs(model, adapter, batch, opts);
    // Per-example sums as a matmul with the [B, N] membership matrix.
    const member = tf.buffer([batch.ids.length, rows.length], 'float32');
    for (const [i, b] of rows.entries()) member.set(1, b, i);
    return tf.reshape(
      tf.matMul(member.toTensor() as tf.Tensor2D, tf.reshape(logProbs, [-1, 1])),
      [-1],
    ) as tf.Tensor1D;
  });
}

/** Mean NLL per reply token over a dataset, no dropout. */
export async function evaluateLoss(
  model: LlamaModel,
  adapter: LoraAdapter | null,
  examples: TokenizedExample[],
  batchSize: number,
): Promise<number> {
  let sum = 0;
  let count = 0;
  for (let i = 0; i < examples.length; i += batchSize) {
    const batch = makeBatch(examples.slice(i, i + batchSize));
    const s = sftLossSum(model, adapter, batch);
    sum += (await s.data())[0] as number;
    s.dispose();
    count += batch.weights.flat().reduce((a, b) => a + b, 0);
  }
  return count > 0 ? sum / count : Number.NaN;
}

/** Learning-rate multiplier at optimizer step `step` (0-based) of `total`. */
export function cosineWithWarmup(step: number, total: number, warmup: number): number {
  if (step < warmup) return step / Math.max(1, warmup);
  const progress = (step - warmup) / Math.max(1, total - warmup);
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
}

/** Seeded Fisher–Yates permutation of 0..n−1. */
export function shuffled(n: number, seed: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  const r = mulberry32(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [order[i], order[j]] = [order[j] as number, order[i] as number];
  }
  return order;
}

interface TrainState {
  step: number;
  epoch: number;
  /** Optimizer steps already done inside `epoch`. */
  stepInEpoch: number;
  history: EpochRecord[];
  bestValLoss: number | null;
  badEpochs: number;
  initialValLoss: number | null;
  epochLossSum: number;
  epochLossCount: number;
  hyper: TrainHyperparameters;
}

/** Thrown when `signal` aborts training (a checkpoint has been written when a directory was given). */
export class TrainingAbortedError extends Error {
  constructor(readonly checkpoint: string | null) {
    super('training was cancelled');
    this.name = 'TrainingAbortedError';
  }
}

/**
 * Trains `adapter` in place on `train`, validating on `validation` after each epoch.
 * On return the adapter holds the best-validation weights (or the last, without validation).
 * @throws TrainingAbortedError when `signal` aborts; Error on a checkpoint that does not match.
 */
export async function trainLora(
  model: LlamaModel,
  adapter: LoraAdapter,
  train: TokenizedExample[],
  validation: TokenizedExample[],
  options: TrainLoopOptions = {},
): Promise<TrainResult> {
  const hp: TrainHyperparameters = { ...DEFAULT_HYPERPARAMETERS, ...options.hyper };
  if (train.length === 0) throw new Error('no training examples');
  const vars = adapter.variables();
  const microPerEpoch = Math.ceil(train.length / hp.batchSize);
  const stepsPerEpoch = Math.ceil(microPerEpoch / hp.gradAccumSteps);
  const totalSteps = stepsPerEpoch * hp.epochs;
  const m = vars.map((v) => tf.keep(tf.zerosLike(v)));
  const v2 = vars.map((v) => tf.keep(tf.zerosLike(v)));
  const refCache = new Map<string, number>();
  let best: Map<string, NamedTensor> | null = null;

  let state: TrainState = {
    step: 0,
    epoch: 0,
    stepInEpoch: 0,
    history: [],
    bestValLoss: null,
    badEpochs: 0,
    initialValLoss: null,
    epochLossSum: 0,
    epochLossCount: 0,
    hyper: hp,
  };
  if (options.resumeFrom) {
    const loaded = await loadCheckpoint(options.resumeFrom, adapter, m, v2);
    if (JSON.stringify(loaded.state.hyper) !== JSON.stringify(hp))
      throw new Error(`checkpoint ${options.resumeFrom} was made with other hyperparameters`);
    state = loaded.state;
    best = loaded.best;
  } else if (validation.length > 0) {
    state.initialValLoss = await evaluateLoss(model, adapter, validation, hp.batchSize);
  }

  const started = performance.now();
  let tokens = 0;
  let stepsThisRun = 0;
  let lastCheckpoint: string | null = null;
  let interrupted = false;
  let stoppedEarly = false;
  const elapsed = () => (performance.now() - started) / 1000;

  const save = async (): Promise<string | null> => {
    if (!options.checkpointDir) return null;
    lastCheckpoint = await saveCheckpoint(options.checkpointDir, state, adapter, m, v2, best);
    return lastCheckpoint;
  };

  const refLogProb = async (ex: TokenizedExample, key: string): Promise<number> => {
    const hit = refCache.get(key);
    if (hit !== undefined) return hit;
    const t = sequenceLogProbs(model, null, makeBatch([ex]));
    const value = (await t.data())[0] as number;
    t.dispose();
    refCache.set(key, value);
    return value;
  };

  outer: while (state.epoch < hp.epochs) {
    const order = shuffled(train.length, hp.seed * 1_000_003 + state.epoch);
    for (let s = state.stepInEpoch; s < stepsPerEpoch; s++) {
      if (options.signal?.aborted) throw new TrainingAbortedError(await save());
      const lr = hp.learningRate * cosineWithWarmup(state.step, totalSteps, hp.warmupSteps);
      const micro: TokenizedExample[][] = [];
      for (let k = 0; k < hp.gradAccumSteps; k++) {
        const mb = s * hp.gradAccumSteps + k;
        if (mb >= microPerEpoch) break;
        micro.push(
          order.slice(mb * hp.batchSize, (mb + 1) * hp.batchSize).map((i) => train[i] as TokenizedExample),
        );
      }
      const normaliser =
        hp.objective === 'sft'
          ? micro.flat().reduce((a, e) => a + Math.max(0, e.ids.length - Math.max(1, e.promptLength)), 0)
          : micro.flat().length;
      const grads: Array<tf.Tensor | null> = vars.map(() => null);
      let lossSum = 0;
      for (const [k, examples] of micro.entries()) {
        const batch = makeBatch(examples);
        tokens += examples.reduce((a, e) => a + e.ids.length, 0);
        const dropoutSeed = (hp.seed * 7_919 + state.step * 131 + k) >>> 0;
        let lossFn: () => tf.Scalar;
        if (hp.objective === 'sft') {
          lossFn = () => sftLossSum(model, adapter, batch, { training: true, dropoutSeed });
        } else {
          const keys = examples.map((e) => e.ids.join(','));
          const ref = await Promise.all(examples.map((e, i) => refLogProb(e, keys[i] as string)));
          const z0 = await klReference(model, adapter, examples, ref, hp, refLogProb);
          const refT = tf.tensor1d(ref);
          const sign = tf.tensor1d(examples.map((e) => (e.desirable === false ? -1 : 1)));
          const lambda = tf.tensor1d(
            examples.map((e) => (e.desirable === false ? hp.undesirableWeight : hp.desirableWeight)),
          );
          lossFn = () =>
            tf.tidy(() => {
              const r = tf.sub(
                sequenceLogProbs(model, adapter, batch, { training: true, dropoutSeed }),
                refT,
              );
              // desirable: 1 − σ(β(r − z0)); undesirable: 1 − σ(β(z0 − r)) = 1 − σ(−β(r − z0)).
              const v = tf.sigmoid(tf.mul(tf.mul(sign, hp.ktoBeta), tf.sub(r, z0)));
              return tf.sum(tf.mul(lambda, tf.sub(1, v))) as tf.Scalar;
            });
          const { value, grads: g } = tf.variableGrads(lossFn, vars);
          lossSum += (await value.data())[0] as number;
          value.dispose();
          accumulate(grads, vars, g);
          refT.dispose();
          sign.dispose();
          lambda.dispose();
          continue;
        }
        const { value, grads: g } = tf.variableGrads(lossFn, vars);
        lossSum += (await value.data())[0] as number;
        value.dispose();
        accumulate(grads, vars, g);
      }
      const gradNorm = await applyAdamW(vars, grads, m, v2, {
        lr,
        step: state.step + 1,
        scale: 1 / Math.max(1, normaliser),
        hp,
      });
      const loss = lossSum / Math.max(1, normaliser);
      state.step++;
      state.stepInEpoch = s + 1;
      state.epochLossSum += lossSum;
      state.epochLossCount += normaliser;
      stepsThisRun++;
      const rate = tokens / Math.max(1e-9, elapsed());
      options.onProgress?.({
        phase: 'train',
        epoch: state.epoch,
        step: state.step,
        totalSteps,
        loss,
        learningRate: lr,
        gradNorm,
        tokensPerSecond: rate,
        etaSeconds: (elapsed() / stepsThisRun) * (totalSteps - state.step),
      });
      const atEpochEnd = s + 1 === stepsPerEpoch;
      if (!atEpochEnd && options.checkpointEverySteps && state.step % options.checkpointEverySteps === 0)
        await save();
      if (!atEpochEnd && options.stopAfterSteps !== undefined && state.step >= options.stopAfterSteps) {
        interrupted = true;
        await save();
        break outer;
      }
    }
    // End of epoch: validate, early-stop bookkeeping, checkpoint.
    const trainLoss = state.epochLossSum / Math.max(1, state.epochLossCount);
    let valLoss: number | null = null;
    if (validation.length > 0) {
      valLoss = await evaluateLoss(model, adapter, validation, hp.batchSize);
      if (state.bestValLoss === null || valLoss < state.bestValLoss - hp.minDelta) {
        state.bestValLoss = valLoss;
        state.badEpochs = 0;
        best = await adapter.snapshot();
      } else state.badEpochs++;
    }
    state.history.push({ epoch: state.epoch, trainLoss, valLoss });
    options.onProgress?.({
      phase: 'validate',
      epoch: state.epoch,
      step: state.step,
      totalSteps,
      loss: trainLoss,
      learningRate: hp.learningRate * cosineWithWarmup(state.step, totalSteps, hp.warmupSteps),
      gradNorm: 0,
      tokensPerSecond: tokens / Math.max(1e-9, elapsed()),
      etaSeconds: stepsThisRun > 0 ? (elapsed() / stepsThisRun) * (totalSteps - state.step) : 0,
      ...(valLoss !== null ? { valLoss } : {}),
    });
    state.epoch++;
    state.stepInEpoch = 0;
    state.epochLossSum = 0;
    state.epochLossCount = 0;
    if (
      hp.earlyStoppingPatience > 0 &&
      state.badEpochs >= hp.earlyStoppingPatience &&
      state.epoch < hp.epochs
    ) {
      stoppedEarly = true;
      await save();
      break;
    }
    await save();
    if (
      options.stopAfterSteps !== undefined &&
      state.step >= options.stopAfterSteps &&
      state.epoch < hp.epochs
    ) {
      interrupted = true;
      break;
    }
  }
  if (!interrupted && best) adapter.load(best);
  for (const t of [...m, ...v2]) t.dispose();
  const seconds = elapsed();
  const result: TrainResult = {
    steps: state.step,
    epochsCompleted: state.epoch,
    history: state.history,
    bestValLoss: state.bestValLoss,
    initialValLoss: state.initialValLoss,
    stoppedEarly,
    interrupted,
    tokensPerSecond: tokens / Math.max(1e-9, seconds),
    seconds,
    lastCheckpoint,
  };
  options.onProgress?.({
    phase: 'done',
    epoch: state.epoch,
    step: state.step,
    totalSteps,
    loss: state.history.at(-1)?.trainLoss ?? Number.NaN,
    learningRate: 0,
    gradNorm: 0,
    tokensPerSecond: result.tokensPerSecond,
    etaSeconds: 0,
    ...(state.bestValLoss !== null ? { valLoss: state.bestValLoss } : {}),
  });
  return result;
}

function accumulate(acc: Array<tf.Tensor | null>, vars: tf.Variable[], g: tf.NamedTensorMap): void {
  vars.forEach((v, i) => {
    const gi = g[v.name];
    if (!gi) return;
    const prev = acc[i];
    if (prev) {
      acc[i] = tf.keep(tf.add(prev, gi));
      prev.dispose();
      gi.dispose();
    } else acc[i] = tf.keep(gi);
  });
}

/** z₀ of KTO for one micro-batch (see the module comment); a detached number ≥ 0. */
async function klReference(
  model: LlamaModel,
  adapter: LoraAdapter,
  examples: TokenizedExample[],
  ref: number[],
  hp: TrainHyperparameters,
  refLogProb: (ex: TokenizedExample, key: string) => Promise<number>,
): Promise<number> {
  let rs: number[];
  if (hp.klEstimate === 'mismatched' && examples.length > 1) {
    const pairs = examples.map((e, i) => {
      const other = examples[(i + 1) % examples.length] as TokenizedExample;
      return {
        ids: [...e.ids.slice(0, e.promptLength), ...other.ids.slice(other.promptLength)],
        promptLength: e.promptLength,
      };
    });
    const pol = sequenceLogProbs(model, adapter, makeBatch(pairs));
    const policy = Array.from(await pol.data());
    pol.dispose();
    const refs = await Promise.all(pairs.map((p) => refLogProb(p, p.ids.join(','))));
    rs = policy.map((p, i) => p - (refs[i] as number));
  } else {
    const pol = sequenceLogProbs(model, adapter, makeBatch(examples));
    rs = Array.from(await pol.data()).map((p, i) => p - (ref[i] as number));
    pol.dispose();
  }
  return Math.max(0, rs.reduce((a, b) => a + b, 0) / rs.length);
}

/** Scales, clips and applies one AdamW step; returns the (scaled, pre-clip) global gradient norm. */
async function applyAdamW(
  vars: tf.Variable[],
  grads: Array<tf.Tensor | null>,
  m: tf.Tensor[],
  v: tf.Tensor[],
  o: { lr: number; step: number; scale: number; hp: TrainHyperparameters },
): Promise<number> {
  const { hp } = o;
  const scaled = grads.map((g, i) => {
    const out = tf.keep(g ? tf.mul(g, o.scale) : tf.zerosLike(vars[i] as tf.Variable));
    g?.dispose();
    return out;
  });
  const normT = tf.tidy(() => tf.sqrt(tf.addN(scaled.map((g) => tf.sum(tf.square(g))))));
  const norm = (await normT.data())[0] as number;
  normT.dispose();
  const clip = hp.maxGradNorm > 0 && norm > hp.maxGradNorm ? hp.maxGradNorm / (norm + 1e-6) : 1;
  const bc1 = 1 - hp.adamBeta1 ** o.step;
  const bc2 = 1 - hp.adamBeta2 ** o.step;
  vars.forEach((p, i) => {
    tf.tidy(() => {
      const g = tf.mul(scaled[i] as tf.Tensor, clip);
      const mi = tf.add(tf.mul(m[i] as tf.Tensor, hp.adamBeta1), tf.mul(g, 1 - hp.adamBeta1));
      const vi = tf.add(tf.mul(v[i] as tf.Tensor, hp.adamBeta2), tf.mul(tf.square(g), 1 - hp.adamBeta2));
      const decayed = hp.weightDecay > 0 ? tf.mul(p, 1 - o.lr * hp.weightDecay) : p;
      const update = tf.div(tf.div(mi, bc1), tf.add(tf.sqrt(tf.div(vi, bc2)), hp.adamEpsilon));
      p.assign(tf.sub(decayed, tf.mul(update, o.lr)));
      (m[i] as tf.Tensor).dispose();
      (v[i] as tf.Tensor).dispose();
      m[i] = tf.keep(mi);
      v[i] = tf.keep(vi);
    });
    (scaled[i] as tf.Tensor).dispose();
  });
  return norm;
}

/**
 * Writes `dir/checkpoint-<step>/` (adapter.safetensors with the LoRA weights and the Adam
 * moments, best.safetensors with the best-validation adapter, state.json) and returns its path.
 */
async function saveCheckpoint(
  dir: string,
  state: TrainState,
  adapter: LoraAdapter,
  m: tf.Tensor[],
  v: tf.Tensor[],
  best: Map<string, NamedTensor> | null,
): Promise<string> {
  const out = path.join(dir, `checkpoint-${String(state.step).padStart(6, '0')}`);
  await mkdir(out, { recursive: true });
  const tensors = await adapter.snapshot();
  const vars = adapter.variables();
  const names = adapter.names();
  for (const [i, p] of vars.entries()) {
    tensors.set(`adam.m.${names[i]}`, {
      shape: p.shape,
      data: (await (m[i] as tf.Tensor).data()) as Float32Array,
    });
    tensors.set(`adam.v.${names[i]}`, {
      shape: p.shape,
      data: (await (v[i] as tf.Tensor).data()) as Float32Array,
    });
  }
  await writeSafetensors(path.join(out, 'adapter.safetensors'), tensors);
  if (best) await writeSafetensors(path.join(out, 'best.safetensors'), best);
  await writeFile(path.join(out, 'state.json'), `${JSON.stringify(state, null, 2)}\n`);
  return out;
}

async function loadCheckpoint(
  dir: string,
  adapter: LoraAdapter,
  m: tf.Tensor[],
  v: tf.Tensor[],
): Promise<{ state: TrainState; best: Map<string, NamedTensor> | null }> {
  const state = JSON.parse(await readFile(path.join(dir, 'state.json'), 'utf8')) as TrainState;
  const st = await readSafetensors(path.join(dir, 'adapter.safetensors'));
  adapter.load(st.tensors);
  const names = adapter.names();
  for (const [i, p] of adapter.variables().entries()) {
    for (const [prefix, arr] of [
      ['adam.m.', m],
      ['adam.v.', v],
    ] as const) {
      const t = st.tensors.get(`${prefix}${names[i]}`);
      if (!t) throw new Error(`checkpoint ${dir} lacks ${prefix}${names[i]}`);
      (arr[i] as tf.Tensor).dispose();
      arr[i] = tf.keep(tf.tensor(t.data, p.shape));
    }
  }
  let best: Map<string, NamedTensor> | null = null;
  try {
    best = (await readSafetensors(path.join(dir, 'best.safetensors'))).tensors;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  return { state, best };
}

/** The newest `checkpoint-*` folder in `dir`, or null. */
export async function latestCheckpoint(dir: string): Promise<string | null> {
  try {
    const names = (await readdir(dir)).filter((n) => /^checkpoint-\d+$/.test(n)).sort();
    const last = names.at(-1);
    return last ? path.join(dir, last) : null;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}
