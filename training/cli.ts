/**
 * `supportbot feedback …`, `supportbot train` and `supportbot adapters …`, registered on the CLI's
 * commander program by `registerTrainingCommands(program, openRuntime)`:
 *
 * - `feedback export [--format chat|prompt-completion] [--out DIR] [--seed DATA_DIR] [--seed-limit N]
 *    [--min N] [--validation F] [--json]`: the PII-scrubbed dataset from rated answers (plus seed
 *   sets), as chat JSONL and/or prompt/completion/label JSONL (see `training/export-data.ts`).
 * - `train [--base DIR] [--epochs N] [--rank R] [--alpha A] [--lr LR] [--objective sft|kto] [--promote] [--min N]
 *    [--eval-dataset SPEC] [--eval-sample N]`: one training job (lock `job:train`), progress on stderr.
 * - `adapters list [--json]`, `adapters promote <version> [--force] [--eval-dataset SPEC]`,
 *   `adapters rollback`.
 *
 * The caller owns and closes the runtime. A refused promotion sets `process.exitCode = 1`; other
 * errors throw, for the CLI's one-line report.
 */
import os from 'node:os';
import path from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import type { Runtime } from '../bot/runtime.ts';
import { SupportbotError } from '../core/errors.ts';
import {
  checkMinimumSize,
  collectFeedbackExamples,
  DEFAULT_MIN_EXAMPLES,
  finalizeDataset,
} from './dataset/build.ts';
import { knowledgeStoreChunkLookup } from './dataset/chunks.ts';
import { PII_KINDS } from './dataset/pii.ts';
import { loadSharedSeeds } from './dataset/seeds.ts';
import type { BuiltDataset } from './dataset/types.ts';
import { EXPORT_FORMATS, type ExportFormat, exportDataset } from './export-data.ts';
import { runTrainingJob, type TrainFn } from './job.ts';
import type { AdapterVersion } from './registry.ts';
import { evaluatorOf, promptSettingsOf, registryOf, trainingDepsOf } from './service.ts';

/** Where output goes; the CLI uses the process streams, tests capture them. */
export interface TrainingIO {
  out: (text: string) => void;
  err: (text: string) => void;
}

const processIO: TrainingIO = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
};

function intOption(min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`must be an integer >= ${min}`);
    return n;
  };
}

function numberOption(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a number > 0');
  return n;
}

function fractionOption(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n >= 1) throw new InvalidArgumentError('must be in [0, 1)');
  return n;
}

/** The dataset stats as lines for people. */
export function datasetSummary(d: BuiltDataset): string[] {
  const s = d.stats;
  const skipped = Object.entries(s.skipped);
  return [
    `dataset ${d.hash.slice(0, 12)}: ${d.examples.length} examples (${s.train} train, ${s.validation} validation) from ${s.read} read`,
    `kinds: ${s.kinds.sft} answers (SFT), ${s.kinds.escalation} confirmed escalations, ${s.kinds.undesirable} 👎 (KTO undesirable)`,
    `PII replaced: ${PII_KINDS.map((k) => `${k} ${s.pii[k]}`).join(', ')}`,
    `duplicates dropped: ${s.duplicates}`,
    ...(skipped.length ? [`left out: ${skipped.map(([why, n]) => `${n} ${why}`).join(', ')}`] : []),
  ];
}

function versionLine(v: AdapterVersion): string {
  const metrics = Object.entries(v.metrics)
    .filter(([, x]) => typeof x === 'number')
    .slice(0, 3)
    .map(([k, x]) => `${k} ${(x as number).toFixed(4)}`)
    .join(', ');
  const gate = v.gate
    ? v.gate.pass
      ? 'gate passed'
      : v.gate.forced
        ? `forced by ${v.gate.forced.by} (gate: ${v.gate.reasons.join('; ')})`
        : `gate failed: ${v.gate.reasons.join('; ')}`
    : 'not evaluated';
  return `v${v.version}  ${v.name.padEnd(14)} ${v.state.padEnd(9)} ${v.createdAt}  data ${v.datasetHash.slice(0, 12)}  base ${path.basename(v.baseModel)}  ${metrics || 'no metrics'}  ${gate}`;
}

function parseVersion(value: string): number {
  const n = Number(value.replace(/^v/i, '').replace(/^.*-v/i, ''));
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('a version: 3, v3 or support-v3');
  return n;
}

/**
 * Adds the `feedback`, `train` and `adapters` commands to `program` (commander 14). `openRuntime`
 * is called by every command; the caller owns and closes the runtime. `options.train` replaces
 * the trainer (the default loads `training/train.ts`).
 */
export function registerTrainingCommands(
  program: Command,
  openRuntime: () => Promise<Runtime>,
  io: TrainingIO = processIO,
  options: { train?: TrainFn } = {},
): Command {
  const feedback = program.command('feedback').description('the training data people rated');
  feedback
    .command('export')
    .description(
      'write the PII-scrubbed dataset from rated answers as JSONL (chat and/or prompt-completion-label)',
    )
    .option('--format <format>', `${EXPORT_FORMATS.join(' | ')} (default: both)`, (v: string) => {
      if (!(EXPORT_FORMATS as readonly string[]).includes(v))
        throw new InvalidArgumentError(`one of ${EXPORT_FORMATS.join(', ')}`);
      return v as ExportFormat;
    })
    .option('--out <dir>', 'output folder (default DATA_DIR/training/export)')
    .option(
      '--seed <dataDir>',
      'also load the seed sets under this shared data folder (Bitext, MTRAG, FeedbackQA)',
    )
    .option('--seed-limit <n>', 'at most this many examples per seed file', intOption(1))
    .option(
      '--min <n>',
      `fewest supervised examples (default ${DEFAULT_MIN_EXAMPLES} without --seed, else 0)`,
      intOption(0),
    )
    .option('--validation <fraction>', 'share of examples in validation (default 0.1)', fractionOption)
    .option('--json', 'print the stats as JSON')
    .action(
      async (opts: {
        format?: ExportFormat;
        out?: string;
        seed?: string;
        seedLimit?: number;
        min?: number;
        validation?: number;
        json?: boolean;
      }) => {
        const rt = await openRuntime();
        const prompt = promptSettingsOf(rt);
        const chunks = knowledgeStoreChunkLookup(rt.knowledge);
        let collected: Awaited<ReturnType<typeof collectFeedbackExamples>>;
        try {
          collected = await collectFeedbackExamples({ state: rt.state, chunks, prompt });
        } finally {
          await chunks.close();
        }
        let seedCounts: Record<string, number> = {};
        if (opts.seed) {
          const seeds = loadSharedSeeds(opts.seed, {
            prompt,
            ...(opts.seedLimit ? { limit: opts.seedLimit } : {}),
          });
          collected.raw.push(...seeds.raw);
          collected.read += seeds.raw.length;
          seedCounts = seeds.counts;
        }
        const dataset = finalizeDataset(collected.raw, {
          read: collected.read,
          skipped: collected.skipped,
          ...(opts.validation !== undefined ? { validationFraction: opts.validation } : {}),
        });
        checkMinimumSize(dataset, opts.min ?? (opts.seed ? 0 : DEFAULT_MIN_EXAMPLES));
        const out = opts.out ?? path.join(rt.config.dataDir, 'training', 'export');
        const summary = exportDataset(dataset, out, opts.format ? [opts.format] : EXPORT_FORMATS);
        if (opts.json) {
          io.out(
            `${JSON.stringify({ hash: dataset.hash, stats: dataset.stats, seeds: seedCounts, files: summary.files }, null, 2)}\n`,
          );
          return;
        }
        const lines = [
          ...datasetSummary(dataset),
          ...(opts.seed
            ? [
                `seed sets: ${Object.entries(seedCounts)
                  .map(([k, n]) => `${k} ${n}`)
                  .join(', ')}`,
              ]
            : []),
          ...summary.files.map((f) => `wrote ${f.path} (${f.lines} lines)`),
        ];
        io.out(`${lines.join('\n')}\n`);
      },
    );

  program
    .command('train')
    .description('retrain the tone/escalation LoRA adapter from rated answers (one job at a time)')
    .option(
      '--base <dir>',
      'base model folder: safetensors + config.json + tokenizer.json (default $TRAIN_BASE_MODEL)',
    )
    .option('--epochs <n>', 'training epochs', intOption(1))
    .option('--rank <r>', 'LoRA rank', intOption(1))
    .option('--alpha <a>', 'LoRA alpha', numberOption)
    .option('--lr <rate>', 'learning rate', numberOption)
    .option('--objective <objective>', 'sft (👍 answers only) or kto (👍 and 👎)', (v: string) => {
      if (v !== 'sft' && v !== 'kto') throw new InvalidArgumentError('sft or kto');
      return v;
    })
    .option('--promote', 'promote the adapter when the eval gate passes')
    .option('--min <n>', `fewest supervised examples (default ${DEFAULT_MIN_EXAMPLES})`, intOption(0))
    .option('--eval-dataset <spec>', 'eval dataset for the gate (default helpcenter:examples)')
    .option('--eval-sample <n>', 'evaluate on a deterministic sample of n questions', intOption(1))
    .action(
      async (opts: {
        base?: string;
        evalSample?: number;
        epochs?: number;
        rank?: number;
        alpha?: number;
        lr?: number;
        objective?: 'sft' | 'kto';
        promote?: boolean;
        min?: number;
        evalDataset?: string;
      }) => {
        const base = opts.base ?? process.env.TRAIN_BASE_MODEL;
        if (!base) {
          throw new SupportbotError(
            'no-base-model',
            'train needs a base model folder: --base DIR or TRAIN_BASE_MODEL (Hugging Face safetensors + config.json + tokenizer.json)',
          );
        }
        const rt = await openRuntime();
        const deps = await trainingDepsOf(rt, {
          minExamples: opts.min,
          evalDataset: opts.evalDataset,
          evalSample: opts.evalSample,
          train: options.train,
        });
        const hyperparameters: Record<string, unknown> = {
          ...(opts.epochs !== undefined ? { epochs: opts.epochs } : {}),
          ...(opts.rank !== undefined ? { rank: opts.rank } : {}),
          ...(opts.alpha !== undefined ? { alpha: opts.alpha } : {}),
          ...(opts.lr !== undefined ? { learningRate: opts.lr } : {}),
          ...(opts.objective ? { objective: opts.objective } : {}),
        };
        try {
          let last = '';
          const r = await runTrainingJob(deps, {
            baseModelDir: path.resolve(base),
            hyperparameters,
            autoPromote: opts.promote ?? false,
            requestedBy: `cli:${os.userInfo().username}`,
            onProgress: (p) => {
              const line = `[${Math.round(p.fraction * 100)
                .toString()
                .padStart(3)}%] ${p.message}`;
              if (line !== last) io.err(`${line}\n`);
              last = line;
            },
          });
          io.out(
            `${[...datasetSummary(r.dataset), versionLine(r.version), r.promoted ? `${r.version.name} is promoted and serves now` : ''].filter(Boolean).join('\n')}\n`,
          );
          if (!deps.evaluator) {
            io.err('note: the configured generator cannot load adapter files, so the gate was not run.\n');
          }
        } finally {
          await deps.registry.close();
        }
      },
    );

  const adapters = program
    .command('adapters')
    .description('trained adapter versions: list, promote, roll back');
  adapters
    .command('list')
    .description('adapter versions with their state, dataset, metrics and gate decision')
    .option('--json', 'print as JSON')
    .action(async (opts: { json?: boolean }) => {
      const rt = await openRuntime();
      const registry = await registryOf(rt);
      try {
        const versions = await registry.list();
        if (opts.json) {
          io.out(`${JSON.stringify(versions, null, 2)}\n`);
          return;
        }
        if (versions.length === 0) {
          io.out('No adapter versions yet: run `supportbot train`.\n');
          return;
        }
        const promoted = versions.find((v) => v.state === 'promoted');
        io.out(
          `${[...versions.map(versionLine), promoted ? `serving: ${promoted.name}` : 'serving: the base model'].join('\n')}\n`,
        );
      } finally {
        await registry.close();
      }
    });
  adapters
    .command('promote')
    .description('serve an adapter version, if the eval gate passes against the one serving now')
    .argument('<version>', 'version: 3, v3 or support-v3', parseVersion)
    .option('--force', 'promote even when the gate fails or cannot run (recorded on the version)')
    .option('--eval-dataset <spec>', 'eval dataset for the gate (default helpcenter:examples)')
    .option('--sample <n>', 'evaluate on a deterministic sample of n questions', intOption(1))
    .action(async (version: number, opts: { force?: boolean; evalDataset?: string; sample?: number }) => {
      const rt = await openRuntime();
      const registry = await registryOf(rt);
      try {
        const evaluator = evaluatorOf(rt, { dataset: opts.evalDataset, sample: opts.sample });
        const outcome = await registry.promote(version, {
          ...(evaluator ? { evaluator } : {}),
          force: opts.force ?? false,
          by: `cli:${os.userInfo().username}`,
        });
        if (!outcome.promoted) {
          io.err(
            `Not promoted: ${outcome.version.name} fails the gate against ${outcome.gate.baseline}:\n${outcome.gate.reasons.map((r) => `  - ${r}`).join('\n')}\nUse --force to promote anyway (recorded).\n`,
          );
          process.exitCode = 1;
          return;
        }
        io.out(
          `${outcome.version.name} promoted${outcome.gate.forced ? ` (forced; gate: ${outcome.gate.reasons.join('; ')})` : ' (gate passed)'}; every replica switches within its poll interval.\n`,
        );
      } finally {
        await registry.close();
      }
    });
  adapters
    .command('rollback')
    .description('serve the adapter promoted before the current one (or the base model)')
    .action(async () => {
      const rt = await openRuntime();
      const registry = await registryOf(rt);
      try {
        const { from, to } = await registry.rollback({ by: `cli:${os.userInfo().username}` });
        io.out(`Rolled back from ${from.name} to ${to ? to.name : 'the base model'}.\n`);
      } finally {
        await registry.close();
      }
    });
  return program;
}
