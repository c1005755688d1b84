/**
 * Answer evaluation over the real `answer()` (extractive generator, real SQLite), the promotion
 * gate (library function on results and on two configurations), and the optional LLM judge
 * against a local server speaking OpenAI's chat-completions wire format.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GenerateRequest, GenerateResult, Generator } from '../core/generator.ts';
import {
  type AnswerEvalConfig,
  type AnswerEvalResult,
  type AnswerMetrics,
  answerMetrics,
  runAnswerEval,
} from '../evals/answers.ts';
import { loadMtrag, loadQuestionJsonl } from '../evals/datasets.ts';
import { DEFAULT_GATE_RULES, gate, gateConfigurations, parseTolerances } from '../evals/gate.ts';
import { openAIJudge, parseVerdict } from '../evals/judge.ts';

const FIX = path.join(import.meta.dirname, 'fixtures', 'evals');
const mtrag = loadMtrag(path.join(FIX, 'native', 'mtrag'));
const questions = loadQuestionJsonl(path.join(FIX, 'questions.jsonl'), {
  corpusJsonl: path.join(FIX, 'beir-mini', 'corpus.jsonl'),
});
const base: AnswerEvalConfig = {
  name: 'extractive',
  topK: 5,
  abstainThreshold: 0.4,
  maxAnswerChars: 900,
  chunking: { maxTokens: 300, overlapTokens: 30 },
};

describe('runAnswerEval over MTRAG-labelled questions (extractive)', () => {
  let r: AnswerEvalResult;
  beforeAll(async () => {
    r = await runAnswerEval(mtrag, base);
  });
  it('answers the answerable ones with citations of their reference passages', () => {
    const [t1, t2] = r.perQuestion;
    expect(t1).toMatchObject({
      label: 'ANSWERABLE',
      outcome: 'answered',
      cited: ['doc-refund'],
      citationPrecision: 1,
    });
    // A follow-up in a thread: the history is passed to answer().
    expect(t2).toMatchObject({ label: 'ANSWERABLE', outcome: 'answered', cited: ['doc-password'] });
    expect(r.metrics.answerRate).toBe(1);
    expect(r.metrics.citationAccuracy).toBe(1);
    expect(r.metrics.citationHitRate).toBe(1);
  });
  it('abstains on the unanswerable and the underspecified ones', () => {
    expect(r.perQuestion[2]).toMatchObject({ label: 'UNANSWERABLE', outcome: 'abstained', cited: [] });
    expect(r.perQuestion[4]).toMatchObject({ label: 'UNDERSPECIFIED', outcome: 'abstained' });
    expect(r.metrics.abstentionRate).toBe(1);
    expect(r.metrics.underspecifiedAbstentionRate).toBe(1);
  });
  it('counts outcomes per label, never cites unsupplied chunks, and times every answer', () => {
    expect(r.metrics.byLabel).toMatchObject({
      ANSWERABLE: { n: 2, answered: 2 },
      UNANSWERABLE: { n: 1 },
      PARTIAL: { n: 1 },
      UNDERSPECIFIED: { n: 1 },
    });
    expect(r.metrics.unsuppliedCitations).toBe(0);
    expect(r.metrics.escalationPrecision).toBeNull(); // MTRAG has no escalation labels
    expect(r.metrics.latencyP95Ms).toBeGreaterThanOrEqual(r.metrics.latencyP50Ms);
    expect(r.perQuestion.every((q) => q.latencyMs > 0)).toBe(true);
    expect(r.config.generator).toBe('extractive');
    expect(r.judge).toBeNull();
  });
});

describe('escalation precision and recall where labelled', () => {
  it('scores the asker who wants a human as a correct escalation', async () => {
    const r = await runAnswerEval(questions, base);
    expect(r.perQuestion[2]).toMatchObject({ expectedEscalate: true, outcome: 'escalated' });
    expect(r.metrics.escalationPrecision).toBe(1);
    expect(r.metrics.escalationRecall).toBe(1);
  });
  it('computes precision and recall from the confusion counts', () => {
    const row = (expectedEscalate: boolean, outcome: 'answered' | 'escalated') => ({
      id: 'x',
      question: 'q',
      label: null,
      expectedEscalate,
      outcome,
      cited: [],
      relevant: [],
      citationPrecision: null,
      unsuppliedCitations: 0,
      removedMarkers: 0,
      confidence: 1,
      latencyMs: 1,
      generator: 'g',
      text: '',
    });
    // TP 1, FP 2, FN 1 → precision 1/3, recall 1/2
    const m = answerMetrics([
      row(true, 'escalated'),
      row(false, 'escalated'),
      row(false, 'escalated'),
      row(true, 'answered'),
    ]);
    expect(m.escalationPrecision).toBeCloseTo(1 / 3, 12);
    expect(m.escalationRecall).toBe(0.5);
  });
});

/** A scripted generator (the Generator seam) that cites the first context and a context it was not given. */
class OverCitingGenerator implements Generator {
  readonly id = 'scripted:over-citing';
  async generate(request: GenerateRequest): Promise<GenerateResult> {
    const bogus = request.contexts.length + 3;
    return { text: `From the help center [1]. Also see [${bogus}].`, cited: [1, bogus] };
  }
}

describe('citations to chunks that were not supplied', () => {
  it('are removed by answer() and therefore counted as 0 in the final answers', async () => {
    const r = await runAnswerEval(mtrag, {
      ...base,
      name: 'over-citing',
      generator: new OverCitingGenerator(),
    });
    const answered = r.perQuestion.filter((q) => q.outcome === 'answered');
    expect(answered.length).toBeGreaterThan(0);
    for (const q of answered) expect(q.text).not.toMatch(/\[[2-9]\d*\]/);
    expect(r.metrics.unsuppliedCitations).toBe(0);
    expect(r.config.generator).toBe('scripted:over-citing');
  });
});

function result(metrics: Partial<AnswerMetrics>, name = 'x'): AnswerEvalResult {
  const m: AnswerMetrics = {
    questions: 10,
    answerRate: 0.8,
    abstentionRate: 0.7,
    partialAnswerRate: null,
    underspecifiedAbstentionRate: null,
    citationAccuracy: 0.9,
    citationHitRate: 0.9,
    escalationPrecision: null,
    escalationRecall: null,
    unsuppliedCitations: 0,
    removedMarkers: 0,
    latencyP50Ms: 10,
    latencyP95Ms: 20,
    byLabel: {},
    judgeScore: null,
    ...metrics,
  };
  return {
    kind: 'answers',
    dataset: 'd',
    config: { ...base, name, generator: name },
    createdAt: '2026-01-01T00:00:00Z',
    notes: [],
    judge: null,
    metrics: m,
    perQuestion: [],
  };
}

describe('promotion gate', () => {
  it('passes within tolerance and fails beyond it, with one reason per failed metric', () => {
    const baseline = result({}, 'base');
    expect(gate(result({ answerRate: 0.785, latencyP95Ms: 24.9 }, 'cand'), baseline).pass).toBe(true);
    const d = gate(
      result({ answerRate: 0.75, citationAccuracy: 0.95, latencyP95Ms: 26, unsuppliedCitations: 1 }, 'cand'),
      baseline,
    );
    expect(d.pass).toBe(false);
    expect(d.reasons).toEqual([
      'answerRate dropped from 0.800 to 0.750 (allowed drop 0.02)',
      'latencyP95Ms rose from 20.0 ms to 26.0 ms (allowed up to +25%)',
      'unsuppliedCitations is 1, must be at most 0',
    ]);
    expect(d.checks.find((c) => c.metric === 'citationAccuracy')).toMatchObject({
      ok: true,
      delta: expect.closeTo(0.05, 9),
    });
    expect(d.checks.find((c) => c.metric === 'escalationRecall')).toMatchObject({
      ok: true,
      note: 'not measured',
    });
  });
  it('fails a metric the baseline measured and the candidate did not, and refuses mixed datasets', () => {
    const d = gate(result({ judgeScore: null }), result({ judgeScore: 0.7 }));
    expect(d.reasons).toEqual(['judgeScore was measured for the baseline but not for the candidate']);
    expect(() => gate({ ...result({}), dataset: 'other' }, result({}))).toThrow(/different datasets/);
  });
  it('takes per-metric tolerance overrides', () => {
    const rules = parseTolerances('answerRate=0.1');
    expect(gate(result({ answerRate: 0.75 }), result({}), rules).pass).toBe(true);
    expect(() => parseTolerances('nope=1')).toThrow(/unknown gated metric nope/);
    expect(() => parseTolerances('answerRate=-1')).toThrow(/>= 0/);
    expect(DEFAULT_GATE_RULES.find((r) => r.metric === 'answerRate')?.tolerance).toBe(0.02);
  });
  it('evaluates two generator configurations and blocks the worse one', async () => {
    const rules = DEFAULT_GATE_RULES.filter((r) => !r.metric.startsWith('latency')); // timing is noisy on shared cores
    const timid = { ...base, name: 'timid', abstainThreshold: 0.99 };
    const { decision, candidate, baseline } = await gateConfigurations(mtrag, timid, base, { rules });
    expect(baseline.metrics.answerRate).toBe(1);
    expect(candidate.metrics.answerRate).toBeLessThan(1);
    expect(decision.pass).toBe(false);
    expect(decision.reasons[0]).toMatch(/^answerRate dropped from 1\.000 to/);
    const same = await gateConfigurations(mtrag, { ...base, name: 'same' }, base, { rules });
    expect(same.decision).toMatchObject({
      pass: true,
      reasons: [],
      candidate: 'same',
      baseline: 'extractive',
    });
  });
});

describe('LLM-as-judge through an OpenAI-compatible server', () => {
  let server: Server;
  let url: string;
  const bodies: { model: string; temperature: number; messages: { role: string; content: string }[] }[] = [];
  let reply = '{"score": 4, "reason": "mostly right"}';
  beforeAll(async () => {
    server = createServer((req, res) => {
      let raw = '';
      req.on('data', (c) => {
        raw += c;
      });
      req.on('end', () => {
        if (req.url !== '/v1/chat/completions' || req.method !== 'POST') {
          res.writeHead(404).end('{"error":{"message":"not found"}}');
          return;
        }
        bodies.push(JSON.parse(raw));
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            id: 'chatcmpl-1',
            object: 'chat.completion',
            choices: [{ index: 0, message: { role: 'assistant', content: reply }, finish_reason: 'stop' }],
          }),
        );
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('scores answered questions only, rescales 1–5 to 0..1, and labels the result with the judge', async () => {
    const judge = openAIJudge({ baseUrl: url, model: 'judge-7b' });
    const r = await runAnswerEval(mtrag, base, { judge });
    const answered = r.perQuestion.filter((q) => q.outcome === 'answered').length;
    expect(bodies).toHaveLength(answered);
    expect(bodies[0]).toMatchObject({ model: 'judge-7b', temperature: 0 });
    expect(bodies[0]?.messages[1]?.content).toContain(
      'QUESTION:\nwhat is your refund policy for annual plans?',
    );
    expect(bodies[0]?.messages[1]?.content).toContain('Annual plans are refunded in full');
    expect(r.judge).toBe('openai:judge-7b');
    expect(r.metrics.judgeScore).toBe(0.75);
    expect(r.perQuestion[0]?.judge).toEqual({ score: 0.75, reason: 'mostly right' });
  });
  it('fails loudly on a reply without a score', async () => {
    reply = 'I think it is fine';
    await expect(
      openAIJudge({ baseUrl: url, model: 'm' }).score({ question: 'q', answer: 'a', contexts: [] }),
    ).rejects.toThrow(/no 1-5 score/);
    expect(parseVerdict('```json\n{"score": 1, "reason": "wrong"}\n```')).toEqual({
      score: 0,
      reason: 'wrong',
    });
    expect(() => parseVerdict('{"score": 6}')).toThrow(/no 1-5 score/);
  });
});
