/**
 * Training-data types shared by the dataset builder, the exporters, the training job and the
 * trainer: one example is a chat prompt in the generator's exact format (`core/prompt.ts`) plus the
 * reply, with a binary label for KTO (Ethayarajh et al. 2024, "KTO: Model Alignment as Prospect
 * Theoretic Optimization", arXiv 2402.01306): desirable (`label: true`) or undesirable.
 */
import type { ChatMessage } from '../../core/prompt.ts';
import type { PiiCounts } from './pii.ts';

/**
 * - `sft`: a 👍-rated answer (or a gold seed reply): a supervised target and a KTO desirable.
 * - `escalation`: a confirmed hand-off (see `training/dataset/build.ts`): the reply ends with the
 *   `ESCALATE: <reason>` line; a supervised target and a KTO desirable.
 * - `undesirable`: a 👎-rated answer: KTO undesirable only, never a supervised target.
 */
export type ExampleKind = 'sft' | 'escalation' | 'undesirable';

export type Split = 'train' | 'validation';

/** One training example, already PII-scrubbed. */
export interface TrainingExample {
  /** First 16 hex digits of SHA-256 over the scrubbed prompt, reply and label: the dedupe key. */
  id: string;
  kind: ExampleKind;
  /** KTO label: true for desirable (`sft`, `escalation`), false for `undesirable`. */
  label: boolean;
  /** System prompt, earlier turns, and the final user message with the numbered sources. */
  prompt: ChatMessage[];
  /** The assistant reply, in the generator's output contract (`[n]` = n-th source; `ESCALATE:` line). */
  completion: string;
  split: Split;
  /** Where it came from: `answer:<id>`, `bitext:<row>`, `mtrag:<task>`, `feedbackqa:<file>#<i>`. */
  origin: string;
}

/** What an example looks like before scrubbing, deduping and splitting. */
export type RawExample = Omit<TrainingExample, 'id' | 'split'>;

/** Counts behind a dataset, for the CLI, the job status and the registry. */
export interface DatasetStats {
  /** Answers (or seed rows) read. */
  read: number;
  /** Examples per kind after dedupe. */
  kinds: Record<ExampleKind, number>;
  train: number;
  validation: number;
  duplicates: number;
  /** Answers left out, by reason (`unrated or tied`, `chunks gone`, `fallback answer`, …). */
  skipped: Record<string, number>;
  /** PII replacements per kind, over everything kept. */
  pii: PiiCounts;
}

/** A built dataset: examples in a stable order (by id) and its content hash. */
export interface BuiltDataset {
  examples: TrainingExample[];
  stats: DatasetStats;
  /** SHA-256 (hex) over the sorted example ids: the registry's `datasetHash`. */
  hash: string;
}

/**
 * One line of the internal dataset file (`examples.jsonl`) that the training job hands to the
 * trainer as `datasetFile`: the example as-is.
 */
export type DatasetRecord = TrainingExample;
