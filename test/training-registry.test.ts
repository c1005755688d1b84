import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { getLlama, type Llama, LlamaLogLevel } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GenerateRequest } from '../core/generator.ts';
import { LlamaCppGenerator } from '../core/generators/llama-cpp.ts';
import type { EvalDataset } from '../evals/datasets.ts';
import type { GateRule } from '../evals/gate.ts';
import {
  type AdapterEvaluator,
  AdapterVersionRegistry,
  type CandidateInput,
  gateEvaluator,
  PromotedAdapterWatcher,
  RedisRegistryBackend,
  type RegistryBackend,
  SqliteRegistryBackend,
} from '../training/registry.ts';
import { randomLoraPairs, writeTinyLlama, writeTinyLora } from './fixtures/gguf/tiny-llama.ts';
import { deleteRedisKeys, SKIP_REDIS, TEST_REDIS_URL } from './helpers/redis.ts';

// Real Redis on 127.0.0.1:6379 (CI provides one); SUPPORTBOT_SKIP_REDIS=1 skips the Redis half.
const REDIS_URL = TEST_REDIS_URL;
const runPrefix = `supportbot-test-registry:${process.pid}:${Date.now()}:`;
let prefixes = 0;

const tmp = mkdtempSync(path.join(tmpdir(), 'supportbot-registry-'));
const Q_V = ['blk.0.attn_q.weight', 'blk.0.attn_v.weight', 'blk.1.attn_q.weight', 'blk.1.attn_v.weight'];
const lora: string[] = [];
let llama: Llama;
let gen: LlamaCppGenerator;

beforeAll(async () => {
  const modelPath = await writeTinyLlama(tmp);
  for (const seed of [1, 2, 3]) {
    lora.push(
      await writeTinyLora(tmp, `lora-${seed}.gguf`, {
        pairs: randomLoraPairs(seed, [...Q_V, 'output.weight']),
      }),
    );
  }
  llama = await getLlama({ gpu: false, logLevel: LlamaLogLevel.error });
  gen = await LlamaCppGenerator.load({ modelPath, llama, threads: 1, maxTokens: 8, contextSize: 1024 });
});

afterAll(async () => {
  await gen?.dispose();
  await llama?.dispose();
  rmSync(tmp, { recursive: true, force: true });
  if (!SKIP_REDIS) {
    // Nothing to clean when Redis was never reachable (the tests said so).
    await deleteRedisKeys(`${runPrefix}*`).catch(() => {});
  }
});

/** A small help center and two labelled questions: what the gate evaluates adapters on. */
const DATASET: EvalDataset = {
  name: 'registry-mini',
  corpus: {
    kind: 'documents',
    documents: [
      {
        id: 'refunds',
        title: 'Refunds',
        text: 'Refunds are issued to the original card within five business days.',
      },
      {
        id: 'password',
        title: 'Password',
        text: 'To reset your password open Settings, then Security, then Reset.',
      },
    ],
  },
  queries: [
    { id: 'q1', text: 'how long do refunds take', qrels: { refunds: 1 }, label: 'ANSWERABLE' },
    { id: 'q2', text: 'how do I reset my password', qrels: { password: 1 }, label: 'ANSWERABLE' },
  ],
  notes: [],
};

/** The real gate (`gateConfigurations` through `gateEvaluator`) on the real llama-cpp generator. */
function evaluator(rules: GateRule[]): AdapterEvaluator {
  return gateEvaluator({
    dataset: DATASET,
    generator: gen,
    settings: {
      topK: 2,
      abstainThreshold: 0,
      maxAnswerChars: 300,
      chunking: { maxTokens: 120, overlapTokens: 10 },
    },
    rules,
  });
}
// Latency is always above 0 ms: a `max 0` rule on it fails every candidate, with a reason.
const FAILING: GateRule[] = [{ metric: 'latencyP95Ms', direction: 'max', tolerance: 0 }];
// No answer cites a chunk it was not given (answer() removes such markers): this always passes.
const PASSING: GateRule[] = [{ metric: 'unsuppliedCitations', direction: 'max', tolerance: 0 }];

const candidate = (i: number, over: Partial<CandidateInput> = {}): CandidateInput => ({
  ggufPath: lora[i] as string,
  peftDir: path.join(tmp, `peft-${i}`),
  baseModel: '/models/tiny-llama',
  datasetHash: `hash-${i}`,
  datasetSize: { train: 40, validation: 5 },
  hyperparameters: { rank: 4, alpha: 8, epochs: 2 },
  metrics: { trainLoss: 1.25 + i, validationLoss: 1.5 + i },
  ...over,
});

const request = (adapter: string | null): GenerateRequest => ({
  question: 'how long do refunds take',
  history: [],
  contexts: [],
  maxChars: 300,
  adapter,
});

type Opener = () => Promise<RegistryBackend>;
const backends: [string, () => Opener | Promise<Opener>][] = [
  [
    'SQLite',
    () => {
      const file = path.join(mkdtempSync(path.join(tmp, 'sqlite-')), 'supportbot.sqlite');
      return async () => new SqliteRegistryBackend(file);
    },
  ],
  [
    'Redis',
    () => {
      const keyPrefix = `${runPrefix}${++prefixes}:`;
      return async () => RedisRegistryBackend.connect(REDIS_URL, { keyPrefix, connectTimeoutMs: 1_000 });
    },
  ],
];

const redisDown = SKIP_REDIS
  ? 'skipped by SUPPORTBOT_SKIP_REDIS=1'
  : await RedisRegistryBackend.connect(REDIS_URL, { keyPrefix: runPrefix, connectTimeoutMs: 1_000 }).then(
      async (b) => {
        await b.close();
        return null;
      },
      (err: Error) => err.message,
    );

describe.each(backends)('adapter registry on %s', (name, makeOpener) => {
  // The generator is shared by both halves: adapter names must not collide between them.
  let tests = 0;
  const prefix = () => `${name.toLowerCase()}${++tests}`;
  const unavailable = name === 'Redis' ? redisDown : null;
  if (unavailable !== null && SKIP_REDIS) {
    it.skip(`needs Redis (${unavailable})`, () => {});
    return;
  }
  if (unavailable !== null) {
    it(`needs a Redis at ${REDIS_URL}`, () => {
      throw new Error(`${unavailable}: start Redis or set SUPPORTBOT_SKIP_REDIS=1`);
    });
    return;
  }

  it('promote runs the gate and refuses with its reasons; --force overrides and is recorded; rollback goes back', async () => {
    const open = await makeOpener();
    const registry = new AdapterVersionRegistry(await open(), prefix());
    try {
      const v1 = await registry.registerCandidate(candidate(0));
      const v2 = await registry.registerCandidate(candidate(1));
      expect([v1.version, v1.state]).toEqual([1, 'candidate']);
      expect(v1.name).toMatch(/^(sqlite|redis)\d-v1$/);
      expect(v2.name).toBe(v1.name.replace(/1$/, '2'));
      expect(await registry.promoted()).toBeNull();

      await expect(registry.promote(1)).rejects.toMatchObject({ code: 'gate-unavailable' });

      const refused = await registry.promote(1, { evaluator: evaluator(FAILING) });
      expect(refused.promoted).toBe(false);
      expect(refused.gate.pass).toBe(false);
      expect(refused.gate.baseline).toBe('base model');
      expect(refused.gate.dataset).toBe('registry-mini');
      expect(refused.gate.reasons.join('\n')).toMatch(/latencyP95Ms is .* ms, must be at most 0/);
      expect((await registry.get(1)).state).toBe('candidate');
      expect((await registry.get(1)).gate?.pass).toBe(false);
      expect(await registry.promoted()).toBeNull();

      const forced = await registry.promote(1, {
        evaluator: evaluator(FAILING),
        force: true,
        by: 'slack:UADMIN',
      });
      expect(forced.promoted).toBe(true);
      expect(forced.version.state).toBe('promoted');
      expect(forced.version.gate?.forced?.by).toBe('slack:UADMIN');
      expect(forced.version.gate?.reasons.length).toBeGreaterThan(0);
      await expect(registry.promote(1, { force: true })).rejects.toMatchObject({
        code: 'adapter-already-promoted',
      });

      const passed = await registry.promote(2, { evaluator: evaluator(PASSING), by: 'cli:ops' });
      expect(passed).toMatchObject({ promoted: true, previous: 1 });
      expect(passed.gate).toMatchObject({ pass: true, reasons: [], baseline: v1.name });
      expect((await registry.list()).map((v) => [v.name, v.state])).toEqual([
        [v1.name, 'retired'],
        [v2.name, 'promoted'],
      ]);
      const listed = (await registry.list())[1];
      expect(listed).toMatchObject({
        datasetHash: 'hash-1',
        baseModel: '/models/tiny-llama',
        hyperparameters: { rank: 4, alpha: 8, epochs: 2 },
        metrics: { trainLoss: 2.25, validationLoss: 2.5 },
      });
      expect(Date.parse(listed?.createdAt ?? '')).not.toBeNaN();

      const back = await registry.rollback({ by: 'cli:ops' });
      expect([back.from.name, back.from.state, back.to?.name, back.to?.state]).toEqual([
        v2.name,
        'retired',
        v1.name,
        'promoted',
      ]);
      const toBase = await registry.rollback();
      expect(toBase.to).toBeNull();
      expect((await registry.list()).map((v) => v.state)).toEqual(['retired', 'retired']);
      await expect(registry.rollback()).rejects.toMatchObject({ code: 'nothing-promoted' });

      const missing = await registry.registerCandidate(
        candidate(2, { ggufPath: path.join(tmp, 'gone.gguf') }),
      );
      await expect(registry.promote(missing.version, { force: true })).rejects.toMatchObject({
        code: 'adapter_missing',
      });
      await expect(registry.get(99)).rejects.toMatchObject({ code: 'unknown-adapter-version' });
    } finally {
      await registry.close();
    }
  });

  it('two registry instances on one store: a promotion on one is served by the other without a restart', async () => {
    const open = await makeOpener();
    const p = prefix();
    const admin = new AdapterVersionRegistry(await open(), p);
    const replica = new AdapterVersionRegistry(await open(), p);
    const changes: (string | null)[] = [];
    const watcher = new PromotedAdapterWatcher(replica, gen, {
      intervalMs: 50,
      onChange: (adapterName) => changes.push(adapterName),
    });
    try {
      const v = await admin.registerCandidate(candidate(2));
      await watcher.check();
      expect(watcher.current).toBeNull();
      await expect(gen.generate(request(v.name))).rejects.toMatchObject({ code: 'llm_rejected' });

      watcher.start();
      await admin.promote(v.version, { evaluator: evaluator(PASSING) });
      const deadline = Date.now() + 5_000;
      while (watcher.current !== v.name && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(watcher.current).toBe(v.name);
      // The replica's generator now serves the promoted adapter: the same reply as the file loaded by hand.
      const served = await gen.generate(request(v.name));
      expect(served.adapter).toBe(v.name);
      gen.registerAdapter('by-hand', lora[2] as string);
      expect(served.text).toBe((await gen.generate(request('by-hand'))).text);
      expect(served.text).not.toBe((await gen.generate(request(null))).text);

      await admin.rollback();
      const back = Date.now() + 5_000;
      while (watcher.current !== null && Date.now() < back) await new Promise((r) => setTimeout(r, 20));
      expect(changes).toEqual([null, v.name, null]);
      expect(await watcher.check()).toBe(false); // nothing changed since
    } finally {
      watcher.stop();
      await admin.close();
      await replica.close();
    }
  });

  it('the promoted pointer is compare-and-swap: of concurrent swaps from one state exactly one wins', async () => {
    const open = await makeOpener();
    const a = await open();
    const b = await open();
    try {
      const next = (version: number) => ({
        version,
        name: `support-v${version}`,
        ggufPath: lora[0] as string,
        changedAt: new Date().toISOString(),
        previous: [],
      });
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) => (i % 2 ? a : b).swapPointer(null, next(i + 1))),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
      const winner = await a.getPointer();
      expect(await b.getPointer()).toEqual(winner);
      expect(await a.swapPointer(null, next(42))).toBe(false); // stale expectation
      expect(await b.swapPointer(winner, null)).toBe(true);
      expect(await a.getPointer()).toBeNull();
      // Version numbers are never handed out twice, across instances.
      const seq = await Promise.all([a.nextVersion(), b.nextVersion(), a.nextVersion(), b.nextVersion()]);
      expect(new Set(seq).size).toBe(4);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
