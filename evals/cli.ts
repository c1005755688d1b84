/**
 * `supportbot eval …` commands, registered on the CLI's commander program by
 * `registerEvalCommands(program, openRuntime)`:
 *
 * - `eval retrieval --dataset SPEC… [--configs FILE] [--chunk-sizes 128,300,600] [--sample N --seed S] [--out BASE]`
 * - `eval answers --dataset SPEC… [--sample N --seed S] [--judge-model M --judge-base-url URL] [--out BASE]`
 * - `eval gate CANDIDATE.json BASELINE.json [--tolerance metric=value,…]` (exit 1 with reasons when it fails)
 * - `eval report A.json [--compare B.json] [--out FILE.html] [--svg DIR]` (or `eval report --compare A.json B.json`)
 * - `eval gaps [--since ISO] [--threshold J] [--limit N] [--json]`
 *
 * Dataset specs: see `evals/datasets.ts#loadDatasets`. Every run writes `<out>.json` and
 * `<out>.html` and prints the terminal table.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import type { Runtime } from '../bot/runtime.ts';
import type { Embedder } from '../core/embedder.ts';
import type { Generator } from '../core/generator.ts';
import type { Reranker } from '../core/reranker.ts';
import { type AnswerEvalResult, runAnswerEval } from './answers.ts';
import { type EvalDataset, loadDatasets, subsample } from './datasets.ts';
import { coverageGaps, gapsText } from './gaps.ts';
import { gate, parseTolerances } from './gate.ts';
import { sharedHelpcentersDir } from './helpcenters.ts';
import { type Judge, openAIJudge } from './judge.ts';
import {
  compareReports,
  compareTable,
  type EvalReport,
  readReport,
  renderHtml,
  retrievalTable,
  summaryText,
  writeChartSvgs,
  writeReport,
} from './report.ts';
import {
  defaultConfigs,
  type RetrievalConfig,
  type RetrievalEvalResult,
  runRetrievalEval,
} from './retrieval.ts';

/** Where output goes; the CLI uses the process streams, tests capture them. */
export interface EvalIO {
  out: (text: string) => void;
  err: (text: string) => void;
}

const processIO: EvalIO = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
};

function intOption(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be an integer >= 1');
  return n;
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** The embedder, reranker and generator a runtime offers, when the runtime of this version has them. */
function runtimeParts(rt: Runtime): { embedder?: Embedder; reranker?: Reranker; generator?: Generator } {
  // The composition root grows these as the model issues land; read them without assuming they exist.
  const r = rt as unknown as {
    embedder?: Embedder | null;
    reranker?: Reranker | null;
    generator?: Generator | null;
  };
  return {
    ...(r.embedder ? { embedder: r.embedder } : {}),
    ...(r.reranker ? { reranker: r.reranker } : {}),
    ...(r.generator ? { generator: r.generator } : {}),
  };
}

interface DatasetOptions {
  dataset: string[];
  corpus?: string;
  dialect?: 'markdown' | 'zendesk' | 'zulip' | 'docusaurus';
  sample?: number;
  seed: number;
}

function datasetsFrom(opts: DatasetOptions): EvalDataset[] {
  const sets = opts.dataset.flatMap((spec) =>
    loadDatasets(spec, {
      ...(opts.corpus ? { corpus: opts.corpus } : {}),
      ...(opts.dialect ? { dialect: opts.dialect } : {}),
      helpcentersRoot:
        spec.startsWith('helpcenter:') && spec !== 'helpcenter:examples' ? sharedHelpcentersDir() : null,
    }),
  );
  return opts.sample ? sets.map((d) => subsample(d, opts.sample as number, opts.seed)) : sets;
}

function defaultOut(kind: string): string {
  return path.join('eval-results', `${kind}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
}

function commandLine(): string {
  return ['supportbot', ...process.argv.slice(2)].join(' ');
}

/**
 * Adds the `eval` command group to `program` (commander 14). `openRuntime` is called only by the
 * commands that need the configuration or the stores (`answers`, `gaps`, and `retrieval` for the
 * configured embedder/reranker); the caller owns and closes the runtime.
 * A failed gate sets `process.exitCode = 1`; other errors throw, for the CLI's one-line report.
 */
export function registerEvalCommands(
  program: Command,
  openRuntime: () => Promise<Runtime>,
  io: EvalIO = processIO,
): Command {
  const evalCmd = program
    .command('eval')
    .description('measure retrieval and answers, gate adapters, find coverage gaps');

  evalCmd
    .command('retrieval')
    .description('recall@k, MRR@10 and nDCG@10 of retrieval configurations side by side')
    .requiredOption(
      '--dataset <spec>',
      'BEIR folder, FeedbackQA/StackFAQ/MTRAG folder, questions .jsonl, or helpcenter:<name> (repeatable)',
      collect,
    )
    .option('--corpus <path>', 'corpus for a questions .jsonl: a help-center folder or a corpus.jsonl')
    .option('--dialect <name>', 'dialect of a --corpus folder')
    .option(
      '--configs <file>',
      'JSON array of configurations {name, chunking:{maxTokens, overlapTokens}, mode, alpha?, fusion?, rerank?}',
    )
    .option('--chunk-sizes <list>', 'BM25 only, at these chunk sizes (overlap 10%), e.g. 128,300,600')
    .option('--sample <n>', 'evaluate a fixed-seed sample of n queries per dataset', intOption)
    .option('--seed <n>', 'seed for --sample', intOption, 1)
    .option('--out <base>', 'write <base>.json and <base>.html (default eval-results/retrieval-<time>)')
    .option('--markdown', 'print the tables as Markdown')
    .action(
      async (
        opts: DatasetOptions & { configs?: string; chunkSizes?: string; out?: string; markdown?: boolean },
      ) => {
        let configs: RetrievalConfig[] = defaultConfigs();
        if (opts.configs) configs = JSON.parse(readFileSync(opts.configs, 'utf8')) as RetrievalConfig[];
        else if (opts.chunkSizes) {
          configs = opts.chunkSizes.split(',').map((s) => {
            const maxTokens = intOption(s.trim());
            return {
              name: `bm25-${maxTokens}`,
              chunking: { maxTokens, overlapTokens: Math.round(maxTokens / 10) },
              mode: 'bm25',
            };
          });
        }
        const needsModels = configs.some((c) => c.mode !== 'bm25' || c.rerank);
        const parts = needsModels ? runtimeParts(await openRuntime()) : {};
        const runs: RetrievalEvalResult[] = [];
        for (const dataset of datasetsFrom(opts)) {
          io.err(`${dataset.name}: ${dataset.queries.length} queries\n`);
          runs.push(
            await runRetrievalEval(dataset, configs, {
              embedder: parts.embedder ?? null,
              reranker: parts.reranker ?? null,
              onConfigDone: (r) =>
                io.err(
                  `  ${r.config.name}: ${r.status === 'ok' ? `nDCG@10 ${r.metrics['ndcg@10']?.toFixed(3)}` : r.reason}\n`,
                ),
            }),
          );
        }
        const report: EvalReport = {
          version: 1,
          kind: 'retrieval',
          command: commandLine(),
          createdAt: new Date().toISOString(),
          runs,
        };
        const files = await writeReport(report, opts.out ?? defaultOut('retrieval'));
        io.out(
          `${opts.markdown ? runs.map((r) => `### ${r.dataset}\n\n${retrievalMarkdown(r)}`).join('\n\n') : summaryText(report)}\n`,
        );
        io.err(`wrote ${files.json} and ${files.html}\n`);
      },
    );

  evalCmd
    .command('answers')
    .description(
      'run answer() over labelled questions: answer/abstain rates, citation accuracy, escalation, latency',
    )
    .requiredOption(
      '--dataset <spec>',
      'dataset (see eval retrieval); MTRAG folder for answerability labels (repeatable)',
      collect,
    )
    .option('--corpus <path>', 'corpus for a questions .jsonl')
    .option('--dialect <name>', 'dialect of a --corpus folder')
    .option('--sample <n>', 'a fixed-seed sample of n questions per dataset', intOption)
    .option('--seed <n>', 'seed for --sample', intOption, 1)
    .option('--name <name>', 'label of this configuration in reports (default: the generator id)')
    .option('--adapter <name>', 'LoRA adapter for every request')
    .option('--judge-model <model>', 'turn on LLM-as-judge with this model (off by default)')
    .option(
      '--judge-base-url <url>',
      'OpenAI-compatible server of the judge (default $SUPPORTBOT_JUDGE_BASE_URL, else the configured LLM_BASE_URL)',
    )
    .option('--out <base>', 'write <base>.json and <base>.html (default eval-results/answers-<time>)')
    .action(
      async (
        opts: DatasetOptions & {
          name?: string;
          adapter?: string;
          judgeModel?: string;
          judgeBaseUrl?: string;
          out?: string;
        },
      ) => {
        const rt = await openRuntime();
        const { generator } = runtimeParts(rt);
        let judge: Judge | null = null;
        if (opts.judgeModel) {
          // The configured OpenAI-compatible endpoint (LLM_BASE_URL) unless the judge has its own.
          const baseUrl = opts.judgeBaseUrl ?? process.env.SUPPORTBOT_JUDGE_BASE_URL ?? rt.config.llm.baseUrl;
          if (!baseUrl) {
            throw new Error(
              '--judge-model needs --judge-base-url, SUPPORTBOT_JUDGE_BASE_URL or LLM_BASE_URL',
            );
          }
          const apiKey =
            process.env.SUPPORTBOT_JUDGE_API_KEY ??
            (baseUrl === rt.config.llm.baseUrl ? rt.config.llm.apiKey : undefined);
          judge = openAIJudge({ baseUrl, model: opts.judgeModel, ...(apiKey ? { apiKey } : {}) });
          io.err(`LLM-as-judge on: ${judge.id} (scores are labelled as the judge's opinion)\n`);
        }
        const runs: AnswerEvalResult[] = [];
        for (const dataset of datasetsFrom(opts)) {
          io.err(`${dataset.name}: ${dataset.queries.length} questions\n`);
          runs.push(
            await runAnswerEval(
              dataset,
              {
                name: opts.name ?? generator?.id ?? 'extractive',
                ...(generator ? { generator } : {}),
                ...(opts.adapter ? { adapter: opts.adapter } : {}),
                topK: rt.config.retrieval.topK,
                abstainThreshold: rt.config.answer.abstainThreshold,
                maxAnswerChars: rt.config.answer.maxAnswerChars,
                chunking: {
                  maxTokens: rt.config.chunking.maxTokens,
                  overlapTokens: rt.config.chunking.overlapTokens,
                },
              },
              { judge },
            ),
          );
        }
        const report: EvalReport = {
          version: 1,
          kind: 'answers',
          command: commandLine(),
          createdAt: new Date().toISOString(),
          runs,
        };
        const files = await writeReport(report, opts.out ?? defaultOut('answers'));
        io.out(`${summaryText(report)}\n`);
        io.err(`wrote ${files.json} and ${files.html}\n`);
      },
    );

  evalCmd
    .command('gate')
    .description('fail (exit 1) when the candidate answer eval is worse than the baseline beyond tolerance')
    .argument('<candidate>', 'answers result JSON of the candidate')
    .argument('<baseline>', 'answers result JSON of the baseline')
    .option('--tolerance <list>', 'per-metric tolerances, e.g. answerRate=0.05,latencyP95Ms=0.5')
    .option('--json', 'print the decision as JSON')
    .action((candidateFile: string, baselineFile: string, opts: { tolerance?: string; json?: boolean }) => {
      const cand = readReport(candidateFile);
      const base = readReport(baselineFile);
      if (cand.kind !== 'answers' || base.kind !== 'answers')
        throw new Error('eval gate compares two answers results (from eval answers)');
      const rules = parseTolerances(opts.tolerance);
      const decisions = cand.runs.map((c) => {
        const b = base.runs.find((r) => r.dataset === c.dataset);
        if (!b) throw new Error(`baseline has no result for dataset ${c.dataset}`);
        return gate(c, b, rules);
      });
      const pass = decisions.every((d) => d.pass);
      if (opts.json) io.out(`${JSON.stringify({ pass, decisions }, null, 2)}\n`);
      else {
        for (const d of decisions) {
          io.out(`${d.pass ? 'PASS' : 'FAIL'} ${d.dataset}: ${d.candidate} vs ${d.baseline}\n`);
          for (const r of d.reasons) io.out(`  - ${r}\n`);
        }
      }
      if (!pass) process.exitCode = 1;
    });

  evalCmd
    .command('report')
    .description(
      'render a result JSON as HTML, or compare two results (B − A): report A.json --compare B.json, or report --compare A.json B.json',
    )
    .argument('[a]', 'result JSON (A)')
    .option('--compare <files...>', 'B.json (after A), or A.json B.json: show deltas B − A')
    .option('--out <file>', 'HTML file to write (default: next to A, .html or -vs-<B>.html)')
    .option('--svg <dir>', "also write each of A's charts as a standalone SVG file into this folder")
    .action(async (first: string | undefined, opts: { compare?: string[]; out?: string; svg?: string }) => {
      const files = [...(first ? [first] : []), ...(opts.compare ?? [])];
      if (files.length === 0 || files.length > 2 || (opts.compare && files.length !== 2)) {
        throw new InvalidArgumentError('give one result file, or two to compare (A.json --compare B.json)');
      }
      const [aFile, bFile] = files as [string, string | undefined];
      const a = readReport(aFile);
      if (opts.svg) for (const file of await writeChartSvgs(a, opts.svg)) io.err(`wrote ${file}\n`);
      const b = bFile ? readReport(bFile) : undefined;
      const out =
        opts.out ??
        (bFile
          ? aFile.replace(/\.json$/, `-vs-${path.basename(bFile, '.json')}.html`)
          : aFile.replace(/\.json$/, '.html'));
      writeFileSync(out, await renderHtml(a, b));
      io.out(`${b ? compareTable(compareReports(a, b)) : summaryText(a)}\n`);
      io.err(`wrote ${out}\n`);
    });

  evalCmd
    .command('gaps')
    .description('questions abstained on or rated 👎, grouped by similar wording, biggest first')
    .option('--since <iso>', 'only answers created at or after this time (ISO-8601 UTC)')
    .option('--threshold <j>', 'Jaccard similarity to group questions (0..1)', (v) => {
      const n = Number(v);
      if (!(n > 0 && n <= 1)) throw new InvalidArgumentError('must be a number in (0, 1]');
      return n;
    })
    .option('--limit <n>', 'read at most this many recent answers', intOption)
    .option('--json', 'machine-readable output')
    .action(async (opts: { since?: string; threshold?: number; limit?: number; json?: boolean }) => {
      const rt = await openRuntime();
      const report = await coverageGaps(rt.state, {
        ...(opts.since ? { since: opts.since } : {}),
        ...(opts.threshold ? { threshold: opts.threshold } : {}),
        ...(opts.limit ? { limit: opts.limit } : {}),
      });
      io.out(opts.json ? `${JSON.stringify(report, null, 2)}\n` : `${gapsText(report)}\n`);
    });

  return evalCmd;
}

function retrievalMarkdown(run: RetrievalEvalResult): string {
  return `${run.queries} queries, ${run.documents} documents. ${run.notes.join(' ')}\n\n${retrievalTable(run, true)}`;
}
