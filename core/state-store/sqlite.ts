import { randomBytes } from 'node:crypto';
import type Database from 'better-sqlite3';
import { SupportbotError } from '../errors.ts';
// Both SQLite stores open one file under DATA_DIR through these helpers, each store with its own
// migration track.
import { type Migration, openSqliteDatabase, runMigrations } from '../sqlite.ts';
import {
  checkJob,
  checkNonNegativeInt,
  checkPositiveInt,
  checkRating,
  checkTurn,
  type JobStatus,
  type ListAnswersOptions,
  type ListJobsOptions,
  type LockHandle,
  type RateTokenResult,
  type RatingSummary,
  type RatingValue,
  type StateStore,
} from '../state-store.ts';
import type { AnswerRecord, Turn } from '../types.ts';

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
  {
    version: 2,
    name: 'message map, thread history, event claims, locks, jobs, rate windows',
    up(db) {
      db.exec(`
        -- No foreign key to answers: the bot may map a posted message before it saves the answer.
        CREATE TABLE message_answers (
          platform TEXT NOT NULL,
          message_key TEXT NOT NULL,
          answer_id TEXT NOT NULL,
          PRIMARY KEY (platform, message_key)
        ) STRICT, WITHOUT ROWID;

        -- AUTOINCREMENT keeps seq growing after trims, so seq order is append order.
        CREATE TABLE turns (
          seq INTEGER PRIMARY KEY AUTOINCREMENT,
          conversation_key TEXT NOT NULL,
          role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
          text TEXT NOT NULL
        ) STRICT;
        CREATE INDEX turns_conversation ON turns (conversation_key, seq);

        -- Expiring rows: expires_at / resets_at are Unix epoch ms; a row at or past it counts as
        -- absent and is overwritten in place or swept lazily.
        CREATE TABLE event_claims (
          key TEXT PRIMARY KEY,
          expires_at INTEGER NOT NULL
        ) STRICT, WITHOUT ROWID;
        CREATE TABLE locks (
          name TEXT PRIMARY KEY,
          token TEXT NOT NULL,
          expires_at INTEGER NOT NULL
        ) STRICT, WITHOUT ROWID;
        CREATE TABLE rate_windows (
          key TEXT PRIMARY KEY,
          count INTEGER NOT NULL,
          resets_at INTEGER NOT NULL
        ) STRICT, WITHOUT ROWID;

        CREATE TABLE jobs (
          id TEXT PRIMARY KEY,
          kind TEXT NOT NULL,
          started_at TEXT NOT NULL,
          status TEXT NOT NULL CHECK (json_valid(status))
        ) STRICT;
        CREATE INDEX jobs_started ON jobs (started_at, id);
        CREATE INDEX jobs_kind_started ON jobs (kind, started_at, id);
      `);
    },
  },
  {
    version: 3,
    name: 'answers.message_keys',
    up(db) {
      db.exec(
        `ALTER TABLE answers ADD COLUMN message_keys TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(message_keys));`,
      );
    },
  },
];

export interface SqliteStateStoreOptions {
  /** Clock for `updatedAt` of ratings and for every expiry (claims, locks, rate windows); tests pass a fake one. */
  now?: () => Date;
  /**
   * At most one sweep of expired claims, locks and rate windows per this many ms of the clock,
   * run by the next call that writes one of them. Default 60,000. Sweeping is housekeeping only:
   * an expired row already counts as absent.
   */
  sweepIntervalMs?: number;
}

interface AnswerRow {
  id: string;
  platform: string;
  thread_id: string;
  user_id: string;
  question: string;
  result: string;
  created_at: string;
  message_keys: string;
}

/**
 * The embedded state store on better-sqlite3 (WAL). Its tables do not clash with the knowledge
 * store's, so `open()` may be given the same file, and several processes may open one file: every
 * write is a single statement or an IMMEDIATE transaction, so they serialize on SQLite's write
 * lock (waiting up to `SQLITE_BUSY_TIMEOUT_MS`).
 */
export class SqliteStateStore implements StateStore {
  readonly id: string;
  #db: Database.Database | null;
  readonly #now: () => Date;
  readonly #sweepIntervalMs: number;
  #lastSweepMs = Number.NEGATIVE_INFINITY;
  readonly #stmts: ReturnType<typeof prepareStatements>;

  /** Wraps and migrates an open database, which the store then owns. Prefer `open()`. */
  constructor(db: Database.Database, options: SqliteStateStoreOptions = {}) {
    this.id = `sqlite:${db.name}`;
    this.#now = options.now ?? (() => new Date());
    this.#sweepIntervalMs = options.sweepIntervalMs ?? 60_000;
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
      message_keys: JSON.stringify(record.messageKeys ?? []),
    });
  }

  async getAnswer(id: string): Promise<AnswerRecord | null> {
    this.#open();
    const row = this.#stmts.getAnswer.get(id) as AnswerRow | undefined;
    return row ? toRecord(row) : null;
  }

  async setRating(answerId: string, userId: string, value: RatingValue | null): Promise<RatingValue | null> {
    const db = this.#open();
    checkRating(value);
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
    // IMMEDIATE takes the write lock before the read, so two processes cannot both read "no
    // rating" and both report null.
    return set.immediate();
  }

  async clearRatingIf(answerId: string, userId: string, expected: RatingValue): Promise<boolean> {
    this.#open();
    checkRating(expected);
    // One DELETE with the value in its WHERE: the compare and the delete are one statement.
    return this.#stmts.clearRatingIf.run(answerId, userId, expected).changes > 0;
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

  async mapMessage(platform: string, messageKey: string, answerId: string): Promise<void> {
    this.#open();
    this.#stmts.mapMessage.run(platform, messageKey, answerId);
  }

  async answerForMessage(platform: string, messageKey: string): Promise<string | null> {
    this.#open();
    const row = this.#stmts.answerForMessage.get(platform, messageKey) as { answer_id: string } | undefined;
    return row?.answer_id ?? null;
  }

  async appendTurn(conversationKey: string, turn: Turn, maxTurns: number): Promise<void> {
    const db = this.#open();
    checkTurn(turn);
    checkPositiveInt('maxTurns', maxTurns);
    const s = this.#stmts;
    db.transaction(() => {
      s.insertTurn.run(conversationKey, turn.role, turn.text);
      s.trimTurns.run({ key: conversationKey, max: maxTurns });
    }).immediate();
  }

  async threadHistory(conversationKey: string, limit: number): Promise<Turn[]> {
    this.#open();
    checkNonNegativeInt('limit', limit);
    return this.#stmts.lastTurns.all(conversationKey, limit) as Turn[];
  }

  async claimEvent(key: string, ttlMs: number): Promise<boolean> {
    this.#open();
    checkPositiveInt('ttlMs', ttlMs);
    const now = this.#nowMs();
    this.#sweep(now);
    // One statement: insert, or take over a row whose claim has expired; `changes` is 0 when a
    // live claim exists (the DO UPDATE's WHERE fails), which is SET NX PX's nil reply.
    return this.#stmts.claimEvent.run({ key, now, expires: now + ttlMs }).changes === 1;
  }

  async acquireLock(name: string, ttlMs: number): Promise<LockHandle | null> {
    this.#open();
    checkPositiveInt('ttlMs', ttlMs);
    const now = this.#nowMs();
    this.#sweep(now);
    const token = randomBytes(16).toString('hex');
    const taken = this.#stmts.acquireLock.run({ name, token, now, expires: now + ttlMs }).changes === 1;
    return taken ? { name, token } : null;
  }

  async renewLock(handle: LockHandle, ttlMs: number): Promise<boolean> {
    this.#open();
    checkPositiveInt('ttlMs', ttlMs);
    const now = this.#nowMs();
    return (
      this.#stmts.renewLock.run({ name: handle.name, token: handle.token, now, expires: now + ttlMs })
        .changes === 1
    );
  }

  async releaseLock(handle: LockHandle): Promise<boolean> {
    this.#open();
    // Deleting our own expired row is harmless (nobody else holds it); it still reports false,
    // as Redis would, where the key is already gone.
    const row = this.#stmts.releaseLock.get(handle.name, handle.token) as { expires_at: number } | undefined;
    return row !== undefined && row.expires_at > this.#nowMs();
  }

  async setJobStatus(job: JobStatus): Promise<void> {
    this.#open();
    checkJob(job);
    this.#stmts.setJob.run(job.id, job.kind, job.startedAt, JSON.stringify(job));
  }

  async getJobStatus(id: string): Promise<JobStatus | null> {
    this.#open();
    const row = this.#stmts.getJob.get(id) as { status: string } | undefined;
    return row ? (JSON.parse(row.status) as JobStatus) : null;
  }

  async listJobs(options: ListJobsOptions = {}): Promise<JobStatus[]> {
    this.#open();
    const limit = options.limit === undefined ? -1 : Math.max(0, Math.floor(options.limit));
    const rows = this.#stmts.listJobs.all({ kind: options.kind ?? null, limit }) as { status: string }[];
    return rows.map((r) => JSON.parse(r.status) as JobStatus);
  }

  async takeRateToken(key: string, limit: number, windowMs: number): Promise<RateTokenResult> {
    this.#open();
    checkPositiveInt('limit', limit);
    checkPositiveInt('windowMs', windowMs);
    const now = this.#nowMs();
    this.#sweep(now);
    const row = this.#stmts.takeRateToken.get({ key, now, resets: now + windowMs }) as {
      count: number;
      resets_at: number;
    };
    return row.count <= limit
      ? { allowed: true, retryAfterMs: 0 }
      : { allowed: false, retryAfterMs: Math.max(1, row.resets_at - now) };
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

  #nowMs(): number {
    return this.#now().getTime();
  }

  /** Lazy cleanup of expired rows, at most once per `sweepIntervalMs` of this instance's clock. */
  #sweep(now: number): void {
    if (now - this.#lastSweepMs < this.#sweepIntervalMs) return;
    this.#lastSweepMs = now;
    const s = this.#stmts;
    s.sweepClaims.run(now);
    s.sweepLocks.run(now);
    s.sweepRates.run(now);
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
      INSERT INTO answers (id, platform, thread_id, user_id, question, result, created_at, message_keys)
      VALUES (@id, @platform, @thread_id, @user_id, @question, @result, @created_at, @message_keys)
      ON CONFLICT (id) DO UPDATE SET
        platform = excluded.platform, thread_id = excluded.thread_id, user_id = excluded.user_id,
        question = excluded.question, result = excluded.result, created_at = excluded.created_at,
        message_keys = excluded.message_keys`),
    getAnswer: db.prepare('SELECT * FROM answers WHERE id = ?'),
    answerExists: db.prepare('SELECT 1 FROM answers WHERE id = ?'),
    getRating: db.prepare('SELECT value FROM ratings WHERE answer_id = ? AND user_id = ?'),
    upsertRating: db.prepare(`
      INSERT INTO ratings (answer_id, user_id, value, updated_at) VALUES (?, ?, ?, ?)
      ON CONFLICT (answer_id, user_id) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`),
    deleteRating: db.prepare('DELETE FROM ratings WHERE answer_id = ? AND user_id = ?'),
    clearRatingIf: db.prepare('DELETE FROM ratings WHERE answer_id = ? AND user_id = ? AND value = ?'),
    summary: db.prepare(`
      SELECT SUM(value = 1) AS up, SUM(value = -1) AS down FROM ratings WHERE answer_id = ?`),
    listOldest: list('ASC'),
    listNewest: list('DESC'),

    mapMessage: db.prepare(`
      INSERT INTO message_answers (platform, message_key, answer_id) VALUES (?, ?, ?)
      ON CONFLICT (platform, message_key) DO UPDATE SET answer_id = excluded.answer_id`),
    answerForMessage: db.prepare(
      'SELECT answer_id FROM message_answers WHERE platform = ? AND message_key = ?',
    ),

    insertTurn: db.prepare('INSERT INTO turns (conversation_key, role, text) VALUES (?, ?, ?)'),
    // Deletes everything up to and including the (max+1)-th newest turn; nothing when there are
    // at most `max` turns (the subquery is NULL).
    trimTurns: db.prepare(`
      DELETE FROM turns WHERE conversation_key = @key AND seq <= (
        SELECT seq FROM turns WHERE conversation_key = @key ORDER BY seq DESC LIMIT 1 OFFSET @max)`),
    lastTurns: db.prepare(`
      SELECT role, text FROM (
        SELECT seq, role, text FROM turns WHERE conversation_key = ? ORDER BY seq DESC LIMIT ?)
      ORDER BY seq ASC`),

    claimEvent: db.prepare(`
      INSERT INTO event_claims (key, expires_at) VALUES (@key, @expires)
      ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at
      WHERE event_claims.expires_at <= @now`),
    acquireLock: db.prepare(`
      INSERT INTO locks (name, token, expires_at) VALUES (@name, @token, @expires)
      ON CONFLICT (name) DO UPDATE SET token = excluded.token, expires_at = excluded.expires_at
      WHERE locks.expires_at <= @now`),
    renewLock: db.prepare(`
      UPDATE locks SET expires_at = @expires
      WHERE name = @name AND token = @token AND expires_at > @now`),
    releaseLock: db.prepare('DELETE FROM locks WHERE name = ? AND token = ? RETURNING expires_at'),
    // In DO UPDATE, bare column names are the existing row's values: a live window counts up, an
    // expired one restarts at 1 with a new end.
    takeRateToken: db.prepare(`
      INSERT INTO rate_windows (key, count, resets_at) VALUES (@key, 1, @resets)
      ON CONFLICT (key) DO UPDATE SET
        count = CASE WHEN resets_at <= @now THEN 1 ELSE count + 1 END,
        resets_at = CASE WHEN resets_at <= @now THEN excluded.resets_at ELSE resets_at END
      RETURNING count, resets_at`),
    sweepClaims: db.prepare('DELETE FROM event_claims WHERE expires_at <= ?'),
    sweepLocks: db.prepare('DELETE FROM locks WHERE expires_at <= ?'),
    sweepRates: db.prepare('DELETE FROM rate_windows WHERE resets_at <= ?'),

    setJob: db.prepare(`
      INSERT INTO jobs (id, kind, started_at, status) VALUES (?, ?, ?, ?)
      ON CONFLICT (id) DO UPDATE SET
        kind = excluded.kind, started_at = excluded.started_at, status = excluded.status`),
    getJob: db.prepare('SELECT status FROM jobs WHERE id = ?'),
    listJobs: db.prepare(`
      SELECT status FROM jobs
      WHERE @kind IS NULL OR kind = @kind
      ORDER BY started_at DESC, id DESC
      LIMIT @limit`),
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
    messageKeys: JSON.parse(row.message_keys) as string[],
  };
}
