/**
 * A small GGUF v3 writer: metadata key/values plus F32 tensors, enough to write a Llama base model
 * and a GGUF LoRA adapter that llama.cpp (and so node-llama-cpp) loads.
 *
 * Format source: ggml `gguf.h` / `gguf.cpp` (the llama.cpp revision node-llama-cpp 3.21.1 bundles,
 * `node_modules/node-llama-cpp/llama/gitRelease.bundle`). Layout, little-endian:
 * magic "GGUF", version u32 = 3, tensor count i64, kv count i64, the key/values (key string,
 * value type i32, value), the tensor infos (name string, n_dims u32, ne[] i64 each, ggml type
 * i32, data offset u64), zero padding to `ALIGNMENT`, then the data blob where every tensor
 * starts at a multiple of `ALIGNMENT` (padding after the last tensor too). Strings are a u64
 * byte length plus UTF-8 bytes; arrays are element type i32, count u64, elements.
 *
 * LoRA adapter conventions (llama.cpp `src/llama-adapter.cpp`): `general.type = "adapter"`,
 * `adapter.type = "lora"`, `adapter.lora.alpha` (f32), and tensors `<base name>.lora_a` with
 * ne = [n_in, r] and `<base name>.lora_b` with ne = [r, n_out] for a base weight with
 * ne = [n_in, n_out]. The effective weight is W + scale·(alpha/r)·B·A.
 *
 * Used by the test fixtures (`test/fixtures/gguf/`) and meant for the training module's adapter
 * export (issue 6).
 */
import { writeFile } from 'node:fs/promises';

/** GGUF metadata value type ids (`enum gguf_type`). */
export const GgufType = {
  U8: 0,
  I8: 1,
  U16: 2,
  I16: 3,
  U32: 4,
  I32: 5,
  F32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  U64: 10,
  I64: 11,
  F64: 12,
} as const;

/** Byte alignment of the data blob and of every tensor in it (GGUF_DEFAULT_ALIGNMENT). */
export const ALIGNMENT = 32;

/** ggml tensor type id of F32 (`GGML_TYPE_F32`), the only tensor type this writer emits. */
const GGML_TYPE_F32 = 0;

/**
 * A typed metadata value. llama.cpp checks types strictly (e.g. `llama.context_length` must be
 * u32, `layer_norm_rms_epsilon` f32), so the type is always explicit.
 */
export type GgufValue =
  | { type: 'u32'; value: number }
  | { type: 'i32'; value: number }
  | { type: 'f32'; value: number }
  | { type: 'u64'; value: bigint }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'string[]'; value: string[] }
  | { type: 'f32[]'; value: ArrayLike<number> }
  | { type: 'i32[]'; value: ArrayLike<number> };

/** Shorthands for typed values. */
export const gguf = {
  u32: (value: number): GgufValue => ({ type: 'u32', value }),
  i32: (value: number): GgufValue => ({ type: 'i32', value }),
  f32: (value: number): GgufValue => ({ type: 'f32', value }),
  u64: (value: bigint): GgufValue => ({ type: 'u64', value }),
  bool: (value: boolean): GgufValue => ({ type: 'bool', value }),
  string: (value: string): GgufValue => ({ type: 'string', value }),
  strings: (value: string[]): GgufValue => ({ type: 'string[]', value }),
  f32s: (value: ArrayLike<number>): GgufValue => ({ type: 'f32[]', value }),
  i32s: (value: ArrayLike<number>): GgufValue => ({ type: 'i32[]', value }),
};

/**
 * One F32 tensor. `ne` is in ggml order: `ne[0]` is the contiguous dimension, so a PyTorch
 * weight of shape [out, in] is `ne = [in, out]` with `data` its row-major flattening.
 */
export interface GgufTensor {
  name: string;
  ne: number[];
  data: Float32Array;
}

/** Growable little-endian byte buffer. */
class ByteWriter {
  #buf = Buffer.alloc(1 << 16);
  #len = 0;

  #reserve(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const next = Buffer.alloc(Math.max(this.#buf.length * 2, this.#len + n));
    this.#buf.copy(next, 0, 0, this.#len);
    this.#buf = next;
  }
  get length(): number {
    return this.#len;
  }
  u8(v: number): void {
    this.#reserve(1);
    this.#buf.writeUInt8(v, this.#len);
    this.#len += 1;
  }
  u32(v: number): void {
    this.#reserve(4);
    this.#buf.writeUInt32LE(v, this.#len);
    this.#len += 4;
  }
  i32(v: number): void {
    this.#reserve(4);
    this.#buf.writeInt32LE(v, this.#len);
    this.#len += 4;
  }
  f32(v: number): void {
    this.#reserve(4);
    this.#buf.writeFloatLE(v, this.#len);
    this.#len += 4;
  }
  u64(v: bigint): void {
    this.#reserve(8);
    this.#buf.writeBigUInt64LE(v, this.#len);
    this.#len += 8;
  }
  i64(v: bigint): void {
    this.#reserve(8);
    this.#buf.writeBigInt64LE(v, this.#len);
    this.#len += 8;
  }
  string(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.u64(BigInt(bytes.length));
    this.bytes(bytes);
  }
  bytes(b: Uint8Array): void {
    this.#reserve(b.length);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
  }
  pad(alignment: number): void {
    const rem = this.#len % alignment;
    if (rem !== 0) this.bytes(new Uint8Array(alignment - rem));
  }
  result(): Buffer {
    return this.#buf.subarray(0, this.#len);
  }
}

function writeValue(w: ByteWriter, v: GgufValue): void {
  switch (v.type) {
    case 'u32':
      w.i32(GgufType.U32);
      w.u32(v.value);
      return;
    case 'i32':
      w.i32(GgufType.I32);
      w.i32(v.value);
      return;
    case 'f32':
      w.i32(GgufType.F32);
      w.f32(v.value);
      return;
    case 'u64':
      w.i32(GgufType.U64);
      w.u64(v.value);
      return;
    case 'bool':
      w.i32(GgufType.BOOL);
      w.u8(v.value ? 1 : 0);
      return;
    case 'string':
      w.i32(GgufType.STRING);
      w.string(v.value);
      return;
    case 'string[]':
      w.i32(GgufType.ARRAY);
      w.i32(GgufType.STRING);
      w.u64(BigInt(v.value.length));
      for (const s of v.value) w.string(s);
      return;
    case 'f32[]':
      w.i32(GgufType.ARRAY);
      w.i32(GgufType.F32);
      w.u64(BigInt(v.value.length));
      for (let i = 0; i < v.value.length; i++) w.f32(v.value[i] as number);
      return;
    case 'i32[]':
      w.i32(GgufType.ARRAY);
      w.i32(GgufType.I32);
      w.u64(BigInt(v.value.length));
      for (let i = 0; i < v.value.length; i++) w.i32(v.value[i] as number);
      return;
  }
}

/**
 * Serialises a GGUF v3 file. Deterministic: the same input gives byte-identical output.
 *
 * @param metadata key → typed value, written in insertion order.
 * @param tensors F32 tensors; names must be unique and `data.length` must equal the product of `ne`.
 * @throws Error on a duplicate tensor name or a data length that does not match `ne`.
 */
export function encodeGguf(metadata: Record<string, GgufValue>, tensors: GgufTensor[]): Buffer {
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new Error(`duplicate GGUF tensor name ${t.name}`);
    names.add(t.name);
    const n = t.ne.reduce((a, b) => a * b, 1);
    if (n !== t.data.length)
      throw new Error(`tensor ${t.name}: ne ${t.ne} needs ${n} floats, got ${t.data.length}`);
  }
  const w = new ByteWriter();
  w.bytes(Buffer.from('GGUF', 'ascii'));
  w.u32(3);
  w.i64(BigInt(tensors.length));
  const entries = Object.entries(metadata);
  w.i64(BigInt(entries.length));
  for (const [key, value] of entries) {
    w.string(key);
    writeValue(w, value);
  }
  // Offsets are relative to the data blob; each tensor starts at the padded end of the previous.
  let offset = 0;
  for (const t of tensors) {
    w.string(t.name);
    w.u32(t.ne.length);
    for (const d of t.ne) w.i64(BigInt(d));
    w.i32(GGML_TYPE_F32);
    w.u64(BigInt(offset));
    offset += Math.ceil((t.data.byteLength || 1) / ALIGNMENT) * ALIGNMENT;
  }
  w.pad(ALIGNMENT);
  for (const t of tensors) {
    w.bytes(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    w.pad(ALIGNMENT);
  }
  return w.result();
}

/** Writes `encodeGguf(metadata, tensors)` to `path`. */
export async function writeGguf(
  path: string,
  metadata: Record<string, GgufValue>,
  tensors: GgufTensor[],
): Promise<void> {
  await writeFile(path, encodeGguf(metadata, tensors));
}

/** The low-rank pair for one base weight `W` (ne = [nIn, nOut]): ΔW = (alpha/r)·B·A. */
export interface LoraPair {
  /** Name of the base tensor, e.g. `blk.0.attn_q.weight`. */
  target: string;
  /** Input size of the base weight (its ne[0]). */
  nIn: number;
  /** Output size of the base weight (its ne[1]). */
  nOut: number;
  /** Rank r. */
  rank: number;
  /** A: r rows of nIn floats (PEFT `lora_A.weight`, shape [r, in]). */
  a: Float32Array;
  /** B: nOut rows of r floats (PEFT `lora_B.weight`, shape [out, r]). */
  b: Float32Array;
}

/**
 * The metadata and tensors of a GGUF LoRA adapter for a base model of `architecture`.
 * `alpha` is the PEFT `lora_alpha`; llama.cpp scales ΔW by `scale·alpha/r` (by `scale` alone
 * when alpha is 0), where `scale` is chosen when the adapter is applied.
 */
export function loraAdapterGguf(options: {
  architecture: string;
  alpha: number;
  pairs: LoraPair[];
  name?: string;
}): { metadata: Record<string, GgufValue>; tensors: GgufTensor[] } {
  const metadata: Record<string, GgufValue> = {
    'general.type': gguf.string('adapter'),
    'general.architecture': gguf.string(options.architecture),
    ...(options.name ? { 'general.name': gguf.string(options.name) } : {}),
    'adapter.type': gguf.string('lora'),
    'adapter.lora.alpha': gguf.f32(options.alpha),
  };
  const tensors: GgufTensor[] = [];
  for (const p of options.pairs) {
    if (p.a.length !== p.rank * p.nIn) throw new Error(`${p.target}.lora_a must hold rank×nIn floats`);
    if (p.b.length !== p.nOut * p.rank) throw new Error(`${p.target}.lora_b must hold nOut×rank floats`);
    tensors.push({ name: `${p.target}.lora_a`, ne: [p.nIn, p.rank], data: p.a });
    tensors.push({ name: `${p.target}.lora_b`, ne: [p.rank, p.nOut], data: p.b });
  }
  return { metadata, tensors };
}
