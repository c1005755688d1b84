import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { SupportbotError } from './errors.ts';

// Shared SQLite plumbing: the knowledge store and the state store use these helpers so both can
// live in one file under DATA_DIR, each with its own migration track.

/** One schema step. `up` runs inside the migration transaction; never edit a released step. */
export interface Migration {
  /** 1, 2, 3, … without gaps, per component. */
  version: number;
  /** Short description, stored in `schema_migrations.name`. */
  name: string;
  up(db: Database.Database): void;
}

/** How long a connection waits for another writer's lock before failing with SQLITE_BUSY. */
export const SQLITE_BUSY_TIMEOUT_MS = 5000;

/**
 * Opens (creating parent folders and the file when missing) a SQLite database the way every
 * store here wants it: WAL (readers never block the writer and see a consistent snapshot),
 * `synchronous=NORMAL` (durable across process crashes; a power loss may drop the last commit),
 * a busy timeout, and foreign keys on. `:memory:` is accepted (no WAL there).
 *
 * @throws SupportbotError `store-unopenable` when the file cannot be opened or is not a database.
 */
export function openSqliteDatabase(file: string): Database.Database {
  const memory = file === ':memory:';
  try {
    if (!memory) mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    const db = new Database(file, { timeout: SQLITE_BUSY_TIMEOUT_MS });
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('foreign_keys = ON');
    } catch (err) {
      db.close();
      throw err;
    }
    return db;
  } catch (err) {
    throw new SupportbotError(
      'store-unopenable',
      `cannot open SQLite database ${file}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

/**
 * Brings `component`'s schema up to the last of `migrations`, in one IMMEDIATE transaction so two
 * processes opening the same file at once apply each step exactly once. Idempotent. Versions are
 * recorded in `schema_migrations(component, version, name, applied_at)`.
 *
 * @returns the schema version after migrating.
 * @throws SupportbotError `store-too-new` when the file was written by a newer supportbot (it has
 *   versions this code does not know); a failing step rolls everything back and rethrows.
 */
export function runMigrations(
  db: Database.Database,
  component: string,
  migrations: readonly Migration[],
): number {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    component TEXT NOT NULL,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    PRIMARY KEY (component, version)
  ) STRICT`);
  const latest = migrations.reduce((max, m) => Math.max(max, m.version), 0);
  const apply = db.transaction(() => {
    const row = db
      .prepare('SELECT COALESCE(MAX(version), 0) AS version FROM schema_migrations WHERE component = ?')
      .get(component) as { version: number };
    if (row.version > latest) {
      throw new SupportbotError(
        'store-too-new',
        `the ${component} schema in this database is version ${row.version}, newer than this supportbot knows (${latest}); upgrade supportbot`,
      );
    }
    const record = db.prepare(
      'INSERT INTO schema_migrations (component, version, name, applied_at) VALUES (?, ?, ?, ?)',
    );
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (m.version <= row.version) continue;
      m.up(db);
      record.run(component, m.version, m.name, new Date().toISOString());
    }
    return Math.max(row.version, latest);
  });
  return apply.immediate();
}
