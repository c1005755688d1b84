/**
 * Answer evaluation: runs the full `core/answer.ts#answer()` (retrieval, confidence, abstention,
 * escalation, generation, citations) for every question of a dataset against a fresh store of its
 * corpus, and measures what the answer contract promises.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { answer } from '../core/answer.ts';
import type { Generator } from '../core/generator.ts';
import { ExtractiveGenerator } from '../core/generators/extractive.ts';
import { SqliteKnowledgeStore } from '../core/knowledge-store/sqlite.ts';
import { cl100kTokenizer, type Tokenizer } from '../core/tokenizer.ts';
import { syncSource } from '../sync/sync.ts';
import { type AnswerLabel, corpusSource, type EvalDataset, type EvalQuery } from './datasets.ts';
import type { Judge, JudgeVerdict } from './judge.ts';
import { percentile } from './metrics.ts';

/**
 * One generator/adapter setup to evaluate: what `answer()` gets. Two of these are what the
 * promotion gate compares (`evals/gate.ts#gateConfigurations`).
 */
export interface AnswerEvalConfig {
  /** Label in reports (`extractive`, `llama-cpp+support-v3`). */
  name: string;
  /** Default: the extractive generator. */
  generator?: Generator;
  /** LoRA adapter name for every request; `null` = base model; omitted = the generator's default. */
  adapter?: string | null;
  topK: number;
  abstainThreshold: number;
  maxAnswerChars: number;
  chunking: { maxTokens: number; overlapTokens: number };
}

/** One question's outcome. */
export interface AnswerOutcome {
  id: string;
  question: string;
  label: AnswerLabel | null;
  /** The labelled right call on escalation, when the set has one. */
  expectedEscalate: boolean | null;
  outcome: 'answered' | 'abstained' | 'escalated';
  /** Documents (sourcePath) the answer cites, in citation order. */
  cited: string[];
  /** Relevant documents of the question. */
  relevant: string[];
  /** Cited documents that are relevant / cited documents; `null` when nothing was cited or nothing is relevant. */
  citationPrecision: number | null;
  /** Citations whose chunks were not among the chunks supplied to the generator (must be 0). */
  unsuppliedCitations: number;
  /** Markers the generator wrote that pointed at no supplied chunk and `answer()` removed. */
  removedMarkers: number;
  confidence: number;
  latencyMs: number;
  generator: string;
  /** First 600 characters of the reply. */
  text: string;
  judge?: JudgeVerdict;
}

/** Aggregates; every rate is 0..1 and `null` when its denominator is 0. */
export interface AnswerMetrics {
  questions: number;
  /** Answered (neither abstained nor escalated) among ANSWERABLE questions. */
  answerRate: number | null;
  /** Abstained or escalated among UNANSWERABLE questions (a hand-off is an abstention here). */
  abstentionRate: number | null;
  /** Answered among PARTIAL questions (a partial answer is useful); reported, not gated. */
  partialAnswerRate: number | null;
  /** Abstained or escalated among UNDERSPECIFIED questions (the bot should not guess). */
  underspecifiedAbstentionRate: number | null;
  /**
   * Citation accuracy: over answered questions with relevant documents, the cited documents
   * that are relevant divided by all cited documents (micro-average).
   */
  citationAccuracy: number | null;
  /** Share of answered questions with relevant documents whose answer cites at least one of them. */
  citationHitRate: number | null;
  escalationPrecision: number | null;
  escalationRecall: number | null;
  /** Total citations to chunks that were not supplied; the contract says 0. */
  unsuppliedCitations: number;
  removedMarkers: number;
  latencyP50Ms: number;
  latencyP95Ms: number;
  /** Per label: how many, and how each was handled. */
  byLabel: Record<string, { n: number; answered: number; abstained: number; escalated: number }>;
  /** Mean LLM-as-judge score (0..1) over judged answers; `null` when the judge was off. */
  judgeScore: number | null;
}

export interface AnswerEvalResult {
  kind: 'answers';
  dataset: string;
  config: Omit<AnswerEvalConfig, 'generator'> & { generator: string };
  createdAt: string;
  notes: string[];
  /** Set when an LLM judge scored the answers: which model (the scores are its opinion, not ground truth). */
  judge: string | null;
  metrics: AnswerMetrics;
  perQuestion: AnswerOutcome[];
}

export interface AnswerEvalOptions {
  tokenizer?: Tokenizer;
  /** Optional LLM-as-judge (off by default). */
  judge?: Judge | null;
  workDir?: string;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Evaluates one configuration over a dataset: indexes the corpus (BM25) into a temporary SQLite
 * store with the configuration's chunking, then answers every question with its history.
 *
 * @throws whatever indexing or the store throws; generator failures fall back inside `answer()`
 *   and show up in `AnswerOutcome.generator`.
 */
export async function runAnswerEval(
  dataset: EvalDataset,
  config: AnswerEvalConfig,
  options: AnswerEvalOptions = {},
): Promise<AnswerEvalResult> {
  const generator = config.generator ?? new ExtractiveGenerator();
  const ownDir = options.workDir ? null : mkdtempSync(path.join(tmpdir(), 'supportbot-answers-'));
  const dir = options.workDir ?? (ownDir as string);
  const store = SqliteKnowledgeStore.open(
    path.join(dir, `${dataset.name}-${config.name.replace(/\W/g, '_')}.sqlite`),
  );
  const perQuestion: AnswerOutcome[] = [];
  try {
    await syncSource(corpusSource(dataset), store, {
      chunking: { ...config.chunking, tokenizer: options.tokenizer ?? cl100kTokenizer },
    });
    for (const [i, q] of dataset.queries.entries()) {
      perQuestion.push(await answerOne(q, config, generator, store, options.judge ?? null));
      options.onProgress?.(i + 1, dataset.queries.length);
    }
  } finally {
    await store.close();
    if (ownDir) rmSync(ownDir, { recursive: true, force: true });
  }
  const { generator: _g, ...plain } = config;
  return {
    kind: 'answers',
    dataset: dataset.name,
    config: { ...plain, generator: generator.id },
    createdAt: new Date().toISOString(),
    notes: dataset.notes,
    judge: options.judge?.id ?? null,
    metrics: answerMetrics(perQuestion),
    perQuestion,
  };
}

async function answerOne(
  q: EvalQuery,
  config: AnswerEvalConfig,
  generator: Generator,
  store: SqliteKnowledgeStore,
  judge: Judge | null,
): Promise<AnswerOutcome> {
  const r = await answer(q.text, {
    store,
    generator,
    topK: config.topK,
    abstainThreshold: config.abstainThreshold,
    maxAnswerChars: config.maxAnswerChars,
    history: q.history ?? [],
    ...(config.adapter !== undefined ? { adapter: config.adapter } : {}),
  });
  const supplied = new Set(r.retrieved.map((h) => h.chunk.id));
  const cited = r.citations.map((c) => c.sourcePath);
  const relevant = Object.entries(q.qrels)
    .filter(([, g]) => g > 0)
    .map(([id]) => id);
  const outcome = r.escalated ? 'escalated' : r.abstained ? 'abstained' : 'answered';
  const out: AnswerOutcome = {
    id: q.id,
    question: q.text,
    label: q.label ?? null,
    expectedEscalate: q.escalate ?? null,
    outcome,
    cited,
    relevant,
    citationPrecision:
      cited.length > 0 && relevant.length > 0
        ? cited.filter((c) => relevant.includes(c)).length / cited.length
        : null,
    unsuppliedCitations: r.citations.filter(
      (c) => c.chunkIds.length === 0 || c.chunkIds.some((id) => !supplied.has(id)),
    ).length,
    removedMarkers: r.invalidCitations ?? 0,
    confidence: r.confidence,
    latencyMs: r.latencyMs,
    generator: r.generator,
    text: r.text.slice(0, 600),
  };
  if (judge && outcome === 'answered') {
    out.judge = await judge.score({
      question: q.text,
      answer: r.text,
      contexts: r.retrieved.map((h) => h.chunk.text),
    });
  }
  return out;
}

const ratio = (num: number, den: number): number | null => (den > 0 ? num / den : null);

/** Aggregates per-question outcomes into `AnswerMetrics` (definitions on the fields). */
export function answerMetrics(rows: readonly AnswerOutcome[]): AnswerMetrics {
  const byLabel: AnswerMetrics['byLabel'] = {};
  for (const r of rows) {
    const key = r.label ?? 'UNLABELLED';
    const b = byLabel[key] ?? { n: 0, answered: 0, abstained: 0, escalated: 0 };
    byLabel[key] = b;
    b.n++;
    b[r.outcome]++;
  }
  const rateOf = (label: AnswerLabel, answered: boolean) => {
    const b = byLabel[label];
    return b ? ratio(answered ? b.answered : b.abstained + b.escalated, b.n) : null;
  };
  const withRelevant = rows.filter((r) => r.outcome === 'answered' && r.relevant.length > 0);
  const citedTotal = withRelevant.reduce((s, r) => s + r.cited.length, 0);
  const citedRelevant = withRelevant.reduce(
    (s, r) => s + r.cited.filter((c) => r.relevant.includes(c)).length,
    0,
  );
  const labelledEsc = rows.filter((r) => r.expectedEscalate !== null);
  const tp = labelledEsc.filter((r) => r.expectedEscalate && r.outcome === 'escalated').length;
  const predicted = labelledEsc.filter((r) => r.outcome === 'escalated').length;
  const actual = labelledEsc.filter((r) => r.expectedEscalate).length;
  const judged = rows.filter((r) => r.judge).map((r) => (r.judge as JudgeVerdict).score);
  const lat = rows.map((r) => r.latencyMs);
  return {
    questions: rows.length,
    answerRate: rateOf('ANSWERABLE', true),
    abstentionRate: rateOf('UNANSWERABLE', false),
    partialAnswerRate: rateOf('PARTIAL', true),
    underspecifiedAbstentionRate: rateOf('UNDERSPECIFIED', false),
    citationAccuracy: ratio(citedRelevant, citedTotal),
    citationHitRate: ratio(
      withRelevant.filter((r) => r.cited.some((c) => r.relevant.includes(c))).length,
      withRelevant.length,
    ),
    escalationPrecision: labelledEsc.length > 0 ? ratio(tp, predicted) : null,
    escalationRecall: labelledEsc.length > 0 ? ratio(tp, actual) : null,
    unsuppliedCitations: rows.reduce((s, r) => s + r.unsuppliedCitations, 0),
    removedMarkers: rows.reduce((s, r) => s + r.removedMarkers, 0),
    latencyP50Ms: percentile(lat, 50),
    latencyP95Ms: percentile(lat, 95),
    byLabel,
    judgeScore: judged.length > 0 ? judged.reduce((a, b) => a + b, 0) / judged.length : null,
  };
}
