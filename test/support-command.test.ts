import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { HELP_TEXT, runSupportCommand, type SupportCommandDeps } from '../bot/commands/support-command.ts';
import { SqliteKnowledgeStore } from '../core/knowledge-store/sqlite.ts';
import { SqliteStateStore } from '../core/state-store/sqlite.ts';
import type { SyncSummary } from '../sync/sync.ts';
import { buildFeedbackDataset } from '../training/dataset/build.ts';
import { knowledgeStoreChunkLookup } from '../training/dataset/chunks.ts';
import { type JobProgress, startTrainingJob, type TrainFn, type TrainingJobDeps } from '../training/job.ts';
import { AdapterVersionRegistry, SqliteRegistryBackend } from '../training/registry.ts';
import { chatProgress } from '../training/service.ts';

/** A sync that waits until released, so tests can hold it "running". */
function gate() {
  let open: () => void = () => {};
  const opened = new Promise<void>((r) => {
    open = r;
  });
  return { open, opened };
}

const summary = (source: string, over: Partial<SyncSummary> = {}): SyncSummary => ({
  source,
  added: 1,
  updated: 0,
  unchanged: 0,
  deleted: 0,
  failed: 0,
  chunks: 3,
  seconds: 0.5,
  errors: [],
  swept: true,
  ...over,
});

describe('/support command runner', () => {
  let tmp: string;
  let state: SqliteStateStore;
  let syncCalls: string[][];
  let syncGate: ReturnType<typeof gate>;
  let deps: SupportCommandDeps;
  beforeEach(() => {
    tmp = mkdtempSync(path.join(tmpdir(), 'supportbot-command-'));
    state = SqliteStateStore.open(path.join(tmp, 'state.sqlite'));
    syncCalls = [];
    syncGate = gate();
    deps = {
      state,
      sync: async (names) => {
        syncCalls.push(names);
        await syncGate.opened;
        return (names.length ? names : ['docs', 'faq']).map((n) => summary(n));
      },
      sourceNames: () => ['docs', 'faq'],
      status: async () => 'indexed: 2 articles',
      ask: async (q, user) => `answer to "${q}" for ${user}`,
    };
  });
  afterEach(async () => {
    await state.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  const run = (text: string, isAdmin = false, userId = 'U1') =>
    runSupportCommand({ text, userId, isAdmin }, deps);

  it('help, empty text and unknown subcommands explain the usage', async () => {
    expect((await run('help')).immediate).toBe(HELP_TEXT);
    expect((await run('')).immediate).toBe(HELP_TEXT);
    const unknown = await run('deploy now');
    expect(unknown.immediate).toContain('Unknown subcommand `deploy`');
    expect(unknown.immediate).toContain('/support ask');
    expect(unknown.followUp).toBeUndefined();
  });

  it('admin subcommands refuse non-admins and start nothing', async () => {
    for (const sub of ['sync', 'retrain', 'SYNC docs']) {
      const r = await run(sub, false);
      expect(r.immediate).toMatch(/for admins only/);
      expect(r.followUp).toBeUndefined();
    }
    expect(syncCalls).toEqual([]);
    expect(await state.listJobs()).toEqual([]);
  });

  it('ask replies at once and delivers the answer as a follow-up', async () => {
    expect((await run('ask')).immediate).toMatch(/^Usage/);
    const r = await run('ask how do refunds work?', false, 'U7');
    expect(r.immediate).toContain('how do refunds work?');
    const posted: string[] = [];
    await r.followUp?.(async (t) => {
      posted.push(t);
    });
    expect(posted).toEqual(['answer to "how do refunds work?" for U7']);
  });

  it('sync: one at a time, unknown sources refused, job status recorded', async () => {
    expect((await run('sync nope', true)).immediate).toMatch(/Unknown source nope\. Configured: docs, faq/);
    const first = await run('sync docs', true);
    expect(first.immediate).toMatch(/Sync started for docs/);
    // A second request (from this or another replica: the lock is in the state store) is refused.
    const second = await runSupportCommand({ text: 'sync', userId: 'U2', isAdmin: true }, deps);
    expect(second.immediate).toMatch(/already running/);
    expect(second.followUp).toBeUndefined();
    const progress: string[] = [];
    const done = first.followUp?.(async (t) => {
      progress.push(t);
    });
    const [running] = await state.listJobs();
    expect(running).toMatchObject({ kind: 'sync', state: 'running', requestedBy: 'U1' });
    syncGate.open();
    await done;
    expect(syncCalls).toEqual([['docs']]);
    expect(progress).toHaveLength(1);
    expect(progress[0]).toMatch(/^Sync done:\ndocs: 1 added/);
    const [finished] = await state.listJobs();
    expect(finished).toMatchObject({ state: 'succeeded', progress: 1 });
    // The lock was released: the next sync starts.
    expect((await run('sync', true)).immediate).toMatch(/Sync started/);
  });

  it('a failing sync is reported, recorded as failed, and releases the lock', async () => {
    deps.sync = async () => {
      throw new Error('source unreachable');
    };
    const r = await run('sync', true);
    const progress: string[] = [];
    await r.followUp?.(async (t) => {
      progress.push(t);
    });
    expect(progress).toEqual(['Sync failed: source unreachable']);
    expect((await state.listJobs())[0]).toMatchObject({ state: 'failed', message: 'source unreachable' });
    expect((await run('sync', true)).immediate).toMatch(/Sync started/);
  });

  it('retrain without a trainer wired records a queued request for admins', async () => {
    const r = await run('retrain', true, 'U9');
    expect(r.immediate).toMatch(/Retrain request recorded/);
    expect(r.followUp).toBeUndefined();
    expect((await state.listJobs())[0]).toMatchObject({
      kind: 'retrain',
      state: 'queued',
      requestedBy: 'U9',
    });
  });

  describe('retrain with a trainer wired (training/job.ts under the job:train lock)', () => {
    let registry: AdapterVersionRegistry;
    let trainGate: ReturnType<typeof gate>;
    let trainerFails: Error | null;
    beforeEach(async () => {
      registry = new AdapterVersionRegistry(new SqliteRegistryBackend(path.join(tmp, 'state.sqlite')));
      trainGate = gate();
      trainerFails = null;
      // Rated answers the dataset is built from (two 👍, one 👎), on chunks-free prompts.
      for (let i = 1; i <= 3; i++) {
        await state.saveAnswer({
          id: `a${i}`,
          platform: 'slack',
          threadId: `t${i}`,
          userId: 'U1',
          question: `question ${i}?`,
          result: {
            text: `reply ${i}`,
            citations: [],
            abstained: false,
            escalated: false,
            confidence: 0.9,
            generator: 'extractive',
            latencyMs: 1,
            retrievedChunkIds: [],
          },
          createdAt: new Date(Date.UTC(2026, 0, 1, 0, i)).toISOString(),
        });
        await state.setRating(`a${i}`, 'U2', i === 3 ? -1 : 1);
      }
      const knowledge = SqliteKnowledgeStore.open(path.join(tmp, 'state.sqlite'));
      onTestFinished(() => knowledge.close());
      const chunks = knowledgeStoreChunkLookup(knowledge);
      /** Stand-in trainer for these job-orchestration tests: waits for the test, reports progress. */
      const fakeTrainerForJobTests: TrainFn = async (opts) => {
        opts.onProgress({ fraction: 0.5, step: 1, totalSteps: 2, loss: 1.5 });
        await trainGate.opened;
        if (trainerFails) throw trainerFails;
        opts.onProgress({ fraction: 1, step: 2, totalSteps: 2, loss: 1.25 });
        const gguf = path.join(opts.outputDir, 'adapter.gguf');
        mkdirSync(opts.outputDir, { recursive: true });
        writeFileSync(gguf, 'GGUF');
        return { adapterGguf: gguf, peftDir: opts.outputDir, metrics: { trainLoss: 1.25 } };
      };
      const jobDeps: TrainingJobDeps = {
        state,
        registry,
        train: fakeTrainerForJobTests,
        buildDataset: () => buildFeedbackDataset({ state, chunks, minExamples: 1 }),
        workDir: path.join(tmp, 'runs'),
      };
      deps.retrain = async (requestedBy) => {
        let onProgress: (p: JobProgress) => void = () => {};
        const job = await startTrainingJob(jobDeps, {
          baseModelDir: '/models/base',
          requestedBy,
          onProgress: (p) => onProgress(p),
        });
        if (!job) return null;
        return {
          jobId: job.jobId,
          run: async (progress) => {
            onProgress = chatProgress(progress);
            const r = await job.run();
            return `${r.version.name} registered`;
          },
        };
      };
    });
    afterEach(async () => {
      await registry.close();
    });

    it('starts a real job, one at a time across replicas, and reports progress in the channel', async () => {
      const first = await run('retrain', true, 'U9');
      expect(first.immediate).toMatch(/^Retrain started \(job train-.*\)\. I'll post progress here\.$/);
      expect((await state.listJobs({ kind: 'retrain' }))[0]).toMatchObject({
        state: 'queued',
        requestedBy: 'U9',
      });
      // The lock is taken at start: a second request is refused before the first even runs.
      expect((await run('retrain', true, 'U8')).immediate).toMatch(/already running/);
      const posted: string[] = [];
      const done = first.followUp?.(async (t) => {
        posted.push(t);
      });
      while (!posted.some((p) => p.startsWith('training'))) await new Promise((r) => setTimeout(r, 10));
      expect((await state.listJobs({ kind: 'retrain' }))[0]).toMatchObject({ state: 'running' });
      trainGate.open();
      await done;
      expect(posted[0]).toBe('building the dataset from rated answers');
      expect(posted[1]).toMatch(
        /^dataset [0-9a-f]{12}: \d train \/ \d validation \(2 answers, 0 escalations, 1 👎\)$/,
      );
      expect(posted.filter((p) => p.startsWith('training'))).toEqual([
        'training 50%, loss 1.5000',
        'training 100%, loss 1.2500',
      ]);
      expect(posted.at(-1)).toBe('Retrain done: support-v1 registered');
      expect((await state.listJobs({ kind: 'retrain' }))[0]).toMatchObject({
        state: 'succeeded',
        progress: 1,
      });
      expect((await registry.list()).map((v) => [v.name, v.state, v.baseModel])).toEqual([
        ['support-v1', 'candidate', '/models/base'],
      ]);
      // Lock released: the next retrain starts.
      expect((await run('retrain', true)).immediate).toMatch(/^Retrain started/);
    });

    it('a failing job is reported, recorded as failed, and releases the lock', async () => {
      trainerFails = new Error('out of memory');
      const r = await run('retrain', true);
      const posted: string[] = [];
      trainGate.open();
      await r.followUp?.(async (t) => {
        posted.push(t);
      });
      expect(posted.at(-1)).toBe('Retrain failed: out of memory');
      expect((await state.listJobs({ kind: 'retrain' }))[0]).toMatchObject({
        state: 'failed',
        message: 'out of memory',
      });
      expect(await registry.list()).toEqual([]);
      expect((await run('retrain', true)).immediate).toMatch(/^Retrain started/);
    });
  });

  it('status shows the runtime status', async () => {
    expect((await run('status')).immediate).toBe('indexed: 2 articles');
  });
});
