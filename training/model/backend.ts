/**
 * tfjs backend selection for training, in order of speed: `@tensorflow/tfjs-node-gpu`, then
 * `@tensorflow/tfjs-node` (both optional: native libtensorflow, loaded only when a user has
 * installed them), then the WebAssembly backend (its .wasm binaries are read from
 * node_modules, never downloaded), then the plain-JS cpu backend. Every backend computes in
 * float32, so results agree within float rounding (see test/training-trainer.test.ts).
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';

export type BackendName = 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';
/** `auto` tries the list above in order; a name tries only that one (and fails if absent). */
export type BackendChoice = 'auto' | BackendName;

const require = createRequire(import.meta.url);

async function tryNative(pkg: string): Promise<boolean> {
  try {
    // Importing the package registers its 'tensorflow' backend as a side effect.
    await import(/* @vite-ignore */ pkg);
    return await tf.setBackend('tensorflow');
  } catch {
    return false;
  }
}

let wasmPathSet = false;
async function tryWasm(): Promise<boolean> {
  try {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    if (!wasmPathSet) {
      const dist = path.join(
        path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')),
        'dist',
      );
      wasm.setWasmPaths(`${dist}${path.sep}`);
      wasmPathSet = true;
    }
    return await tf.setBackend('wasm');
  } catch {
    return false;
  }
}

/**
 * Activates a backend and returns the name of the one in use.
 * @param options.exclude backends `auto` must skip (e.g. a user who distrusts one; tests use it
 *   to exercise the wasm → cpu fallback).
 * @throws Error when an explicitly requested backend cannot be initialised.
 */
export async function selectBackend(
  choice: BackendChoice = 'auto',
  options: { exclude?: BackendName[] } = {},
): Promise<BackendName> {
  const attempts: Array<[BackendName, () => Promise<boolean>]> = [
    ['tensorflow-gpu', () => tryNative('@tensorflow/tfjs-node-gpu')],
    ['tensorflow', () => tryNative('@tensorflow/tfjs-node')],
    ['wasm', tryWasm],
    ['cpu', () => tf.setBackend('cpu')],
  ];
  for (const [name, attempt] of attempts) {
    if (choice !== 'auto' && choice !== name) continue;
    if (choice === 'auto' && options.exclude?.includes(name)) continue;
    if (await attempt()) {
      await tf.ready();
      return name;
    }
    if (choice !== 'auto') throw new Error(`tfjs backend "${name}" is not available here`);
  }
  throw new Error('no tfjs backend could be initialised');
}
