import path from 'node:path';
import { type Logger, pino } from 'pino';
import { answer } from '../core/answer.ts';
import type { Config } from '../core/config.ts';
import { SqliteKnowledgeStore } from '../core/knowledge-store/sqlite.ts';
import type { KnowledgeStore } from '../core/knowledge-store.ts';
import { SqliteStateStore } from '../core/state-store/sqlite.ts';
import type { StateStore } from '../core/state-store.ts';
import { cl100kTokenizer, type Tokenizer } from '../core/tokenizer.ts';
import type { AnswerResult, Turn } from '../core/types.ts';
import type { ChunkOptions } from '../sync/chunker.ts';
import type { Source } from '../sync/source.ts';
import { createFolderSource } from '../sync/sources/folder.ts';
import { type SyncProgress, type SyncSummary, syncSource } from '../sync/sync.ts';

/**
 * The composition root: builds the stores, sources and generator from a `Config` once, so the
 * CLI, the console chat and the platform bots share one wiring. `close()` releases everything.
 */
export class Runtime {
  readonly knowledge: KnowledgeStore;
  readonly state: StateStore;
  readonly sources: Source[];
  readonly tokenizer: Tokenizer = cl100kTokenizer;
  readonly log: Logger;

  constructor(readonly config: Config & { configFile?: string | null }) {
    this.log = pino({ level: config.log.level, base: undefined }, pino.destination(2));
    const file = path.join(config.dataDir, 'supportbot.sqlite');
    this.knowledge = SqliteKnowledgeStore.open(file);
    this.state = SqliteStateStore.open(file);
    this.sources = config.sources.map((s) => createFolderSource(s));
  }

  get chunking(): ChunkOptions {
    return { ...this.config.chunking, tokenizer: this.tokenizer };
  }

  /**
   * Syncs the named sources (all when `names` is empty).
   * @throws SupportbotError `unknown-source` naming the configured sources.
   */
  async sync(
    names: string[] = [],
    options: { force?: boolean; onProgress?: (p: SyncProgress) => void } = {},
  ): Promise<SyncSummary[]> {
    const unknown = names.filter((n) => !this.sources.some((s) => s.name === n));
    if (unknown.length > 0) {
      const { SupportbotError } = await import('../core/errors.ts');
      throw new SupportbotError(
        'unknown-source',
        `unknown source ${unknown.join(', ')}; configured: ${this.sources.map((s) => s.name).join(', ')}`,
      );
    }
    const summaries: SyncSummary[] = [];
    for (const source of this.sources.filter((s) => names.length === 0 || names.includes(s.name))) {
      const summary = await syncSource(source, this.knowledge, { chunking: this.chunking, ...options });
      for (const e of summary.errors) this.log.warn({ source: source.name, ...e }, 'skipped a file');
      summaries.push(summary);
    }
    return summaries;
  }

  /** True when the knowledge store holds no chunk yet (first run). */
  async isEmpty(): Promise<boolean> {
    return (await this.knowledge.stats()).chunks === 0;
  }

  /** `core.answer()` with this runtime's store and settings. */
  ask(question: string, history: Turn[] = []): Promise<AnswerResult> {
    return answer(question, {
      store: this.knowledge,
      topK: this.config.retrieval.topK,
      abstainThreshold: this.config.answer.abstainThreshold,
      maxAnswerChars: this.config.answer.maxAnswerChars,
      history,
    });
  }

  async close(): Promise<void> {
    await this.knowledge.close();
    await this.state.close();
  }
}
