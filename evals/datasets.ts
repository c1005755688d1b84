/**
 * Evaluation datasets: one in-memory shape (`EvalDataset`) and loaders for the formats we meet.
 *
 * | format          | detected by                                    | loader                 |
 * | --------------- | ---------------------------------------------- | ---------------------- |
 * | BEIR            | a folder with `corpus.jsonl` + `queries.jsonl` | `loadBeir`             |
 * | question JSONL  | a `.jsonl` file of `{question, relevant, kind}` | `loadQuestionJsonl`   |
 * | help center     | `helpcenter:<name>` (examples, arduino, …)     | `loadHelpcenter`       |
 * | FeedbackQA      | a folder holding `experiments/feedbackQA_data` | `loadFeedbackQA`       |
 * | StackFAQ        | a folder holding `data/StackFAQ`               | `loadStackFAQ`         |
 * | MTRAG           | a folder holding `mtragun-human`               | `loadMtrag`            |
 *
 * Relevance is keyed by the document's `sourcePath` (for folder help centers the file path below
 * the source root, for other corpora the corpus document id), since that is what every
 * `SearchHit.chunk` carries.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_SOURCE, folderSourceSchema } from '../core/config.ts';
import type { Article, Turn } from '../core/types.ts';
import type { Source } from '../sync/source.ts';
import { createFolderSource } from '../sync/sources/folder.ts';
import { HELPCENTER_NAMES, type HelpcenterName, helpcenterSource, loadQuestions } from './helpcenters.ts';
import type { Qrels } from './metrics.ts';

/** One corpus document; `id` is what qrels refer to. `text` is Markdown. */
export interface EvalDocument {
  id: string;
  title: string;
  text: string;
  url?: string | null;
}

/** MTRAG's answerability labels; simple question sets map `answerable`/`unanswerable` onto the first two. */
export type AnswerLabel = 'ANSWERABLE' | 'UNANSWERABLE' | 'PARTIAL' | 'UNDERSPECIFIED';

/** One evaluation question. */
export interface EvalQuery {
  id: string;
  /** The (last) user question. */
  text: string;
  /** Earlier turns, oldest first (multi-turn sets such as MTRAG). */
  history?: Turn[];
  /** Graded relevance of documents (by `EvalDocument.id` / `sourcePath`); may be empty. */
  qrels: Qrels;
  label?: AnswerLabel;
  /** Whether the right reply is a hand-off to a human, when the set labels it. */
  escalate?: boolean;
}

/** The corpus: plain documents, or a configured source (a help-center folder) read at index time. */
export type EvalCorpus =
  | { kind: 'documents'; documents: EvalDocument[] }
  | { kind: 'source'; source: Source };

export interface EvalDataset {
  /** Short name for tables and file names (`feedbackqa-who`, `stackfaq`). */
  name: string;
  corpus: EvalCorpus;
  queries: EvalQuery[];
  /** What the loader did that a reader of the results should know (splits, grades, subsampling). */
  notes: string[];
}

/** Articles for a document corpus, under source name `source`; `sourcePath` is the document id. */
export function documentsSource(name: string, documents: EvalDocument[]): Source {
  const updatedAt = '2020-01-01T00:00:00.000Z';
  return {
    name,
    type: 'eval-documents',
    async *articles() {
      for (const d of documents) {
        const article: Article = {
          id: d.id,
          source: name,
          title: d.title,
          url: d.url ?? null,
          sourcePath: d.id,
          body: d.text,
          updatedAt,
          tags: [],
          accessGroups: [],
          locale: 'en',
        };
        yield { ok: true as const, article };
      }
    },
  };
}

/** The corpus as a `Source` for `syncSource`. */
export function corpusSource(dataset: EvalDataset): Source {
  return dataset.corpus.kind === 'source'
    ? dataset.corpus.source
    : documentsSource(safeSourceName(dataset.name), dataset.corpus.documents);
}

function safeSourceName(name: string): string {
  return name.replace(/[^A-Za-z0-9_-]/g, '_') || 'eval';
}

function readJsonl(file: string): unknown[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .map((l, i) => [l, i] as const)
    .filter(([l]) => l.trim())
    .map(([l, i]) => {
      try {
        return JSON.parse(l) as unknown;
      } catch (err) {
        throw new Error(`${file}:${i + 1}: ${(err as Error).message}`);
      }
    });
}

/**
 * BEIR format (Thakur et al. 2021, https://github.com/beir-cellar/beir#beers-available-datasets):
 * `corpus.jsonl` lines `{_id, title, text}`, `queries.jsonl` lines `{_id, text}`, and
 * `qrels/<split>.tsv` with a header line and rows `query-id<TAB>corpus-id<TAB>score` (integer
 * grade). Only queries that appear in the qrels file are kept, as BEIR does.
 *
 * @throws Error naming the file for a missing file or a bad line.
 */
export function loadBeir(dir: string, split = 'test'): EvalDataset {
  const docs = readJsonl(path.join(dir, 'corpus.jsonl')) as {
    _id: string | number;
    title?: string;
    text: string;
  }[];
  const queries = readJsonl(path.join(dir, 'queries.jsonl')) as { _id: string | number; text: string }[];
  const qrelsFile = path.join(dir, 'qrels', `${split}.tsv`);
  const qrels = new Map<string, Record<string, number>>();
  readFileSync(qrelsFile, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      const cols = line.trim().split('\t');
      if (cols.length < 3 || (i === 0 && !/^-?\d+$/.test(cols[2] as string))) return; // header or blank
      const [q, d, g] = cols as [string, string, string];
      const grade = Number(g);
      if (!Number.isInteger(grade))
        throw new Error(`${qrelsFile}:${i + 1}: score must be an integer, got ${g}`);
      const row = qrels.get(q) ?? {};
      row[d] = grade;
      qrels.set(q, row);
    });
  return {
    name: path.basename(path.resolve(dir)),
    corpus: {
      kind: 'documents',
      documents: docs.map((d) => ({ id: String(d._id), title: d.title ?? '', text: d.text })),
    },
    queries: queries
      .filter((q) => qrels.has(String(q._id)))
      .map((q) => ({ id: String(q._id), text: q.text, qrels: qrels.get(String(q._id)) ?? {} })),
    notes: [`BEIR split ${split}: ${qrels.size} judged queries`],
  };
}

/** One line of the simple question set format (the walking skeleton's `test/fixtures/retrieval`). */
interface QuestionLine {
  question: string;
  /** Relevant document ids / source paths, best first. */
  relevant?: string[];
  kind?: 'answerable' | 'unanswerable';
  /** MTRAG-style label; wins over `kind`. */
  label?: AnswerLabel;
  escalate?: boolean;
  history?: Turn[];
}

/**
 * Questions from the simple JSONL format: `{question, relevant: [id…], kind?, label?, escalate?,
 * history?}` per line. Relevant ids are graded by position, best first: with n ids the first gets
 * grade n, the last grade 1 (the files list the best article first), so nDCG rewards the order.
 */
export function questionsFromLines(lines: QuestionLine[], prefix: string): EvalQuery[] {
  return lines.map((l, i) => {
    const relevant = l.relevant ?? [];
    const qrels: Record<string, number> = {};
    relevant.forEach((id, j) => {
      qrels[id] = Math.max(qrels[id] ?? 0, relevant.length - j);
    });
    const label: AnswerLabel | undefined =
      l.label ??
      (l.kind === 'unanswerable' ? 'UNANSWERABLE' : l.kind === 'answerable' ? 'ANSWERABLE' : undefined);
    return {
      id: `${prefix}-${i + 1}`,
      text: l.question,
      qrels,
      ...(label ? { label } : {}),
      ...(l.escalate !== undefined ? { escalate: l.escalate } : {}),
      ...(l.history ? { history: l.history } : {}),
    };
  });
}

/**
 * A simple question JSONL file over a corpus: either a help-center folder (`corpusDir`, read with
 * the `markdown` dialect unless `dialect` says otherwise) or a BEIR-style `corpus.jsonl` file.
 */
export function loadQuestionJsonl(
  file: string,
  corpus:
    | { folder: string; dialect?: 'markdown' | 'zendesk' | 'zulip' | 'docusaurus' }
    | { corpusJsonl: string },
): EvalDataset {
  const name = path.basename(file).replace(/\.jsonl$/, '');
  const queries = questionsFromLines(readJsonl(file) as QuestionLine[], name);
  if ('corpusJsonl' in corpus) {
    const docs = readJsonl(corpus.corpusJsonl) as { _id: string | number; title?: string; text: string }[];
    return {
      name,
      corpus: {
        kind: 'documents',
        documents: docs.map((d) => ({ id: String(d._id), title: d.title ?? '', text: d.text })),
      },
      queries,
      notes: [],
    };
  }
  const source = createFolderSource(
    folderSourceSchema.parse({
      name: safeSourceName(name),
      type: 'folder',
      path: path.resolve(corpus.folder),
      dialect: corpus.dialect ?? 'markdown',
    }),
  );
  return { name, corpus: { kind: 'source', source }, queries, notes: [] };
}

/**
 * The walking skeleton's question sets: `examples` (the bundled Ledgerly help center) or one of
 * the staged real help centers (`arduino`, `zulip`, `plausible`, under `helpcentersRoot`).
 */
export function loadHelpcenter(name: string, helpcentersRoot: string | null): EvalDataset {
  let source: Source;
  if (name === 'examples') source = createFolderSource(folderSourceSchema.parse(DEFAULT_SOURCE));
  else if ((HELPCENTER_NAMES as readonly string[]).includes(name)) {
    if (!helpcentersRoot) throw new Error(`the staged help centers are not available for ${name}`);
    source = createFolderSource(helpcenterSource(name as HelpcenterName, helpcentersRoot));
  } else throw new Error(`unknown help center ${name}; known: examples, ${HELPCENTER_NAMES.join(', ')}`);
  return {
    name,
    corpus: { kind: 'source', source },
    queries: questionsFromLines(loadQuestions(name), name),
    notes: [],
  };
}

/** FeedbackQA's rating words as grades (0..3). */
const FEEDBACK_GRADE: Record<string, number> = {
  Excellent: 3,
  Acceptable: 2,
  'Could be Improved': 1,
  Bad: 0,
};

interface FqaPassage {
  passage_id: number;
  uri: string;
  reference: { page_title: string; section_headers: string[]; section_content: string };
}

/**
 * FeedbackQA (Li et al., ACL Findings 2022; McGill-NLP/feedbackqa) in its native layout:
 * `experiments/feedbackQA_data/<region>/{split}.json` = `{examples: [{id, question, passage_id}],
 * passages: [{passage_id, uri, reference: {page_title, section_headers, section_content}}]}` and
 * `feedback_<split>.json` = `[{question, passage: {passage_id…}, rating: [word…]}]`.
 *
 * Documents are the passages (title = page title; body = the section headers as a heading, then
 * the section content). Graded qrels: the gold `passage_id` gets 3; a different passage that the
 * feedback file rated for the same question gets the rounded mean of its ratings (Excellent 3,
 * Acceptable 2, Could be Improved 1, Bad 0), so a passage raters found acceptable counts as
 * partly relevant. Document ids are `<region>-<passage_id>`.
 *
 * @param regions `WHO`, `Australia` (default: those present); each region's passages form one corpus,
 *   so two regions give two datasets.
 */
export function loadFeedbackQA(
  root: string,
  options: { regions?: string[]; split?: string } = {},
): EvalDataset[] {
  const base = existsSync(path.join(root, 'experiments'))
    ? path.join(root, 'experiments', 'feedbackQA_data')
    : root;
  const split = options.split ?? 'test';
  // Without an explicit list, every staged region that has this split (WHO, Australia, …).
  const regions =
    options.regions ?? ['WHO', 'Australia'].filter((r) => existsSync(path.join(base, r, `${split}.json`)));
  if (regions.length === 0) throw new Error(`no FeedbackQA ${split}.json under ${base}`);
  return regions.map((region) => {
    const file = path.join(base, region, `${split}.json`);
    const data = JSON.parse(readFileSync(file, 'utf8')) as {
      examples: { id: number; question: string; passage_id: number }[];
      passages: FqaPassage[];
    };
    const docId = (pid: number) => `${region}-${pid}`;
    const documents: EvalDocument[] = data.passages.map((p) => ({
      id: docId(p.passage_id),
      title: p.reference.page_title,
      url: p.uri,
      text: `## ${p.reference.section_headers.join(' › ')}\n\n${p.reference.section_content}`,
    }));
    const feedback = new Map<string, Record<string, number>>();
    const feedbackFile = path.join(base, region, `feedback_${split}.json`);
    let rated = 0;
    if (existsSync(feedbackFile)) {
      const rows = JSON.parse(readFileSync(feedbackFile, 'utf8')) as {
        question: string;
        passage: { passage_id: number };
        rating: string[];
      }[];
      for (const r of rows) {
        const grades = r.rating.map((w) => FEEDBACK_GRADE[w]).filter((g): g is number => g !== undefined);
        if (grades.length === 0) continue;
        const row = feedback.get(r.question) ?? {};
        row[docId(r.passage.passage_id)] = Math.round(grades.reduce((a, b) => a + b, 0) / grades.length);
        feedback.set(r.question, row);
        rated++;
      }
    }
    const queries: EvalQuery[] = data.examples.map((e) => {
      const qrels: Record<string, number> = { ...(feedback.get(e.question) ?? {}) };
      qrels[docId(e.passage_id)] = 3;
      return { id: `${region}-${e.id}`, text: e.question, qrels, label: 'ANSWERABLE' };
    });
    return {
      name: `feedbackqa-${region.toLowerCase()}`,
      corpus: { kind: 'documents', documents },
      queries,
      notes: [
        `FeedbackQA ${region} ${split} split: ${queries.length} questions over ${documents.length} passages; gold passage grade 3, ${rated} rated pairs from feedback_${split}.json graded by mean rating`,
      ],
    };
  });
}

/**
 * StackFAQ (Karan & Šnajder 2018; TakeLab) from the BERT-FAQ JSON copy
 * `data/StackFAQ/stackExchange-FAQ.json` = `{root: {qapair: [{question, answer: [..], rephr: [..]}]}}`.
 * Each thread is one document (title = the original question, body = its answers separated by
 * thematic breaks); each paraphrase is a query whose only relevant document is its own thread
 * (grade 1). Placeholder paraphrases (`*`) and empty ones are dropped.
 */
export function loadStackFAQ(root: string): EvalDataset {
  const candidates = [
    path.join(root, 'data', 'StackFAQ', 'stackExchange-FAQ.json'),
    path.join(root, 'stackExchange-FAQ.json'),
    root,
  ];
  const file = candidates.find((f) => existsSync(f) && statSync(f).isFile());
  if (!file) throw new Error(`no stackExchange-FAQ.json under ${root}`);
  const data = JSON.parse(readFileSync(file, 'utf8')) as {
    root: { qapair: { question: string; answer: string | string[]; rephr: string | string[] }[] };
  };
  const list = <T>(x: T | T[] | undefined): T[] => (x === undefined ? [] : Array.isArray(x) ? x : [x]);
  const documents: EvalDocument[] = [];
  const queries: EvalQuery[] = [];
  let dropped = 0;
  data.root.qapair.forEach((pair, i) => {
    const id = `thread-${i + 1}`;
    documents.push({ id, title: pair.question, text: list(pair.answer).join('\n\n---\n\n') });
    list(pair.rephr).forEach((r, j) => {
      const text = String(r).trim();
      if (!text || text === '*') {
        dropped++;
        return;
      }
      queries.push({ id: `${id}-q${j + 1}`, text, qrels: { [id]: 1 }, label: 'ANSWERABLE' });
    });
  });
  return {
    name: 'stackfaq',
    corpus: { kind: 'documents', documents },
    queries,
    notes: [
      `StackFAQ: ${queries.length} paraphrased queries over ${documents.length} threads (${dropped} placeholder paraphrases dropped); each query's own thread is its only relevant document`,
    ],
  };
}

interface MtragTask {
  task_id: string;
  contexts: { document_id: string; text: string; title?: string }[];
  input: { speaker: 'user' | 'agent'; text: string }[];
  answerability: string[];
  Collection: string;
}

/**
 * MTRAG-UN generation tasks (Rosenthal et al. 2026; IBM/mt-rag-benchmark)
 * `mtragun-human/generation_tasks/reference.jsonl`: per task the conversation so far (`input`,
 * speakers `user`/`agent`; the last user turn is the question), the reference passages
 * (`contexts`, `{document_id, text}`), and `answerability` (ANSWERABLE / UNANSWERABLE / PARTIAL /
 * UNDERSPECIFIED). The full MTRAG corpora are not staged, so the corpus is the union of all
 * tasks' reference passages (deduplicated by document id); a task's own passages are its relevant
 * documents (grade 1), and unanswerable tasks have none.
 *
 * @param collection keep only tasks of one collection (`govt`, `clapnq`, `cloud`/`ibmcloud`, `fiqa`).
 */
export function loadMtrag(root: string, options: { collection?: string } = {}): EvalDataset {
  const file = [
    path.join(root, 'mtragun-human', 'generation_tasks', 'reference.jsonl'),
    path.join(root, 'generation_tasks', 'reference.jsonl'),
    root,
  ].find((f) => existsSync(f) && statSync(f).isFile());
  if (!file) throw new Error(`no mtragun-human/generation_tasks/reference.jsonl under ${root}`);
  let tasks = readJsonl(file) as MtragTask[];
  if (options.collection) tasks = tasks.filter((t) => t.Collection === options.collection);
  const documents = new Map<string, EvalDocument>();
  const queries: EvalQuery[] = [];
  for (const t of tasks) {
    for (const c of t.contexts) {
      if (!documents.has(c.document_id)) {
        const text = c.text.trim();
        documents.set(c.document_id, { id: c.document_id, title: c.title ?? firstWords(text), text });
      }
    }
    const turns = t.input.map(
      (m): Turn => ({ role: m.speaker === 'user' ? 'user' : 'assistant', text: m.text }),
    );
    const lastUser = turns.map((x) => x.role).lastIndexOf('user');
    if (lastUser < 0) continue;
    const label = (t.answerability[0] ?? 'ANSWERABLE') as AnswerLabel;
    queries.push({
      id: t.task_id,
      text: (turns[lastUser] as Turn).text,
      history: turns.slice(0, lastUser),
      qrels: Object.fromEntries(t.contexts.map((c) => [c.document_id, 1])),
      label,
    });
  }
  return {
    name: options.collection ? `mtrag-${options.collection}` : 'mtrag',
    corpus: { kind: 'documents', documents: [...documents.values()] },
    queries,
    notes: [
      `MTRAG-UN reference tasks: ${queries.length} questions; corpus = the ${documents.size} reference passages of all tasks (the full MTRAG corpora are not staged)`,
    ],
  };
}

function firstWords(text: string): string {
  const words = text.split(/\s+/).filter(Boolean).slice(0, 10).join(' ');
  return words.length > 80 ? `${words.slice(0, 77)}...` : words;
}

/**
 * Loads any supported dataset from a CLI argument: `helpcenter:<name>`, a BEIR folder, a
 * FeedbackQA / StackFAQ / MTRAG folder (native layout), or a question JSONL file (which then needs
 * `corpus`: a help-center folder or a `corpus.jsonl`). FeedbackQA yields one dataset per region.
 *
 * @throws Error saying which formats were looked for when nothing matches.
 */
export function loadDatasets(
  spec: string,
  options: {
    corpus?: string;
    dialect?: 'markdown' | 'zendesk' | 'zulip' | 'docusaurus';
    helpcentersRoot?: string | null;
  } = {},
): EvalDataset[] {
  if (spec.startsWith('helpcenter:'))
    return [loadHelpcenter(spec.slice('helpcenter:'.length), options.helpcentersRoot ?? null)];
  if (!existsSync(spec)) throw new Error(`dataset not found: ${spec}`);
  if (statSync(spec).isFile()) {
    if (spec.endsWith('.jsonl') && path.basename(spec) === 'reference.jsonl') return [loadMtrag(spec)];
    if (!options.corpus)
      throw new Error(`${spec}: a question file needs --corpus (a help-center folder or corpus.jsonl)`);
    return [
      loadQuestionJsonl(
        spec,
        options.corpus.endsWith('.jsonl')
          ? { corpusJsonl: options.corpus }
          : { folder: options.corpus, ...(options.dialect ? { dialect: options.dialect } : {}) },
      ),
    ];
  }
  const has = (...p: string[]) => existsSync(path.join(spec, ...p));
  if (has('corpus.jsonl') && has('queries.jsonl')) return [loadBeir(spec)];
  if (has('experiments', 'feedbackQA_data') || has('WHO', 'test.json')) return loadFeedbackQA(spec);
  if (has('data', 'StackFAQ') || has('stackExchange-FAQ.json')) return [loadStackFAQ(spec)];
  if (has('mtragun-human') || has('generation_tasks', 'reference.jsonl')) return [loadMtrag(spec)];
  throw new Error(
    `${spec}: not a known dataset layout (looked for BEIR corpus.jsonl+queries.jsonl, FeedbackQA experiments/feedbackQA_data, StackFAQ data/StackFAQ, MTRAG mtragun-human); entries: ${readdirSync(spec).slice(0, 8).join(', ')}`,
  );
}

/**
 * A deterministic subsample of `n` queries (mulberry32 PRNG seeded by `seed`, Fisher–Yates
 * shuffle, then the original order restored), so runs on shared machines stay affordable and
 * repeatable. Returns the dataset unchanged when it has n or fewer queries.
 */
export function subsample(dataset: EvalDataset, n: number, seed: number): EvalDataset {
  if (dataset.queries.length <= n) return dataset;
  const rand = mulberry32(seed);
  const idx = dataset.queries.map((_, i) => i);
  for (let i = idx.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [idx[i], idx[j]] = [idx[j] as number, idx[i] as number];
  }
  const keep = new Set(idx.slice(0, n));
  return {
    ...dataset,
    queries: dataset.queries.filter((_, i) => keep.has(i)),
    notes: [...dataset.notes, `subsampled ${n} of ${dataset.queries.length} queries (seed ${seed})`],
  };
}

/** mulberry32 (Tommy Ettinger's 32-bit PRNG): uniform floats in [0, 1) from a 32-bit seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
