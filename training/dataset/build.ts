/**
 * The dataset from feedback: rated answers in the state store → PII-scrubbed, deduplicated,
 * split training examples in the exact prompt format the generator serves with.
 *
 * Which answers become what (net rating = 👍 count − 👎 count, from `StateStore.ratingSummary`):
 * - net > 0, answered or abstained → `sft` (supervised target, KTO desirable);
 * - net > 0 and escalated → `escalation`: a **confirmed escalation**. "Confirmed" means a person
 *   rated the hand-off itself 👍: the asker (it got them to a human) or the support agent who took
 *   the thread (admins rate the bot's hand-off message in the thread). An escalation nobody rated
 *   is not confirmed and is left out; one rated net 👎 (a needless hand-off) is undesirable. The
 *   state store records no human replies in threads, so a reply alone cannot confirm one.
 * - net < 0 → `undesirable` (KTO undesirable, arXiv 2402.01306); never a supervised target;
 * - net = 0 (unrated or tied) → left out.
 *
 * The prompt is rebuilt as the generator built it (`core/prompt.ts#assemblePrompt`): the stored
 * question, the thread's earlier turns (the earlier answers of the same thread, as the handler
 * appended them: user question, assistant reply as shown) and the retrieved chunks, fetched by the
 * ids the record keeps. When any of those chunks is gone from the knowledge store (re-synced or
 * deleted), the prompt cannot be rebuilt faithfully: the answer is skipped and counted.
 *
 * The reply is put back into the generator's output contract: the record's per-article citation
 * numbers are mapped back to context numbers (`[n]` = n-th source; an article cited through
 * several chunks maps to the first of them that was supplied), a hand-off gets its final
 * `ESCALATE: <reason>` line back, and the handler's "someone is coming" sentence is removed.
 * Answers that are the extractive fallback after an LLM failure are left out (their text opens
 * with a notice the model never wrote).
 */
import { createHash } from 'node:crypto';
import { ABSTAIN_TEXT } from '../../core/answer.ts';
import { SupportbotError } from '../../core/errors.ts';
import {
  assemblePrompt,
  type ChatMessage,
  checkCitations,
  type PromptTokenizer,
  PromptTooLongError,
} from '../../core/prompt.ts';
import { CITATION_MARKER, mapOutsideCode } from '../../core/reply-contract.ts';
import type { StateStore } from '../../core/state-store.ts';
import { cl100kTokenizer } from '../../core/tokenizer.ts';
import type { AnswerRecord, SearchHit, StoredChunk, Turn } from '../../core/types.ts';
import type { ChunkLookup } from './chunks.ts';
import { addPiiCounts, emptyPiiCounts, scrubPii } from './pii.ts';
import type { BuiltDataset, DatasetStats, ExampleKind, RawExample, Split, TrainingExample } from './types.ts';

/** The handler's note appended to an answer after a 👎-then-wrote hand-off (`bot/conversation/handler.ts`). */
const HUMAN_COMING = "I've asked someone from the support team to join this thread.";

/** How prompts are rendered: the serving generator's settings (`llm.tone`, context size, …). */
export interface PromptSettings {
  tone?: string;
  /** `answer.maxAnswerChars`: stated in the system prompt, as the generator states it. */
  maxChars?: number;
  /** The model's context window in tokens (llama-cpp: min(training context, 4096)). */
  contextWindow: number;
  /** Tokens kept for the reply (`llm.maxTokens`). */
  reserveForReply: number;
  tokenizer: PromptTokenizer;
  /** Earlier turns the handler passes (`bot.limits.historyTurns`). */
  historyTurns: number;
}

export const DEFAULT_PROMPT_SETTINGS: PromptSettings = {
  maxChars: 900,
  contextWindow: 4096,
  reserveForReply: 512,
  tokenizer: cl100kTokenizer,
  historyTurns: 10,
};

/** Fewest supervised examples (`sft` + `escalation`) a training run accepts by default. */
export const DEFAULT_MIN_EXAMPLES = 32;
/** Share of examples in validation by default. */
export const DEFAULT_VALIDATION_FRACTION = 0.1;

/** Thrown when a dataset is too small to train on; the message says how many more rated answers are needed. */
export class DatasetTooSmallError extends SupportbotError {
  constructor(
    message: string,
    readonly have: number,
    readonly need: number,
  ) {
    super('dataset-too-small', message);
    this.name = 'DatasetTooSmallError';
  }
}

/**
 * Renders one prompt exactly as the generator does (`assemblePrompt`), contexts numbered from 1.
 * @returns the messages and how many contexts fitted.
 * @throws PromptTooLongError when even the question does not fit the window.
 */
export function renderPrompt(
  settings: PromptSettings,
  question: string,
  history: Turn[],
  contexts: StoredChunk[],
): { messages: ChatMessage[]; contextsUsed: number } {
  const hits: SearchHit[] = contexts.map((chunk, i) => ({ chunk, score: 0, rank: i + 1 }));
  const p = assemblePrompt({
    question,
    history: history.slice(Math.max(0, history.length - settings.historyTurns)),
    contexts: hits,
    tone: settings.tone,
    maxChars: settings.maxChars,
    contextWindow: settings.contextWindow,
    reserveForReply: settings.reserveForReply,
    tokenizer: settings.tokenizer,
  });
  return { messages: p.messages, contextsUsed: p.contextsUsed };
}

/** Appends the escalation marker line of the answer contract. */
export function withEscalation(text: string, reason: string): string {
  return `${text.trim()}\n\nESCALATE: ${reason.replace(/\s+/g, ' ').trim() || 'a person is needed'}`;
}

/**
 * Maps an answered record's per-article markers `[n]` (n = `citations[n-1]`) back to context
 * numbers (1-based positions in `retrievedChunkIds`). Markers that map nowhere are removed.
 */
export function toContextMarkers(record: AnswerRecord): string {
  const positions = new Map(record.result.retrievedChunkIds.map((id, i) => [id, i + 1]));
  const byCitation = new Map<number, number>();
  for (const c of record.result.citations) {
    const first = c.chunkIds.map((id) => positions.get(id)).find((p) => p !== undefined);
    if (first !== undefined) byCitation.set(c.n, first);
  }
  return mapOutsideCode(record.result.text, (prose) =>
    prose.replace(CITATION_MARKER, (_m, digits: string) => {
      const ctx = byCitation.get(Number(digits));
      return ctx === undefined ? '' : `[${ctx}]`;
    }),
  );
}

function stripHumanComing(text: string): string {
  const t = text.trimEnd();
  return t.endsWith(HUMAN_COMING) ? t.slice(0, -HUMAN_COMING.length).trimEnd() : text;
}

export interface FeedbackDatasetOptions {
  state: StateStore;
  chunks: ChunkLookup;
  prompt?: Partial<PromptSettings>;
  /** Only answers created at or after this ISO time. */
  since?: string;
  validationFraction?: number;
  /** Fewest supervised examples; below it `buildFeedbackDataset` throws `DatasetTooSmallError`. 0 disables. */
  minExamples?: number;
}

/**
 * Reads every answer and its ratings and turns the rated ones into raw (unscrubbed) examples.
 * Skips are counted by reason. Does not scrub: `finalizeDataset` does, before anything leaves.
 */
export async function collectFeedbackExamples(
  options: FeedbackDatasetOptions,
): Promise<{ raw: RawExample[]; read: number; skipped: Record<string, number> }> {
  const settings = { ...DEFAULT_PROMPT_SETTINGS, ...options.prompt };
  const answers = await options.state.listAnswers({
    order: 'oldest-first',
    ...(options.since ? { since: options.since } : {}),
  });
  const skipped: Record<string, number> = {};
  const skip = (reason: string) => {
    skipped[reason] = (skipped[reason] ?? 0) + 1;
  };
  // Earlier answers per thread, in order: the history the handler gave each later question.
  const threads = new Map<string, AnswerRecord[]>();
  for (const a of answers) {
    const key = `${a.platform}:${a.threadId}`;
    const list = threads.get(key) ?? [];
    list.push(a);
    threads.set(key, list);
  }
  const raw: RawExample[] = [];
  for (const record of answers) {
    const { up, down } = await options.state.ratingSummary(record.id);
    const net = up - down;
    if (net === 0) {
      skip(up + down === 0 ? 'unrated' : 'tied rating');
      continue;
    }
    const r = record.result;
    if (r.fallback) {
      skip('extractive fallback after an LLM failure');
      continue;
    }
    let kind: ExampleKind;
    if (net < 0) kind = 'undesirable';
    else kind = r.escalated ? 'escalation' : 'sft';

    const chunkMap = await options.chunks.get(r.retrievedChunkIds);
    if (r.retrievedChunkIds.some((id) => !chunkMap.has(id))) {
      skip('retrieved chunks no longer in the knowledge store');
      continue;
    }
    const contexts = r.retrievedChunkIds.map((id) => chunkMap.get(id) as StoredChunk);
    const thread = threads.get(`${record.platform}:${record.threadId}`) ?? [];
    const history: Turn[] = thread.slice(0, thread.indexOf(record)).flatMap((a) => [
      { role: 'user' as const, text: a.question },
      { role: 'assistant' as const, text: a.result.text },
    ]);

    let rendered: { messages: ChatMessage[]; contextsUsed: number };
    try {
      rendered = renderPrompt(settings, record.question, history, contexts);
    } catch (err) {
      if (err instanceof PromptTooLongError) {
        skip('prompt longer than the context window');
        continue;
      }
      throw err;
    }
    let completion: string;
    if (r.escalated) completion = withEscalation(r.text, r.escalationReason ?? 'escalated');
    else if (r.abstained) completion = r.text || ABSTAIN_TEXT;
    else completion = checkCitations(toContextMarkers(record), rendered.contextsUsed).text;
    completion = stripHumanComing(completion).trim();
    if (!completion) {
      skip('empty reply');
      continue;
    }
    raw.push({
      kind,
      label: kind !== 'undesirable',
      prompt: rendered.messages,
      completion,
      origin: `answer:${record.id}`,
    });
  }
  return { raw, read: answers.length, skipped };
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Deterministic split: the example's id hashed to [0, 1) against the validation fraction. */
export function splitOf(id: string, validationFraction: number): Split {
  const x = Number.parseInt(sha256(`split:${id}`).slice(0, 8), 16) / 2 ** 32;
  return x < validationFraction ? 'validation' : 'train';
}

/**
 * Scrubs PII from every message and reply, dedupes (same scrubbed prompt, reply and label → one
 * example, the first kept), splits deterministically, and sorts by id. When the hash puts no
 * example in validation but there are at least two, the one with the smallest split hash moves
 * there, so a validation loss can always be measured.
 */
export function finalizeDataset(
  raw: RawExample[],
  meta: { read: number; skipped?: Record<string, number>; validationFraction?: number },
): BuiltDataset {
  const fraction = meta.validationFraction ?? DEFAULT_VALIDATION_FRACTION;
  const pii = emptyPiiCounts();
  const seen = new Set<string>();
  let duplicates = 0;
  const examples: TrainingExample[] = [];
  for (const r of raw) {
    const counts = emptyPiiCounts();
    const prompt = r.prompt.map((m) => {
      const s = scrubPii(m.content);
      addPiiCounts(counts, s.counts);
      return { role: m.role, content: s.text };
    });
    const c = scrubPii(r.completion);
    addPiiCounts(counts, c.counts);
    const id = sha256(JSON.stringify([prompt, c.text, r.label])).slice(0, 16);
    if (seen.has(id)) {
      duplicates++;
      continue;
    }
    seen.add(id);
    addPiiCounts(pii, counts);
    examples.push({ ...r, prompt, completion: c.text, id, split: splitOf(id, fraction) });
  }
  examples.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  if (examples.length >= 2 && fraction > 0 && !examples.some((e) => e.split === 'validation')) {
    const key = (e: TrainingExample) => sha256(`split:${e.id}`);
    const first = examples.reduce((m, e) => (key(e) < key(m) ? e : m));
    first.split = 'validation';
  }
  const kinds: Record<ExampleKind, number> = { sft: 0, escalation: 0, undesirable: 0 };
  for (const e of examples) kinds[e.kind]++;
  const stats: DatasetStats = {
    read: meta.read,
    kinds,
    train: examples.filter((e) => e.split === 'train').length,
    validation: examples.filter((e) => e.split === 'validation').length,
    duplicates,
    skipped: meta.skipped ?? {},
    pii,
  };
  return { examples, stats, hash: sha256(examples.map((e) => e.id).join('\n')) };
}

/**
 * @throws DatasetTooSmallError when fewer than `min` supervised examples are left, naming how many
 *   more 👍-rated answers are needed and why others were skipped.
 */
export function checkMinimumSize(dataset: BuiltDataset, min: number): void {
  const have = dataset.stats.kinds.sft + dataset.stats.kinds.escalation;
  if (min <= 0 || have >= min) return;
  const skipped = Object.entries(dataset.stats.skipped)
    .map(([why, n]) => `${n} ${why}`)
    .join(', ');
  throw new DatasetTooSmallError(
    `Not enough rated answers to train: ${have} usable 👍-rated answer${have === 1 ? '' : 's'} ` +
      `(${dataset.stats.kinds.escalation} confirmed escalations; ${dataset.stats.kinds.undesirable} 👎 kept as KTO undesirables), ` +
      `at least ${min} needed: ${min - have} more 👍-rated answer${min - have === 1 ? '' : 's'} needed` +
      `${skipped ? ` (left out: ${skipped})` : ''}.`,
    have,
    min,
  );
}

/**
 * Collects, scrubs, dedupes and splits the rated answers of the state store.
 * @throws DatasetTooSmallError (see `checkMinimumSize`) unless `minExamples` is 0.
 */
export async function buildFeedbackDataset(options: FeedbackDatasetOptions): Promise<BuiltDataset> {
  const { raw, read, skipped } = await collectFeedbackExamples(options);
  const dataset = finalizeDataset(raw, { read, skipped, validationFraction: options.validationFraction });
  checkMinimumSize(dataset, options.minExamples ?? DEFAULT_MIN_EXAMPLES);
  return dataset;
}
