/**
 * The `eval` commands on a commander program (as bot/cli/main.ts will register them): files
 * written, tables printed, the gate's exit code and reasons, report --compare, gaps; plus the
 * report rendering itself (tables, deltas, a self-contained HTML page with inline SVG charts).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Runtime } from '../bot/runtime.ts';
import { configSchema } from '../core/config.ts';
import { registerEvalCommands } from '../evals/cli.ts';
import { compareReports, type EvalReport, readReport, renderHtml, textTable } from '../evals/report.ts';

const FIX = path.join(import.meta.dirname, 'fixtures', 'evals');
const root = mkdtempSync(path.join(tmpdir(), 'evals-cli-test-'));
let runtime: Runtime | null = null;
afterAll(async () => {
  await runtime?.close();
  rmSync(root, { recursive: true, force: true });
});
afterEach(() => {
  process.exitCode = undefined;
});

async function run(...args: string[]): Promise<{ out: string; err: string; code: number }> {
  let out = '';
  let err = '';
  const program = new Command('supportbot').exitOverride();
  registerEvalCommands(
    program,
    async () => {
      runtime ??= new Runtime(
        configSchema.parse({ dataDir: path.join(root, 'data'), log: { level: 'silent' } }),
      );
      return runtime;
    },
    { out: (t) => (out += t), err: (t) => (err += t) },
  );
  process.exitCode = undefined;
  await program.parseAsync(['node', 'supportbot', ...args]);
  const code = typeof process.exitCode === 'number' ? process.exitCode : 0;
  process.exitCode = undefined;
  return { out, err, code };
}

describe('eval retrieval', () => {
  it('writes JSON + HTML and prints one table with every configuration, skipped ones marked', async () => {
    const out = path.join(root, 'r1');
    const r = await run('eval', 'retrieval', '--dataset', path.join(FIX, 'beir-mini'), '--out', out);
    expect(r.code).toBe(0);
    expect(r.out).toContain('beir-mini: 5 queries, 7 documents');
    expect(r.out).toMatch(/bm25-128 +7 /);
    expect(r.out).toContain('skipped: no embedding model configured');
    expect(r.err).toContain(`wrote ${out}.json and ${out}.html`);
    const report = readReport(`${out}.json`);
    expect(report.kind).toBe('retrieval');
    expect(report.kind === 'retrieval' && report.runs[0]?.results[0]?.perQuery).toHaveLength(5);
    expect(readFileSync(`${out}.html`, 'utf8')).toContain('<svg');
  });
  it('takes --chunk-sizes and --configs, and subsamples with --sample/--seed', async () => {
    const r = await run(
      'eval',
      'retrieval',
      '--dataset',
      path.join(FIX, 'beir-mini'),
      '--chunk-sizes',
      '16,64',
      '--sample',
      '3',
      '--out',
      path.join(root, 'r2'),
      '--markdown',
    );
    expect(r.out).toContain('| bm25-16 |');
    expect(r.out).toContain('| bm25-64 |');
    expect(r.out).toContain('subsampled 3 of 5 queries (seed 1)');
    const configs = path.join(root, 'configs.json');
    writeFileSync(
      configs,
      JSON.stringify([{ name: 'mine', chunking: { maxTokens: 50, overlapTokens: 5 }, mode: 'bm25' }]),
    );
    const c = await run(
      'eval',
      'retrieval',
      '--dataset',
      path.join(FIX, 'beir-mini'),
      '--configs',
      configs,
      '--out',
      path.join(root, 'r3'),
    );
    expect(c.out).toMatch(/^mine +7 /m);
  });
  it('rejects a bad --chunk-sizes value', async () => {
    await expect(
      run(
        'eval',
        'retrieval',
        '--dataset',
        path.join(FIX, 'beir-mini'),
        '--chunk-sizes',
        '16,x',
        '--out',
        path.join(root, 'bad'),
      ),
    ).rejects.toThrow(/integer/);
  });
});

describe('eval answers, gate and report --compare', () => {
  let answersA: string;
  beforeAll(async () => {
    answersA = path.join(root, 'a');
    const r = await run('eval', 'answers', '--dataset', path.join(FIX, 'native', 'mtrag'), '--out', answersA);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/answered \(ANSWERABLE\) +1\.000/);
    expect(r.out).toMatch(/citations to unsupplied chunks +0/);
  });

  it('passes the gate against itself and fails a worse candidate with exit code 1 and reasons', async () => {
    const pass = await run('eval', 'gate', `${answersA}.json`, `${answersA}.json`);
    expect(pass).toMatchObject({ code: 0 });
    expect(pass.out).toContain('PASS mtrag: extractive vs extractive');

    const worse = readReport(`${answersA}.json`) as Extract<EvalReport, { kind: 'answers' }>;
    const m = (worse.runs[0] as (typeof worse.runs)[number]).metrics;
    m.answerRate = 0.5;
    m.unsuppliedCitations = 2;
    writeFileSync(path.join(root, 'worse.json'), JSON.stringify(worse));
    const fail = await run('eval', 'gate', path.join(root, 'worse.json'), `${answersA}.json`);
    expect(fail.code).toBe(1);
    expect(fail.out).toContain('FAIL mtrag');
    expect(fail.out).toContain('  - answerRate dropped from 1.000 to 0.500 (allowed drop 0.02)');
    expect(fail.out).toContain('  - unsuppliedCitations is 2, must be at most 0');
    const loose = await run(
      'eval',
      'gate',
      path.join(root, 'worse.json'),
      `${answersA}.json`,
      '--tolerance',
      'answerRate=0.6,unsuppliedCitations=5',
      '--json',
    );
    expect(loose.code).toBe(0);
    expect(JSON.parse(loose.out)).toMatchObject({ pass: true });

    const cmp = await run('eval', 'report', `${answersA}.json`, '--compare', path.join(root, 'worse.json'));
    expect(cmp.out).toMatch(/mtrag +answerRate +1\.000 +0\.500 +-0\.500 ▼/);
    const html = readFileSync(path.join(root, 'a-vs-worse.html'), 'utf8');
    expect(html).toContain('Comparison (B − A)');
    // The same comparison spelled `report --compare A.json B.json`.
    const both = await run(
      'eval',
      'report',
      '--compare',
      `${answersA}.json`,
      path.join(root, 'worse.json'),
      '--out',
      path.join(root, 'cmp2.html'),
    );
    expect(both.out).toBe(cmp.out);
    await expect(run('eval', 'report', '--compare', `${answersA}.json`)).rejects.toThrow(/two to compare/);
  });
  it('refuses to gate retrieval results', async () => {
    await run(
      'eval',
      'retrieval',
      '--dataset',
      path.join(FIX, 'beir-mini'),
      '--chunk-sizes',
      '64',
      '--out',
      path.join(root, 'rr'),
    );
    await expect(run('eval', 'gate', path.join(root, 'rr.json'), `${answersA}.json`)).rejects.toThrow(
      /two answers results/,
    );
  });
});

describe('eval answers with the LLM judge (off by default)', () => {
  it('scores through an OpenAI-compatible server when --judge-model is given, and labels it', async () => {
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            choices: [{ index: 0, message: { role: 'assistant', content: '{"score": 5, "reason": "ok"}' } }],
          }),
        );
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const mtrag = path.join(FIX, 'native', 'mtrag');
      const r = await run(
        'eval',
        'answers',
        '--dataset',
        mtrag,
        '--judge-model',
        'judge-m',
        '--judge-base-url',
        url,
        '--out',
        path.join(root, 'j'),
      );
      expect(r.err).toContain('LLM-as-judge on: openai:judge-m');
      expect(r.out).toMatch(/LLM judge score \(openai:judge-m\) +1\.000/);
      expect(readFileSync(path.join(root, 'j.html'), 'utf8')).toContain(
        'LLM-as-judge scores by openai:judge-m',
      );
      const off = await run('eval', 'answers', '--dataset', mtrag, '--out', path.join(root, 'nj'));
      expect(off.out).toMatch(/LLM judge score +—/);
      await expect(
        run('eval', 'answers', '--dataset', mtrag, '--judge-model', 'm', '--out', path.join(root, 'x')),
      ).rejects.toThrow(/needs --judge-base-url/);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('eval gaps', () => {
  it('reads the runtime state store', async () => {
    await run(
      'eval',
      'answers',
      '--dataset',
      path.join(FIX, 'native', 'mtrag'),
      '--out',
      path.join(root, 'ax'),
    );
    const rt = runtime as Runtime;
    await rt.state.saveAnswer({
      id: 'g1',
      platform: 'console',
      threadId: 't',
      userId: 'u',
      question: 'how do I export invoices to csv',
      result: {
        text: 'x',
        citations: [],
        abstained: true,
        escalated: false,
        confidence: 0.1,
        generator: 'extractive',
        latencyMs: 1,
        retrievedChunkIds: [],
      },
      createdAt: '2026-03-01T10:00:00.000Z',
    });
    const r = await run('eval', 'gaps', '--json');
    expect(JSON.parse(r.out)).toMatchObject({
      kind: 'gaps',
      gaps: 1,
      clusters: [{ count: 1, examples: ['how do I export invoices to csv'] }],
    });
  });
});

describe('report rendering', () => {
  it('aligns text tables and writes GFM tables', () => {
    expect(textTable(['a', 'num'], [['xx', '1.0']])).toBe('a   num\n--  ---\nxx  1.0');
    expect(textTable(['a', 'num'], [['xx', '1.0']], true)).toBe('| a | num |\n| --- | ---: |\n| xx | 1.0 |');
  });
  it('computes deltas per matching dataset and configuration, lower-is-better for latency', () => {
    const rr = readReport(path.join(root, 'r1.json'));
    const faster = structuredClone(rr) as Extract<EvalReport, { kind: 'retrieval' }>;
    const first = faster.runs[0]?.results[0];
    if (!first) throw new Error('no result');
    first.metrics['ndcg@10'] = (first.metrics['ndcg@10'] as number) - 0.1;
    first.latencyP95Ms = first.latencyP95Ms / 2;
    const rows = compareReports(rr, faster);
    const ndcg = rows.find((r) => r.scope === `beir-mini · ${first.config.name}` && r.metric === 'ndcg@10');
    expect(ndcg).toMatchObject({ delta: expect.closeTo(-0.1, 9), better: false });
    expect(rows.find((r) => r.scope === ndcg?.scope && r.metric === 'p95 ms')?.better).toBe(true);
    expect(() => compareReports(rr, readReport(`${path.join(root, 'a')}.json`))).toThrow(/cannot compare/);
  });
  it('makes a self-contained page: inline SVG, no script, no external resource', async () => {
    const html = await renderHtml(
      readReport(path.join(root, 'r1.json')),
      readReport(path.join(root, 'r1.json')),
    );
    expect((html.match(/<svg/g) ?? []).length).toBe(2); // delta chart + retrieval chart
    expect(html).not.toMatch(/<script|<link|<img|<iframe|src=|url\(/i);
    expect(html).not.toMatch(/href="https?:/);
  });
  it('writes standalone chart SVGs with a title for Markdown docs (eval report --svg)', async () => {
    const dir = path.join(root, 'svg');
    const r = await run(
      'eval',
      'report',
      path.join(root, 'r1.json'),
      '--svg',
      dir,
      '--out',
      path.join(root, 'r1-again.html'),
    );
    expect(r.err).toContain(`wrote ${path.join(dir, 'beir-mini-retrieval.svg')}`);
    const svg = readFileSync(path.join(dir, 'beir-mini-retrieval.svg'), 'utf8');
    expect(svg).toMatch(/^<svg[^>]*><title>beir-mini: retrieval by configuration<\/title>/);
    expect(svg).not.toMatch(/ role="/);
    expect((svg.match(/<path/g) ?? []).length).toBeGreaterThan(8);
  });
  it('rejects a file that is not a report', () => {
    const f = path.join(root, 'nope.json');
    writeFileSync(f, '{"hello": 1}');
    expect(() => readReport(f)).toThrow(/not a supportbot eval report/);
    expect(existsSync(f)).toBe(true);
  });
});
