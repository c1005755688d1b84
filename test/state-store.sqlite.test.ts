import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KNOWLEDGE_MIGRATIONS, SqliteKnowledgeStore } from '../core/knowledge-store/sqlite.ts';
import { openSqliteDatabase, runMigrations } from '../core/sqlite.ts';
import { SqliteStateStore, STATE_MIGRATIONS } from '../core/state-store/sqlite.ts';
import type { LockHandle, StateStore } from '../core/state-store.ts';
import { describeStateStoreContract, makeAnswer } from './contract/state-store.contract.ts';

const root = mkdtempSync(path.join(tmpdir(), 'supportbot-state-'));
let counter = 0;
const newFile = () => path.join(root, `state-${++counter}`, 'state.db');

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

const files = new WeakMap<StateStore, string>();
function openTracked(file: string): SqliteStateStore {
  const store = SqliteStateStore.open(file);
  files.set(store, file);
  return store;
}

describeStateStoreContract('SqliteStateStore', async () => openTracked(newFile()), {
  async reopen(store) {
    const file = files.get(store);
    if (file === undefined) throw new Error('not a store this suite opened');
    return openTracked(file);
  },
});

/** A clock tests move by hand. */
function fakeClock(start = Date.parse('2024-05-02T00:00:00.000Z')) {
  let ms = start;
  return {
    now: () => new Date(ms),
    advance(by: number) {
      ms += by;
    },
  };
}

describe('SqliteStateStore', () => {
  let file: string;
  let clock: ReturnType<typeof fakeClock>;
  let store: SqliteStateStore;

  beforeEach(() => {
    file = newFile();
    clock = fakeClock();
    store = SqliteStateStore.open(file, { now: clock.now });
  });

  afterEach(async () => {
    await store.close();
  });

  /** Reads the file through a separate plain connection. */
  function peek<T>(sql: string, ...params: unknown[]): T[] {
    const db = new Database(file, { readonly: true });
    try {
      return db.prepare(sql).all(...params) as T[];
    } finally {
      db.close();
    }
  }

  describe('expiry on the injected clock', () => {
    it('an event claim lasts exactly ttlMs', async () => {
      expect(await store.claimEvent('Ev1', 100)).toBe(true);
      clock.advance(99);
      expect(await store.claimEvent('Ev1', 100)).toBe(false);
      clock.advance(1);
      expect(await store.claimEvent('Ev1', 100)).toBe(true);
      // Losing calls do not extend the claim; the winning one restarted it.
      clock.advance(99);
      expect(await store.claimEvent('Ev1', 100)).toBe(false);
    });

    it('a lock lasts exactly ttlMs, and renewing counts from now', async () => {
      const held = (await store.acquireLock('L', 100)) as LockHandle;
      clock.advance(99);
      expect(await store.acquireLock('L', 100)).toBeNull();
      expect(await store.renewLock(held, 100)).toBe(true);
      clock.advance(99);
      expect(await store.acquireLock('L', 100)).toBeNull();
      clock.advance(1);
      expect(await store.renewLock(held, 100)).toBe(false);
      const next = await store.acquireLock('L', 100);
      expect(next).not.toBeNull();
      expect(await store.releaseLock(held)).toBe(false);
      expect(await store.releaseLock(next as LockHandle)).toBe(true);
    });

    it('a rate window reports the exact time left and resets at its end', async () => {
      expect((await store.takeRateToken('u', 2, 1000)).allowed).toBe(true);
      clock.advance(300);
      expect((await store.takeRateToken('u', 2, 1000)).allowed).toBe(true);
      clock.advance(300);
      expect(await store.takeRateToken('u', 2, 1000)).toEqual({ allowed: false, retryAfterMs: 400 });
      clock.advance(399);
      expect(await store.takeRateToken('u', 2, 1000)).toEqual({ allowed: false, retryAfterMs: 1 });
      clock.advance(1);
      expect(await store.takeRateToken('u', 2, 1000)).toEqual({ allowed: true, retryAfterMs: 0 });
    });

    it('rating times come from the clock', async () => {
      await store.saveAnswer(makeAnswer('a1'));
      await store.setRating('a1', 'u1', 1);
      expect(peek('SELECT updated_at FROM ratings')).toEqual([{ updated_at: '2024-05-02T00:00:00.000Z' }]);
    });
  });

  describe('lazy cleanup', () => {
    it('sweeps expired claims, locks and rate windows at most once per interval', async () => {
      await store.close();
      store = SqliteStateStore.open(file, { now: clock.now, sweepIntervalMs: 1000 });
      const count = (table: string) => peek<{ n: number }>(`SELECT COUNT(*) AS n FROM ${table}`)[0]?.n;

      await store.claimEvent('old', 10); // first call sweeps (nothing to do)
      await store.acquireLock('old', 10);
      await store.takeRateToken('old', 1, 10);
      clock.advance(500);
      await store.claimEvent('new', 60_000);
      expect([count('event_claims'), count('locks'), count('rate_windows')]).toEqual([2, 1, 1]);

      clock.advance(500);
      await store.claimEvent('newer', 60_000);
      expect(peek('SELECT key FROM event_claims ORDER BY key')).toEqual([{ key: 'new' }, { key: 'newer' }]);
      expect([count('locks'), count('rate_windows')]).toEqual([0, 0]);
    });
  });

  describe('file', () => {
    it('migrates a version 1 file, keeping its answers and ratings', async () => {
      await store.close();
      const v1File = newFile();
      const db = openSqliteDatabase(v1File);
      runMigrations(db, 'state', STATE_MIGRATIONS.slice(0, 1));
      db.prepare(
        `INSERT INTO answers (id, platform, thread_id, user_id, question, result, created_at)
         VALUES ('a1', 'slack', 'T-a1', 'U-asker', 'Question a1?', ?, '2024-05-01T10:00:00.000Z')`,
      ).run(JSON.stringify(makeAnswer('a1').result));
      db.prepare(`INSERT INTO ratings VALUES ('a1', 'u1', -1, '2024-05-01T11:00:00.000Z')`).run();
      db.close();

      store = SqliteStateStore.open(v1File);
      // A version-1 answer had no message keys: it comes back with none.
      expect(await store.getAnswer('a1')).toEqual(makeAnswer('a1', undefined, { messageKeys: [] }));
      expect(await store.ratingSummary('a1')).toEqual({ up: 0, down: 1 });
      await store.mapMessage('slack', 'C1:1.1', 'a1');
      expect(await store.answerForMessage('slack', 'C1:1.1')).toBe('a1');
      expect(await store.claimEvent('Ev1', 1000)).toBe(true);
      file = v1File;
      expect(peek("SELECT MAX(version) AS v FROM schema_migrations WHERE component = 'state'")).toEqual([
        { v: STATE_MIGRATIONS.length },
      ]);
    });

    it('shares one file with the knowledge store', async () => {
      const knowledge = SqliteKnowledgeStore.open(file);
      try {
        expect(knowledge.schemaVersion).toBe(KNOWLEDGE_MIGRATIONS.length);
        await store.saveAnswer(makeAnswer('a1'));
        await store.appendTurn('k', { role: 'user', text: 'hi' }, 5);
        expect(await knowledge.stats()).toEqual({ articles: 0, chunks: 0, sources: {} });
        expect(await store.getAnswer('a1')).not.toBeNull();
      } finally {
        await knowledge.close();
      }
      await store.close();
      store = SqliteStateStore.open(file);
      expect(await store.getAnswer('a1')).not.toBeNull();
      expect(await store.threadHistory('k', 5)).toEqual([{ role: 'user', text: 'hi' }]);
    });

    it('has an id naming the file', () => {
      expect(store.id).toBe(`sqlite:${file}`);
    });
  });

  describe('two processes on one file', () => {
    it('claim each event once, lock each name once and count every rating once', async () => {
      await store.saveAnswer(makeAnswer('a1'));
      await store.close();
      // Large enough that a scheduling stall of one process cannot let the other finish alone.
      const n = 2000;
      // One walks the keys up, the other down, so they meet in the middle and contend there.
      const [up, down] = await Promise.all([runChild(file, n, 'up'), runChild(file, n, 'down')]);

      const claims = [...up.claimed, ...down.claimed].sort((x, y) => x - y);
      expect(claims).toEqual(Array.from({ length: n }, (_, i) => i));
      // Both won some: they really ran at the same time.
      expect(up.claimed.length).toBeGreaterThan(0);
      expect(down.claimed.length).toBeGreaterThan(0);
      const locks = [...up.locked, ...down.locked].sort((x, y) => x - y);
      expect(locks).toEqual(Array.from({ length: n }, (_, i) => i));
      for (let i = 0; i < n; i++) {
        // Each user's 👍 arrived from both processes; exactly one saw "no rating before".
        expect([up.previous[i], down.previous[i]].filter((p) => p === null)).toHaveLength(1);
      }
      store = SqliteStateStore.open(file);
      expect(await store.ratingSummary('a1')).toEqual({ up: n, down: 0 });
    });
  });
});

const execFileAsync = promisify(execFile);
const projectRoot = fileURLToPath(new URL('..', import.meta.url));

interface ChildResult {
  claimed: number[];
  locked: number[];
  /** Indexed by user number. */
  previous: (number | null)[];
}

/**
 * Runs CHILD in a separate Node process (ESM eval; bare imports resolve from the project root)
 * and returns what it did. Both children wait for each other (a ready file each) before starting.
 */
async function runChild(file: string, n: number, direction: 'up' | 'down'): Promise<ChildResult> {
  const moduleUrl = new URL('../core/state-store/sqlite.ts', import.meta.url).href;
  const { stdout } = await execFileAsync(
    process.execPath,
    ['--input-type=module', '-e', CHILD, file, moduleUrl, String(n), direction],
    { cwd: projectRoot, timeout: 30_000 },
  );
  return JSON.parse(stdout) as ChildResult;
}

const CHILD = `
import { existsSync, writeFileSync } from 'node:fs';
const { tsImport } = await import('tsx/esm/api');
const [file, moduleUrl, n, direction] = process.argv.slice(1);
const { SqliteStateStore } = await tsImport(moduleUrl, moduleUrl);
const store = SqliteStateStore.open(file);
writeFileSync(file + '.ready-' + direction, '');
const other = file + '.ready-' + (direction === 'up' ? 'down' : 'up');
while (!existsSync(other)) await new Promise((r) => setTimeout(r, 1));
const result = { claimed: [], locked: [], previous: [] };
for (let k = 0; k < Number(n); k++) {
  const i = direction === 'up' ? k : Number(n) - 1 - k;
  if (await store.claimEvent('Ev' + i, 60000)) result.claimed.push(i);
  if (await store.acquireLock('L' + i, 60000)) result.locked.push(i);
  result.previous[i] = await store.setRating('a1', 'u' + i, 1);
}
await store.close();
process.stdout.write(JSON.stringify(result));
`;
