/**
 * Trainer behaviour: checkpoint → resume equals an uninterrupted run, KTO moves desirable
 * log-probs up and undesirable ones down, backends agree, cancellation keeps a checkpoint, and
 * `trainAdapter` end to end on a slice of the Bitext customer-support data rendered in our
 * prompt format (validation loss improves over the untrained adapter).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assemblePrompt } from '../core/prompt.ts';
import { LoraAdapter } from '../training/lora/lora.ts';
import { selectBackend } from '../training/model/backend.ts';
import { tokenizeRecord } from '../training/model/examples.ts';
import { LlamaModel } from '../training/model/llama.ts';
import { ChatTokenizer } from '../training/model/tokenizer.ts';
import { trainAdapter } from '../training/train.ts';
import {
  makeBatch,
  sequenceLogProbs,
  type TokenizedExample,
  TrainingAbortedError,
  trainLora,
} from '../training/trainer.ts';
import { maxAbsDiff } from './fixtures/llama/compare.ts';
import { type TinyHfModel, writeTinyHfLlama } from './fixtures/llama/tiny-hf-llama.ts';

const tmp = mkdtempSync(path.join(tmpdir(), 'supportbot-trainer-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const GOOD = [
  ['how do i reset my password?', 'open settings, then press reset [1].'],
  ['can i talk to a person?', 'sure, a colleague will reply soon.\nESCALATE: user asks for a human'],
  ['where is my invoice?', 'invoices are under billing [1].'],
  ['how do i change my email?', 'go to account, then email, and confirm the link.'],
];
const BAD = [
  ['how do i reset my password?', 'no idea. figure it out yourself!!'],
  ['can i talk to a person?', 'no. stop asking.'],
  ['where is my invoice?', 'lol what invoice?'],
  ['how do i change my email?', 'you cannot. ever.'],
];

let fx: TinyHfModel;
let tok: ChatTokenizer;
const toExample = (q: string, a: string, desirable = true): TokenizedExample =>
  tokenizeRecord(tok, {
    prompt: [{ role: 'user', content: q }],
    completion: [{ role: 'assistant', content: a }],
    desirable,
  });

beforeAll(async () => {
  await selectBackend('auto');
  fx = await writeTinyHfLlama(path.join(tmp, 'base'));
  tok = await ChatTokenizer.load(fx.dir);
});

async function weights(adapter: LoraAdapter): Promise<Float32Array[]> {
  return Promise.all(adapter.variables().map(async (v) => (await v.data()) as Float32Array));
}

describe('checkpoints and resume', () => {
  it('stopping after step 3 and resuming from its checkpoint gives the uninterrupted run bit for bit', async () => {
    const model = await LlamaModel.load(fx.dir);
    const train = GOOD.concat(BAD.slice(0, 2)).map(([q, a]) => toExample(q as string, a as string));
    const val = [toExample('is there a dark mode?', 'yes: settings, then appearance.')];
    // Dropout, accumulation, weight decay and warmup all on, so any state that is not restored shows.
    const hyper = {
      epochs: 3,
      batchSize: 2,
      gradAccumSteps: 2,
      learningRate: 1e-2,
      weightDecay: 0.01,
      warmupSteps: 2,
      seed: 5,
      earlyStoppingPatience: 0,
    };
    const lora = { r: 4, alpha: 8, dropout: 0.1, targetModules: ['q_proj', 'v_proj', 'down_proj'] as const };
    const full = new LoraAdapter(model.config, { ...lora, targetModules: [...lora.targetModules] }, 5);
    const a = await trainLora(model, full, train, val, { hyper });
    expect(a.steps).toBe(6);

    const first = new LoraAdapter(model.config, { ...lora, targetModules: [...lora.targetModules] }, 5);
    const dir = path.join(tmp, 'ckpt');
    const b1 = await trainLora(model, first, train, val, { hyper, checkpointDir: dir, stopAfterSteps: 3 });
    expect(b1.interrupted).toBe(true);
    expect(b1.lastCheckpoint).toMatch(/checkpoint-000003$/);
    first.dispose();
    // A fresh adapter with another seed: everything must come from the checkpoint.
    const resumed = new LoraAdapter(model.config, { ...lora, targetModules: [...lora.targetModules] }, 123);
    const b2 = await trainLora(model, resumed, train, val, {
      hyper,
      checkpointDir: dir,
      resumeFrom: b1.lastCheckpoint as string,
    });
    expect(b2.steps).toBe(6);
    expect(b2.history).toEqual(a.history);
    expect(b2.initialValLoss).toBe(a.initialValLoss);
    const wa = await weights(full);
    const wb = await weights(resumed);
    for (const [i, w] of wa.entries())
      expect(Buffer.from((wb[i] as Float32Array).buffer)).toEqual(Buffer.from(w.buffer));
    // And the weights did move.
    expect(wa.some((w) => w.some((x) => x !== 0))).toBe(true);
    console.log(
      `resume: history ${JSON.stringify(a.history.map((h) => [h.trainLoss.toFixed(3), h.valLoss?.toFixed(3)]))}, bit-identical`,
    );
    await expect(
      trainLora(model, resumed, train, val, {
        hyper: { ...hyper, learningRate: 1 },
        resumeFrom: b1.lastCheckpoint as string,
      }),
    ).rejects.toThrow(/other hyperparameters/);
    full.dispose();
    resumed.dispose();
    model.dispose();
  });

  it('cancelling through the signal stops with a checkpoint', async () => {
    const model = await LlamaModel.load(fx.dir);
    const adapter = new LoraAdapter(
      model.config,
      { r: 2, alpha: 4, dropout: 0, targetModules: ['q_proj', 'v_proj'] },
      1,
    );
    const ac = new AbortController();
    const dir = path.join(tmp, 'cancel');
    const err = await trainLora(
      model,
      adapter,
      GOOD.map(([q, a]) => toExample(q as string, a as string)),
      [],
      {
        hyper: { epochs: 5, batchSize: 1 },
        checkpointDir: dir,
        signal: ac.signal,
        onProgress: (p) => p.step === 2 && ac.abort(),
      },
    ).catch((e) => e);
    expect(err).toBeInstanceOf(TrainingAbortedError);
    expect((err as TrainingAbortedError).checkpoint).toMatch(/checkpoint-000002$/);
    adapter.dispose();
    model.dispose();
  });
});

describe('optimizer details', () => {
  it('gradient accumulation over two micro-batches of 1 equals one batch of 2 (token-weighted normalisation)', async () => {
    const model = await LlamaModel.load(fx.dir);
    const train = GOOD.map(([q, a]) => toExample(q as string, a as string));
    const run = async (batchSize: number, gradAccumSteps: number) => {
      const adapter = new LoraAdapter(
        model.config,
        { r: 4, alpha: 8, dropout: 0, targetModules: ['q_proj', 'v_proj'] },
        4,
      );
      await trainLora(model, adapter, train, [], {
        hyper: { epochs: 1, batchSize, gradAccumSteps, learningRate: 1e-2, maxGradNorm: 0.5, seed: 4 },
      });
      const w = await weights(adapter);
      adapter.dispose();
      return w;
    };
    const accumulated = await run(1, 2);
    const batched = await run(2, 1);
    const d = maxAbsDiff(accumulated, batched);
    expect(d).toBeLessThan(1e-6);
    // B of the first pair moved away from 0.
    expect(Math.max(...Array.from(accumulated[1] as Float32Array, Math.abs))).toBeGreaterThan(1e-3);
    model.dispose();
  });

  it('early stopping: no validation improvement for `patience` epochs ends the run and keeps the best adapter', async () => {
    const model = await LlamaModel.load(fx.dir);
    const adapter = new LoraAdapter(
      model.config,
      { r: 2, alpha: 4, dropout: 0, targetModules: ['v_proj'] },
      1,
    );
    const r = await trainLora(
      model,
      adapter,
      GOOD.map(([q, a]) => toExample(q as string, a as string)),
      [toExample('is there a dark mode?', 'yes.')],
      { hyper: { epochs: 6, batchSize: 2, learningRate: 0, earlyStoppingPatience: 2 } },
    );
    // lr 0: validation loss never improves after epoch 0, so epochs 1 and 2 are the two bad ones.
    expect(r.stoppedEarly).toBe(true);
    expect(r.epochsCompleted).toBe(3);
    expect(r.bestValLoss).toBe(r.initialValLoss);
    adapter.dispose();
    model.dispose();
  });
});

describe('KTO (arXiv 2402.01306) with the base model as reference', () => {
  for (const klEstimate of ['mismatched', 'batch-mean'] as const) {
    it(`raises log p of desirable replies and lowers undesirable ones (z0: ${klEstimate})`, async () => {
      const model = await LlamaModel.load(fx.dir);
      const examples = [
        ...GOOD.map(([q, a]) => toExample(q as string, a as string, true)),
        ...BAD.map(([q, a]) => toExample(q as string, a as string, false)),
      ];
      const adapter = new LoraAdapter(
        model.config,
        { r: 4, alpha: 8, dropout: 0, targetModules: ['q_proj', 'v_proj'] },
        2,
      );
      const logps = async () => {
        const t = sequenceLogProbs(model, adapter, makeBatch(examples));
        const out = Array.from(await t.data());
        t.dispose();
        return out;
      };
      const before = await logps();
      const losses: number[] = [];
      await trainLora(model, adapter, examples, [], {
        hyper: {
          objective: 'kto',
          epochs: 4,
          batchSize: 4,
          learningRate: 1e-2,
          ktoBeta: 0.1,
          klEstimate,
          seed: 3,
        },
        onProgress: (p) => p.phase === 'train' && losses.push(p.loss),
      });
      const after = await logps();
      const delta = after.map((x, i) => x - (before[i] as number));
      const up = delta.slice(0, 4);
      const down = delta.slice(4);
      console.log(
        `KTO (${klEstimate}): Δ log p desirable ${up.map((d) => d.toFixed(2)).join(' ')}, undesirable ${down.map((d) => d.toFixed(2)).join(' ')}; loss ${losses[0]?.toFixed(4)} → ${losses.at(-1)?.toFixed(4)}`,
      );
      const mean = (x: number[]) => x.reduce((a, b) => a + b, 0) / x.length;
      expect(mean(up)).toBeGreaterThan(0.5);
      expect(mean(down)).toBeLessThan(-0.5);
      expect(up.filter((d) => d > 0).length).toBeGreaterThanOrEqual(3);
      expect(down.filter((d) => d < 0).length).toBeGreaterThanOrEqual(3);
      expect(losses.at(-1)).toBeLessThan(losses[0] as number);
      adapter.dispose();
      model.dispose();
    });
  }
});

describe('backend selection', () => {
  it('auto picks wasm here (no tfjs-node installed), falls back to cpu without it, and both give the same results', async () => {
    await expect(selectBackend('tensorflow')).rejects.toThrow(/not available/);
    const examples = GOOD.map(([q, a]) => toExample(q as string, a as string));
    const run = async () => {
      const model = await LlamaModel.load(fx.dir);
      const adapter = new LoraAdapter(
        model.config,
        { r: 4, alpha: 8, dropout: 0.1, targetModules: ['q_proj', 'v_proj'] },
        9,
      );
      const started = performance.now();
      const r = await trainLora(model, adapter, examples, [], {
        hyper: { epochs: 2, batchSize: 2, learningRate: 1e-2, seed: 9 },
      });
      const ms = performance.now() - started;
      const ids = examples[0]?.ids as number[];
      const logits = tf.tidy(() =>
        model.forward(tf.tensor2d([ids], [1, ids.length], 'int32'), { lora: adapter }),
      );
      const out = {
        logits: (await logits.data()) as Float32Array,
        w: await weights(adapter),
        tokensPerSecond: r.tokensPerSecond,
        ms,
      };
      logits.dispose();
      adapter.dispose();
      model.dispose();
      return out;
    };
    expect(await selectBackend('auto')).toBe('wasm');
    const wasm = await run();
    expect(await selectBackend('auto', { exclude: ['wasm'] })).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    const cpu = await run();
    await selectBackend('auto');
    const dLogits = maxAbsDiff([wasm.logits], [cpu.logits]);
    const dW = maxAbsDiff(wasm.w, cpu.w);
    console.log(
      `wasm vs cpu after 4 training steps: max |Δlogit| ${dLogits.toExponential(2)}, max |ΔW| ${dW.toExponential(2)}; tokens/s wasm ${wasm.tokensPerSecond.toFixed(0)}, cpu ${cpu.tokensPerSecond.toFixed(0)}`,
    );
    expect(dLogits).toBeLessThan(1e-3);
    expect(dW).toBeLessThan(1e-4);
  });
});

/** Minimal RFC 4180 CSV parser (quoted fields, "" escapes, newlines inside quotes). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      row.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += ch;
  }
  if (field || row.length) rows.push([...row, field]);
  return rows;
}

const BITEXT = path.resolve(
  import.meta.dirname,
  '../../shared/data/conversations/bitext/data/train/Bitext_Sample_Customer_Support_Training_Dataset.csv',
);

describe('trainAdapter end to end', () => {
  it('KTO from prompt/completion/label JSONL (TRL conversational and plain text), then resume from the newest checkpoint', async () => {
    const file = path.join(tmp, 'kto.jsonl');
    const records = [
      ...GOOD.map(([q, a]) => ({
        prompt: [{ role: 'user', content: q }],
        completion: [{ role: 'assistant', content: a }],
        label: true,
      })),
      ...BAD.map(([q, a]) => ({ prompt: q, completion: ` ${a}`, label: false })),
    ];
    writeFileSync(file, `${records.map((r) => JSON.stringify(r)).join('\n')}\n\n`);
    const out = path.join(tmp, 'kto-run');
    const options = {
      baseModel: fx.dir,
      train: file,
      validationFraction: 0,
      outputDir: out,
      lora: { r: 2, alpha: 4, dropout: 0 },
      hyper: { objective: 'kto' as const, epochs: 2, batchSize: 4, learningRate: 1e-2, seed: 8 },
      exports: { peft: true, gguf: false },
    };
    const first = await trainAdapter(options);
    expect(first.objective).toBe('kto');
    expect(first.examples).toEqual({ train: 8, validation: 0, skippedUndesirable: 0 });
    expect(first.metrics.steps).toBe(4);
    expect(first.files.gguf).toBeUndefined();
    // Resuming a finished run trains no further and exports the same adapter.
    const peft1 = readFileSync(path.join(out, 'peft', 'adapter_model.safetensors'));
    const again = await trainAdapter({ ...options, resume: true });
    expect(again.metrics.steps).toBe(4);
    expect(readFileSync(path.join(out, 'peft', 'adapter_model.safetensors'))).toEqual(peft1);
    writeFileSync(file, '{"messages": [{"role": "user", "content": "hi"}]}\n');
    await expect(trainAdapter(options)).rejects.toThrow(/line 1: the last message must be the assistant/);
  });

  it.skipIf(!existsSync(BITEXT))(
    'Bitext slice in our prompt format: loss falls, validation loss beats the untrained adapter, PEFT + GGUF written',
    async () => {
      const rows = parseCsv(readFileSync(BITEXT, 'utf8'));
      const header = rows[0] as string[];
      const col = (name: string) => header.indexOf(name);
      const usable = rows.slice(1).filter((r) => r[col('response')] && r[col('instruction')]);
      // Every 97th row: a deterministic spread over intents.
      const slice = usable.filter((_, i) => i % 97 === 0).slice(0, 40);
      const charTok = {
        count: (t: string) => Math.ceil(t.length / 4),
        encode: (t: string) => [...t].map((c) => c.charCodeAt(0)),
        decode: (ids: number[]) => String.fromCharCode(...ids),
      };
      const lines = slice.map((r) => {
        const { messages } = assemblePrompt({
          question: r[col('instruction')] as string,
          history: [],
          contexts: [],
          contextWindow: 4096,
          reserveForReply: 512,
          tokenizer: charTok,
        });
        // First sentence or so of the reply: this tiny model sees 320 tokens at most.
        const reply = (r[col('response')] as string).slice(0, 160).replace(/\s+\S*$/, '');
        return JSON.stringify({ messages: [...messages, { role: 'assistant', content: reply }] });
      });
      // One 👎 record: SFT must skip it.
      lines.push(JSON.stringify({ prompt: 'hi', completion: 'go away', label: false }));
      const trainFile = path.join(tmp, 'bitext.jsonl');
      writeFileSync(trainFile, `${lines.join('\n')}\n`);
      const progress: string[] = [];
      const out = path.join(tmp, 'run');
      const result = await trainAdapter({
        baseModel: fx.dir,
        train: trainFile,
        validationFraction: 0.2,
        outputDir: out,
        lora: { r: 8, alpha: 16, dropout: 0.05 },
        hyper: { epochs: 3, batchSize: 4, gradAccumSteps: 2, learningRate: 1e-2, warmupSteps: 1, seed: 11 },
        maxSeqLength: 320,
        backend: 'auto',
        exports: { peft: true, gguf: true, merged: false },
        onProgress: (p) =>
          progress.push(
            `${p.phase} e${p.epoch} ${p.step}/${p.totalSteps} loss ${p.loss.toFixed(3)}${p.valLoss !== undefined ? ` val ${p.valLoss.toFixed(3)}` : ''} ${p.tokensPerSecond.toFixed(0)} tok/s eta ${p.etaSeconds.toFixed(0)}s`,
          ),
      });
      console.log(progress.filter((l) => !l.startsWith('train')).join('\n'));
      const m = result.metrics;
      console.log(
        `Bitext: ${result.examples.train} train / ${result.examples.validation} validation examples on ${result.backend}; val loss untrained ${m.initialValLoss?.toFixed(3)} → best ${m.bestValLoss?.toFixed(3)}; ${m.tokensPerSecond.toFixed(0)} tokens/s; ${m.seconds.toFixed(1)} s`,
      );
      expect(result.examples).toEqual({ train: 32, validation: 8, skippedUndesirable: 1 });
      expect(result.backend).toBe('wasm');
      expect(m.history).toHaveLength(3);
      expect((m.history.at(-1) as { trainLoss: number }).trainLoss).toBeLessThan(
        (m.history[0] as { trainLoss: number }).trainLoss,
      );
      expect(m.bestValLoss as number).toBeLessThan((m.initialValLoss as number) - 0.2);
      expect(progress.some((l) => l.startsWith('validate'))).toBe(true);
      expect(existsSync(path.join(out, 'peft', 'adapter_model.safetensors'))).toBe(true);
      expect(existsSync(path.join(out, 'adapter.gguf'))).toBe(true);
      expect(JSON.parse(readFileSync(path.join(out, 'metrics.json'), 'utf8')).metrics.steps).toBe(m.steps);
    },
    120_000,
  );
});
