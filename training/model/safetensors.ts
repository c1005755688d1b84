/**
 * Hugging Face `safetensors` reader and writer for the float types a Llama checkpoint uses
 * (F32, F16, BF16), always handing tensors out as Float32Array.
 *
 * Format (https://huggingface.co/docs/safetensors, "Format" section; github.com/huggingface/safetensors
 * README): an unsigned 64-bit little-endian header length N, then N bytes of UTF-8 JSON mapping
 * each tensor name to `{dtype, shape, data_offsets: [begin, end]}` (offsets relative to the
 * byte right after the header, row-major, little-endian), plus an optional `__metadata__` object
 * of string → string. The header may be padded with spaces (0x20); the writer pads it to a
 * multiple of 8 so that the data starts aligned, as the reference implementation does.
 * Sharded checkpoints come with `model.safetensors.index.json` (`{weight_map: {name: file}}`).
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** The dtypes this module reads and writes. */
export type SafetensorsDtype = 'F32' | 'F16' | 'BF16';

/** One tensor: row-major values as f32 and its shape (PyTorch order). */
export interface NamedTensor {
  shape: number[];
  data: Float32Array;
}

/** A loaded file: tensors by name, the `__metadata__` map, and the dtype each tensor was stored in. */
export interface SafetensorsFile {
  tensors: Map<string, NamedTensor>;
  metadata: Record<string, string>;
  dtypes: Map<string, SafetensorsDtype>;
}

const BYTES: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2 };

/** IEEE 754 half → single. */
function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** Single → half, round to nearest even (what `torch.half()` does). */
function f32ToF16(v: number): number {
  f32Scratch[0] = v;
  const x = u32Scratch[0] as number;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && r & 1)) r++;
    return sign | r;
  }
  let r = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && r & 1)) {
    r++;
    if (r === 0x400) {
      r = 0;
      e++;
      if (e >= 31) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | r;
}

/** Single → bfloat16 (upper 16 bits), round to nearest even. */
function f32ToBf16(v: number): number {
  f32Scratch[0] = v;
  const x = u32Scratch[0] as number;
  if (Number.isNaN(v)) return 0x7fc0;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

function decode(dtype: SafetensorsDtype, bytes: Buffer, count: number): Float32Array {
  const out = new Float32Array(count);
  if (dtype === 'F32') {
    for (let i = 0; i < count; i++) out[i] = bytes.readFloatLE(i * 4);
  } else if (dtype === 'F16') {
    for (let i = 0; i < count; i++) out[i] = f16ToF32(bytes.readUInt16LE(i * 2));
  } else {
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < count; i++) u[i] = bytes.readUInt16LE(i * 2) << 16;
  }
  return out;
}

/**
 * Parses a safetensors buffer.
 * @throws Error on a truncated file, a header that is not JSON, an unsupported dtype (only
 *   F32/F16/BF16), or data offsets that do not match the shape.
 */
export function decodeSafetensors(buf: Buffer): SafetensorsFile {
  if (buf.length < 8) throw new Error('safetensors: file shorter than its 8-byte header length');
  const n = Number(buf.readBigUInt64LE(0));
  if (8 + n > buf.length) throw new Error(`safetensors: header length ${n} exceeds the file`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  } catch (e) {
    throw new Error(`safetensors: header is not JSON (${(e as Error).message})`);
  }
  const base = 8 + n;
  const out: SafetensorsFile = { tensors: new Map(), metadata: {}, dtypes: new Map() };
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') {
      out.metadata = (info ?? {}) as Record<string, string>;
      continue;
    }
    const { dtype, shape, data_offsets } = info as {
      dtype: string;
      shape: number[];
      data_offsets: [number, number];
    };
    if (!(dtype in BYTES)) throw new Error(`safetensors: tensor ${name} has unsupported dtype ${dtype}`);
    const d = dtype as SafetensorsDtype;
    const count = shape.reduce((a, b) => a * b, 1);
    const [begin, end] = data_offsets;
    if (end - begin !== count * BYTES[d] || base + end > buf.length)
      throw new Error(`safetensors: tensor ${name} offsets [${begin}, ${end}] do not match shape ${shape}`);
    out.tensors.set(name, { shape, data: decode(d, buf.subarray(base + begin, base + end), count) });
    out.dtypes.set(name, d);
  }
  return out;
}

/**
 * Serialises tensors (in the given order) as safetensors. Deterministic.
 * @param dtype storage type for every tensor; F16/BF16 round to nearest even.
 */
export function encodeSafetensors(
  tensors: Map<string, NamedTensor> | Array<[string, NamedTensor]>,
  options: { metadata?: Record<string, string>; dtype?: SafetensorsDtype } = {},
): Buffer {
  const dtype = options.dtype ?? 'F32';
  const entries = [...tensors];
  const header: Record<string, unknown> = {};
  if (options.metadata) header.__metadata__ = options.metadata;
  let offset = 0;
  for (const [name, t] of entries) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length)
      throw new Error(`tensor ${name}: shape ${t.shape} needs ${count} values, got ${t.data.length}`);
    const size = count * BYTES[dtype];
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const out = Buffer.alloc(8 + json.length + offset);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  let p = 8 + json.length;
  for (const [, t] of entries) {
    for (let i = 0; i < t.data.length; i++) {
      const v = t.data[i] as number;
      if (dtype === 'F32') {
        out.writeFloatLE(v, p);
        p += 4;
      } else {
        out.writeUInt16LE(dtype === 'F16' ? f32ToF16(v) : f32ToBf16(v), p);
        p += 2;
      }
    }
  }
  return out;
}

/** Reads one safetensors file. */
export async function readSafetensors(file: string): Promise<SafetensorsFile> {
  return decodeSafetensors(await readFile(file));
}

/** Writes one safetensors file (see `encodeSafetensors`). */
export async function writeSafetensors(
  file: string,
  tensors: Map<string, NamedTensor> | Array<[string, NamedTensor]>,
  options: { metadata?: Record<string, string>; dtype?: SafetensorsDtype } = {},
): Promise<void> {
  await writeFile(file, encodeSafetensors(tensors, options));
}

/**
 * Loads every tensor of a model folder: `model.safetensors`, or the shards listed in
 * `model.safetensors.index.json`.
 * @throws Error when neither exists.
 */
export async function readModelWeights(dir: string): Promise<Map<string, NamedTensor>> {
  const index = path.join(dir, 'model.safetensors.index.json');
  let files: string[];
  try {
    const j = JSON.parse(await readFile(index, 'utf8')) as { weight_map: Record<string, string> };
    files = [...new Set(Object.values(j.weight_map))];
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    files = ['model.safetensors'];
  }
  const all = new Map<string, NamedTensor>();
  for (const f of files) {
    let st: SafetensorsFile;
    try {
      st = await readSafetensors(path.join(dir, f));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT')
        throw new Error(`no model.safetensors (or index) in ${dir}`);
      throw e;
    }
    for (const [k, v] of st.tensors) all.set(k, v);
  }
  return all;
}
