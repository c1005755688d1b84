/**
 * The training job: one retrain at a time across replicas (state-store lock `job:train`, renewed
 * while it runs), its status and progress in the state store (`kind: 'retrain'`, shown by
 * `/support status`), and the steps: build the dataset from feedback → write it → train the LoRA
 * adapter (`TrainFn`) → register the candidate → evaluate it with the promotion gate → promote it
 * when asked to and the gate passes.
 *
 * The trainer is a dependency (`TrainFn`): the tfjs LoRA trainer (`training/train.ts`,
 * `trainAdapter`) in production.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { SupportbotError } from '../core/errors.ts';
import type { JobStatus, LockHandle, StateStore } from '../core/state-store.ts';
import type { GateDecision } from '../evals/gate.ts';
import type { BuiltDataset } from './dataset/types.ts';
import { exportDataset } from './export-data.ts';
import type { AdapterEvaluator, AdapterVersion, AdapterVersionRegistry, GateRecord } from './registry.ts';

/** Progress reported by a trainer. */
export interface TrainProgress {
  /** 0..1 of the whole training run. */
  fraction: number;
  epoch?: number;
  step?: number;
  totalSteps?: number;
  loss?: number;
  validationLoss?: number;
  tokensPerSecond?: number;
  /** Seconds left, estimated. */
  etaSeconds?: number;
}

/** Options a trainer receives. */
export interface TrainOptions {
  /** Hugging Face model folder (safetensors + config.json + tokenizer.json). */
  baseModelDir: string;
  /**
   * Training JSONL in the conversational prompt/completion/label format
   * (`training/export-data.ts`: `{"prompt": [messages], "completion": [{role: "assistant", …}],
   * "label": bool}`), with `validation.jsonl` of the same format beside it. `label: false` lines
   * are 👎 answers (KTO undesirables; an SFT trainer must skip them). Only PII-scrubbed data is
   * ever written there.
   */
  datasetFile: string;
  /** Where the trainer writes checkpoints and exports. */
  outputDir: string;
  hyperparameters: Record<string, unknown>;
  /** Aborted when the job is cancelled or loses its lock. */
  signal: AbortSignal;
  onProgress: (p: TrainProgress) => void;
}

/** What a trainer produces. */
export interface TrainResult {
  /** GGUF LoRA adapter for llama.cpp. */
  adapterGguf: string;
  /** PEFT folder (`adapter_config.json` + `adapter_model.safetensors`). */
  peftDir: string;
  /** Final metrics (`trainLoss`, `validationLoss`, `tokensPerSecond`, …). */
  metrics: Record<string, number | null>;
}

/** The trainer seam. */
export type TrainFn = (opts: TrainOptions) => Promise<TrainResult>;

/** A phase and its progress, for the job status and the chat channel. */
export interface JobProgress {
  phase: 'dataset' | 'training' | 'registering' | 'evaluating' | 'promoting' | 'done';
  /** 0..1 over the whole job. */
  fraction: number;
  message: string;
}

/**
 * The promotion gate as the job runs it: an `AdapterEvaluator` that may also take the job's abort
 * signal (aborted on cancel or when the lock is lost) to stop its evaluation early. An
 * `AdapterEvaluator` that ignores it fits too; the job checks the signal and its lock after the
 * gate returns either way, before anything is promoted.
 */
export type JobEvaluator = (
  candidate: AdapterVersion,
  baseline: AdapterVersion | null,
  signal?: AbortSignal,
) => Promise<GateDecision>;

export interface TrainingJobDeps {
  state: StateStore;
  registry: AdapterVersionRegistry;
  train: TrainFn;
  /** Builds the dataset (from the state store's feedback); throws `DatasetTooSmallError` when too small. */
  buildDataset: () => Promise<BuiltDataset>;
  /** Runs the promotion gate; without it the candidate is registered but not evaluated. */
  evaluator?: JobEvaluator;
  /** Runs are written under `<workDir>/<jobId>/` (dataset, trainer output). */
  workDir: string;
}

export interface TrainingJobOptions {
  baseModelDir: string;
  hyperparameters?: Record<string, unknown>;
  /** Promote the candidate when the gate passes. */
  autoPromote?: boolean;
  /** Platform user id or `cli:<user>`, for the job status and the registry. */
  requestedBy?: string;
  onProgress?: (p: JobProgress) => void;
  signal?: AbortSignal;
  /** Lifetime of the training lock in ms (default `TRAIN_LOCK_TTL_MS`); renewed every third of it. */
  lockTtlMs?: number;
}

export interface TrainingJobResult {
  jobId: string;
  dataset: BuiltDataset;
  version: AdapterVersion;
  gate: GateRecord | null;
  promoted: boolean;
}

/** The lock that keeps retrains to one at a time across replicas. */
export const TRAIN_LOCK = 'job:train';
/** Lock lifetime; renewed every third of it while the job runs, so a crashed job frees it. */
export const TRAIN_LOCK_TTL_MS = 10 * 60_000;

/** A started job: the lock is held and the status is `queued` until `run` is called. */
export interface StartedTrainingJob {
  jobId: string;
  run(): Promise<TrainingJobResult>;
}

/**
 * Takes the training lock and records the job as queued. Splitting start from run lets a chat
 * command answer "already running" at once and report the run's progress as a follow-up.
 * @returns null when another training job holds the lock.
 */
export async function startTrainingJob(
  deps: TrainingJobDeps,
  options: TrainingJobOptions,
): Promise<StartedTrainingJob | null> {
  const lock = await deps.state.acquireLock(TRAIN_LOCK, options.lockTtlMs ?? TRAIN_LOCK_TTL_MS);
  if (!lock) return null;
  const jobId = `train-${new Date().toISOString().replace(/[:.]/g, '-')}-${randomUUID().slice(0, 8)}`;
  const startedAt = new Date().toISOString();
  try {
    await deps.state.setJobStatus({
      id: jobId,
      kind: 'retrain',
      state: 'queued',
      startedAt,
      progress: 0,
      message: 'queued',
      ...(options.requestedBy ? { requestedBy: options.requestedBy } : {}),
    });
  } catch (err) {
    await deps.state.releaseLock(lock);
    throw err;
  }
  let ran = false;
  return {
    jobId,
    run: () => {
      if (ran) throw new Error('a training job runs once');
      ran = true;
      return runLocked(deps, options, lock, jobId, startedAt);
    },
  };
}

/**
 * Starts and runs a training job.
 * @throws SupportbotError `job-busy` when another training job runs; `job-lock-lost` when the lock
 *   expired, was taken by another job, or could not be renewed for its lifetime (nothing is
 *   registered, evaluated or promoted after that); the `signal`'s reason when cancelled; whatever a
 *   step throws (`dataset-too-small`, the trainer's errors); each after recording the job as failed.
 */
export async function runTrainingJob(
  deps: TrainingJobDeps,
  options: TrainingJobOptions,
): Promise<TrainingJobResult> {
  const job = await startTrainingJob(deps, options);
  if (!job) throw new SupportbotError('job-busy', 'a training job is already running; one at a time');
  return job.run();
}

async function runLocked(
  deps: TrainingJobDeps,
  options: TrainingJobOptions,
  lock: LockHandle,
  jobId: string,
  startedAt: string,
): Promise<TrainingJobResult> {
  const abort = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, abort.signal]) : abort.signal;
  const base: Pick<JobStatus, 'id' | 'kind' | 'startedAt' | 'requestedBy'> = {
    id: jobId,
    kind: 'retrain',
    startedAt,
    ...(options.requestedBy ? { requestedBy: options.requestedBy } : {}),
  };
  // Keep the lock while the job runs; losing it (expired during a stall, taken by another replica)
  // aborts the run so two jobs never train or promote at once.
  const ttl = options.lockTtlMs ?? TRAIN_LOCK_TTL_MS;
  const interval = ttl / 3;
  const lockLost = (why: string) => abort.abort(new SupportbotError('job-lock-lost', why));
  // When the last renewal that succeeded was sent (the acquisition counts): the lock is certainly
  // held until then + ttl, and not certainly after.
  let heldSince = Date.now();
  let renewFailures = 0;
  const renew = setInterval(() => {
    const sentAt = Date.now();
    deps.state.renewLock(lock, ttl).then(
      (held) => {
        if (!held) return lockLost('the training lock expired or another job took it');
        heldSince = Math.max(heldSince, sentAt);
        renewFailures = 0;
      },
      (err: unknown) => {
        renewFailures++;
        // A failed renewal may be a blip; give up once the lock may expire before the next attempt
        // (the brief's bound: now − last successful renewal > ttl, one interval early so the lock
        // is never assumed after it could have lapsed).
        if (Date.now() + interval - heldSince >= ttl) {
          lockLost(
            `the training lock could not be renewed for ${Math.round((Date.now() - heldSince) / 1000)} s (${renewFailures} failed attempts; last: ${(err as Error).message})`,
          );
        }
      },
    );
  }, interval);
  renew.unref();
  // Before each step that changes shared state (register, evaluate, promote): the run was not
  // cancelled, and the lock is still ours — renewing it confirms that and keeps it for the step.
  const confirmLock = async () => {
    signal.throwIfAborted();
    const sentAt = Date.now();
    if (!(await deps.state.renewLock(lock, ttl))) {
      lockLost('the training lock expired or another job took it');
    } else {
      heldSince = Math.max(heldSince, sentAt);
    }
    signal.throwIfAborted();
  };
  let lastWrite = 0;
  const report = async (p: JobProgress, force = false) => {
    options.onProgress?.(p);
    const now = Date.now();
    // The store holds the latest status; a trainer reports per step, so write at most once a second.
    if (!force && now - lastWrite < 1_000) return;
    lastWrite = now;
    await deps.state.setJobStatus({ ...base, state: 'running', progress: p.fraction, message: p.message });
  };
  try {
    await report({ phase: 'dataset', fraction: 0, message: 'building the dataset from rated answers' }, true);
    const dataset = await deps.buildDataset();
    const runDir = path.join(deps.workDir, jobId);
    mkdirSync(runDir, { recursive: true });
    exportDataset(dataset, path.join(runDir, 'dataset'));
    const s = dataset.stats;
    await report(
      {
        phase: 'dataset',
        fraction: 0.05,
        message: `dataset ${dataset.hash.slice(0, 12)}: ${s.train} train / ${s.validation} validation (${s.kinds.sft} answers, ${s.kinds.escalation} escalations, ${s.kinds.undesirable} 👎)`,
      },
      true,
    );
    const hyperparameters = options.hyperparameters ?? {};
    const trained = await deps.train({
      baseModelDir: options.baseModelDir,
      datasetFile: path.join(runDir, 'dataset', 'prompt-completion', 'train.jsonl'),
      outputDir: path.join(runDir, 'output'),
      hyperparameters,
      signal,
      onProgress: (p) => {
        const parts = [
          `training ${Math.round(p.fraction * 100)}%`,
          p.epoch !== undefined ? `epoch ${p.epoch}` : '',
          p.loss !== undefined ? `loss ${p.loss.toFixed(4)}` : '',
          p.validationLoss !== undefined ? `val ${p.validationLoss.toFixed(4)}` : '',
          p.tokensPerSecond !== undefined ? `${Math.round(p.tokensPerSecond)} tok/s` : '',
          p.etaSeconds !== undefined ? `ETA ${Math.round(p.etaSeconds)} s` : '',
        ].filter(Boolean);
        report({
          phase: 'training',
          fraction: 0.05 + 0.75 * Math.min(1, Math.max(0, p.fraction)),
          message: parts.join(', '),
        }).catch(() => {});
      },
    });
    await confirmLock();
    await report({ phase: 'registering', fraction: 0.8, message: 'registering the candidate adapter' }, true);
    let version = await deps.registry.registerCandidate({
      ggufPath: trained.adapterGguf,
      peftDir: trained.peftDir,
      baseModel: options.baseModelDir,
      datasetHash: dataset.hash,
      datasetSize: { train: s.train, validation: s.validation },
      hyperparameters,
      metrics: trained.metrics,
      jobId,
    });
    let gate: GateRecord | null = null;
    let promoted = false;
    if (deps.evaluator) {
      const evaluator = deps.evaluator;
      // The gate is the long step after training: it gets the signal, and its decision counts only
      // if the run is still live and the lock still ours when it returns — `promote` swaps the
      // pointer right after the evaluator resolves, so the check must sit inside it.
      const guarded: AdapterEvaluator = async (candidate, baseline) => {
        const decision = await evaluator(candidate, baseline, signal);
        await confirmLock();
        return decision;
      };
      await confirmLock();
      if (options.autoPromote) {
        await report(
          { phase: 'promoting', fraction: 0.85, message: `evaluating ${version.name} for promotion` },
          true,
        );
        const outcome = await deps.registry.promote(version.version, {
          evaluator: guarded,
          by: options.requestedBy ?? 'training job',
        });
        gate = outcome.gate;
        promoted = outcome.promoted;
        version = outcome.version;
      } else {
        await report({ phase: 'evaluating', fraction: 0.85, message: `evaluating ${version.name}` }, true);
        gate = await deps.registry.evaluate(version.version, guarded);
        version = await deps.registry.get(version.version);
      }
    }
    const summary = `${version.name} trained (${describeMetrics(trained.metrics)}); ${
      gate
        ? gate.pass
          ? promoted
            ? 'gate passed, promoted: it serves now'
            : 'gate passed; promote it with `supportbot adapters promote`'
          : `gate failed: ${gate.reasons.join('; ')}`
        : 'not evaluated (no LLM generator to run the gate)'
    }`;
    await deps.state.setJobStatus({
      ...base,
      state: 'succeeded',
      progress: 1,
      finishedAt: new Date().toISOString(),
      message: summary,
    });
    options.onProgress?.({ phase: 'done', fraction: 1, message: summary });
    return { jobId, dataset, version, gate, promoted };
  } catch (err) {
    await deps.state
      .setJobStatus({
        ...base,
        state: 'failed',
        finishedAt: new Date().toISOString(),
        message: (err as Error).message,
      })
      .catch(() => {});
    throw err;
  } finally {
    clearInterval(renew);
    await deps.state.releaseLock(lock).catch(() => false);
  }
}

function describeMetrics(metrics: Record<string, number | null>): string {
  const shown = Object.entries(metrics)
    .filter(([, v]) => typeof v === 'number')
    .slice(0, 4)
    .map(([k, v]) => `${k} ${Number.isInteger(v) ? v : (v as number).toFixed(4)}`);
  return shown.length ? shown.join(', ') : 'no metrics';
}
