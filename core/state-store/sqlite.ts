import type Database from 'better-sqlite3';
import { SupportbotError } from '../errors.ts';
// The SQLite helpers live with the knowledge store for now; both stores use them so they can share
// one file under DATA_DIR, each with its own migration track.
import { type Migration, openSqliteDatabase, runMigrations } from '../sqlite.ts';
import type { ListAnswersOptions, RatingSummary, RatingValue, StateStore } from '../state-store.ts';
import type { AnswerRecord } from '../types.ts';

/** Schema of the state store, component `state` in `schema_migrations`. */
export const STATE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'answers, ratings',
    up(db) {
      db.exec(`
        CREATE TABLE answers (
          id TEXT PRIMARY KEY,
          platform TEXT NOT NULL,
          thread_id TEXT NOT NULL,
          user_id TEXT NOT NULL,
          question TEXT NOT NULL,
          result TEXT NOT NULL CHECK (json_valid(result)),
          created_at TEXT NOT NULL
        ) STRICT;
        CREATE INDEX answers_created ON answers (created_at, id);
        CREATE INDEX answers_thread ON answers (platform, thread_id, created_at);

        -- One row per (answer, user); retracting deletes the row, so counts are plain COUNTs.
        CREATE TABLE ratings (
          answer_id TEXT NOT NULL REFERENCES answers (id) ON DELETE CASCADE,
          user_id TEXT NOT NULL,
          value INTEGER NOT NULL CHECK (value IN (1, -1)),
          updated_at TEXT NOT NULL,
          PRIMARY KEY (answer_id, user_id)
        ) STRICT;
      `);
    },
  },
];

export interface SqliteStateStoreOptions {
  /** Clock for `updatedAt` of ratings; tests pass a fixed one. */
  now?: () => Date;
}

interface AnswerRow {
  id: string;
  platform: string;
  thread_id: string;
  user_id: string;
  question: string;
  result: string;
  created_at: string;
}

/**
 * The embedded state store on better-sqlite3 (WAL). Its tables (`answers`, `ratings`) do not
 * clash with the knowledge store's, so `open()` may be given the same file.
 */
export class SqliteStateStore implements StateStore {
  readonly id: string;
  #db: Database.Database | null;
  readonly #now: () => Date;
  readonly #stmts: ReturnType<typeof prepareStatements>;

  /** Wraps and migrates an open database, which the store then owns. Prefer `open()`. */
  constructor(db: Database.Database, options: SqliteStateStoreOptions = {}) {
    this.id = `sqlite:${db.name}`;
    this.#now = options.now ?? (() => new Date());
    runMigrations(db, 'state', STATE_MIGRATIONS);
    this.#db = db;
    this.#stmts = prepareStatements(db);
  }

  /**
   * Opens or creates the store at `file` (parent folders are created).
   *
   * @throws SupportbotError `store-unopenable`, `store-too-new`.
   */
  static open(file: string, options: SqliteStateStoreOptions = {}): SqliteStateStore {
    const db = openSqliteDatabase(file);
    try {
      return new SqliteStateStore(db, options);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  async saveAnswer(record: AnswerRecord): Promise<void> {
    this.#open();
    this.#stmts.saveAnswer.run({
      id: record.id,
      platform: record.platform,
      thread_id: record.threadId,
      user_id: record.userId,
      question: record.question,
      result: JSON.stringify(record.result),
      created_at: record.createdAt,
    });
  }

  async getAnswer(id: string): Promise<AnswerRecord | null> {
    this.#open();
    const row = this.#stmts.getAnswer.get(id) as AnswerRow | undefined;
    return row ? toRecord(row) : null;
  }

  async setRating(answerId: string, userId: string, value: RatingValue | null): Promise<RatingValue | null> {
    const db = this.#open();
    if (value !== 1 && value !== -1 && value !== null) {
      throw new SupportbotError('invalid-rating', `a rating is 1, -1 or null, not ${String(value)}`);
    }
    const s = this.#stmts;
    const set = db.transaction((): RatingValue | null => {
      if (!s.answerExists.get(answerId)) {
        throw new SupportbotError('unknown-answer', `no answer with id ${answerId}`);
      }
      const previous =
        (s.getRating.get(answerId, userId) as { value: RatingValue } | undefined)?.value ?? null;
      if (value === null) s.deleteRating.run(answerId, userId);
      else if (value !== previous) s.upsertRating.run(answerId, userId, value, this.#now().toISOString());
      return previous;
    });
    return set.immediate();
  }

  async ratingSummary(answerId: string): Promise<RatingSummary> {
    this.#open();
    const row = this.#stmts.summary.get(answerId) as { up: number | null; down: number | null };
    return { up: row.up ?? 0, down: row.down ?? 0 };
  }

  async listAnswers(options: ListAnswersOptions = {}): Promise<AnswerRecord[]> {
    this.#open();
    const limit = options.limit === undefined ? -1 : Math.max(0, Math.floor(options.limit));
    const statement = options.order === 'newest-first' ? this.#stmts.listNewest : this.#stmts.listOldest;
    const rows = statement.all({ since: options.since ?? null, limit }) as AnswerRow[];
    return rows.map(toRecord);
  }

  async close(): Promise<void> {
    const db = this.#db;
    this.#db = null;
    db?.close();
  }

  #open(): Database.Database {
    if (this.#db === null || !this.#db.open) {
      throw new SupportbotError('store-closed', `state store ${this.id} is closed`);
    }
    return this.#db;
  }
}

function prepareStatements(db: Database.Database) {
  const list = (direction: 'ASC' | 'DESC') =>
    db.prepare(`
      SELECT * FROM answers
      WHERE @since IS NULL OR created_at >= @since
      ORDER BY created_at ${direction}, id ${direction}
      LIMIT @limit`);
  return {
    saveAnswer: db.prepare(`
      INSERT INTO answers (id, platform, thread_id, user_id, question, result, created_at)
      VALUES (@id, @platform, @thread_id, @user_id, @question, @result, @created_at)
      ON CONFLICT (id) DO UPDATE SET
        platform = excluded.platform, thread_id = excluded.thread_id, user_id = excluded.user_id,
        question = excluded.question, result = excluded.result, created_at = excluded.created_at`),
    getAnswer: db.prepare('SELECT * FROM answers WHERE id = ?'),
    answerExists: db.prepare('SELECT 1 FROM answers WHERE id = ?'),
    getRating: db.prepare('SELECT value FROM ratings WHERE answer_id = ? AND user_id = ?'),
    upsertRating: db.prepare(`
      INSERT INTO ratings (answer_id, user_id, value, updated_at) VALUES (?, ?, ?, ?)
      ON CONFLICT (answer_id, user_id) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`),
    deleteRating: db.prepare('DELETE FROM ratings WHERE answer_id = ? AND user_id = ?'),
    summary: db.prepare(`
      SELECT SUM(value = 1) AS up, SUM(value = -1) AS down FROM ratings WHERE answer_id = ?`),
    listOldest: list('ASC'),
    listNewest: list('DESC'),
  };
}

function toRecord(row: AnswerRow): AnswerRecord {
  return {
    id: row.id,
    platform: row.platform,
    threadId: row.thread_id,
    userId: row.user_id,
    question: row.question,
    result: JSON.parse(row.result) as AnswerRecord['result'],
    createdAt: row.created_at,
  };
}
