/**
 * `supportbot feedback export`, `train` and `adapters list|promote|rollback` on a commander
 * program (as bot/cli/main.ts registers them) over a real Runtime (SQLite stores in a temp data
 * dir). The trainer is the only stand-in: `fakeTrainerForJobTests` exercises the job's
 * orchestration (lock, status, dataset file, registry); the LoRA trainer has its own tests.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { getLlama, type Llama, LlamaLogLevel } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Runtime } from '../bot/runtime.ts';
import { configSchema } from '../core/config.ts';
import { LlamaCppGenerator } from '../core/generators/llama-cpp.ts';
import { cl100kTokenizer } from '../core/tokenizer.ts';
import type { AnswerRecord, Article, Chunk } from '../core/types.ts';
import { registerTrainingCommands } from '../training/cli.ts';
import { TRAIN_LOCK, type TrainFn, type TrainOptions } from '../training/job.ts';
import { PromotedAdapterWatcher } from '../training/registry.ts';
import { registryOf } from '../training/service.ts';
import { randomLoraPairs, writeTinyLlama, writeTinyLora } from './fixtures/gguf/tiny-llama.ts';
import { writeTinyHfLlama } from './fixtures/llama/tiny-hf-llama.ts';

const root = mkdtempSync(path.join(tmpdir(), 'training-cli-test-'));
const SHARED_DATA = path.resolve(import.meta.dirname, '..', '..', 'shared', 'data');
let runtime: Runtime;
let llama: Llama | null = null;
let tinyGen: LlamaCppGenerator | null = null;
let loraFile = '';

/** What the fake trainer saw, per call. */
const trainerCalls: { opts: Omit<TrainOptions, 'signal' | 'onProgress'>; lines: string[] }[] = [];

/**
 * A stand-in trainer for the job-orchestration tests only: reads the dataset file it is given,
 * reports progress, and "exports" a GGUF LoRA (a real tiny adapter file) and a PEFT folder.
 */
const fakeTrainerForJobTests: TrainFn = async (opts) => {
  const lines = readFileSync(opts.datasetFile, 'utf8').split('\n').filter(Boolean);
  trainerCalls.push({ opts: { ...opts }, lines });
  for (let step = 1; step <= 4; step++)
    opts.onProgress({ fraction: step / 4, step, totalSteps: 4, loss: 2 / step });
  mkdirSync(path.join(opts.outputDir, 'peft'), { recursive: true });
  const gguf = path.join(opts.outputDir, 'adapter.gguf');
  writeFileSync(gguf, readFileSync(loraFile));
  return {
    adapterGguf: gguf,
    peftDir: path.join(opts.outputDir, 'peft'),
    metrics: { trainLoss: 0.5, validationLoss: 0.75 },
  };
};

async function run(...args: string[]): Promise<{ out: string; err: string; code: number }> {
  let out = '';
  let err = '';
  const program = new Command('supportbot').exitOverride();
  registerTrainingCommands(
    program,
    async () => runtime,
    { out: (t) => (out += t), err: (t) => (err += t) },
    { train: fakeTrainerForJobTests },
  );
  process.exitCode = undefined;
  await program.parseAsync(['node', 'supportbot', ...args]);
  const code = typeof process.exitCode === 'number' ? process.exitCode : 0;
  process.exitCode = undefined;
  return { out, err, code };
}

const art = (id: string, title: string): Article => ({
  id,
  source: 'docs',
  title,
  url: null,
  sourcePath: `${id}.md`,
  body: '',
  updatedAt: '2026-01-01T00:00:00.000Z',
  tags: [],
  accessGroups: [],
  locale: 'en',
});
const chunkOf = (articleId: string, text: string): Chunk => ({
  id: `docs:${articleId}#0`,
  articleId,
  source: 'docs',
  index: 0,
  headingPath: [],
  text,
  tokenCount: cl100kTokenizer.count(text),
  span: { start: 0, end: text.length },
});

function record(i: number, over: Partial<AnswerRecord['result']> = {}, question?: string): AnswerRecord {
  return {
    id: `ans-${i}`,
    platform: 'slack',
    threadId: `T${i}`,
    userId: 'U1',
    question: question ?? `How do refunds work, case ${i}?`,
    result: {
      text: `Refunds take five days [1]. (case ${i})`,
      citations: [
        {
          n: 1,
          articleId: 'refunds',
          source: 'docs',
          title: 'Refunds',
          url: null,
          sourcePath: 'refunds.md',
          chunkIds: ['docs:refunds#0'],
        },
      ],
      abstained: false,
      escalated: false,
      confidence: 0.9,
      generator: 'extractive',
      latencyMs: 3,
      retrievedChunkIds: ['docs:password#0', 'docs:refunds#0'],
      ...over,
    },
    createdAt: new Date(Date.UTC(2026, 0, 2, 9, i)).toISOString(),
  };
}

beforeAll(async () => {
  runtime = new Runtime(
    configSchema.parse({ dataDir: path.join(root, 'data'), log: { level: 'silent' }, sources: [] }),
  );
  await runtime.knowledge.upsertArticle(
    art('refunds', 'Refunds'),
    [chunkOf('refunds', 'Refunds reach your card within five days.')],
    'h1',
  );
  await runtime.knowledge.upsertArticle(
    art('password', 'Password'),
    [chunkOf('password', 'Reset the password under Settings > Security.')],
    'h2',
  );
  for (let i = 1; i <= 5; i++) {
    await runtime.state.saveAnswer(
      record(i, {}, i === 1 ? 'Refund to 4111 1111 1111 1111 please, mail a@b.io' : undefined),
    );
    await runtime.state.setRating(`ans-${i}`, 'U9', i === 5 ? -1 : 1);
  }
  const modelDir = mkdtempSync(path.join(root, 'models-'));
  loraFile = await writeTinyLora(modelDir, 'lora.gguf', {
    pairs: randomLoraPairs(7, ['blk.0.attn_q.weight', 'blk.0.attn_v.weight', 'output.weight']),
  });
  llama = await getLlama({ gpu: false, logLevel: LlamaLogLevel.error });
  tinyGen = await LlamaCppGenerator.load({
    modelPath: await writeTinyLlama(modelDir),
    llama,
    threads: 1,
    maxTokens: 8,
    // The dataset is rendered for the serving window: room for the system prompt in the tiny
    // model's byte-level tokens plus the configured reply budget.
    contextSize: 4096,
  });
});

afterAll(async () => {
  runtime.generator = null; // disposed below, not by the runtime
  await runtime.close();
  await tinyGen?.dispose();
  await llama?.dispose();
  rmSync(root, { recursive: true, force: true });
});

describe('supportbot feedback export', () => {
  it('writes both formats, prints the stats with PII counts, and holds no originals', async () => {
    const out = path.join(root, 'export-1');
    const r = await run('feedback', 'export', '--out', out, '--min', '1');
    expect(r.out).toMatch(/^dataset [0-9a-f]{12}: 5 examples \(\d+ train, \d+ validation\) from 5 read$/m);
    expect(r.out).toContain('kinds: 4 answers (SFT), 0 confirmed escalations, 1 👎 (KTO undesirable)');
    expect(r.out).toContain('PII replaced: email 1, phone 0, card 1, iban 0, secret 0, mention 0');
    for (const f of ['chat/train.jsonl', 'prompt-completion/train.jsonl', 'examples.jsonl', 'dataset.json'])
      expect(existsSync(path.join(out, f)), f).toBe(true);
    const chat =
      readFileSync(path.join(out, 'chat', 'train.jsonl'), 'utf8') +
      readFileSync(path.join(out, 'chat', 'validation.jsonl'), 'utf8');
    expect(chat.split('\n').filter(Boolean)).toHaveLength(4);
    expect(chat).not.toContain('4111 1111 1111 1111');
    expect(chat).not.toContain('a@b.io');
    // The reply's article citation [1] is context [2] again: the refunds chunk was retrieved second.
    expect(chat).toContain('Refunds take five days [2].');
  });

  it('writes one format on request, and refuses too little data with how many more ratings are needed', async () => {
    const out = path.join(root, 'export-2');
    const r = await run('feedback', 'export', '--out', out, '--format', 'chat', '--min', '0', '--json');
    expect(JSON.parse(r.out).stats.kinds).toEqual({ sft: 4, escalation: 0, undesirable: 1 });
    expect(existsSync(path.join(out, 'chat', 'train.jsonl'))).toBe(true);
    expect(existsSync(path.join(out, 'prompt-completion'))).toBe(false);
    await expect(run('feedback', 'export', '--out', path.join(root, 'export-3'))).rejects.toThrow(
      /4 usable 👍-rated answers .* at least 32 needed: 28 more 👍-rated answers needed/,
    );
    expect(existsSync(path.join(root, 'export-3'))).toBe(false);
  });

  it.skipIf(!existsSync(SHARED_DATA))('adds the seed sets from the shared data', async () => {
    const r = await run(
      'feedback',
      'export',
      '--out',
      path.join(root, 'export-seed'),
      '--seed',
      SHARED_DATA,
      '--seed-limit',
      '20',
    );
    expect(r.out).toMatch(/seed sets: bitext 20, mtrag 20, feedbackqa \d+/);
    expect(r.out).toMatch(/kinds: \d+ answers \(SFT\), \d+ confirmed escalations/);
  });
});

describe('supportbot train and adapters', () => {
  it('trains under the lock, records the job, registers a candidate; list, promote --force, rollback', async () => {
    await expect(run('train', '--min', '1')).rejects.toThrow(/--base DIR or TRAIN_BASE_MODEL/);
    const r = await run(
      'train',
      '--base',
      '/models/tiny',
      '--min',
      '1',
      '--epochs',
      '2',
      '--rank',
      '4',
      '--objective',
      'kto',
    );
    expect(r.err).toMatch(/\[ {2}0%\] building the dataset from rated answers/);
    expect(r.err).toMatch(/training 100%, step 4|training 100%/);
    expect(r.out).toMatch(/^v1 {2}support-v1 +candidate/m);
    expect(r.out).toContain('not evaluated');
    expect(r.err).toContain('cannot load adapter files, so the gate was not run');

    // The trainer got the prompt/completion/label file: scrubbed, one line per training example.
    const call = trainerCalls.at(-1);
    expect(call?.opts.baseModelDir).toBe('/models/tiny');
    expect(call?.opts.hyperparameters).toEqual({ epochs: 2, rank: 4, objective: 'kto' });
    expect(path.basename(call?.opts.datasetFile ?? '')).toBe('train.jsonl');
    const parsed = call?.lines.map((l) => JSON.parse(l)) ?? [];
    expect(parsed.length).toBeGreaterThan(0);
    for (const p of parsed) expect(Object.keys(p).sort()).toEqual(['completion', 'label', 'prompt']);
    expect(call?.lines.join('\n')).not.toContain('4111 1111 1111 1111');
    // Nothing the job wrote holds the originals.
    const runs = path.join(root, 'data', 'training', 'runs');
    const written = readdirSync(runs, { recursive: true, withFileTypes: true }).filter((d) => d.isFile());
    expect(written.length).toBeGreaterThanOrEqual(7);
    for (const f of written) {
      const text = readFileSync(path.join(f.parentPath, f.name), 'latin1');
      expect(text, f.name).not.toContain('4111 1111 1111 1111');
      expect(text, f.name).not.toContain('a@b.io');
    }

    const [job] = await runtime.state.listJobs({ kind: 'retrain' });
    expect(job).toMatchObject({ state: 'succeeded', progress: 1 });
    expect(job?.message).toMatch(
      /^support-v1 trained \(trainLoss 0\.5000, validationLoss 0\.7500\); not evaluated/,
    );
    // The lock was released: it can be taken again.
    const lock = await runtime.state.acquireLock(TRAIN_LOCK, 60_000);
    expect(lock).not.toBeNull();
    // While someone holds it, a second job is refused.
    await expect(run('train', '--base', '/models/tiny', '--min', '1')).rejects.toMatchObject({
      code: 'job-busy',
    });
    if (lock) await runtime.state.releaseLock(lock);

    const list = await run('adapters', 'list');
    expect(list.out).toMatch(
      /v1 {2}support-v1 +candidate .* data [0-9a-f]{12} {2}base tiny {2}trainLoss 0\.5000/,
    );
    expect(list.out).toContain('serving: the base model');

    // The extractive generator cannot run the gate: promotion needs --force, which is recorded.
    await expect(run('adapters', 'promote', 'v1')).rejects.toMatchObject({ code: 'gate-unavailable' });
    const forced = await run('adapters', 'promote', 'support-v1', '--force');
    expect(forced.out).toMatch(/^support-v1 promoted \(forced; gate: not evaluated/);
    const json = JSON.parse((await run('adapters', 'list', '--json')).out);
    expect(json[0]).toMatchObject({
      version: 1,
      state: 'promoted',
      gate: { forced: { by: expect.stringMatching(/^cli:/) } },
    });

    // With a generator that loads adapters, the next one goes through the real gate.
    runtime.generator = tinyGen;
    try {
      const BEIR = path.join(import.meta.dirname, 'fixtures', 'evals', 'beir-mini');
      const trained = await run(
        'train',
        '--base',
        '/models/tiny',
        '--min',
        '1',
        '--eval-dataset',
        BEIR,
        '--eval-sample',
        '2',
      );
      // The job ran the gate on the candidate (against the promoted support-v1) but did not promote it.
      expect(trained.out).toMatch(/^v2 {2}support-v2 +candidate .* gate (passed|failed)/m);
      const promote = await run(
        'adapters',
        'promote',
        '2',
        '--eval-dataset',
        path.join(import.meta.dirname, 'fixtures', 'evals', 'beir-mini'),
        '--sample',
        '2',
      );
      const v2 = JSON.parse((await run('adapters', 'list', '--json')).out)[1];
      expect(v2.gate).toMatchObject({ baseline: 'support-v1', dataset: 'beir-mini' });
      console.log(
        `gate on the tiny model: ${v2.gate.pass ? 'passed' : `failed: ${v2.gate.reasons.join('; ')}`}`,
      );
      if (v2.gate.pass) {
        expect(promote.out).toMatch(/^support-v2 promoted \(gate passed\)/);
        expect(v2.state).toBe('promoted');
        const back = await run('adapters', 'rollback');
        expect(back.out).toBe('Rolled back from support-v2 to support-v1.\n');
      } else {
        expect(promote.code).toBe(1);
        expect(promote.err).toMatch(/^Not promoted: support-v2 fails the gate against support-v1:\n {2}- /);
        expect(v2.state).toBe('candidate');
      }
    } finally {
      runtime.generator = null;
    }
    const back = await run('adapters', 'rollback');
    expect(back.out).toBe('Rolled back from support-v1 to the base model.\n');
    await expect(run('adapters', 'rollback')).rejects.toMatchObject({ code: 'nothing-promoted' });
  });
});

describe('supportbot train with the real LoRA trainer (tiny Hugging Face Llama written by the fixture)', () => {
  it('trains on the rated answers, and the promoted GGUF adapter is served by llama.cpp on another registry instance', async () => {
    const dir = mkdtempSync(path.join(root, 'real-'));
    const fx = await writeTinyHfLlama(path.join(dir, 'base'));
    const rt = new Runtime(
      configSchema.parse({
        dataDir: path.join(dir, 'data'),
        log: { level: 'silent' },
        sources: [],
        llm: { maxTokens: 32 },
      }),
    );
    const gen = await LlamaCppGenerator.load({
      modelPath: fx.gguf,
      llama: llama as Llama,
      threads: 1,
      maxTokens: 6,
      contextSize: 2048,
    });
    rt.generator = gen;
    const realRun = async (...args: string[]) => {
      let out = '';
      let err = '';
      const program = new Command('supportbot').exitOverride();
      registerTrainingCommands(program, async () => rt, { out: (t) => (out += t), err: (t) => (err += t) });
      await program.parseAsync(['node', 'supportbot', ...args]);
      return { out, err };
    };
    const watcherRegistry = await registryOf(rt);
    try {
      await rt.knowledge.upsertArticle(
        art('refunds', 'Refunds'),
        [chunkOf('refunds', 'Refunds reach your card within five days.')],
        'h1',
      );
      for (let i = 1; i <= 4; i++) {
        const r = record(i);
        await rt.state.saveAnswer({ ...r, result: { ...r.result, retrievedChunkIds: ['docs:refunds#0'] } });
        await rt.state.setRating(r.id, 'U9', 1);
      }
      const trained = await realRun(
        'train',
        '--base',
        fx.dir,
        '--min',
        '1',
        '--epochs',
        '1',
        '--eval-dataset',
        path.join(import.meta.dirname, 'fixtures', 'evals', 'beir-mini'),
        '--eval-sample',
        '1',
      );
      console.log(`real trainer:\n${trained.out}`);
      expect(trained.out).toMatch(/^v1 {2}support-v1 +candidate .* trainLoss \d/m);
      const [v1] = await watcherRegistry.list();
      expect(v1?.metrics.trainExamples).toBeGreaterThan(0);
      expect(existsSync(v1?.ggufPath ?? '')).toBe(true);
      expect(existsSync(path.join(v1?.peftDir ?? '', 'adapter_config.json'))).toBe(true);

      await realRun(
        'adapters',
        'promote',
        '1',
        '--force',
        '--eval-dataset',
        path.join(import.meta.dirname, 'fixtures', 'evals', 'beir-mini'),
        '--sample',
        '1',
      );
      const names: (string | null)[] = [];
      const watcher = new PromotedAdapterWatcher(watcherRegistry, gen, { onChange: (n) => names.push(n) });
      expect(await watcher.check()).toBe(true);
      expect(names).toEqual(['support-v1']);
      const served = await gen.generate({
        question: 'How do refunds work?',
        history: [],
        contexts: [],
        maxChars: 200,
        adapter: 'support-v1',
      });
      expect(served.adapter).toBe('support-v1');
    } finally {
      await watcherRegistry.close();
      rt.generator = null;
      await gen.dispose();
      await rt.close();
    }
  }, 240_000);
});
