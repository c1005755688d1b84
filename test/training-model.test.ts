/**
 * The tfjs Llama against llama.cpp on the same weights, and the safetensors reader/writer.
 * Real runtimes only: node-llama-cpp (threads: 1) on the fixture's GGUF, tfjs on its HF folder.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { getLlama, type Llama, LlamaLogLevel } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoraAdapter } from '../training/lora/lora.ts';
import { selectBackend } from '../training/model/backend.ts';
import { LlamaModel } from '../training/model/llama.ts';
import { decodeSafetensors, encodeSafetensors } from '../training/model/safetensors.ts';
import { llamaCppProbs, maxAbsDiff, tfjsProbs } from './fixtures/llama/compare.ts';
import { writeTinyHfLlama } from './fixtures/llama/tiny-hf-llama.ts';

const tmp = mkdtempSync(path.join(tmpdir(), 'supportbot-train-model-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A prompt of 24 token ids spread over the vocabulary: ChatML marker, letters, merges, bytes. */
const IDS = [
  259, 300, 310, 305, 320, 330, 290, 301, 299, 311, 350, 260, 13, 261, 275, 282, 340, 100, 200, 345, 262, 263,
  264, 265,
];
/** Stated tolerance for "tfjs matches llama.cpp": max |Δp| over every position and token. */
const TOLERANCE = 2e-5;

describe('safetensors', () => {
  it('writes the spec layout (u64 LE header length, JSON header, 8-byte aligned data) and reads it back bit-exactly', () => {
    const data = new Float32Array([1, -2.5, 3.25e-3, Math.PI, -0, 65504, 1e-30, 7]);
    const buf = encodeSafetensors([['w', { shape: [2, 4], data }]], { metadata: { format: 'pt' } });
    const n = Number(buf.readBigUInt64LE(0));
    expect((8 + n) % 8).toBe(0);
    const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
    expect(header).toEqual({
      __metadata__: { format: 'pt' },
      w: { dtype: 'F32', shape: [2, 4], data_offsets: [0, 32] },
    });
    expect(buf.length).toBe(8 + n + 32);
    const back = decodeSafetensors(buf);
    expect(back.metadata).toEqual({ format: 'pt' });
    expect(Buffer.from(back.tensors.get('w')?.data.buffer as ArrayBuffer)).toEqual(Buffer.from(data.buffer));
  });

  it('stores F16 and BF16 with round-to-nearest-even and reads them back as f32', () => {
    const data = new Float32Array([1, -2, 0.1, 65504, 2 ** -24, 1 + 2 ** -11, 1 + 3 * 2 ** -11, Math.PI]);
    const f16 = decodeSafetensors(encodeSafetensors([['x', { shape: [8], data }]], { dtype: 'F16' }));
    expect(f16.dtypes.get('x')).toBe('F16');
    // Exactly representable values survive; ties go to even; 0.1 → nearest half 0.0999755859375.
    expect(Array.from(f16.tensors.get('x')?.data ?? [])).toEqual([
      1,
      -2,
      0.0999755859375,
      65504,
      2 ** -24,
      1,
      1 + 4 * 2 ** -11,
      3.140625,
    ]);
    const bf = decodeSafetensors(encodeSafetensors([['x', { shape: [8], data }]], { dtype: 'BF16' }));
    expect(Array.from(bf.tensors.get('x')?.data ?? []).slice(0, 3)).toEqual([1, -2, 0.10009765625]);
    expect(bf.tensors.get('x')?.data[7]).toBe(3.140625);
  });

  it('rejects unsupported dtypes and inconsistent offsets', () => {
    const header = Buffer.from(JSON.stringify({ x: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    expect(() => decodeSafetensors(Buffer.concat([len, header, Buffer.alloc(8)]))).toThrow(
      /unsupported dtype I64/,
    );
    const bad = Buffer.from(JSON.stringify({ x: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }));
    len.writeBigUInt64LE(BigInt(bad.length));
    expect(() => decodeSafetensors(Buffer.concat([len, bad, Buffer.alloc(12)]))).toThrow(
      /do not match shape/,
    );
  });
});

describe('tfjs Llama forward pass vs llama.cpp (node-llama-cpp) on the same tiny random weights', () => {
  let llama: Llama;
  const nativeLog: string[] = [];
  beforeAll(async () => {
    await selectBackend('auto');
    llama = await getLlama({
      gpu: false,
      logLevel: LlamaLogLevel.warn,
      logger: (_l, m) => nativeLog.push(m),
    });
  });
  afterAll(async () => {
    await llama?.dispose();
  });

  const variants = [
    { name: 'GQA (4 heads, 2 KV heads), separate LM head, F32 safetensors', options: {} },
    { name: 'tied embeddings + q/k/v bias', options: { tied: true, attentionBias: true, seed: 2 } },
    {
      name: 'BF16 safetensors, rope_theta 500000, MHA',
      options: { dtype: 'BF16' as const, ropeTheta: 500000, kvHeads: 4, seed: 3 },
    },
    { name: 'F16 safetensors', options: { dtype: 'F16' as const, seed: 4 } },
  ];
  for (const v of variants) {
    it(`${v.name}: every position's next-token distribution agrees within ${TOLERANCE}`, async () => {
      const fx = await writeTinyHfLlama(path.join(tmp, `m-${v.options.seed ?? 1}`), v.options);
      const model = await LlamaModel.load(fx.dir);
      const native = await llama.loadModel({ modelPath: fx.gguf });
      try {
        const ours = await tfjsProbs(model, IDS);
        const theirs = await llamaCppProbs(native, IDS, fx.config.vocab);
        const diff = maxAbsDiff(ours, theirs);
        const top = Math.max(...(ours[5] as number[]));
        console.log(
          `${v.name}: max |Δp| = ${diff.toExponential(2)} over ${IDS.length}×${fx.config.vocab} (top p ${top.toFixed(3)})`,
        );
        // A distribution far from uniform, so agreement is not trivially small numbers.
        expect(top).toBeGreaterThan(0.05);
        expect(diff).toBeLessThan(TOLERANCE);
      } finally {
        await native.dispose();
        model.dispose();
      }
    });
  }

  it("negative control: without llama.cpp's q/k row permutation the GGUF disagrees", async () => {
    const fx = await writeTinyHfLlama(path.join(tmp, 'unpermuted'), { skipPermutation: true });
    const model = await LlamaModel.load(fx.dir);
    const native = await llama.loadModel({ modelPath: fx.gguf });
    try {
      const diff = maxAbsDiff(await tfjsProbs(model, IDS), await llamaCppProbs(native, IDS, fx.config.vocab));
      console.log(`unpermuted GGUF: max |Δp| = ${diff.toExponential(2)}`);
      expect(diff).toBeGreaterThan(1e-2);
    } finally {
      await native.dispose();
      model.dispose();
    }
  });

  it('a fresh LoRA adapter (B = 0) leaves the logits bit-identical; a non-zero B changes them', async () => {
    const fx = await writeTinyHfLlama(path.join(tmp, 'm-lora0'));
    const model = await LlamaModel.load(fx.dir);
    const adapter = new LoraAdapter(
      model.config,
      {
        r: 4,
        alpha: 8,
        dropout: 0,
        targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
      },
      7,
    );
    try {
      const ids = tf.tensor2d([IDS], [1, IDS.length], 'int32');
      const base = await model.forward(ids).data();
      const withLora = await model.forward(ids, { lora: adapter }).data();
      expect(Buffer.from(withLora.buffer)).toEqual(Buffer.from(base.buffer));
      const pair = adapter.pairs.get('1.v_proj');
      pair?.b.assign(tf.onesLike(pair.b));
      const changed = await model.forward(ids, { lora: adapter }).data();
      expect(maxAbsDiff([changed], [base])).toBeGreaterThan(1e-3);
      ids.dispose();
    } finally {
      adapter.dispose();
      model.dispose();
    }
  });

  it('reads the config and refuses what it does not implement', async () => {
    const fx = await writeTinyHfLlama(path.join(tmp, 'm-1'));
    const config = JSON.parse(readFileSync(path.join(fx.dir, 'config.json'), 'utf8'));
    const { parseLlamaConfig } = await import('../training/model/config.ts');
    expect(parseLlamaConfig(config)).toMatchObject({
      numHeads: 4,
      numKvHeads: 2,
      headDim: 16,
      tieWordEmbeddings: false,
    });
    expect(() => parseLlamaConfig({ ...config, model_type: 'gpt2' })).toThrow(/not supported/);
    expect(() => parseLlamaConfig({ ...config, rope_scaling: { rope_type: 'yarn', factor: 4 } })).toThrow(
      /yarn/,
    );
    expect(parseLlamaConfig({ ...config, model_type: 'qwen2' }).attentionBias).toBe(true);
  });
});
