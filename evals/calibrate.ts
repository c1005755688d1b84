/**
 * `npm run calibrate`: sweeps the abstention threshold over the labelled question sets (the
 * example help center, and the three real ones when ../shared/data is present) and prints, per
 * threshold, the share of answerable questions answered and of unanswerable ones abstained on,
 * plus the ROC AUC of `retrievalConfidence` (answerable vs unanswerable; Hanley & McNeil 1982:
 * the probability that a random answerable question scores above a random unanswerable one).
 * The default `answer.abstainThreshold` was chosen from this table.
 *
 * Questions marked `"origin": "hand-written off-topic"` in the question files (general-knowledge
 * questions that share a word with some article, e.g. "What is the capital of France?") are kept
 * out of the AUC and the answerable/unanswerable columns and reported in a column of their own,
 * so adding easy cases cannot hide a regression on the labelled sets.
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
const OFF_TOPIC = 'hand-written off-topic';
const points: { confidence: number; answerable: boolean }[] = [];
const offTopic: number[] = [];
try {
  for (const [name, source] of sets) {
    const store = SqliteKnowledgeStore.open(path.join(tmp, `${name}.sqlite`));
    await syncSource(createFolderSource(source), store, { chunking });
    for (const q of loadQuestions(name)) {
      const hits = await store.search(q.question, { k: defaults.retrieval.topK });
      const confidence = await retrievalConfidence(store, q.question, hits);
      // `origin` is an extra field of the question files that `LabelledQuestion` does not declare.
      if ((q as { origin?: string }).origin === OFF_TOPIC) offTopic.push(confidence);
      else points.push({ confidence, answerable: q.kind === 'answerable' });
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
  `${pos.length} answerable, ${neg.length} unanswerable questions; AUC ${(auc / pos.length / neg.length).toFixed(3)}; ${offTopic.length} ${OFF_TOPIC} questions (not in the AUC)`,
);
console.log(
  '| threshold | answered (answerable) | abstained (unanswerable) | balanced accuracy | abstained (off-topic) |',
);
console.log('|---|---|---|---|---|');
for (let t = 0.2; t <= 0.651; t += 0.05) {
  const answered = pos.filter((p) => p.confidence >= t).length / pos.length;
  const abstained = neg.filter((p) => p.confidence < t).length / neg.length;
  const offTopicAbstained = offTopic.filter((c) => c < t).length / Math.max(offTopic.length, 1);
  const mark = Math.abs(t - defaults.answer.abstainThreshold) < 1e-9 ? ' (default)' : '';
  console.log(
    `| ${t.toFixed(2)}${mark} | ${(answered * 100).toFixed(1)}% | ${(abstained * 100).toFixed(1)}% | ${(((answered + abstained) / 2) * 100).toFixed(1)}% | ${(offTopicAbstained * 100).toFixed(1)}% |`,
  );
}
