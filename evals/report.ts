/**
 * Eval reports: the JSON result file, a terminal table, and a self-contained HTML page whose charts
 * are Vega-Lite specs rendered to inline SVG at write time (vega 6 + vega-lite 6, headless
 * `renderer: 'none'` → `toSVG()`), so the page needs no script and no network to view.
 * `compareReports` puts two result files side by side with deltas.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import type { AnswerEvalResult, AnswerMetrics } from './answers.ts';
import type { RetrievalEvalResult } from './retrieval.ts';

/** What every eval command writes as JSON (and renders as HTML). */
export type EvalReport =
  | { version: 1; kind: 'retrieval'; command: string; createdAt: string; runs: RetrievalEvalResult[] }
  | { version: 1; kind: 'answers'; command: string; createdAt: string; runs: AnswerEvalResult[] };

/** Reads and checks a report file. @throws Error naming the file when it is not an eval report. */
export function readReport(file: string): EvalReport {
  const data = JSON.parse(readFileSync(file, 'utf8')) as Partial<EvalReport>;
  if (
    data.version !== 1 ||
    (data.kind !== 'retrieval' && data.kind !== 'answers') ||
    !Array.isArray(data.runs)
  ) {
    throw new Error(
      `${file}: not a supportbot eval report (expected version 1, kind retrieval|answers, runs[])`,
    );
  }
  return data as EvalReport;
}

// ── formatting ───────────────────────────────────────────────────────────────────────────────

const pct = (v: number | null | undefined) =>
  v === null || v === undefined || Number.isNaN(v) ? '—' : v.toFixed(3);
const ms = (v: number | null | undefined) =>
  v === null || v === undefined || Number.isNaN(v) ? '—' : v.toFixed(1);
const signed = (v: number | null, digits = 3) =>
  v === null || Number.isNaN(v) ? '—' : `${v >= 0 ? '+' : ''}${v.toFixed(digits)}`;

/** A plain text table with right-aligned numeric columns; `markdown` gives a GFM table instead. */
export function textTable(header: string[], rows: string[][], markdown = false): string {
  if (markdown) {
    const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
    return [line(header), line(header.map((_, i) => (i === 0 ? '---' : '---:'))), ...rows.map(line)].join(
      '\n',
    );
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmtRow = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number)))
      .join('  ');
  return [fmtRow(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(fmtRow)].join('\n');
}

/** The comparison table of one retrieval run: one row per configuration. */
export function retrievalTable(run: RetrievalEvalResult, markdown = false): string {
  const header = ['config', 'chunks', ...run.metrics, 'p50 ms', 'p95 ms'];
  const rows = run.results.map((r) =>
    r.status === 'skipped'
      ? [r.config.name, '—', ...run.metrics.map(() => '—'), `skipped: ${r.reason}`, '']
      : [
          r.config.name,
          String(r.chunks),
          ...run.metrics.map((m) => pct(r.metrics[m])),
          ms(r.latencyP50Ms),
          ms(r.latencyP95Ms),
        ],
  );
  return textTable(header, rows, markdown);
}

/** Answer metrics shown in tables and compared, in order, with their labels. */
export const ANSWER_METRIC_LABELS: [keyof AnswerMetrics, string][] = [
  ['answerRate', 'answered (ANSWERABLE)'],
  ['abstentionRate', 'abstained (UNANSWERABLE)'],
  ['partialAnswerRate', 'answered (PARTIAL)'],
  ['underspecifiedAbstentionRate', 'abstained (UNDERSPECIFIED)'],
  ['citationAccuracy', 'citation accuracy'],
  ['citationHitRate', 'cites a relevant doc'],
  ['escalationPrecision', 'escalation precision'],
  ['escalationRecall', 'escalation recall'],
  ['judgeScore', 'LLM judge score'],
  ['unsuppliedCitations', 'citations to unsupplied chunks'],
  ['removedMarkers', 'removed invalid markers'],
  ['latencyP50Ms', 'latency p50 ms'],
  ['latencyP95Ms', 'latency p95 ms'],
];

function answerValue(m: AnswerMetrics, key: keyof AnswerMetrics): string {
  const v = m[key] as number | null;
  if (key.endsWith('Ms')) return ms(v);
  if (key === 'unsuppliedCitations' || key === 'removedMarkers') return String(v);
  return pct(v);
}

/** The summary table of answer runs: one row per metric, one column per run. */
export function answersTable(runs: readonly AnswerEvalResult[], markdown = false): string {
  const header = ['metric', ...runs.map((r) => `${r.dataset} · ${r.config.name}`)];
  const rows = ANSWER_METRIC_LABELS.map(([key, label]) => [
    key === 'judgeScore' && runs.some((r) => r.judge)
      ? `${label} (${runs.find((r) => r.judge)?.judge})`
      : label,
    ...runs.map((r) => answerValue(r.metrics, key)),
  ]);
  rows.unshift(['questions', ...runs.map((r) => String(r.metrics.questions))]);
  return textTable(header, rows, markdown);
}

/** The terminal summary of a report. */
export function summaryText(report: EvalReport): string {
  if (report.kind === 'answers') return answersTable(report.runs);
  return report.runs
    .map(
      (run) => `${run.dataset}: ${run.queries} queries, ${run.documents} documents\n${retrievalTable(run)}`,
    )
    .join('\n\n');
}

// ── charts ───────────────────────────────────────────────────────────────────────────────────

type Charting = {
  vega: typeof import('vega');
  compile: typeof import('vega-lite')['compile'];
  setToJSON: PropertyDescriptor | undefined;
};
let charting: Promise<Charting> | null = null;

/**
 * Loads vega and vega-lite on first use. vega-lite 6 defines `Set.prototype.toJSON` when its
 * module loads; left in place, that global patch breaks discord.js's bundled inspector in the same
 * process (`string "Set()" is not iterable`). So the patch is taken off after loading and put
 * back only around `compile`, which is synchronous.
 */
function loadCharting(): Promise<Charting> {
  charting ??= (async () => {
    const before = Object.getOwnPropertyDescriptor(Set.prototype, 'toJSON');
    const [vega, vl] = await Promise.all([import('vega'), import('vega-lite')]);
    const setToJSON = Object.getOwnPropertyDescriptor(Set.prototype, 'toJSON');
    restoreSetToJSON(before);
    return { vega, compile: vl.compile, setToJSON };
  })();
  return charting;
}

function restoreSetToJSON(descriptor: PropertyDescriptor | undefined): void {
  if (descriptor) Object.defineProperty(Set.prototype, 'toJSON', descriptor);
  else delete (Set.prototype as unknown as Record<string, unknown>).toJSON;
}

/** Renders a Vega-Lite spec to an SVG string (no DOM, no canvas, no network). */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const { vega, compile, setToJSON } = await loadCharting();
  const before = Object.getOwnPropertyDescriptor(Set.prototype, 'toJSON');
  if (setToJSON) Object.defineProperty(Set.prototype, 'toJSON', setToJSON);
  let compiled: ReturnType<typeof compile>;
  try {
    compiled = compile(spec);
  } finally {
    restoreSetToJSON(before);
  }
  const view = new vega.View(vega.parse(compiled.spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

const CHART_METRICS = ['recall@5', 'recall@10', 'mrr@10', 'ndcg@10'];

/** Grouped bars: one group per configuration, one bar per metric (recall@5/10, MRR@10, nDCG@10). */
export function retrievalChartSpec(run: RetrievalEvalResult): TopLevelSpec {
  const values = run.results
    .filter((r) => r.status === 'ok')
    .flatMap((r) =>
      CHART_METRICS.map((m) => ({ config: r.config.name, metric: m, value: r.metrics[m] ?? 0 })),
    );
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `${run.dataset}: retrieval by configuration`,
    width: { step: 14 },
    height: 220,
    data: { values },
    mark: 'bar',
    encoding: {
      x: { field: 'config', type: 'nominal', sort: null, axis: { labelAngle: -30 }, title: null },
      xOffset: { field: 'metric', sort: CHART_METRICS },
      y: { field: 'value', type: 'quantitative', scale: { domain: [0, 1] }, title: 'score' },
      color: { field: 'metric', sort: CHART_METRICS, scale: { scheme: 'tableau10' } },
      tooltip: [{ field: 'config' }, { field: 'metric' }, { field: 'value', format: '.3f' }],
    },
  } as TopLevelSpec;
}

/** Stacked bars per label: answered / abstained / escalated counts; one row per run. */
export function answersChartSpec(runs: readonly AnswerEvalResult[]): TopLevelSpec {
  const values = runs.flatMap((r) =>
    Object.entries(r.metrics.byLabel).flatMap(([label, b]) =>
      (['answered', 'abstained', 'escalated'] as const).map((outcome) => ({
        run: `${r.dataset} · ${r.config.name}`,
        label,
        outcome,
        count: b[outcome],
      })),
    ),
  );
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'What the bot did, by answerability label',
    data: { values },
    facet: { row: { field: 'run', title: null } },
    spec: {
      width: 420,
      height: { step: 22 },
      mark: 'bar',
      encoding: {
        y: { field: 'label', type: 'nominal', title: null },
        x: { field: 'count', type: 'quantitative', stack: 'normalize', title: 'share of questions' },
        color: {
          field: 'outcome',
          sort: ['answered', 'abstained', 'escalated'],
          scale: { range: ['#4c78a8', '#f58518', '#e45756'] },
        },
        tooltip: [{ field: 'label' }, { field: 'outcome' }, { field: 'count' }],
      },
    },
  } as TopLevelSpec;
}

/** Horizontal bars of metric deltas (B − A), green when better, red when worse. */
export function deltaChartSpec(rows: readonly CompareRow[]): TopLevelSpec {
  const values = rows
    .filter(
      (r) =>
        r.delta !== null &&
        !r.metric.endsWith('Ms') &&
        !r.metric.startsWith('p9') &&
        !r.metric.startsWith('p5'),
    )
    .map((r) => ({
      item: `${r.scope} · ${r.metric}`,
      delta: r.delta,
      better: r.better ? 'better' : 'worse or equal',
    }));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'B − A',
    width: 360,
    height: { step: 16 },
    data: { values },
    mark: 'bar',
    encoding: {
      y: { field: 'item', type: 'nominal', sort: null, title: null },
      x: { field: 'delta', type: 'quantitative', title: 'delta' },
      color: {
        field: 'better',
        scale: { domain: ['better', 'worse or equal'], range: ['#54a24b', '#e45756'] },
      },
    },
  } as TopLevelSpec;
}

// ── compare ──────────────────────────────────────────────────────────────────────────────────

export interface CompareRow {
  /** `dataset · config` for retrieval, `dataset` for answers. */
  scope: string;
  metric: string;
  a: number | null;
  b: number | null;
  delta: number | null;
  /** Whether B is better than A on this metric (lower is better for latencies and bad counts). */
  better: boolean;
}

const LOWER_IS_BETTER = new Set([
  'latencyP50Ms',
  'latencyP95Ms',
  'unsuppliedCitations',
  'removedMarkers',
  'p50 ms',
  'p95 ms',
]);

/**
 * Deltas B − A for every metric both reports have, matched by dataset (and configuration name for
 * retrieval). @throws Error when the reports are of different kinds.
 */
export function compareReports(a: EvalReport, b: EvalReport): CompareRow[] {
  if (a.kind !== b.kind) throw new Error(`cannot compare a ${a.kind} report with a ${b.kind} report`);
  const rows: CompareRow[] = [];
  const push = (
    scope: string,
    metric: string,
    x: number | null | undefined,
    y: number | null | undefined,
  ) => {
    const av = x ?? null;
    const bv = y ?? null;
    const delta = av !== null && bv !== null && !Number.isNaN(av) && !Number.isNaN(bv) ? bv - av : null;
    rows.push({
      scope,
      metric,
      a: av,
      b: bv,
      delta,
      better: delta !== null && (LOWER_IS_BETTER.has(metric) ? delta < 0 : delta > 0),
    });
  };
  if (a.kind === 'retrieval' && b.kind === 'retrieval') {
    for (const ra of a.runs) {
      const rb = b.runs.find((r) => r.dataset === ra.dataset);
      if (!rb) continue;
      for (const ca of ra.results) {
        const cb = rb.results.find((r) => r.config.name === ca.config.name);
        if (!cb || ca.status !== 'ok' || cb.status !== 'ok') continue;
        for (const m of ra.metrics)
          push(`${ra.dataset} · ${ca.config.name}`, m, ca.metrics[m], cb.metrics[m]);
        push(`${ra.dataset} · ${ca.config.name}`, 'p95 ms', ca.latencyP95Ms, cb.latencyP95Ms);
      }
    }
  } else if (a.kind === 'answers' && b.kind === 'answers') {
    for (const ra of a.runs) {
      const rb = b.runs.find((r) => r.dataset === ra.dataset);
      if (!rb) continue;
      for (const [key] of ANSWER_METRIC_LABELS) {
        push(ra.dataset, key, ra.metrics[key] as number | null, rb.metrics[key] as number | null);
      }
    }
  }
  return rows;
}

/** The deltas as a terminal table. */
export function compareTable(rows: readonly CompareRow[], markdown = false): string {
  return textTable(
    ['scope', 'metric', 'A', 'B', 'B − A'],
    rows.map((r) => [
      r.scope,
      r.metric,
      r.metric.endsWith('ms') || r.metric.endsWith('Ms') ? ms(r.a) : pct(r.a),
      r.metric.endsWith('ms') || r.metric.endsWith('Ms') ? ms(r.b) : pct(r.b),
      `${signed(r.delta, r.metric.endsWith('ms') || r.metric.endsWith('Ms') ? 1 : 3)}${r.delta ? (r.better ? ' ▲' : ' ▼') : ''}`,
    ]),
    markdown,
  );
}

// ── HTML ─────────────────────────────────────────────────────────────────────────────────────

function esc(s: unknown): string {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function htmlTable(header: string[], rows: string[][]): string {
  return `<table><thead><tr>${header.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

/** Parses a text table back into cells (header, rows), so HTML and terminal show the same numbers. */
function cells(table: string): [string[], string[][]] {
  const lines = table.split('\n').filter((l) => l.startsWith('|'));
  const split = (l: string) => l.slice(2, -2).split(' | ');
  return [split(lines[0] as string), lines.slice(2).map(split)];
}

const STYLE = `body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}.chart{margin:1rem 0}
details{margin:.5rem 0}code{background:#f6f6f6;padding:0 3px}.note{color:#555}.judge{color:#8a4b00}`;

/**
 * The self-contained HTML page of a report (and, with `compareWith`, of its comparison: the
 * report given first is A). Charts are inline SVG; there is no script and no external resource.
 */
export async function renderHtml(report: EvalReport, compareWith?: EvalReport): Promise<string> {
  const parts: string[] = [];
  parts.push(`<h1>supportbot eval: ${esc(report.kind)}</h1>`);
  parts.push(`<p class="note">${esc(report.createdAt)} · <code>${esc(report.command)}</code></p>`);
  if (compareWith) {
    const rows = compareReports(report, compareWith);
    parts.push('<h2>Comparison (B − A)</h2>');
    parts.push(
      `<p class="note">A: <code>${esc(report.command)}</code><br>B: <code>${esc(compareWith.command)}</code></p>`,
    );
    parts.push(`<div class="chart">${await renderSvg(deltaChartSpec(rows))}</div>`);
    parts.push(htmlTable(...cells(compareTable(rows, true))));
  }
  if (report.kind === 'retrieval') {
    for (const run of report.runs) {
      parts.push(`<h2>${esc(run.dataset)}</h2>`);
      parts.push(
        `<p class="note">${esc(run.queries)} queries, ${esc(run.documents)} documents. ${run.notes.map(esc).join(' ')}</p>`,
      );
      if (run.results.some((r) => r.status === 'ok'))
        parts.push(`<div class="chart">${await renderSvg(retrievalChartSpec(run))}</div>`);
      parts.push(htmlTable(...cells(retrievalTable(run, true))));
      for (const r of run.results.filter((x) => x.status === 'ok')) {
        const rows = r.perQuery.map((q) => [
          q.id,
          q.query,
          q.scores ? pct(q.scores['recall@10']) : '—',
          q.scores ? pct(q.scores['ndcg@10']) : '—',
          q.ranking.slice(0, 5).join(', '),
          Object.keys(q.relevant).join(', '),
        ]);
        parts.push(
          `<details><summary>per query: ${esc(r.config.name)}</summary>${htmlTable(['id', 'query', 'recall@10', 'nDCG@10', 'top 5 documents', 'relevant'], rows)}</details>`,
        );
      }
    }
  } else {
    const judged = report.runs.find((r) => r.judge);
    if (judged)
      parts.push(
        `<p class="judge">LLM-as-judge scores by ${esc(judged.judge)}: a model's opinion, not ground truth.</p>`,
      );
    parts.push(`<div class="chart">${await renderSvg(answersChartSpec(report.runs))}</div>`);
    parts.push(htmlTable(...cells(answersTable(report.runs, true))));
    for (const run of report.runs) {
      parts.push(`<p class="note">${esc(run.dataset)}: ${run.notes.map(esc).join(' ')}</p>`);
      const rows = run.perQuestion.map((q) => [
        q.id,
        q.label ?? '',
        q.question,
        q.outcome,
        q.cited.join(', '),
        q.citationPrecision === null ? '—' : pct(q.citationPrecision),
        ms(q.latencyMs),
        q.judge ? pct(q.judge.score) : '',
      ]);
      parts.push(
        `<details><summary>per question: ${esc(run.dataset)} · ${esc(run.config.name)}</summary>${htmlTable(['id', 'label', 'question', 'outcome', 'cited', 'citation precision', 'ms', 'judge'], rows)}</details>`,
      );
    }
  }
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>supportbot eval: ${esc(report.kind)}</title><style>${STYLE}</style></head><body>${parts.join('\n')}</body></html>\n`;
}

/**
 * Writes each chart of a report as a standalone SVG file into `dir`: `<dataset>-retrieval.svg`
 * per retrieval run, or one `<datasets>-answers.svg`. Returns the paths.
 */
export async function writeChartSvgs(report: EvalReport, dir: string): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const out: [string, TopLevelSpec][] =
    report.kind === 'retrieval'
      ? report.runs.map((run) => [`${run.dataset}-retrieval.svg`, retrievalChartSpec(run)])
      : [[`${report.runs.map((r) => r.dataset).join('+')}-answers.svg`, answersChartSpec(report.runs)]];
  const files: string[] = [];
  for (const [name, spec] of out) {
    const file = path.join(dir, name);
    // Standalone files (for Markdown docs) carry their accessible name as <title>, which the SVG
    // spec reads as the image's text alternative; Vega's ARIA roles on groups and marks are left
    // out (`aria: false`, and the roles Vega keeps on frames) since a document shows one image.
    const svg = await renderSvg({ ...spec, config: { ...(spec.config ?? {}), aria: false } } as TopLevelSpec);
    const title = typeof spec.title === 'string' ? spec.title : name.replace(/\.svg$/, '');
    const plain = svg.replace(/ (role|aria-roledescription)="[^"]*"/g, '');
    writeFileSync(file, plain.replace(/^<svg([^>]*)>/, `<svg$1><title>${esc(title)}</title>`));
    files.push(file);
  }
  return files;
}

/**
 * Writes `<base>.json` and `<base>.html` (creating the folder). Returns both paths.
 */
export async function writeReport(report: EvalReport, base: string): Promise<{ json: string; html: string }> {
  mkdirSync(path.dirname(path.resolve(base)), { recursive: true });
  const json = `${base}.json`;
  const html = `${base}.html`;
  writeFileSync(json, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(html, await renderHtml(report));
  return { json, html };
}
