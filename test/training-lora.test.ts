/**
 * SFT on reply tokens only, and the adapter exports: the GGUF LoRA loaded by llama.cpp next to
 * the base GGUF gives the distribution tfjs gives with the adapter; the PEFT folder has PEFT's
 * names, shapes and config keys and reads back bit-exactly; the merged export equals base+adapter.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { getLlama, type Llama, LlamaLogLevel, readGgufFileInfo } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportGgufLora } from '../training/export/gguf-lora.ts';
import { exportMerged } from '../training/export/merged.ts';
import { exportPeft, readPeft } from '../training/export/peft.ts';
import { LORA_MODULES, LoraAdapter } from '../training/lora/lora.ts';
import { selectBackend } from '../training/model/backend.ts';
import { tokenizeRecord } from '../training/model/examples.ts';
import { LlamaModel } from '../training/model/llama.ts';
import { readSafetensors } from '../training/model/safetensors.ts';
import { ChatTokenizer } from '../training/model/tokenizer.ts';
import {
  evaluateLoss,
  makeBatch,
  sftLossSum,
  type TokenizedExample,
  trainLora,
} from '../training/trainer.ts';
import { llamaCppProbs, maxAbsDiff, tfjsProbs } from './fixtures/llama/compare.ts';
import { type TinyHfModel, writeTinyHfLlama } from './fixtures/llama/tiny-hf-llama.ts';

const tmp = mkdtempSync(path.join(tmpdir(), 'supportbot-train-lora-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const CHATS = [
  ['how do i reset my password?', 'open settings, then press reset.'],
  ['can i talk to a person?', 'sure, a colleague will reply soon.\nESCALATE: user asks for a human'],
  ['where is my invoice?', 'invoices are under billing [1].'],
  ['the app crashes on start', 'sorry! a person from the team will look at it.\nESCALATE: bug report'],
  ['how do i change my email?', 'go to account, then email, and confirm the link.'],
  ['is there a dark mode?', 'yes: settings, then appearance [2].'],
];
const TOLERANCE = 2e-5;

describe('LoRA SFT and exports on the tiny random Llama', () => {
  let fx: TinyHfModel;
  let model: LlamaModel;
  let tok: ChatTokenizer;
  let examples: TokenizedExample[];
  let llama: Llama;

  beforeAll(async () => {
    await selectBackend('auto');
    fx = await writeTinyHfLlama(path.join(tmp, 'base'));
    model = await LlamaModel.load(fx.dir);
    tok = await ChatTokenizer.load(fx.dir);
    examples = CHATS.map(([q, a]) =>
      tokenizeRecord(tok, {
        prompt: [
          { role: 'system', content: 'be brief.' },
          { role: 'user', content: q as string },
        ],
        completion: [{ role: 'assistant', content: a as string }],
        desirable: true,
      }),
    );
    llama = await getLlama({ gpu: false, logLevel: LlamaLogLevel.warn });
  });
  afterAll(async () => {
    model?.dispose();
    await llama?.dispose();
  });

  it('puts loss weight exactly on the reply tokens (reply text plus the end-of-turn marker)', () => {
    const ex = examples[0] as TokenizedExample;
    const batch = makeBatch([ex, examples[1] as TokenizedExample]);
    const w = batch.weights[0] as number[];
    const predicted = (batch.targets[0] as number[]).filter((_, t) => w[t] === 1);
    expect(predicted).toEqual(ex.ids.slice(ex.promptLength));
    expect(tok.decode(predicted)).toContain('open settings, then press reset.<|im_end|>');
    expect(tok.decode(ex.ids.slice(0, ex.promptLength))).toMatch(/<\|im_start\|> ?assistant\n$/);
    // Padding of the shorter row carries no weight.
    const shorter = batch.weights[0]?.length as number;
    expect(batch.weights[0]?.slice(ex.ids.length - 1)).toEqual(
      new Array(shorter - ex.ids.length + 1).fill(0),
    );
  });

  it('masking: changing the labels of prompt (and padding) positions changes neither loss nor gradients; a reply label does', async () => {
    const adapter = new LoraAdapter(
      model.config,
      { r: 4, alpha: 8, dropout: 0, targetModules: ['q_proj', 'v_proj'] },
      3,
    );
    // Non-zero B so that gradients reach A too.
    for (const p of adapter.pairs.values()) p.b.assign(tf.randomNormal(p.b.shape, 0, 0.1, 'float32', 5));
    const batch = makeBatch(examples.slice(0, 3));
    const scrambled = {
      ...batch,
      targets: batch.targets.map((row, b) =>
        row.map((t, i) => ((batch.weights[b] as number[])[i] === 1 ? t : (t * 7 + 11) % 384)),
      ),
    };
    const lossAndGrads = async (bt: typeof batch) => {
      const { value, grads } = tf.variableGrads(() => sftLossSum(model, adapter, bt), adapter.variables());
      const g = await Promise.all(adapter.variables().map((v) => (grads[v.name] as tf.Tensor).data()));
      return { loss: (await value.data())[0] as number, g };
    };
    const a = await lossAndGrads(batch);
    const b = await lossAndGrads(scrambled);
    expect(scrambled.targets).not.toEqual(batch.targets);
    expect(b.loss).toBe(a.loss);
    a.g.forEach((g, i) => {
      expect(Buffer.from((b.g[i] as Float32Array).buffer)).toEqual(Buffer.from((g as Float32Array).buffer));
    });
    const t = (batch.weights[0] as number[]).indexOf(1);
    const oneReplyChanged = {
      ...batch,
      targets: batch.targets.map((row, r) => row.map((x, i) => (r === 0 && i === t ? (x + 1) % 384 : x))),
    };
    expect((await lossAndGrads(oneReplyChanged)).loss).not.toBe(a.loss);
    adapter.dispose();
  });

  let trained: LoraAdapter;
  const ALL = [...LORA_MODULES];

  it('a few SFT steps reduce the training loss (default targets q_proj, v_proj)', async () => {
    const adapter = new LoraAdapter(
      model.config,
      { r: 4, alpha: 8, dropout: 0.05, targetModules: ['q_proj', 'v_proj'] },
      1,
    );
    const before = await evaluateLoss(model, adapter, examples, 8);
    const losses: number[] = [];
    const result = await trainLora(model, adapter, examples, [], {
      hyper: { epochs: 4, batchSize: 2, gradAccumSteps: 1, learningRate: 2e-2, warmupSteps: 1, seed: 1 },
      onProgress: (p) => p.phase === 'train' && losses.push(p.loss),
    });
    const after = await evaluateLoss(model, adapter, examples, 8);
    console.log(
      `SFT q,v r=4: ${result.steps} steps, loss ${before.toFixed(3)} → ${after.toFixed(3)} per reply token; ${result.tokensPerSecond.toFixed(0)} tokens/s; step losses ${losses.map((l) => l.toFixed(2)).join(' ')}`,
    );
    expect(result.steps).toBe(12);
    expect(after).toBeLessThan(before - 0.5);
    adapter.dispose();
  });

  it('after SFT on all seven modules, the exported GGUF LoRA + base GGUF in llama.cpp gives the tfjs distribution', async () => {
    trained = new LoraAdapter(model.config, { r: 4, alpha: 16, dropout: 0, targetModules: ALL }, 2);
    await trainLora(model, trained, examples, [], {
      hyper: { epochs: 2, batchSize: 3, learningRate: 2e-2, seed: 2 },
    });
    const file = await exportGgufLora(trained, model.config, path.join(tmp, 'all.gguf'));
    const info = await readGgufFileInfo(file);
    expect((info.metadata as unknown as { general: { type: string } }).general.type).toBe('adapter');
    expect(
      (info.metadata as unknown as { adapter: { type: string; lora: { alpha: number } } }).adapter,
    ).toEqual({
      type: 'lora',
      lora: { alpha: 16 },
    });
    const names = info.tensorInfo?.map((t) => `${t.name}:${t.dimensions.join('x')}`) ?? [];
    expect(names).toContain('blk.0.attn_q.weight.lora_a:64x4');
    expect(names).toContain('blk.0.attn_q.weight.lora_b:4x64');
    expect(names).toContain('blk.1.attn_k.weight.lora_b:4x32');
    expect(names).toContain('blk.1.ffn_down.weight.lora_a:128x4');
    expect(names).toHaveLength(2 * 2 * 7);

    const ids = examples[3]?.ids.slice(0, 40) as number[];
    const native = await llama.loadModel({ modelPath: fx.gguf });
    try {
      const base = await tfjsProbs(model, ids);
      const ours = await tfjsProbs(model, ids, trained);
      const theirs = await llamaCppProbs(native, ids, fx.config.vocab, file);
      const effect = maxAbsDiff(ours, base);
      const diff = maxAbsDiff(ours, theirs);
      console.log(
        `GGUF LoRA (all modules) in llama.cpp vs tfjs: max |Δp| = ${diff.toExponential(2)}; the adapter itself moves p by up to ${effect.toFixed(3)}`,
      );
      expect(effect).toBeGreaterThan(0.05);
      expect(diff).toBeLessThan(TOLERANCE);
    } finally {
      await native.dispose();
    }
  });

  it('the default q/v adapter too (the q permutation of lora_B is needed: without it llama.cpp disagrees)', async () => {
    const qv = new LoraAdapter(
      model.config,
      { r: 8, alpha: 16, dropout: 0, targetModules: ['q_proj', 'v_proj'] },
      4,
    );
    for (const [k, p] of qv.pairs) p.b.assign(tf.randomNormal(p.b.shape, 0, 0.5, 'float32', k.length + 3));
    const file = await exportGgufLora(qv, model.config, path.join(tmp, 'qv.gguf'));
    const ids = examples[1]?.ids.slice(0, 40) as number[];
    const native = await llama.loadModel({ modelPath: fx.gguf });
    try {
      const ours = await tfjsProbs(model, ids, qv);
      const diff = maxAbsDiff(ours, await llamaCppProbs(native, ids, fx.config.vocab, file));
      expect(diff).toBeLessThan(TOLERANCE);
      // Negative control: a GGUF with PEFT's B as is (no permutation) gives another distribution.
      const { loraAdapterGguf, writeGguf } = await import('../training/gguf/writer.ts');
      const snap = await qv.snapshot();
      const pairs = [...qv.pairs.keys()].map((key) => {
        const [l, m] = key.split('.');
        const a = snap.get(`lora.${key}.A`);
        const b = snap.get(`lora.${key}.B`);
        return {
          target: `blk.${l}.${m === 'q_proj' ? 'attn_q' : 'attn_v'}.weight`,
          nIn: 64,
          nOut: b?.shape[0] as number,
          rank: 8,
          a: a?.data as Float32Array,
          b: b?.data as Float32Array,
        };
      });
      const raw = loraAdapterGguf({ architecture: 'llama', alpha: 16, pairs });
      const rawFile = path.join(tmp, 'qv-unpermuted.gguf');
      await writeGguf(rawFile, raw.metadata, raw.tensors);
      const wrong = maxAbsDiff(ours, await llamaCppProbs(native, ids, fx.config.vocab, rawFile));
      console.log(
        `q/v adapter: permuted max |Δp| = ${diff.toExponential(2)}, unpermuted ${wrong.toExponential(2)}`,
      );
      expect(wrong).toBeGreaterThan(1e-3);
    } finally {
      await native.dispose();
      qv.dispose();
    }
  });

  it("PEFT export: PEFT's tensor names, shapes and adapter_config keys; reads back bit-exactly and reproduces the logits", async () => {
    const dir = path.join(tmp, 'peft');
    await exportPeft(trained, dir, { baseModelNameOrPath: 'HuggingFaceTB/SmolLM2-135M-Instruct' });
    const config = JSON.parse(readFileSync(path.join(dir, 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      r: 4,
      lora_alpha: 16,
      lora_dropout: 0,
      target_modules: ALL,
      bias: 'none',
      fan_in_fan_out: false,
      base_model_name_or_path: 'HuggingFaceTB/SmolLM2-135M-Instruct',
      use_dora: false,
      use_rslora: false,
    });
    const st = await readSafetensors(path.join(dir, 'adapter_model.safetensors'));
    expect(st.metadata).toEqual({ format: 'pt' });
    const shapes = Object.fromEntries([...st.tensors].map(([n, t]) => [n, t.shape]));
    expect(shapes['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight']).toEqual([4, 64]);
    expect(shapes['base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight']).toEqual([64, 4]);
    expect(shapes['base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight']).toEqual([32, 4]);
    expect(shapes['base_model.model.model.layers.1.mlp.down_proj.lora_A.weight']).toEqual([4, 128]);
    expect(shapes['base_model.model.model.layers.1.mlp.gate_proj.lora_B.weight']).toEqual([128, 4]);
    expect(Object.keys(shapes)).toHaveLength(28);
    expect([...st.dtypes.values()].every((d) => d === 'F32')).toBe(true);

    const back = await readPeft(dir);
    const snap = await trained.snapshot();
    expect([...back.tensors.keys()].sort()).toEqual([...snap.keys()].sort());
    for (const [k, t] of snap)
      expect(Buffer.from(back.tensors.get(k)?.data.buffer as ArrayBuffer)).toEqual(
        Buffer.from(t.data.buffer),
      );
    const reloaded = new LoraAdapter(model.config, { r: 4, alpha: 16, dropout: 0, targetModules: ALL }, 99);
    reloaded.load(back.tensors);
    const ids = examples[2]?.ids as number[];
    const x = tf.tensor2d([ids], [1, ids.length], 'int32');
    const a = await model.forward(x, { lora: trained }).data();
    const b = await model.forward(x, { lora: reloaded }).data();
    expect(Buffer.from(b.buffer)).toEqual(Buffer.from(a.buffer));
    x.dispose();
    reloaded.dispose();
  });

  it('merged export: base weights + (alpha/r)·B·A give the adapter’s distribution without an adapter', async () => {
    const dir = path.join(tmp, 'merged');
    await exportMerged(trained, fx.dir, dir);
    const merged = await LlamaModel.load(dir);
    try {
      const ids = examples[4]?.ids as number[];
      const diff = maxAbsDiff(await tfjsProbs(merged, ids), await tfjsProbs(model, ids, trained));
      console.log(`merged vs base+adapter (tfjs): max |Δp| = ${diff.toExponential(2)}`);
      expect(diff).toBeLessThan(1e-5);
      expect(readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')).toBe(
        readFileSync(path.join(fx.dir, 'tokenizer.json'), 'utf8'),
      );
    } finally {
      merged.dispose();
      trained.dispose();
    }
  });
});
