/**
 * `npm run calibrate`: sweeps the abstention threshold over the labelled question sets (the
 * example help center, and the three real ones when ../shared/data is present) and prints, per
 * threshold, the share of answerable questions answered and of unanswerable ones abstained on,
 * plus the ROC AUC of `retrievalConfidence` (answerable vs unanswerable; Hanley & McNeil 1982:
 * the probability that a random answerable question scores above a random unanswerable one).
 * The default `answer.abstainThreshold` was chosen from this table.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { retrievalConfidence } from '../core/answer.ts';
import { configSchema, DEFAULT_SOURCE, type FolderSourceConfig, folderSourceSchema } from '../core/config.ts';
import { SqliteKnowledgeStore } from '../core/knowledge-store/sqlite.ts';
import { cl100kTokenizer } from '../core/tokenizer.ts';
import { createFolderSource } from '../sync/sources/folder.ts';
import { syncSource } from '../sync/sync.ts';
import { HELPCENTER_NAMES, helpcenterSource, loadQuestions, sharedHelpcentersDir } from './helpcenters.ts';

const defaults = configSchema.parse({});
const chunking = { ...defaults.chunking, tokenizer: cl100kTokenizer };
const shared = sharedHelpcentersDir();
const sets: [string, FolderSourceConfig][] = [['examples', folderSourceSchema.parse(DEFAULT_SOURCE)]];
if (shared) for (const n of HELPCENTER_NAMES) sets.push([n, helpcenterSource(n, shared)]);
else console.log('../shared/data/helpcenters not found: calibrating on the example help center only.');

const tmp = mkdtempSync(path.join(tmpdir(), 'supportbot-calibrate-'));
const points: { confidence: number; answerable: boolean }[] = [];
try {
  for (const [name, source] of sets) {
    const store = SqliteKnowledgeStore.open(path.join(tmp, `${name}.sqlite`));
    await syncSource(createFolderSource(source), store, { chunking });
    for (const q of loadQuestions(name)) {
      const hits = await store.search(q.question, { k: defaults.retrieval.topK });
      points.push({
        confidence: await retrievalConfidence(store, q.question, hits),
        answerable: q.kind === 'answerable',
      });
    }
    await store.close();
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

const pos = points.filter((p) => p.answerable);
const neg = points.filter((p) => !p.answerable);
let auc = 0;
for (const a of pos)
  for (const u of neg) auc += a.confidence > u.confidence ? 1 : a.confidence === u.confidence ? 0.5 : 0;
console.log(
  `${pos.length} answerable, ${neg.length} unanswerable questions; AUC ${(auc / pos.length / neg.length).toFixed(3)}`,
);
console.log('| threshold | answered (answerable) | abstained (unanswerable) | balanced accuracy |');
console.log('|---|---|---|---|');
for (let t = 0.2; t <= 0.651; t += 0.05) {
  const answered = pos.filter((p) => p.confidence >= t).length / pos.length;
  const abstained = neg.filter((p) => p.confidence < t).length / neg.length;
  const mark = Math.abs(t - defaults.answer.abstainThreshold) < 1e-9 ? ' (default)' : '';
  console.log(
    `| ${t.toFixed(2)}${mark} | ${(answered * 100).toFixed(1)}% | ${(abstained * 100).toFixed(1)}% | ${(((answered + abstained) / 2) * 100).toFixed(1)}% |`,
  );
}
