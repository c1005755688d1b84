/**
 * Writes a built (already PII-scrubbed) dataset as JSONL files other trainers take, following
 * TRL's dataset formats (https://huggingface.co/docs/trl/dataset_formats), which Axolotl
 * (`type: chat_template`, and TRL-style KTO) and Unsloth (TRL trainers) read as well:
 *
 * - `chat`: conversational language modeling, one `{"messages": [system, …, user, assistant]}` per
 *   line — desirable examples only (`sft`, `escalation`), for SFT. Files `chat/train.jsonl`,
 *   `chat/validation.jsonl`.
 * - `prompt-completion`: conversational unpaired preference, one
 *   `{"prompt": [messages…], "completion": [{"role": "assistant", …}], "label": true|false}` per
 *   line — every example, for KTO (TRL `KTOTrainer`); `label: false` lines are the 👎 answers.
 *   Files `prompt-completion/train.jsonl`, `prompt-completion/validation.jsonl`.
 *
 * Besides those, `examples.jsonl` holds the internal records (`training/dataset/types.ts`) the
 * training job hands to the trainer, and `dataset.json` the stats and hash.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { BuiltDataset, Split, TrainingExample } from './dataset/types.ts';

export type ExportFormat = 'chat' | 'prompt-completion';
export const EXPORT_FORMATS: readonly ExportFormat[] = ['chat', 'prompt-completion'];

/** One line of the `chat` format. */
export function chatLine(e: TrainingExample): { messages: { role: string; content: string }[] } {
  return { messages: [...e.prompt, { role: 'assistant', content: e.completion }] };
}

/** One line of the `prompt-completion` format. */
export function promptCompletionLine(e: TrainingExample): {
  prompt: { role: string; content: string }[];
  completion: { role: string; content: string }[];
  label: boolean;
} {
  return { prompt: e.prompt, completion: [{ role: 'assistant', content: e.completion }], label: e.label };
}

const jsonl = (rows: unknown[]) => rows.map((r) => `${JSON.stringify(r)}\n`).join('');

export interface ExportSummary {
  /** Files written, with their line counts. */
  files: { path: string; lines: number }[];
}

/**
 * Writes the dataset under `outDir` in the given formats plus `examples.jsonl` and
 * `dataset.json`. The examples must come from `finalizeDataset` (scrubbed); nothing else is written.
 * @throws the file system's errors (an unwritable directory).
 */
export function exportDataset(
  dataset: BuiltDataset,
  outDir: string,
  formats: readonly ExportFormat[] = EXPORT_FORMATS,
): ExportSummary {
  mkdirSync(outDir, { recursive: true });
  const files: ExportSummary['files'] = [];
  const write = (file: string, rows: unknown[]) => {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, jsonl(rows));
    files.push({ path: file, lines: rows.length });
  };
  const of = (split: Split) => dataset.examples.filter((e) => e.split === split);
  for (const format of formats) {
    for (const split of ['train', 'validation'] as const) {
      const file = path.join(outDir, format, `${split}.jsonl`);
      if (format === 'chat')
        write(
          file,
          of(split)
            .filter((e) => e.label)
            .map(chatLine),
        );
      else write(file, of(split).map(promptCompletionLine));
    }
  }
  write(path.join(outDir, 'examples.jsonl'), dataset.examples);
  const meta = path.join(outDir, 'dataset.json');
  writeFileSync(meta, `${JSON.stringify({ hash: dataset.hash, stats: dataset.stats }, null, 2)}\n`);
  files.push({ path: meta, lines: 1 });
  return { files };
}
