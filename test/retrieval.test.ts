/**
 * Retrieval and abstention quality on labelled questions: the example help center (always) and
 * the three real help centers in ../shared/data (skipped with a message when absent).
 * Floors are what was measured on this code, rounded down a little; see the closing note of
 * the walking-skeleton issue and `npm run bench` for the numbers.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answer } from '../core/answer.ts';
import { configSchema, DEFAULT_SOURCE, type FolderSourceConfig, folderSourceSchema } from '../core/config.ts';
import { SqliteKnowledgeStore } from '../core/knowledge-store/sqlite.ts';
import { cl100kTokenizer } from '../core/tokenizer.ts';
import {
  type HelpcenterName,
  helpcenterSource,
  type LabelledQuestion,
  loadQuestions,
  sharedHelpcentersDir,
} from '../evals/helpcenters.ts';
import { measureHitRate } from '../evals/hit-rate.ts';
import { createFolderSource } from '../sync/sources/folder.ts';
import { syncSource } from '../sync/sync.ts';

const defaults = configSchema.parse({});
const chunking = { ...defaults.chunking, tokenizer: cl100kTokenizer };

interface Floors {
  top1: number;
  top5: number;
  /** Share of answerable questions answered (not abstained). */
  answered: number;
  /** Share of unanswerable questions abstained on. */
  abstained: number;
  /** Share of answered answerable questions whose first citation is a relevant article. */
  cited: number;
}

/**
 * Abstention behaviour of `answer()` with the default threshold over labelled questions, and
 * citation accuracy: among answered answerable questions, the share whose first citation is a
 * relevant article.
 */
async function abstention(store: SqliteKnowledgeStore, questions: LabelledQuestion[]) {
  let answered = 0;
  let citedRight = 0;
  let abstainedUnanswerable = 0;
  for (const q of questions) {
    const r = await answer(q.question, {
      store,
      topK: defaults.retrieval.topK,
      abstainThreshold: defaults.answer.abstainThreshold,
      maxAnswerChars: 900,
    });
    if (q.kind === 'unanswerable') {
      if (r.abstained) abstainedUnanswerable++;
    } else if (!r.abstained) {
      answered++;
      if (q.relevant.includes(r.citations[0]?.sourcePath ?? '')) citedRight++;
    }
  }
  const nAns = questions.filter((q) => q.kind === 'answerable').length;
  const nUn = questions.length - nAns;
  return {
    answered: answered / Math.max(nAns, 1),
    abstained: abstainedUnanswerable / Math.max(nUn, 1),
    citationAccuracy: citedRight / Math.max(answered, 1),
    unanswerable: nUn,
  };
}

function describeHelpcenter(
  name: string,
  source: () => FolderSourceConfig | null,
  floors: Floors,
  minQuestions: number,
) {
  const config = source();
  const suite = config ? describe : describe.skip;
  suite(`retrieval on ${name}${config ? '' : ' (skipped: ../shared/data/helpcenters not found beside the project)'}`, () => {
    let tmp: string;
    let store: SqliteKnowledgeStore;
    const questions = loadQuestions(name);
    beforeAll(async () => {
      tmp = mkdtempSync(path.join(tmpdir(), `supportbot-retrieval-${name}-`));
      store = SqliteKnowledgeStore.open(path.join(tmp, 'kb.sqlite'));
      const summary = await syncSource(createFolderSource(config as FolderSourceConfig), store, { chunking });
      expect(summary.sourceError).toBeUndefined();
    }, 300_000);
    afterAll(async () => {
      await store?.close();
      rmSync(tmp, { recursive: true, force: true });
    });

    it(`has at least ${minQuestions} labelled answerable questions`, () => {
      expect(questions.filter((q) => q.kind === 'answerable').length).toBeGreaterThanOrEqual(minQuestions);
    });

    it(`top-1 ≥ ${floors.top1}, top-5 ≥ ${floors.top5} (article level)`, async () => {
      const report = await measureHitRate(store, questions);
      const missed = report.outcomes.filter((o) => o.rank === null || o.rank > 5).map((o) => o.question);
      console.log(
        `[retrieval] ${name}: ${report.questions} questions, top-1 ${(report.top1 * 100).toFixed(1)}%, top-5 ${(report.top5 * 100).toFixed(1)}%, MRR ${report.mrr.toFixed(3)}, p50 ${report.latencyP50Ms.toFixed(2)} ms; missed top-5: ${missed.length}`,
      );
      expect(report.top1).toBeGreaterThanOrEqual(floors.top1);
      expect(report.top5).toBeGreaterThanOrEqual(floors.top5);
    });

    it(`answers ≥ ${floors.answered} of answerable (first citation relevant ≥ ${floors.cited}) and abstains on ≥ ${floors.abstained} of unanswerable questions`, async () => {
      const r = await abstention(store, questions);
      console.log(
        `[abstention] ${name}: answered ${(r.answered * 100).toFixed(1)}% of answerable (first citation relevant ${(r.citationAccuracy * 100).toFixed(1)}%), abstained on ${(r.abstained * 100).toFixed(1)}% of ${r.unanswerable} unanswerable (threshold ${defaults.answer.abstainThreshold})`,
      );
      expect(r.answered).toBeGreaterThanOrEqual(floors.answered);
      expect(r.abstained).toBeGreaterThanOrEqual(floors.abstained);
      expect(r.citationAccuracy).toBeGreaterThanOrEqual(floors.cited);
    });
  });
}

const shared = sharedHelpcentersDir();
const real = (name: HelpcenterName) => () => (shared ? helpcenterSource(name, shared) : null);

// Measured on 2026-11-29 (BM25, 300-token chunks, threshold 0.4), top-1 / top-5 / answered /
// abstained / first citation relevant: examples 78.6 / 98.2 / 83.9 / 70.0 / 76.6,
// arduino 57.6 / 88.1 / 76.3 / 77.8 / 62.2, zulip 41.3 / 73.9 / 63.0 / 66.7 / 48.3 (Zulip says "stream" where people say "channel": lexical search
// misses those until embeddings land), plausible 53.3 / 91.1 / 91.1 / 62.5 / 48.8.
const examples = () => folderSourceSchema.parse(DEFAULT_SOURCE);
describeHelpcenter(
  'examples',
  examples,
  { top1: 0.75, top5: 0.95, answered: 0.8, abstained: 0.65, cited: 0.72 },
  30,
);
describeHelpcenter(
  'arduino',
  real('arduino'),
  { top1: 0.55, top5: 0.85, answered: 0.72, abstained: 0.65, cited: 0.58 },
  25,
);
describeHelpcenter(
  'zulip',
  real('zulip'),
  { top1: 0.38, top5: 0.7, answered: 0.6, abstained: 0.55, cited: 0.45 },
  25,
);
describeHelpcenter(
  'plausible',
  real('plausible'),
  { top1: 0.5, top5: 0.88, answered: 0.88, abstained: 0.5, cited: 0.45 },
  25,
);
