/**
 * The training job keeps to its lock and its abort signal after the trainer returns: a job whose
 * lock was taken by another replica, or whose renewals keep failing, or which is cancelled while
 * the gate runs, never registers a promotion. Real SQLite state store and registry; the trainer is
 * a small function that writes an adapter file (the real trainer is covered in training-cli).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStateStore } from '../core/state-store/sqlite.ts';
import type { StateStore } from '../core/state-store.ts';
import type { GateDecision } from '../evals/gate.ts';
import { emptyPiiCounts } from '../training/dataset/pii.ts';
import type { BuiltDataset } from '../training/dataset/types.ts';
import {
  type JobEvaluator,
  runTrainingJob,
  TRAIN_LOCK,
  TRAIN_LOCK_TTL_MS,
  type TrainFn,
  type TrainingJobDeps,
} from '../training/job.ts';
import { AdapterVersionRegistry, SqliteRegistryBackend } from '../training/registry.ts';

const dataset: BuiltDataset = {
  examples: [],
  stats: {
    read: 0,
    kinds: { sft: 0, escalation: 0, undesirable: 0 },
    train: 0,
    validation: 0,
    duplicates: 0,
    skipped: {},
    pii: emptyPiiCounts(),
  },
  hash: 'f'.repeat(64),
};

const passing = (candidate: string, baseline: string): GateDecision => ({
  pass: true,
  dataset: 'beir-mini',
  candidate,
  baseline,
  checks: [],
  reasons: [],
});

describe('training job: lock and abort after training', () => {
  let tmp: string;
  let clock: number;
  let state: SqliteStateStore;
  let registry: AdapterVersionRegistry;

  beforeEach(() => {
    tmp = mkdtempSync(path.join(tmpdir(), 'supportbot-job-'));
    clock = Date.now();
    state = SqliteStateStore.open(path.join(tmp, 'state.sqlite'), { now: () => new Date(clock) });
    registry = new AdapterVersionRegistry(new SqliteRegistryBackend(path.join(tmp, 'registry.sqlite')));
  });
  afterEach(async () => {
    await state.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  const train: TrainFn = async (opts) => {
    const adapterGguf = path.join(tmp, 'adapter.gguf');
    writeFileSync(adapterGguf, 'GGUF');
    return { adapterGguf, peftDir: opts.outputDir, metrics: { trainLoss: 1 } };
  };
  const deps = (evaluator: JobEvaluator, store: StateStore = state): TrainingJobDeps => ({
    state: store,
    registry,
    train,
    buildDataset: async () => dataset,
    evaluator,
    workDir: path.join(tmp, 'runs'),
  });

  it('control: with the lock held throughout, a passing gate promotes', async () => {
    const r = await runTrainingJob(
      deps(async (c, b) => passing(c.name, b?.name ?? 'base')),
      { baseModelDir: tmp, autoPromote: true },
    );
    expect(r.promoted).toBe(true);
    expect((await registry.promoted())?.version).toBe(r.version.version);
  });

  it('does not promote when another replica took the lock while the gate ran', async () => {
    let other: unknown = null;
    const evaluator: JobEvaluator = async (c, b) => {
      // The job stalled past the lock's lifetime; another replica's retrain took the lock.
      clock += TRAIN_LOCK_TTL_MS + 1;
      other = await state.acquireLock(TRAIN_LOCK, TRAIN_LOCK_TTL_MS);
      return passing(c.name, b?.name ?? 'base');
    };
    const run = runTrainingJob(deps(evaluator), { baseModelDir: tmp, autoPromote: true });
    await expect(run).rejects.toMatchObject({ code: 'job-lock-lost' });
    expect(other).not.toBeNull();
    expect(await registry.promoted()).toBeNull();
    // The candidate stays registered (it was trained), but not promoted.
    const [candidate] = await registry.list();
    expect(candidate?.state).toBe('candidate');
    expect((await state.getJobStatus(candidate?.jobId as string))?.state).toBe('failed');
  });

  it('does not evaluate (or promote) when the lock was lost before the gate', async () => {
    let evaluated = 0;
    const slowTrain: TrainFn = async (opts) => {
      const r = await train(opts);
      clock += TRAIN_LOCK_TTL_MS + 1;
      await state.acquireLock(TRAIN_LOCK, TRAIN_LOCK_TTL_MS);
      return r;
    };
    const d = {
      ...deps(async (c, b) => {
        evaluated++;
        return passing(c.name, b?.name ?? 'base');
      }),
      train: slowTrain,
    };
    await expect(runTrainingJob(d, { baseModelDir: tmp, autoPromote: true })).rejects.toMatchObject({
      code: 'job-lock-lost',
    });
    expect(evaluated).toBe(0);
    expect(await registry.list()).toEqual([]);
  });

  it('passes its signal to the evaluator and does not promote when cancelled during the gate', async () => {
    const cancel = new AbortController();
    let seen: AbortSignal | undefined;
    const evaluator: JobEvaluator = async (c, b, signal) => {
      seen = signal;
      cancel.abort(new Error('cancelled by the operator'));
      return passing(c.name, b?.name ?? 'base');
    };
    await expect(
      runTrainingJob(deps(evaluator), { baseModelDir: tmp, autoPromote: true, signal: cancel.signal }),
    ).rejects.toThrow('cancelled by the operator');
    expect(seen?.aborted).toBe(true);
    expect(await registry.promoted()).toBeNull();
  });

  it('aborts the run when lock renewals keep failing for longer than the lock lives', {
    timeout: 10_000,
  }, async () => {
    // The state store's renewals fail (e.g. Redis unreachable) while everything else works.
    let renewCalls = 0;
    const flaky = new Proxy(state, {
      get(target, prop, receiver) {
        if (prop === 'renewLock') {
          return async () => {
            renewCalls++;
            throw new Error('connect ECONNREFUSED 127.0.0.1:6379');
          };
        }
        const v = Reflect.get(target, prop, receiver);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    }) as StateStore;
    const waitForAbort: TrainFn = (opts) =>
      new Promise((_resolve, reject) => {
        opts.signal.addEventListener('abort', () => reject(opts.signal.reason), { once: true });
      });
    const started = Date.now();
    await expect(
      runTrainingJob(
        { ...deps(async (c, b) => passing(c.name, b?.name ?? 'base'), flaky), train: waitForAbort },
        { baseModelDir: tmp, autoPromote: true, lockTtlMs: 300 },
      ),
    ).rejects.toMatchObject({ code: 'job-lock-lost' });
    const elapsed = Date.now() - started;
    expect(renewCalls).toBeGreaterThanOrEqual(2);
    // Given up no later than the lock's lifetime after the last successful renewal (the acquisition).
    expect(elapsed).toBeLessThan(300 + 150);
    expect(await registry.list()).toEqual([]);
  });
});
