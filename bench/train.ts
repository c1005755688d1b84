/**
 * `npx tsx bench/train.ts [--hidden 64 --layers 2 --seq 256 --batch 4 --steps 6]`: LoRA training
 * throughput of the tfjs trainer on a tiny random Llama (written by the test fixture), per tfjs
 * backend available here (tfjs-node-gpu, tfjs-node, wasm, cpu), next to that backend's matmul
 * throughput measured in the same run, plus peak memory.
 *
 * Columns: training tokens/s (all tokens through forward+backward); training GFLOP/s, estimated
 * per token as 4·P (P = parameters in matmuls; forward 2P, backward 2P for activation gradients
 * — the base weights are frozen so their weight gradients are never formed) plus 12·T·hidden
 * per layer for attention (QKᵀ and AV over the full T×T square the implementation computes,
 * forward 4·T·hidden, backward twice that); the LoRA matmuls are left out; matmul GFLOP/s of a
 * [B·T, hidden]×[hidden, 4·hidden] product; their ratio says how close training is to the
 * backend's matmul bound.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { writeTinyHfLlama } from '../test/fixtures/llama/tiny-hf-llama.ts';
import { LoraAdapter } from '../training/lora/lora.ts';
import { type BackendName, selectBackend } from '../training/model/backend.ts';
import { LlamaModel } from '../training/model/llama.ts';
import { type TokenizedExample, trainLora } from '../training/trainer.ts';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const hidden = arg('hidden', 64);
const layers = arg('layers', 2);
const seq = arg('seq', 256);
const batch = arg('batch', 4);
const steps = arg('steps', 6);
const heads = Math.max(2, hidden / 16);
const ff = hidden * 2;
const vocab = 384;

let peakRss = 0;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}, 20);

function matmulGflops(): number {
  const a = tf.randomNormal([batch * seq, hidden]);
  const b = tf.randomNormal([hidden, 4 * hidden]);
  tf.matMul(a, b).dispose();
  let n = 0;
  const started = performance.now();
  while (performance.now() - started < 1000) {
    const c = tf.matMul(a, b);
    c.dataSync();
    c.dispose();
    n++;
  }
  const s = (performance.now() - started) / 1000;
  a.dispose();
  b.dispose();
  return (2 * batch * seq * hidden * 4 * hidden * n) / s / 1e9;
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'supportbot-bench-train-'));
try {
  const fx = await writeTinyHfLlama(dir, { hidden, layers, heads, kvHeads: heads / 2, ff, vocab });
  const kv = (heads / 2) * (hidden / heads);
  const matmulParams = layers * (2 * hidden * hidden + 2 * hidden * kv + 3 * hidden * ff) + hidden * vocab;
  // Random token sequences: throughput does not depend on the text.
  let s = 1;
  const rand = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s;
  };
  const examples: TokenizedExample[] = Array.from({ length: batch * (steps + 1) }, () => ({
    ids: Array.from({ length: seq }, () => 3 + (rand() % (vocab - 3))),
    promptLength: Math.floor(seq / 2),
  }));
  const cpu = os.cpus()[0]?.model ?? 'unknown cpu';
  console.log(
    `machine: ${cpu}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`,
  );
  console.log(
    `model: hidden ${hidden}, ${layers} layers, ${heads} heads (${heads / 2} KV), ff ${ff}, vocab ${vocab}; ${(matmulParams / 1e6).toFixed(2)} M matmul params; LoRA r=8 on q_proj,v_proj; batch ${batch}×${seq} tokens, ${steps} timed steps\n`,
  );
  const rows: string[][] = [
    ['backend', 'train tokens/s', 'train GFLOP/s', 'matmul GFLOP/s', 'ratio', 'tf peak MB', 'peak RSS MB'],
  ];
  for (const name of ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as BackendName[]) {
    try {
      await selectBackend(name);
    } catch {
      rows.push([name, 'not installed', '', '', '', '', '']);
      continue;
    }
    const model = await LlamaModel.load(fx.dir);
    const adapter = new LoraAdapter(
      model.config,
      { r: 8, alpha: 16, dropout: 0.05, targetModules: ['q_proj', 'v_proj'] },
      1,
    );
    // One untimed step first (kernel compilation, allocation).
    await trainLora(model, adapter, examples.slice(0, batch), [], { hyper: { epochs: 1, batchSize: batch } });
    const r = await trainLora(model, adapter, examples.slice(batch), [], {
      hyper: { epochs: 1, batchSize: batch },
    });
    // Peak tfjs memory of one training step (tf.profile tracks every allocation).
    const prof = await tf.profile(async () => {
      await trainLora(model, adapter, examples.slice(0, batch), [], {
        hyper: { epochs: 1, batchSize: batch },
      });
      return [];
    });
    const peakTf = prof.peakBytes;
    const flopsPerToken = 4 * matmulParams + 12 * seq * hidden * layers;
    const gflops = (flopsPerToken * r.tokensPerSecond) / 1e9;
    const mm = matmulGflops();
    rows.push([
      name,
      r.tokensPerSecond.toFixed(0),
      gflops.toFixed(2),
      mm.toFixed(2),
      `${((100 * gflops) / mm).toFixed(0)}%`,
      (peakTf / 2 ** 20).toFixed(0),
      (peakRss / 2 ** 20).toFixed(0),
    ]);
    adapter.dispose();
    model.dispose();
  }
  const widths = (rows[0] as string[]).map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  for (const r of rows) console.log(r.map((cell, c) => cell.padStart(widths[c] as number)).join('  '));
} finally {
  clearInterval(sampler);
  rmSync(dir, { recursive: true, force: true });
}
