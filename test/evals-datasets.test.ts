/**
 * Dataset loaders: BEIR, the simple question JSONL, and the native formats of FeedbackQA,
 * StackFAQ and MTRAG, on small fixtures in those formats (test/fixtures/evals) and, when
 * ../shared/data is staged, on the real files (sizes from ../shared/data/SOURCES.md).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  corpusSource,
  loadBeir,
  loadDatasets,
  loadFeedbackQA,
  loadHelpcenter,
  loadMtrag,
  loadQuestionJsonl,
  loadStackFAQ,
  subsample,
} from '../evals/datasets.ts';
import { SHARED_DATA_DIR } from '../evals/helpcenters.ts';

const FIX = path.join(import.meta.dirname, 'fixtures', 'evals');

describe('BEIR loader', () => {
  it('reads corpus, queries and graded qrels, keeping only judged queries', () => {
    const d = loadBeir(path.join(FIX, 'beir-mini'));
    expect(d.name).toBe('beir-mini');
    expect(d.corpus.kind === 'documents' && d.corpus.documents.length).toBe(7);
    expect(d.queries.map((q) => q.id)).toEqual(['q1', 'q2', 'q3', 'q4', 'q5']); // q6 has no qrels
    expect(d.queries[0]?.qrels).toEqual({ 'refund-policy': 2, cancel: 1 });
    expect(d.queries[4]?.qrels).toEqual({ cancel: 2, upgrade: 0 });
  });
  it('is what loadDatasets picks for a folder with corpus.jsonl and queries.jsonl', () => {
    expect(loadDatasets(path.join(FIX, 'beir-mini'))[0]?.queries).toHaveLength(5);
  });
});

describe('question JSONL', () => {
  it('grades relevant ids by position and maps kind and escalate', () => {
    const d = loadQuestionJsonl(path.join(FIX, 'questions.jsonl'), {
      corpusJsonl: path.join(FIX, 'beir-mini', 'corpus.jsonl'),
    });
    expect(d.queries[0]).toMatchObject({
      qrels: { 'refund-policy': 2, cancel: 1 },
      label: 'ANSWERABLE',
      escalate: false,
    });
    expect(d.queries[2]?.escalate).toBe(true);
    expect(d.queries[3]).toMatchObject({ qrels: {}, label: 'UNANSWERABLE' });
  });
  it('loads the walking skeleton question sets over their help center', async () => {
    const d = loadHelpcenter('examples', null);
    expect(d.queries.length).toBeGreaterThan(20);
    expect(d.queries.some((q) => q.label === 'UNANSWERABLE')).toBe(true);
    let n = 0;
    for await (const item of corpusSource(d).articles()) if (item.ok) n++;
    expect(n).toBeGreaterThan(10);
  });
  it('needs a corpus for a bare question file', () => {
    expect(() => loadDatasets(path.join(FIX, 'questions.jsonl'))).toThrow(/--corpus/);
  });
});

describe('native formats (fixtures)', () => {
  it('FeedbackQA: passages as documents, gold grade 3, feedback ratings as grades', () => {
    const [d, ...rest] = loadFeedbackQA(path.join(FIX, 'native', 'feedbackqa'));
    expect(rest).toHaveLength(0); // only WHO is in the fixture
    expect(d?.name).toBe('feedbackqa-who');
    const docs = d?.corpus.kind === 'documents' ? d.corpus.documents : [];
    expect(docs[0]).toMatchObject({
      id: 'WHO-0',
      title: 'Q&A on handwashing',
      url: 'https://example.org/who/0',
    });
    expect(docs[0]?.text).toBe(
      '## How long should I wash my hands?\n\nWash your hands with soap and water for at least 20 seconds.',
    );
    expect(d?.queries[0]?.qrels).toEqual({ 'WHO-0': 3 }); // rated Excellent twice, but gold wins with 3
    // Acceptable (2) + Could be Improved (1) → mean 1.5 → 2; Bad + Bad → 0
    expect(d?.queries[1]?.qrels).toEqual({ 'WHO-1': 3, 'WHO-2': 2, 'WHO-0': 0 });
  });
  it('StackFAQ: threads as documents, paraphrases as queries, placeholders dropped', () => {
    const d = loadStackFAQ(path.join(FIX, 'native', 'stackfaq'));
    const docs = d.corpus.kind === 'documents' ? d.corpus.documents : [];
    expect(docs.map((x) => x.title)).toEqual([
      'Strikethrough with GitHub Markdown',
      'How do I permanently delete my Facebook account?',
    ]);
    expect(docs[0]?.text).toBe('Use ~~tildes around the words~~.\n\n---\n\nThe <del> tag also works.');
    expect(d.queries.map((q) => q.text)).toEqual([
      'How to make text strikethrough on github',
      'crossed out letters in github markdown',
      'How can I delete my facebook account?',
    ]);
    expect(d.queries[2]?.qrels).toEqual({ 'thread-2': 1 });
  });
  it('MTRAG: last user turn as the question, earlier turns as history, labels, reference passages as corpus', () => {
    const d = loadMtrag(path.join(FIX, 'native', 'mtrag'));
    expect(d.queries.map((q) => q.label)).toEqual([
      'ANSWERABLE',
      'ANSWERABLE',
      'UNANSWERABLE',
      'PARTIAL',
      'UNDERSPECIFIED',
    ]);
    expect(d.queries[1]).toMatchObject({
      text: 'how long is the password reset link valid?',
      history: [
        { role: 'user', text: 'how do I reset my password?' },
        { role: 'assistant', text: 'Choose Forgot password on the sign-in page.' },
      ],
      qrels: { 'doc-password': 1 },
    });
    expect(d.queries[2]?.qrels).toEqual({});
    // doc-refund is referenced by two tasks but stored once
    expect(d.corpus.kind === 'documents' && d.corpus.documents.map((x) => x.id)).toEqual([
      'doc-refund',
      'doc-password',
    ]);
  });
  it('loadDatasets recognises each native layout', () => {
    expect(loadDatasets(path.join(FIX, 'native', 'feedbackqa')).map((d) => d.name)).toEqual([
      'feedbackqa-who',
    ]);
    expect(loadDatasets(path.join(FIX, 'native', 'stackfaq')).map((d) => d.name)).toEqual(['stackfaq']);
    expect(loadDatasets(path.join(FIX, 'native', 'mtrag')).map((d) => d.name)).toEqual(['mtrag']);
    expect(() => loadDatasets(path.join(FIX, 'native'))).toThrow(/not a known dataset layout/);
  });
});

describe('subsample', () => {
  it('is deterministic per seed, keeps the original order, and notes itself', () => {
    const d = loadStackFAQ(path.join(FIX, 'native', 'stackfaq'));
    const a = subsample(d, 2, 7);
    expect(a.queries).toHaveLength(2);
    expect(subsample(d, 2, 7).queries.map((q) => q.id)).toEqual(a.queries.map((q) => q.id));
    const order = d.queries.map((q) => q.id);
    expect(a.queries.map((q) => order.indexOf(q.id))).toEqual(
      [...a.queries.map((q) => order.indexOf(q.id))].sort(),
    );
    expect(a.notes.at(-1)).toBe('subsampled 2 of 3 queries (seed 7)');
    expect(subsample(d, 10, 7)).toBe(d);
  });
});

const retrievalRoot = path.join(SHARED_DATA_DIR, 'retrieval');
const mtragRoot = path.join(SHARED_DATA_DIR, 'conversations', 'mtrag');
const staged = existsSync(retrievalRoot) && existsSync(mtragRoot);
if (!staged) process.stderr.write(`${SHARED_DATA_DIR} not found: skipping the real-data loader tests.\n`);

describe.skipIf(!staged)('native formats (real staged data, ../shared/data)', () => {
  it('FeedbackQA test split: WHO 183 questions / 226 passages, Australia 474 / 584', () => {
    const [who, aus] = loadFeedbackQA(path.join(retrievalRoot, 'feedbackqa'));
    expect(who?.queries).toHaveLength(183);
    expect(who?.corpus.kind === 'documents' && who.corpus.documents.length).toBe(226);
    expect(aus?.queries).toHaveLength(474);
    expect(aus?.corpus.kind === 'documents' && aus.corpus.documents.length).toBe(584);
    expect(who?.queries.every((q) => Object.values(q.qrels).includes(3))).toBe(true);
  });
  it('StackFAQ: 125 threads, 1,375 paraphrases minus the placeholders', () => {
    const d = loadStackFAQ(path.join(retrievalRoot, 'stackfaq'));
    expect(d.corpus.kind === 'documents' && d.corpus.documents.length).toBe(125);
    const dropped = Number(/\((\d+) placeholder/.exec(d.notes[0] as string)?.[1]);
    expect(d.queries.length + dropped).toBe(1375);
    expect(d.queries.every((q) => q.text !== '*')).toBe(true);
  });
  it('MTRAG-UN: 507 tasks with the label counts of SOURCES.md', () => {
    const d = loadMtrag(mtragRoot);
    expect(d.queries).toHaveLength(507);
    const count = (l: string) => d.queries.filter((q) => q.label === l).length;
    expect([count('ANSWERABLE'), count('UNANSWERABLE'), count('UNDERSPECIFIED'), count('PARTIAL')]).toEqual([
      285, 97, 78, 47,
    ]);
  });
});
