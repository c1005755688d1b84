/**
 * Passage choice of the extractive generator on labelled questions
 * (`test/fixtures/answers/passages.jsonl`): a question counts as a hit when the answer cites the
 * expected article and quotes one of its key phrases (case-insensitive), i.e. the passage that
 * answers, not a caveat or a neighbouring section of the right article. The example help center
 * always runs; the three real help centers in ../shared/data are skipped with a message when
 * absent. Floors are what was measured on this code, rounded down a little.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answer } from '../core/answer.ts';
import {
  configSchema,
  DEFAULT_SOURCE,
  type FolderSourceConfig,
  folderSourceSchema,
  PACKAGE_ROOT,
} from '../core/config.ts';
import { SqliteKnowledgeStore } from '../core/knowledge-store/sqlite.ts';
import { cl100kTokenizer } from '../core/tokenizer.ts';
import { HELPCENTER_NAMES, helpcenterSource, sharedHelpcentersDir } from '../evals/helpcenters.ts';
import { createFolderSource } from '../sync/sources/folder.ts';
import { syncSource } from '../sync/sync.ts';

/** One labelled row: `article` is the source path of the article that answers. */
interface PassageQuestion {
  helpcenter: 'examples' | (typeof HELPCENTER_NAMES)[number];
  question: string;
  article: string;
  /** Any one of these, found in the answer text, shows the right passage was quoted. */
  phrases: string[];
  origin: string;
}

const ROWS: PassageQuestion[] = readFileSync(
  path.join(PACKAGE_ROOT, 'test', 'fixtures', 'answers', 'passages.jsonl'),
  'utf8',
)
  .split('\n')
  .filter((l) => l.trim())
  .map((l) => JSON.parse(l) as PassageQuestion);

const defaults = configSchema.parse({});
const chunking = { ...defaults.chunking, tokenizer: cl100kTokenizer };

// Measured on 2026-11-29 (BM25, default chunking, top-k 5, 900 characters), before → after the
// passage preferences: the 30 rows the change was tuned on 13 → 23; the 9 held-out rows written
// afterwards 7 → 8; all 39: 20 (51.3 %) → 31 (79.5 %); examples alone 6/8 → 7/8. Most remaining
// misses are retrieval's: the chunk holding the steps is not among the top-k offered.
const FLOOR_ALL = 0.76;
const FLOOR_EXAMPLES = 0.85;

async function hitRate(rows: PassageQuestion[], stores: Map<string, SqliteKnowledgeStore>) {
  const missed: string[] = [];
  for (const row of rows) {
    const store = stores.get(row.helpcenter) as SqliteKnowledgeStore;
    const r = await answer(row.question, {
      store,
      topK: defaults.retrieval.topK,
      abstainThreshold: defaults.answer.abstainThreshold,
      maxAnswerChars: defaults.answer.maxAnswerChars,
    });
    const text = r.text.toLowerCase();
    const hit =
      r.citations.some((c) => c.sourcePath === row.article) &&
      row.phrases.some((p) => text.includes(p.toLowerCase()));
    if (!hit) missed.push(`${row.helpcenter}: ${row.question}`);
  }
  return { rate: (rows.length - missed.length) / Math.max(rows.length, 1), missed };
}

describe('extractive passage choice on labelled questions', () => {
  const shared = sharedHelpcentersDir();
  const stores = new Map<string, SqliteKnowledgeStore>();
  let tmp: string;

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'supportbot-passages-'));
    const sources: [string, FolderSourceConfig][] = [['examples', folderSourceSchema.parse(DEFAULT_SOURCE)]];
    if (shared) for (const name of HELPCENTER_NAMES) sources.push([name, helpcenterSource(name, shared)]);
    for (const [name, config] of sources) {
      const store = SqliteKnowledgeStore.open(path.join(tmp, `${name}.sqlite`));
      stores.set(name, store);
      const summary = await syncSource(createFolderSource(config), store, { chunking });
      expect(summary.sourceError).toBeUndefined();
    }
  }, 300_000);
  afterAll(async () => {
    for (const store of stores.values()) await store.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('has at least 25 labelled questions over the four help centers, each with its origin', () => {
    expect(ROWS.length).toBeGreaterThanOrEqual(25);
    expect(new Set(ROWS.map((r) => r.helpcenter))).toEqual(new Set(['examples', ...HELPCENTER_NAMES]));
    for (const r of ROWS) {
      expect(r.phrases.length).toBeGreaterThan(0);
      expect(r.origin).toBeTruthy();
    }
  });

  it(`quotes the answering passage for ≥ ${FLOOR_EXAMPLES} of the example help center questions`, async () => {
    const { rate, missed } = await hitRate(
      ROWS.filter((r) => r.helpcenter === 'examples'),
      stores,
    );
    console.log(
      `[passages] examples: hit ${(rate * 100).toFixed(1)}%; missed: ${missed.join(' | ') || 'none'}`,
    );
    expect(rate).toBeGreaterThanOrEqual(FLOOR_EXAMPLES);
  });

  it.skipIf(!shared)(
    `quotes the answering passage for ≥ ${FLOOR_ALL} of all questions (real help centers included)${shared ? '' : ' (skipped: ../shared/data/helpcenters not found beside the project)'}`,
    async () => {
      const { rate, missed } = await hitRate(ROWS, stores);
      console.log(
        `[passages] all: hit ${(rate * 100).toFixed(1)}% of ${ROWS.length}; missed: ${missed.join(' | ')}`,
      );
      expect(rate).toBeGreaterThanOrEqual(FLOOR_ALL);
    },
  );
});
