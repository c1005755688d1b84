import {
  AutoModelForSequenceClassification,
  AutoTokenizer,
  type PreTrainedModel,
  type PreTrainedTokenizer,
  type Tensor,
} from '@huggingface/transformers';
import { batches, checkBatchSize } from '../embedder.ts';
import { encodeBatch, resolveModelFolder } from '../embedders/onnx.ts';
import { SupportbotError } from '../errors.ts';
import type { Reranker, RerankerOptions } from '../reranker.ts';

const DEFAULT_MAX_LENGTH = 512;

/**
 * A cross-encoder (ms-marco MiniLM style: BERT with a sequence-classification head) run by
 * onnxruntime-node through transformers.js, never the network. Each (query, doc) pair is tokenized
 * as a text pair (`[CLS] query [SEP] doc [SEP]`, token types 0/1, per the tokenizer's
 * post-processor), truncated to `maxLength` tokens from the end of the doc (see `encodeBatch`)
 * and padded per batch;
 * the graph's `logits` output gives the score: the single logit of a one-label head (how
 * ms-marco cross-encoders are trained), or logit[1] − logit[0] (the log-odds of "relevant") for a
 * two-label head.
 */
export class OnnxReranker implements Reranker {
  readonly provider = 'onnx';
  readonly modelId: string;
  readonly id: string;
  readonly folder: string;
  readonly maxLength: number;
  readonly #batchSize: number;
  readonly #tokenizer: PreTrainedTokenizer;
  #model: PreTrainedModel | null;

  private constructor(
    modelId: string,
    folder: string,
    tokenizer: PreTrainedTokenizer,
    model: PreTrainedModel,
    maxLength: number,
    batchSize: number,
  ) {
    this.modelId = modelId;
    this.id = `onnx:${modelId}`;
    this.folder = folder;
    this.#tokenizer = tokenizer;
    this.#model = model;
    this.maxLength = maxLength;
    this.#batchSize = batchSize;
  }

  /**
   * Loads tokenizer and model from the resolved folder (see `resolveModelFolder`).
   *
   * @throws SupportbotError `embedding-model-not-found`, `rerank-failed`, `invalid-option`.
   */
  static async load(options: RerankerOptions): Promise<OnnxReranker> {
    const batchSize = checkBatchSize(options.batchSize, 16);
    const { dir, subfolder } = resolveModelFolder(options.model, options.cacheDirs);
    let tokenizer: PreTrainedTokenizer;
    let model: PreTrainedModel;
    try {
      tokenizer = await AutoTokenizer.from_pretrained(dir, { local_files_only: true });
      model = await AutoModelForSequenceClassification.from_pretrained(dir, {
        local_files_only: true,
        subfolder,
        dtype: 'fp32',
      });
    } catch (err) {
      throw new SupportbotError(
        'rerank-failed',
        `cannot load ONNX reranker from ${dir}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    const tokenizerMax = Number(tokenizer.model_max_length);
    const maxLength =
      options.maxLength ??
      (Number.isFinite(tokenizerMax) && tokenizerMax > 0 && tokenizerMax < 100_000
        ? tokenizerMax
        : DEFAULT_MAX_LENGTH);
    if (!Number.isInteger(maxLength) || maxLength < 3) {
      throw new SupportbotError(
        'invalid-option',
        `reranker maxLength must be an integer >= 3, got ${maxLength}`,
      );
    }
    return new OnnxReranker(options.model, dir, tokenizer, model, maxLength, batchSize);
  }

  async rerank(query: string, docs: string[], options: { signal?: AbortSignal } = {}): Promise<number[]> {
    const scores: number[] = [];
    for (const batch of batches(docs, this.#batchSize)) {
      options.signal?.throwIfAborted();
      scores.push(...(await this.#run(query, batch)));
    }
    return scores;
  }

  async close(): Promise<void> {
    const model = this.#model;
    this.#model = null;
    await model?.dispose();
  }

  async #run(query: string, docs: string[]): Promise<number[]> {
    const model = this.#model;
    if (model === null) throw new SupportbotError('rerank-failed', `reranker ${this.id} is closed`);
    try {
      const inputs = encodeBatch(
        this.#tokenizer,
        docs.map(() => query),
        this.maxLength,
        docs,
      );
      const { logits } = (await model(inputs)) as { logits?: Tensor };
      if (logits?.dims.length !== 2 || logits.dims[0] !== docs.length) {
        throw new Error('the graph has no logits [batch, labels] output');
      }
      const labels = logits.dims[1] ?? 0;
      const data = logits.data as Float32Array;
      return docs.map((_, b) =>
        labels === 1 ? (data[b] as number) : (data[b * labels + 1] as number) - (data[b * labels] as number),
      );
    } catch (err) {
      throw new SupportbotError(
        'rerank-failed',
        `ONNX rerank failed (${this.id}): ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
  }
}
