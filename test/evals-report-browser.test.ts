/**
 * Opens generated eval reports (retrieval with a comparison, and answers) in headless Chromium
 * (Debian's `chromium` package at /usr/bin/chromium, driven by playwright-core) and checks that
 * the charts rendered: SVG elements with drawn bar marks and axes, no console errors or page
 * errors, and no request other than the file itself (nothing is fetched at view time).
 * Skips with a message when /usr/bin/chromium is absent (`.ci/run` installs it).
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { type BrowserContext, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAnswerEval } from '../evals/answers.ts';
import { loadBeir, loadMtrag } from '../evals/datasets.ts';
import { type EvalReport, renderHtml, writeReport } from '../evals/report.ts';
import { runRetrievalEval } from '../evals/retrieval.ts';

const CHROMIUM = '/usr/bin/chromium';
const present = existsSync(CHROMIUM);
if (!present)
  process.stderr.write(
    `${CHROMIUM} not found: skipping the headless-Chromium report test (apt-get install -y chromium).\n`,
  );

const FIX = path.join(import.meta.dirname, 'fixtures', 'evals');

describe.skipIf(!present)('eval reports in headless Chromium', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'evals-browser-test-'));
  let browser: BrowserContext;
  const files: Record<string, string> = {};

  beforeAll(async () => {
    const retrieval = await runRetrievalEval(loadBeir(path.join(FIX, 'beir-mini')), [
      { name: 'bm25-32', chunking: { maxTokens: 32, overlapTokens: 0 }, mode: 'bm25' },
      { name: 'bm25-300', chunking: { maxTokens: 300, overlapTokens: 30 }, mode: 'bm25' },
      { name: 'vector-300', chunking: { maxTokens: 300, overlapTokens: 30 }, mode: 'vector' },
    ]);
    const r: EvalReport = {
      version: 1,
      kind: 'retrieval',
      command: 'test',
      createdAt: new Date().toISOString(),
      runs: [retrieval],
    };
    files.retrieval = (await writeReport(r, path.join(root, 'retrieval'))).html;
    files.compare = path.join(root, 'compare.html');
    writeFileSync(files.compare, await renderHtml(r, r));
    const answers = await runAnswerEval(loadMtrag(path.join(FIX, 'native', 'mtrag')), {
      name: 'extractive',
      topK: 5,
      abstainThreshold: 0.4,
      maxAnswerChars: 900,
      chunking: { maxTokens: 300, overlapTokens: 30 },
    });
    const a: EvalReport = {
      version: 1,
      kind: 'answers',
      command: 'test',
      createdAt: new Date().toISOString(),
      runs: [answers],
    };
    files.answers = (await writeReport(a, path.join(root, 'answers'))).html;

    // A fresh profile per run (playwright takes --user-data-dir as this parameter).
    browser = await chromium.launchPersistentContext(path.join(root, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    rmSync(root, { recursive: true, force: true });
  });

  async function open(file: string) {
    const page = await browser.newPage();
    const problems: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page: ${e.message}`));
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
    return { page, problems, requests };
  }

  it('renders the retrieval chart: bars for each configuration and metric, axes, legend', async () => {
    const { page, problems, requests } = await open(files.retrieval as string);
    expect(await page.locator('svg').count()).toBe(1);
    // 2 runnable configurations × 4 metrics = 8 bars (the skipped vector config draws none).
    expect(await page.locator('svg g.mark-rect.role-mark path').count()).toBe(8);
    const box = await page.locator('svg').first().boundingBox();
    expect(box?.width).toBeGreaterThan(100);
    expect(box?.height).toBeGreaterThan(100);
    const text = await page.locator('svg').first().textContent();
    expect(text).toContain('bm25-300');
    expect(text).toContain('ndcg@10');
    expect(await page.locator('table').first().textContent()).toContain(
      'skipped: no embedding model configured',
    );
    expect(problems).toEqual([]);
    expect(requests).toEqual([pathToFileURL(files.retrieval as string).href]);
    await page.close();
  });

  it('renders the comparison and the answers charts without errors', async () => {
    const cmp = await open(files.compare as string);
    expect(await cmp.page.locator('svg').count()).toBe(2);
    expect(await cmp.page.getByText('Comparison (B − A)').count()).toBe(1);
    expect(cmp.problems).toEqual([]);
    await cmp.page.close();

    const ans = await open(files.answers as string);
    expect(await ans.page.locator('svg').count()).toBe(1);
    // One stacked bar segment per (label, outcome) with a count: 4 labels × 3 outcomes drawn.
    expect(await ans.page.locator('svg g.mark-rect.role-mark path').count()).toBeGreaterThanOrEqual(4);
    expect(await ans.page.locator('svg').first().textContent()).toContain('UNANSWERABLE');
    expect(ans.problems).toEqual([]);
    expect(ans.requests).toHaveLength(1);
    await ans.page.close();
  });
});
