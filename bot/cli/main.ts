import path from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { loadConfig } from '../../core/config.ts';
import { SupportbotError } from '../../core/errors.ts';
import { SqliteKnowledgeStore } from '../../core/knowledge-store/sqlite.ts';
import type { AnswerResult, SearchHit } from '../../core/types.ts';
import { registerEvalCommands } from '../../evals/cli.ts';
import { formatSyncSummary, type SyncSummary } from '../../sync/sync.ts';
import { registerTrainingCommands } from '../../training/cli.ts';
import { runConsole } from '../console/console.ts';
import { formatAnswer } from '../console/format.ts';
import { migrateKnowledge } from '../migrate.ts';
import { Runtime, weaviateOptions } from '../runtime.ts';
import { syncProgressReporter } from './progress.ts';

interface GlobalOptions {
  config?: string;
  dataDir?: string;
}

/** Machine-readable `ask --json` shape; documented in the README ("CLI reference"). */
export function answerJson(question: string, r: AnswerResult) {
  return {
    question,
    answer: r.text,
    citations: r.citations.map((c) => ({
      n: c.n,
      articleId: c.articleId,
      source: c.source,
      title: c.title,
      url: c.url,
      sourcePath: c.sourcePath,
      chunkIds: c.chunkIds,
    })),
    abstained: r.abstained,
    escalated: r.escalated,
    escalationReason: r.escalationReason ?? null,
    confidence: Number(r.confidence.toFixed(4)),
    generator: r.generator,
    adapter: r.adapter ?? null,
    fallback: r.fallback ?? null,
    retrievalMode: r.retrievalMode ?? 'bm25',
    latencyMs: Math.round(r.latencyMs * 10) / 10,
    retrieved: r.retrieved.map(hitJson),
  };
}

function hitJson(h: SearchHit) {
  return {
    rank: h.rank,
    score: Number(h.score.toFixed(4)),
    chunkId: h.chunk.id,
    articleId: h.chunk.articleId,
    source: h.chunk.source,
    title: h.chunk.title,
    url: h.chunk.url,
    sourcePath: h.chunk.sourcePath,
    headingPath: h.chunk.headingPath,
    text: h.chunk.text,
  };
}

/**
 * Runs the `supportbot` CLI with `argv` (as `process.argv`) and resolves to the exit code:
 * 0 success, 1 an error reported in one line on stderr, 2 a usage error.
 */
export async function main(argv: string[]): Promise<number> {
  // `supportbot search … | head` closes stdout early: stop quietly instead of an EPIPE stack trace.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  let runtime: Runtime | null = null;
  const open = async (opts: GlobalOptions): Promise<Runtime> => {
    const env = { ...process.env };
    if (opts.dataDir) env.DATA_DIR = opts.dataDir;
    runtime = await Runtime.open(loadConfig({ file: opts.config, env }));
    return runtime;
  };
  /**
   * First run, and first use of a newly configured source: every configured source without an
   * article in the store is synced before answering (the others are left to `sync`).
   */
  const ensureSynced = async (rt: Runtime) => {
    const unsynced = await rt.unsyncedSources();
    if (unsynced.length === 0) return;
    process.stderr.write(
      (await rt.isEmpty())
        ? 'The knowledge store is empty: syncing the configured sources first.\n'
        : `The knowledge store has no articles from ${unsynced.join(', ')} yet: syncing the configured sources first.\n`,
    );
    printSummaries(await rt.syncJobs(unsynced, { requestedBy: 'cli', onProgress: syncProgressReporter() }));
  };

  const program = new Command('supportbot')
    .description('Answers support questions from your help center, with citations.')
    .option(
      '-c, --config <file>',
      'config file (default: ./supportbot.config.{yaml,json} or $SUPPORTBOT_CONFIG)',
    )
    .option('-d, --data-dir <dir>', 'data directory (default: ./data or $DATA_DIR)')
    .showHelpAfterError()
    .exitOverride();
  const globals = () => program.opts<GlobalOptions>();

  program
    .command('sync')
    .description('sync help-center sources into the knowledge store (incremental)')
    .argument('[sources...]', 'source names (default: all configured)')
    .option('--force', 're-chunk every article even when unchanged')
    .option('--reembed', 're-embed every chunk after the embedding model changed (no re-chunking)')
    .option('--json', 'print the summaries as JSON')
    .action(async (names: string[], opts: { force?: boolean; reembed?: boolean; json?: boolean }) => {
      const rt = await open(globals());
      const summaries = await rt.syncJobs(names, {
        requestedBy: 'cli',
        force: opts.force,
        reembed: opts.reembed,
        onProgress: syncProgressReporter(),
      });
      if (opts.json) process.stdout.write(`${JSON.stringify(summaries, null, 2)}\n`);
      else printSummaries(summaries);
      // A full sync also forgets sources removed from the config; a named one touches only those.
      if (names.length === 0) {
        for (const p of await rt.pruneUnconfigured()) {
          process.stderr.write(
            `pruned source ${p.source}: ${p.deleted} articles deleted (no longer configured)\n`,
          );
        }
      }
      if (summaries.some((s) => s.sourceError)) process.exitCode = 1;
    });

  program
    .command('search')
    .description(
      'search the knowledge store as answers do (BM25, or hybrid with an embedding model) and print the top chunks',
    )
    .argument('<query...>', 'search text')
    .addOption(new Option('-k, --top-k <n>', 'number of results').default(5).argParser(positiveInt))
    .option('--source <name>', 'only this source (repeat for more)', (v: string, acc: string[] = []) => [
      ...acc,
      v,
    ])
    .addOption(
      new Option(
        '--mode <mode>',
        'retrieval mode (default: hybrid with an embedding model, else bm25)',
      ).choices(['bm25', 'vector', 'hybrid']),
    )
    .option('--json', 'machine-readable output')
    .action(
      async (
        words: string[],
        opts: { topK: number; source?: string[]; mode?: 'bm25' | 'vector' | 'hybrid'; json?: boolean },
      ) => {
        const rt = await open(globals());
        const query = checkedText(words.join(' '), 'query', rt.config.bot.limits.maxQuestionChars);
        await ensureSynced(rt);
        rt.checkSourceNames(opts.source ?? []);
        const { hits, mode } = await rt.search(query, {
          k: opts.topK,
          filter: { sources: opts.source },
          mode: opts.mode,
        });
        if (opts.json) {
          process.stdout.write(`${JSON.stringify({ query, mode, hits: hits.map(hitJson) }, null, 2)}\n`);
          return;
        }
        if (hits.length === 0) process.stdout.write('No results.\n');
        for (const h of hits) {
          const where = [h.chunk.title, ...h.chunk.headingPath].join(' › ');
          const snippet = h.chunk.text.replace(/\s+/g, ' ').slice(0, 160);
          process.stdout.write(
            `${h.rank}. ${where}  (${h.score.toFixed(2)})\n   ${h.chunk.url ?? h.chunk.sourcePath}\n   ${snippet}\n`,
          );
        }
      },
    );

  program
    .command('ask')
    .description('answer one question with citations')
    .argument('<question...>', 'the question')
    .option('--json', 'machine-readable output')
    .action(async (words: string[], opts: { json?: boolean }) => {
      const rt = await open(globals());
      const question = checkedText(words.join(' '), 'question', rt.config.bot.limits.maxQuestionChars);
      await ensureSynced(rt);
      const result = await rt.ask(question);
      if (opts.json) process.stdout.write(`${JSON.stringify(answerJson(question, result), null, 2)}\n`);
      else process.stdout.write(`${formatAnswer(result)}\n`);
    });

  const consoleCommand = async () => {
    const rt = await open(globals());
    await ensureSynced(rt);
    await runConsole(rt, { input: process.stdin, output: process.stdout });
  };
  program
    .command('chat')
    .description('console chat: questions on stdin, +1/-1 rates the last answer')
    .action(consoleCommand);
  program
    .command('serve')
    .description(
      'run the bot: Slack when SLACK_BOT_TOKEN is set, Discord when DISCORD_TOKEN is set, else the console chat',
    )
    .action(async () => {
      const rt = await open(globals());
      // The chat transports (Bolt, discord.js) load only for `serve`, not for every command.
      const { configuredPlatforms, startBot } = await import('../serve.ts');
      const platforms = configuredPlatforms(rt.config);
      if (!platforms.slack && !platforms.discord) {
        process.stderr.write('No Slack or Discord credentials set: serving the console chat.\n');
        await ensureSynced(rt);
        await runConsole(rt, { input: process.stdin, output: process.stdout });
        return;
      }
      await ensureSynced(rt);
      process.stderr.write(
        `retrieval: ${await rt.describeRetrieval()}\ngenerator: ${rt.describeGenerator()}\n`,
      );
      const bot = await startBot(rt);
      const names = Object.entries(platforms)
        .filter(([, on]) => on)
        .map(([name]) => name);
      process.stderr.write(
        `supportbot serving ${names.join(' and ')}; health on http://localhost:${bot.port}/healthz (Ctrl-C or SIGTERM to stop)\n`,
      );
      await waitForShutdownSignal();
      process.stderr.write('Stopping: finishing the answers in progress…\n');
      await bot.stop();
    });

  registerEvalCommands(program, () => open(globals()));
  registerTrainingCommands(program, () => open(globals()));

  program
    .command('migrate')
    .description(
      'copy the knowledge store (articles, chunks, hashes, vectors) between SQLite and Weaviate, without re-embedding',
    )
    .addOption(
      new Option('--from <store>', 'source store').choices(['sqlite', 'weaviate']).makeOptionMandatory(),
    )
    .addOption(
      new Option('--to <store>', 'target store').choices(['sqlite', 'weaviate']).makeOptionMandatory(),
    )
    .option('--sqlite-file <file>', 'SQLite file (default: DATA_DIR/supportbot.sqlite)')
    .option('--tenant <name>', 'Weaviate tenant (default: WEAVIATE_TENANT or "default")')
    .action(async (opts: { from: string; to: string; sqliteFile?: string; tenant?: string }) => {
      if (opts.from === opts.to) throw new SupportbotError('invalid-option', '--from and --to must differ');
      const env = { ...process.env };
      if (globals().dataDir) env.DATA_DIR = globals().dataDir;
      const config = loadConfig({ file: globals().config, env });
      if (!config.knowledgeStore.weaviate.url) {
        throw new SupportbotError(
          'config-invalid',
          'migrate needs WEAVIATE_URL (knowledgeStore.weaviate.url)',
        );
      }
      const { WeaviateKnowledgeStore } = await import('../../core/knowledge-store/weaviate.ts');
      const sqliteFile = opts.sqliteFile ?? path.join(config.dataDir, 'supportbot.sqlite');
      const openStore = async (kind: string) =>
        kind === 'sqlite'
          ? SqliteKnowledgeStore.open(sqliteFile)
          : await WeaviateKnowledgeStore.connect({
              ...weaviateOptions(config),
              ...(opts.tenant ? { tenant: opts.tenant } : {}),
            });
      const from = await openStore(opts.from);
      try {
        const to = await openStore(opts.to);
        try {
          const r = await migrateKnowledge(from, to, {
            onProgress: (p) => {
              if (process.stderr.isTTY) process.stderr.write(`\rcopied ${p.articles} articles…`);
            },
          });
          if (process.stderr.isTTY) process.stderr.write('\n');
          process.stdout.write(
            `copied ${r.articles} articles (${r.chunks} chunks, ${r.vectors} vectors) from ${from.id} to ${to.id} in ${(r.durationMs / 1000).toFixed(1)} s\n`,
          );
        } finally {
          await to.close();
        }
      } finally {
        await from.close();
      }
    });

  const discord = program.command('discord').description('Discord set-up');
  discord
    .command('register')
    .description('register the /support slash command with Discord (globally, or in one guild at once)')
    .option(
      '--guild <id>',
      'register in this guild only (takes effect immediately; global takes up to an hour)',
    )
    .action(async (opts: { guild?: string }) => {
      const env = { ...process.env };
      const config = loadConfig({ file: globals().config, env });
      if (!config.discord.token) {
        throw new SupportbotError(
          'discord-token-missing',
          'set DISCORD_TOKEN (the bot token) to register commands',
        );
      }
      const { registerDiscordCommands } = await import('../discord/commands.ts');
      const r = await registerDiscordCommands({
        token: config.discord.token,
        applicationId: config.discord.applicationId,
        apiUrl: config.discord.apiUrl,
        guildId: opts.guild,
      });
      process.stdout.write(
        `Registered ${r.commands.map((c) => `/${c.name}`).join(', ')} for application ${r.applicationId} ${
          r.scope === 'guild' ? `in guild ${r.guildId}` : 'globally'
        }.\n`,
      );
    });

  program
    .command('status')
    .description('show the configuration in use and what the stores hold')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      const rt = await open(globals());
      const { lines, ...status } = await rt.status();
      if (opts.json) process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
      else process.stdout.write(`${lines.join('\n')}\n`);
    });

  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? 0 : 2;
    }
    const message = err instanceof SupportbotError ? err.message : (err as Error).message;
    process.stderr.write(`error: ${message}\n`);
    (runtime as Runtime | null)?.log.debug({ err }, 'command failed');
    return 1;
  } finally {
    await (runtime as Runtime | null)?.close();
  }
}

function printSummaries(summaries: SyncSummary[]): void {
  for (const s of summaries) {
    process.stderr.write(`${formatSyncSummary(s)}\n`);
    for (const e of s.errors.slice(0, 20)) process.stderr.write(`  skipped ${e.sourcePath}: ${e.message}\n`);
    if (s.errors.length > 20) process.stderr.write(`  … and ${s.errors.length - 20} more skipped files\n`);
  }
}

function positiveInt(value: string): number {
  const n = Number(value);
  // InvalidArgumentError makes commander print the usage and exit 2, like any usage error.
  if (!Number.isInteger(n) || n < 1 || n > 100)
    throw new InvalidArgumentError(`expected a whole number from 1 to 100, got ${value}`);
  return n;
}

/** Resolves on the first SIGTERM or SIGINT (a second one exits at once). */
function waitForShutdownSignal(): Promise<void> {
  return new Promise((resolve) => {
    const onSignal = () => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      process.once('SIGTERM', () => process.exit(1));
      process.once('SIGINT', () => process.exit(130));
      resolve();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

/**
 * The trimmed question or query, or a one-line error: an empty one has nothing to answer, and one
 * over `bot.limits.maxQuestionChars` is refused as the chat front ends refuse it.
 * @throws SupportbotError `empty-question` / `question-too-long`.
 */
function checkedText(text: string, what: string, maxChars: number): string {
  const trimmed = text.trim();
  if (!trimmed) throw new SupportbotError('empty-question', `the ${what} is empty`);
  if (trimmed.length > maxChars) {
    throw new SupportbotError(
      'question-too-long',
      `the ${what} is ${trimmed.length} characters; the limit is ${maxChars} (bot.limits.maxQuestionChars)`,
    );
  }
  return trimmed;
}
