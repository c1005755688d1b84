/** mulberry32 (Tommy Ettinger's public-domain 32-bit PRNG), seeded, so every run makes the same vectors. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a, 32 bits: the seed of a text's vector. */
function hash(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}

/**
 * A deterministic unit vector of `dims` values for `text` (Gaussian components via Box-Muller,
 * then L2-normalized): the benches' stand-in for a real embedding model, which cannot be
 * downloaded here. The same text always gives the same vector.
 */
export function pseudoEmbedding(text: string, dims: number): Float32Array {
  const rand = prng(hash(text));
  const v = new Float32Array(dims);
  let sum = 0;
  for (let i = 0; i < dims; i++) {
    const g = Math.sqrt(-2 * Math.log(rand() || 1e-12)) * Math.cos(2 * Math.PI * rand());
    v[i] = g;
    sum += g * g;
  }
  const norm = Math.sqrt(sum);
  for (let i = 0; i < dims; i++) v[i] = (v[i] as number) / norm;
  return v;
}
