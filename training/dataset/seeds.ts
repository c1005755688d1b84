/**
 * Seed datasets from the shared conversations data (`../shared/data`, see its SOURCES.md), loaded
 * into the same raw examples as the feedback dataset and rendered with the same prompt
 * (`renderPrompt`), so they go through the same scrubber, dedupe and split:
 *
 * - Bitext customer-support CSV (`conversations/bitext/data/train/*.csv`, columns `instruction`,
 *   `intent`, `response`, …): instruction → response with no retrieved sources (the set has none).
 *   Intents where the DESIGN's contract wants a person — `contact_human_agent` and `complaint` —
 *   become `escalation` examples (the reply plus the `ESCALATE:` line); the rest `sft`.
 * - MTRAG-UN (`conversations/mtrag/mtragun-human/generation_tasks/reference.jsonl`): the
 *   conversation so far (`input`) as history, the last user turn as the question, the task's
 *   reference passages (`contexts`) as the numbered sources, the gold agent reply (`targets[0]`).
 * - FeedbackQA (`retrieval/feedbackqa/experiments/feedbackQA_data/<region>/feedback_*.json`): a
 *   question, the FAQ passage shown as the answer, and two human ratings; Excellent/Acceptable
 *   count +1, Could be Improved/Bad −1, and the net sign picks desirable or undesirable (a tie is
 *   left out), as for the bot's own 👍/👎.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { StoredChunk, Turn } from '../../core/types.ts';
import { DEFAULT_PROMPT_SETTINGS, type PromptSettings, renderPrompt, withEscalation } from './build.ts';
import type { RawExample } from './types.ts';

/** Bitext intents whose replies should hand the conversation to a person. */
export const BITEXT_ESCALATION_INTENTS: Readonly<Record<string, string>> = {
  contact_human_agent: 'the customer asked for a human agent',
  complaint: 'the customer is filing a complaint',
};

/**
 * RFC 4180 CSV: fields separated by commas, records by CRLF or LF, fields in double quotes may
 * hold commas, line breaks and `""` (an escaped quote).
 * @returns rows of fields, the header row included.
 */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else quoted = false;
      } else field += ch;
    } else if (ch === '"' && field === '') quoted = true;
    else if (ch === ',') {
      row.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += ch;
  }
  if (field !== '' || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

export interface SeedOptions {
  prompt?: Partial<PromptSettings>;
  /** At most this many examples (the first ones, in file order). */
  limit?: number;
}

/** A chunk for a seed passage that has no help-center article behind it. */
function seedChunk(source: string, id: string, title: string, text: string): StoredChunk {
  return {
    id: `${source}:${id}#0`,
    articleId: id,
    source,
    index: 0,
    headingPath: [],
    text,
    tokenCount: 0,
    span: { start: 0, end: text.length },
    title,
    url: null,
    sourcePath: id,
    tags: [],
    accessGroups: [],
    locale: 'en',
    updatedAt: '1970-01-01T00:00:00.000Z',
  };
}

/**
 * Loads the Bitext customer-support CSV.
 * @throws Error when the header lacks `instruction`, `intent` or `response`.
 */
export function loadBitextSeed(file: string, options: SeedOptions = {}): RawExample[] {
  const settings = { ...DEFAULT_PROMPT_SETTINGS, ...options.prompt };
  const [header, ...rows] = parseCsv(readFileSync(file, 'utf8'));
  const col = (name: string) => {
    const i = header?.indexOf(name) ?? -1;
    if (i < 0) throw new Error(`${file}: no "${name}" column (header: ${header?.join(', ')})`);
    return i;
  };
  const [qi, ii, ri] = [col('instruction'), col('intent'), col('response')];
  const out: RawExample[] = [];
  for (const [n, row] of rows.entries()) {
    if (options.limit !== undefined && out.length >= options.limit) break;
    const question = row[qi]?.trim();
    const response = row[ri]?.trim();
    if (!question || !response) continue;
    const intent = row[ii] ?? '';
    const reason = BITEXT_ESCALATION_INTENTS[intent];
    out.push({
      kind: reason ? 'escalation' : 'sft',
      label: true,
      prompt: renderPrompt(settings, question, [], []).messages,
      completion: reason ? withEscalation(response, reason) : response,
      origin: `bitext:${n + 2}:${intent}`,
    });
  }
  return out;
}

/** The MTRAG fields this loader reads. */
interface MtragTask {
  task_id: string;
  input: { speaker: string; text: string }[];
  contexts: { document_id: string; text: string; title?: string }[];
  targets: { speaker: string; text: string }[];
}

/** Loads MTRAG-UN reference tasks (history, passages, gold reply). */
export function loadMtragSeed(file: string, options: SeedOptions = {}): RawExample[] {
  const settings = { ...DEFAULT_PROMPT_SETTINGS, ...options.prompt };
  const out: RawExample[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (options.limit !== undefined && out.length >= options.limit) break;
    if (!line.trim()) continue;
    const t = JSON.parse(line) as MtragTask;
    const turns: Turn[] = t.input.map((x) => ({
      role: x.speaker === 'user' ? 'user' : 'assistant',
      text: x.text,
    }));
    const last = turns.pop();
    const target = t.targets[0]?.text?.trim();
    if (last?.role !== 'user' || !target) continue;
    const contexts = t.contexts.map((c, i) =>
      seedChunk('mtrag', c.document_id || `${t.task_id}-${i}`, c.title ?? c.document_id, c.text.trim()),
    );
    const rendered = renderPrompt(settings, last.text, turns, contexts);
    out.push({
      kind: 'sft',
      label: true,
      prompt: rendered.messages,
      completion: target,
      origin: `mtrag:${t.task_id}`,
    });
  }
  return out;
}

const FEEDBACKQA_SCORES: Readonly<Record<string, number>> = {
  Excellent: 1,
  Acceptable: 1,
  'Could be Improved': -1,
  Bad: -1,
};

interface FeedbackQaPair {
  question: string;
  passage: {
    passage_id: number | string;
    reference: { page_title: string; section_headers?: string[]; section_content: string };
  };
  rating: string[];
}

/**
 * Loads a FeedbackQA `feedback_*.json` file: the passage is the reply, rated by two people.
 * @returns the examples and how many pairs were left out as ties.
 */
export function loadFeedbackQaSeed(
  file: string,
  options: SeedOptions = {},
): { examples: RawExample[]; ties: number } {
  const settings = { ...DEFAULT_PROMPT_SETTINGS, ...options.prompt };
  const pairs = JSON.parse(readFileSync(file, 'utf8')) as FeedbackQaPair[];
  const out: RawExample[] = [];
  let ties = 0;
  for (const [i, p] of pairs.entries()) {
    if (options.limit !== undefined && out.length >= options.limit) break;
    const net = p.rating.reduce((s, r) => s + (FEEDBACKQA_SCORES[r] ?? 0), 0);
    if (net === 0) {
      ties++;
      continue;
    }
    const ref = p.passage.reference;
    const chunk = seedChunk(
      'feedbackqa',
      String(p.passage.passage_id),
      ref.page_title,
      [...(ref.section_headers ?? []), ref.section_content].join('\n\n').trim(),
    );
    const rendered = renderPrompt(settings, p.question, [], [chunk]);
    out.push({
      kind: net > 0 ? 'sft' : 'undesirable',
      label: net > 0,
      prompt: rendered.messages,
      completion: `${ref.section_content.trim()} [1]`,
      origin: `feedbackqa:${file.split('/').slice(-2).join('/')}#${i}`,
    });
  }
  return { examples: out, ties };
}

/** The seed files under a shared data root (`../shared/data`), where present. */
export function seedFiles(dataRoot: string): { bitext?: string; mtrag?: string; feedbackqa: string[] } {
  const at = (...p: string[]) => {
    const f = path.join(dataRoot, ...p);
    return existsSync(f) ? f : undefined;
  };
  const fqDir = path.join(dataRoot, 'retrieval', 'feedbackqa', 'experiments', 'feedbackQA_data');
  const feedbackqa = existsSync(fqDir)
    ? readdirSync(fqDir)
        .sort()
        .flatMap((region) => {
          const dir = path.join(fqDir, region);
          return existsSync(dir) && statSync(dir).isDirectory()
            ? readdirSync(dir)
                .filter((f) => /^feedback_.*\.json$/.test(f))
                .sort()
                .map((f) => path.join(dir, f))
            : [];
        })
    : [];
  return {
    bitext: at(
      'conversations',
      'bitext',
      'data',
      'train',
      'Bitext_Sample_Customer_Support_Training_Dataset.csv',
    ),
    mtrag: at('conversations', 'mtrag', 'mtragun-human', 'generation_tasks', 'reference.jsonl'),
    feedbackqa,
  };
}

/**
 * Loads every seed set found under `dataRoot` (`limit` applies per file).
 * @returns raw examples and how many came from each set (`feedbackqa ties` counts left-out ties).
 * @throws Error when `dataRoot` holds none of the seed files.
 */
export function loadSharedSeeds(
  dataRoot: string,
  options: SeedOptions = {},
): { raw: RawExample[]; counts: Record<string, number> } {
  const files = seedFiles(dataRoot);
  if (!files.bitext && !files.mtrag && files.feedbackqa.length === 0) {
    throw new Error(
      `${dataRoot}: no seed data (looked for conversations/bitext, conversations/mtrag, retrieval/feedbackqa)`,
    );
  }
  const raw: RawExample[] = [];
  const counts: Record<string, number> = {};
  if (files.bitext) {
    const b = loadBitextSeed(files.bitext, options);
    counts.bitext = b.length;
    raw.push(...b);
  }
  if (files.mtrag) {
    const m = loadMtragSeed(files.mtrag, options);
    counts.mtrag = m.length;
    raw.push(...m);
  }
  for (const f of files.feedbackqa) {
    const { examples, ties } = loadFeedbackQaSeed(f, options);
    counts.feedbackqa = (counts.feedbackqa ?? 0) + examples.length;
    counts['feedbackqa ties'] = (counts['feedbackqa ties'] ?? 0) + ties;
    raw.push(...examples);
  }
  return { raw, counts };
}
