import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import {
  AutoModel,
  AutoTokenizer,
  env,
  type PreTrainedModel,
  type PreTrainedTokenizer,
  Tensor,
} from '@huggingface/transformers';
import {
  batches,
  checkBatchSize,
  type Embedder,
  type EmbedderOptions,
  type EmbeddingPrefixes,
  type EmbedOptions,
  normalizeInPlace,
  prefixesForModelName,
} from '../embedder.ts';
import { SupportbotError } from '../errors.ts';

// supportbot never downloads models: every load below also passes `local_files_only`, and this
// makes any code path that forgets it fail instead of reaching the Hub.
env.allowRemoteModels = false;

/** How token vectors become one text vector (sentence-transformers' Pooling module modes). */
export type Pooling = 'mean' | 'cls' | 'max';

/** Longest input when neither the option nor the model says (BERT-family position limit). */
const DEFAULT_MAX_LENGTH = 512;

/**
 * A local model folder as transformers.js loads it: `tokenizer.json` + `tokenizer_config.json`,
 * `config.json`, and the ONNX graph in `onnx/model.onnx` (the transformers.js export layout) or
 * `model.onnx` at the top.
 */
export interface ModelFolder {
  dir: string;
  /** `onnx` or `` (the folder holding `model.onnx`). */
  subfolder: string;
}

/**
 * Finds a model's folder without any network access. `model` is a folder path, or a hub id
 * (`org/name`) looked up in: `cacheDirs`, then `HF_HUB_CACHE` / `HF_HOME/hub` /
 * `~/.cache/huggingface/hub` (the Hub cache layout `models--org--name/snapshots/<rev>/`, the
 * revision `refs/main` names first), then transformers.js' own cache (`<cacheDir>/org/name/`).
 *
 * @throws SupportbotError `model-not-found` naming every place tried.
 */
export function resolveModelFolder(model: string, cacheDirs: readonly string[] = []): ModelFolder {
  const tried: string[] = [];
  const accept = (dir: string): ModelFolder | null => {
    tried.push(dir);
    if (!existsSync(path.join(dir, 'tokenizer.json'))) return null;
    if (existsSync(path.join(dir, 'onnx', 'model.onnx'))) return { dir, subfolder: 'onnx' };
    if (existsSync(path.join(dir, 'model.onnx'))) return { dir, subfolder: '' };
    return null;
  };
  if (existsSync(model) && statSync(model).isDirectory()) {
    const found = accept(path.resolve(model));
    if (found) return found;
  } else if (/^[\w.-]+(\/[\w.-]+)?$/.test(model)) {
    const hubCaches = [
      ...cacheDirs,
      process.env.HF_HUB_CACHE,
      process.env.HF_HOME ? path.join(process.env.HF_HOME, 'hub') : undefined,
      path.join(homedir(), '.cache', 'huggingface', 'hub'),
    ].filter((d): d is string => Boolean(d));
    for (const cache of hubCaches) {
      const repo = path.join(cache, `models--${model.replaceAll('/', '--')}`);
      for (const snapshot of snapshotsOf(repo)) {
        const found = accept(snapshot);
        if (found) return found;
      }
      const plain = accept(path.join(cache, model));
      if (plain) return plain;
    }
    const own = accept(path.join(env.cacheDir ?? '', model));
    if (own) return own;
  } else {
    tried.push(model);
  }
  throw new SupportbotError(
    'model-not-found',
    `model ${model} not found locally (looked in ${tried.join(', ')}); supportbot never downloads models: point the setting at a folder with tokenizer.json and onnx/model.onnx, or download it first (e.g. huggingface-cli download ${model})`,
  );
}

/** Snapshot folders of a Hub-cache repo, the one `refs/main` points to first. */
function snapshotsOf(repo: string): string[] {
  const dir = path.join(repo, 'snapshots');
  if (!existsSync(dir)) return [];
  const all = readdirSync(dir).map((s) => path.join(dir, s));
  const refFile = path.join(repo, 'refs', 'main');
  const main = existsSync(refFile) ? path.join(dir, readFileSync(refFile, 'utf8').trim()) : null;
  return main ? [main, ...all.filter((s) => s !== main)] : all;
}

function readJson(file: string): Record<string, unknown> | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch {
    return null;
  }
}

/** Model inputs for one batch: int64 tensors `[batch, tokens]`. */
export interface EncodedBatch {
  input_ids: Tensor;
  attention_mask: Tensor;
  token_type_ids: Tensor;
}

/**
 * Tokenizes a batch (texts, or text pairs for a cross-encoder) with the tokenizer's own template
 * (`[CLS] a [SEP]`, `[CLS] a [SEP] b [SEP]`, `<s> a </s>`, …), truncates each sequence to
 * `maxLength` tokens and pads to the longest (right side, `pad_token_id`, mask 0).
 *
 * Truncation keeps the template's closing special token, as Hugging Face tokenizers do
 * (they truncate the content, then add special tokens): transformers.js 4 instead slices the
 * finished sequence, which drops the final `[SEP]`. For pairs, content is cut from the end of the
 * second text (the passage), which equals "only_second" truncation whenever the query fits.
 */
export function encodeBatch(
  tokenizer: PreTrainedTokenizer,
  texts: string[],
  maxLength: number,
  pairs?: string[],
): EncodedBatch {
  const special = new Set(tokenizer.all_special_ids);
  // Untruncated and unpadded, as plain arrays: truncation and padding follow below.
  const encoded = tokenizer(texts, {
    text_pair: pairs ?? null,
    add_special_tokens: true,
    return_token_type_ids: true,
    return_tensor: false,
  }) as unknown as { input_ids: number[][]; token_type_ids?: number[][] };
  const rows = encoded.input_ids.map((ids, i) => {
    const types = encoded.token_type_ids?.[i] ?? new Array<number>(ids.length).fill(0);
    if (ids.length <= maxLength) return { ids, types };
    const last = ids.length - 1;
    const keepLast = special.has(ids[last] as number);
    const head = keepLast ? maxLength - 1 : maxLength;
    return {
      ids: keepLast ? [...ids.slice(0, head), ids[last] as number] : ids.slice(0, head),
      types: keepLast ? [...types.slice(0, head), types[last] as number] : types.slice(0, head),
    };
  });
  const width = Math.max(1, ...rows.map((r) => r.ids.length));
  const ids = new BigInt64Array(rows.length * width);
  const mask = new BigInt64Array(rows.length * width);
  const types = new BigInt64Array(rows.length * width);
  const pad = BigInt(tokenizer.pad_token_id ?? 0);
  rows.forEach((row, b) => {
    for (let t = 0; t < width; t++) {
      const real = t < row.ids.length;
      ids[b * width + t] = real ? BigInt(row.ids[t] as number) : pad;
      mask[b * width + t] = real ? 1n : 0n;
      types[b * width + t] = real ? BigInt(row.types[t] as number) : 0n;
    }
  });
  const dims = [rows.length, width];
  return {
    input_ids: new Tensor('int64', ids, dims),
    attention_mask: new Tensor('int64', mask, dims),
    token_type_ids: new Tensor('int64', types, dims),
  };
}

/** What a folder's sentence-transformers files say about pooling, length and prompts. */
export interface SentenceTransformersConfig {
  pooling: Pooling | null;
  maxLength: number | null;
  prefixes: Partial<EmbeddingPrefixes>;
}

/**
 * Reads the sentence-transformers config files beside the ONNX export, when present:
 * `modules.json` → the Pooling module's folder (usually `1_Pooling`) and its `config.json`
 * (`pooling_mode_cls_token`, `pooling_mode_mean_tokens`, `pooling_mode_max_tokens`),
 * `sentence_bert_config.json` (`max_seq_length`), and `config_sentence_transformers.json`
 * (`prompts.query`, `prompts.passage` or `prompts.document`).
 */
export function readSentenceTransformersConfig(dir: string): SentenceTransformersConfig {
  const modules = readJson(path.join(dir, 'modules.json'));
  let poolingDir = '1_Pooling';
  if (Array.isArray(modules)) {
    const entry = (modules as { type?: string; path?: string }[]).find((m) => m.type?.endsWith('.Pooling'));
    if (entry?.path) poolingDir = entry.path;
  }
  const poolingConfig = readJson(path.join(dir, poolingDir, 'config.json'));
  let pooling: Pooling | null = null;
  if (poolingConfig?.pooling_mode_cls_token === true) pooling = 'cls';
  else if (poolingConfig?.pooling_mode_mean_tokens === true) pooling = 'mean';
  else if (poolingConfig?.pooling_mode_max_tokens === true) pooling = 'max';
  const bert = readJson(path.join(dir, 'sentence_bert_config.json'));
  const maxLength = typeof bert?.max_seq_length === 'number' ? bert.max_seq_length : null;
  const prompts = (readJson(path.join(dir, 'config_sentence_transformers.json'))?.prompts ?? {}) as Record<
    string,
    unknown
  >;
  const prefixes: Partial<EmbeddingPrefixes> = {};
  if (typeof prompts.query === 'string') prefixes.query = prompts.query;
  const passage = prompts.passage ?? prompts.document;
  if (typeof passage === 'string') prefixes.passage = passage;
  return { pooling, maxLength, prefixes };
}

/**
 * Pools token vectors `[batch, tokens, dim]` (row-major `hidden`) into one vector per text and
 * L2-normalizes it. `mean` averages the tokens whose attention mask is 1 (sentence-transformers'
 * mean pooling, special tokens included); `cls` takes the first token; `max` the element-wise
 * maximum over unmasked tokens.
 */
export function poolAndNormalize(
  hidden: Float32Array,
  mask: ArrayLike<number | bigint>,
  dims: readonly number[],
  pooling: Pooling,
): Float32Array[] {
  const [batch = 0, tokens = 0, dim = 0] = dims;
  const out: Float32Array[] = [];
  for (let b = 0; b < batch; b++) {
    const v = new Float32Array(dim);
    if (pooling === 'cls') {
      v.set(hidden.subarray(b * tokens * dim, b * tokens * dim + dim));
    } else {
      let count = 0;
      if (pooling === 'max') v.fill(Number.NEGATIVE_INFINITY);
      for (let t = 0; t < tokens; t++) {
        if (Number(mask[b * tokens + t]) === 0) continue;
        count++;
        const offset = (b * tokens + t) * dim;
        for (let d = 0; d < dim; d++) {
          const x = hidden[offset + d] as number;
          v[d] = pooling === 'max' ? Math.max(v[d] as number, x) : (v[d] as number) + x;
        }
      }
      if (count === 0) v.fill(0);
      else if (pooling === 'mean') for (let d = 0; d < dim; d++) v[d] = (v[d] as number) / count;
    }
    out.push(normalizeInPlace(v));
  }
  return out;
}

/**
 * A local sentence-embedding model run by onnxruntime-node through transformers.js
 * (`AutoTokenizer` + `AutoModel`, never the network). Texts are prefixed (query/passage),
 * tokenized with truncation to `maxLength` tokens and padding per batch, run through the graph,
 * and the `last_hidden_state` (or `token_embeddings`) output is pooled as the model's
 * sentence-transformers config says (`1_Pooling/config.json`; mean when absent), then
 * L2-normalized. A graph that already outputs `sentence_embedding` is used as is (normalized).
 */
export class OnnxEmbedder implements Embedder {
  readonly provider = 'onnx';
  readonly modelId: string;
  readonly id: string;
  readonly dimensions: number;
  readonly folder: string;
  readonly pooling: Pooling;
  readonly maxLength: number;
  readonly prefixes: EmbeddingPrefixes;
  readonly #batchSize: number;
  readonly #tokenizer: PreTrainedTokenizer;
  #model: PreTrainedModel | null;

  private constructor(init: {
    modelId: string;
    folder: string;
    tokenizer: PreTrainedTokenizer;
    model: PreTrainedModel;
    pooling: Pooling;
    maxLength: number;
    prefixes: EmbeddingPrefixes;
    batchSize: number;
    dimensions: number;
  }) {
    this.modelId = init.modelId;
    this.id = `onnx:${init.modelId}`;
    this.folder = init.folder;
    this.#tokenizer = init.tokenizer;
    this.#model = init.model;
    this.pooling = init.pooling;
    this.maxLength = init.maxLength;
    this.prefixes = init.prefixes;
    this.#batchSize = init.batchSize;
    this.dimensions = init.dimensions;
  }

  /**
   * Loads tokenizer and model from the resolved folder and embeds one probe text to learn the
   * dimension (and to fail now, not at the first question, on a broken export).
   *
   * @throws SupportbotError `model-not-found`, `embedding-failed` (the model does not
   *   load or has no usable output), `invalid-option`.
   */
  static async load(options: EmbedderOptions): Promise<OnnxEmbedder> {
    const batchSize = checkBatchSize(options.batchSize, 32);
    const { dir, subfolder } = resolveModelFolder(options.model, options.cacheDirs);
    const st = readSentenceTransformersConfig(dir);
    let tokenizer: PreTrainedTokenizer;
    let model: PreTrainedModel;
    try {
      tokenizer = await AutoTokenizer.from_pretrained(dir, { local_files_only: true });
      model = await AutoModel.from_pretrained(dir, { local_files_only: true, subfolder, dtype: 'fp32' });
    } catch (err) {
      throw new SupportbotError(
        'embedding-failed',
        `cannot load ONNX embedding model from ${dir}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    const tokenizerMax = Number(tokenizer.model_max_length);
    const maxLength =
      options.maxLength ??
      st.maxLength ??
      (Number.isFinite(tokenizerMax) && tokenizerMax > 0 && tokenizerMax < 100_000
        ? tokenizerMax
        : DEFAULT_MAX_LENGTH);
    if (!Number.isInteger(maxLength) || maxLength < 2) {
      throw new SupportbotError(
        'invalid-option',
        `embedding maxLength must be an integer >= 2, got ${maxLength}`,
      );
    }
    const embedder = new OnnxEmbedder({
      modelId: options.model,
      folder: dir,
      tokenizer,
      model,
      pooling: st.pooling ?? options.pooling ?? 'mean',
      maxLength,
      prefixes: { ...prefixesForModelName(options.model), ...st.prefixes, ...options.prefixes },
      batchSize,
      dimensions: 0,
    });
    const [probe] = await embedder.#run(['dimension probe']);
    (embedder as { dimensions: number }).dimensions = probe?.length ?? 0;
    if (embedder.dimensions === 0) {
      throw new SupportbotError('embedding-failed', `ONNX embedding model ${dir} produced an empty vector`);
    }
    return embedder;
  }

  embedQueries(texts: string[], options: EmbedOptions = {}): Promise<Float32Array[]> {
    return this.#embed(
      texts.map((t) => this.prefixes.query + t),
      options,
    );
  }

  embedPassages(texts: string[], options: EmbedOptions = {}): Promise<Float32Array[]> {
    return this.#embed(
      texts.map((t) => this.prefixes.passage + t),
      options,
    );
  }

  /** Token ids the model sees for one text (after prefixing is up to the caller), for tests and debugging. */
  tokenize(text: string): number[] {
    const { input_ids } = encodeBatch(this.#tokenizer, [text], this.maxLength);
    return Array.from(input_ids.data as ArrayLike<bigint>, Number);
  }

  async close(): Promise<void> {
    const model = this.#model;
    this.#model = null;
    await model?.dispose();
  }

  async #embed(texts: string[], options: EmbedOptions): Promise<Float32Array[]> {
    const out: Float32Array[] = [];
    for (const batch of batches(texts, this.#batchSize)) {
      options.signal?.throwIfAborted();
      out.push(...(await this.#run(batch)));
    }
    return out;
  }

  async #run(texts: string[]): Promise<Float32Array[]> {
    const model = this.#model;
    if (model === null) throw new SupportbotError('embedding-failed', `embedder ${this.id} is closed`);
    if (texts.length === 0) return [];
    try {
      const inputs = encodeBatch(this.#tokenizer, texts, this.maxLength);
      const outputs = (await model(inputs)) as Record<string, Tensor | undefined>;
      const pooled = outputs.sentence_embedding;
      if (pooled) {
        const [batch = 0, dim = 0] = pooled.dims;
        const data = pooled.data as Float32Array;
        return Array.from({ length: batch }, (_, b) => normalizeInPlace(data.slice(b * dim, (b + 1) * dim)));
      }
      const hidden = outputs.last_hidden_state ?? outputs.token_embeddings;
      if (hidden?.dims.length !== 3) {
        throw new Error(
          `the graph has no last_hidden_state/token_embeddings [batch, tokens, dim] output (outputs: ${Object.keys(outputs).join(', ')})`,
        );
      }
      const mask = inputs.attention_mask;
      return poolAndNormalize(
        hidden.data as Float32Array,
        mask.data as BigInt64Array,
        hidden.dims,
        this.pooling,
      );
    } catch (err) {
      if (err instanceof SupportbotError) throw err;
      throw new SupportbotError(
        'embedding-failed',
        `ONNX embedding failed (${this.id}): ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
  }
}
