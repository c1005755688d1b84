import { cpSync, type Dirent, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { main } from '../bot/cli/main.ts';
import { Runtime } from '../bot/runtime.ts';
import { answer } from '../core/answer.ts';
import { folderSourceSchema, loadConfig } from '../core/config.ts';
import { SqliteKnowledgeStore } from '../core/knowledge-store/sqlite.ts';
import { cl100kTokenizer } from '../core/tokenizer.ts';
import type { Source } from '../sync/source.ts';
import { createFolderSource } from '../sync/sources/folder.ts';
import { formatSyncSummary, syncSource } from '../sync/sync.ts';

const CASE = path.join(import.meta.dirname, 'fixtures', 'cases', 'sync', 'deleted-article');
const chunking = { maxTokens: 200, overlapTokens: 20, tokenizer: cl100kTokenizer };

function folder(name: string, dir: string): Source {
  return createFolderSource(folderSourceSchema.parse({ type: 'folder', name, path: dir }));
}

describe('incremental sync', () => {
  let tmp: string;
  let store: SqliteKnowledgeStore;
  beforeEach(() => {
    tmp = mkdtempSync(path.join(tmpdir(), 'supportbot-sync-'));
    store = SqliteKnowledgeStore.open(path.join(tmp, 'kb.sqlite'));
  });
  afterEach(async () => {
    await store.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('handles the deleted-article case: 1 deleted, 1 updated, 1 unchanged, and the deleted one is never found or cited', async () => {
    const src = path.join(tmp, 'src');
    cpSync(path.join(CASE, 'v1'), src, { recursive: true });
    const first = await syncSource(folder('kb', src), store, { chunking });
    expect(first).toMatchObject({ added: 3, updated: 0, unchanged: 0, deleted: 0, failed: 0, swept: true });
    expect(
      (await store.search('fax invoices extension 4471', { k: 5 })).map((h) => h.chunk.articleId),
    ).toContain('910002');

    rmSync(src, { recursive: true });
    cpSync(path.join(CASE, 'v2'), src, { recursive: true });
    const second = await syncSource(folder('kb', src), store, { chunking });
    expect(second).toMatchObject({ added: 0, updated: 1, unchanged: 1, deleted: 1, failed: 0, swept: true });
    // Only the edited article was re-chunked.
    expect(second.chunks).toBeGreaterThan(0);
    expect(second.chunks).toBeLessThanOrEqual(2);

    const fax = await store.search('fax invoices extension 4471', { k: 10 });
    expect(fax.some((h) => h.chunk.articleId === '910002')).toBe(false);
    const asked = await answer('can I fax my invoice?', {
      store,
      topK: 5,
      abstainThreshold: 0.4,
      maxAnswerChars: 900,
    });
    expect(asked.citations.some((c) => c.articleId === '910002')).toBe(false);
    expect(asked.retrieved.some((h) => h.chunk.articleId === '910002')).toBe(false);

    const edited = await store.search('Account → Profile', { k: 3 });
    expect(edited[0]?.chunk.articleId).toBe('910003');
    expect(edited[0]?.chunk.text).toContain('Account → Profile');
    // The old wording is gone from the store: the word only it had no longer finds the article.
    const old = await store.search('Settings', { k: 10 });
    expect(old.some((h) => h.chunk.articleId === '910003')).toBe(false);
    expect((await store.stats()).articles).toBe(2);
  });

  it('a third sync with no changes touches nothing', async () => {
    const src = path.join(tmp, 'src');
    cpSync(path.join(CASE, 'v1'), src, { recursive: true });
    await syncSource(folder('kb', src), store, { chunking });
    const again = await syncSource(folder('kb', src), store, { chunking });
    expect(again).toMatchObject({ added: 0, updated: 0, unchanged: 3, deleted: 0, chunks: 0 });
    expect(formatSyncSummary(again)).toMatch(
      /^kb: 0 added, 0 updated, 3 unchanged, 0 deleted, 0 failed; 0 chunks in \d+\.\d s$/,
    );
  });

  it('re-chunks everything when the chunk size changes', async () => {
    const src = path.join(tmp, 'src');
    cpSync(path.join(CASE, 'v1'), src, { recursive: true });
    await syncSource(folder('kb', src), store, { chunking });
    const resized = await syncSource(folder('kb', src), store, { chunking: { ...chunking, maxTokens: 64 } });
    expect(resized).toMatchObject({ updated: 3, unchanged: 0 });
  });

  it('does not delete an article whose file became unreadable, and reports the file', async () => {
    const src = path.join(tmp, 'src');
    cpSync(path.join(CASE, 'v1'), src, { recursive: true });
    await syncSource(folder('kb', src), store, { chunking });
    // Invalid UTF-8 in place of the fax article, and a brand-new broken file beside it.
    writeFileSync(
      path.join(src, 'legacy-fax-support.md'),
      Buffer.from([0x2d, 0x2d, 0x2d, 0x0a, 0xc3, 0x28, 0xff, 0x0a]),
    );
    writeFileSync(path.join(src, 'broken.md'), '---\ntitle: [unclosed\n---\nbody\n');
    const summary = await syncSource(folder('kb', src), store, { chunking });
    expect(summary.failed).toBe(2);
    expect(summary.errors.map((e) => e.sourcePath).sort()).toEqual(['broken.md', 'legacy-fax-support.md']);
    expect(summary.deleted).toBe(0);
    expect(summary.unchanged).toBe(2);
    expect(
      (await store.search('fax invoices extension 4471', { k: 5 })).map((h) => h.chunk.articleId),
    ).toContain('910002');
  });

  it('a source that fails as a whole is not swept', async () => {
    const src = path.join(tmp, 'src');
    cpSync(path.join(CASE, 'v1'), src, { recursive: true });
    await syncSource(folder('kb', src), store, { chunking });
    rmSync(src, { recursive: true });
    const summary = await syncSource(folder('kb', src), store, { chunking });
    expect(summary.swept).toBe(false);
    expect(summary.sourceError).toBeTruthy();
    expect(summary.deleted).toBe(0);
    expect((await store.stats()).articles).toBe(3);
    expect(formatSyncSummary(summary)).toContain('source failed, nothing deleted');
  });

  it('a source that throws half-way keeps what it wrote and deletes nothing', async () => {
    const src = path.join(tmp, 'src');
    cpSync(path.join(CASE, 'v1'), src, { recursive: true });
    await syncSource(folder('kb', src), store, { chunking });
    const real = folder('kb', src);
    const flaky: Source = {
      name: 'kb',
      type: 'folder',
      async *articles() {
        let n = 0;
        for await (const item of real.articles()) {
          if (++n === 2) throw new Error('connection reset');
          yield item;
        }
      },
    };
    const summary = await syncSource(flaky, store, { chunking });
    expect(summary).toMatchObject({ swept: false, deleted: 0, sourceError: 'connection reset' });
    expect((await store.stats()).articles).toBe(3);
  });
  it('an aborted sync (its lock was lost) stops writing and deletes nothing', async () => {
    const src = path.join(tmp, 'src');
    cpSync(path.join(CASE, 'v1'), src, { recursive: true });
    await syncSource(folder('kb', src), store, { chunking });
    // v2 deletes an article and changes another; the lock is lost after the first item.
    rmSync(src, { recursive: true, force: true });
    cpSync(path.join(CASE, 'v2'), src, { recursive: true });
    const before = await store.listArticleHashes('kb');
    const controller = new AbortController();
    const real = folder('kb', src);
    const losing: Source = {
      name: 'kb',
      type: 'folder',
      async *articles() {
        for await (const item of real.articles()) {
          yield item;
          controller.abort(new Error('lock lost'));
        }
      },
    };
    await expect(syncSource(losing, store, { chunking, signal: controller.signal })).rejects.toThrow(
      'lock lost',
    );
    const after = await store.listArticleHashes('kb');
    expect(after.map((h) => h.articleId).sort()).toEqual(before.map((h) => h.articleId).sort());
  });
});

/** A `readdir` for `createFolderSource` that fails with `code` for the folders in `failing` (relative to `root`). */
function failingReaddir(root: string, failing: string[], code = 'EACCES') {
  return async (dir: string): Promise<Dirent[]> => {
    const relative = path.relative(root, dir).split(path.sep).join('/');
    if (failing.includes(relative)) {
      throw Object.assign(new Error(`${code}: permission denied, scandir '${dir}'`), { code });
    }
    return readdir(dir, { withFileTypes: true });
  };
}

describe('sync safety', () => {
  let tmp: string;
  let store: SqliteKnowledgeStore;
  beforeEach(() => {
    tmp = mkdtempSync(path.join(tmpdir(), 'supportbot-sync-'));
    store = SqliteKnowledgeStore.open(path.join(tmp, 'kb.sqlite'));
  });
  afterEach(async () => {
    await store.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  /** `src/top.md` and the three deleted-article v1 articles under `src/sub/`, synced once. */
  async function syncedTree(): Promise<string> {
    const src = path.join(tmp, 'src');
    cpSync(path.join(CASE, 'v1'), path.join(src, 'sub'), { recursive: true });
    writeFileSync(path.join(src, 'top.md'), '# Top article\n\nSomething at the top of the tree.\n');
    const first = await syncSource(folder('kb', src), store, { chunking });
    expect(first).toMatchObject({ added: 4, failed: 0, swept: true });
    return src;
  }

  it('an unreadable subfolder is reported as sub/ and its articles are not deleted', async () => {
    const src = await syncedTree();
    rmSync(path.join(src, 'top.md'));
    const source = createFolderSource(folderSourceSchema.parse({ type: 'folder', name: 'kb', path: src }), {
      readdir: failingReaddir(src, ['sub']),
    });
    const summary = await syncSource(source, store, { chunking });
    expect(summary.errors).toEqual([
      { sourcePath: 'sub/', code: 'read-error', message: expect.stringContaining('EACCES') },
    ]);
    expect(summary.errors[0]?.message).toContain('sub/');
    // top.md really was deleted; the three articles under the unreadable folder were spared.
    expect(summary).toMatchObject({ deleted: 1, failed: 1, swept: true });
    expect((await store.listArticleHashes('kb')).map((h) => h.sourcePath).sort()).toEqual([
      'sub/change-email.md',
      'sub/legacy-fax-support.md',
      'sub/reset-password.md',
    ]);
    expect(formatSyncSummary(summary)).toContain('1 deleted, 1 failed');
  });

  it('a dangling symlink, a symlink loop and a folder named like the file are failures, not deletions', async () => {
    const src = await syncedTree();
    rmSync(path.join(src, 'top.md'));
    const sub = path.join(src, 'sub');
    // Each of the three articles loses its file in one of the ways a checkout or a bad copy can.
    rmSync(path.join(sub, 'reset-password.md'));
    symlinkSync('reset-password-moved.md', path.join(sub, 'reset-password.md'));
    rmSync(path.join(sub, 'change-email.md'));
    symlinkSync('change-email.md', path.join(sub, 'change-email.md'));
    rmSync(path.join(sub, 'legacy-fax-support.md'));
    mkdirSync(path.join(sub, 'legacy-fax-support.md'));
    const summary = await syncSource(folder('kb', src), store, { chunking });
    expect(summary.errors.map((e) => [e.sourcePath, e.code])).toEqual([
      ['sub/change-email.md', 'symlink-loop'],
      ['sub/legacy-fax-support.md', 'not-a-file'],
      ['sub/reset-password.md', 'dangling-symlink'],
    ]);
    // Only top.md, whose file really went away, is deleted.
    expect(summary).toMatchObject({ deleted: 1, failed: 3, swept: true });
    expect((await store.listArticleHashes('kb')).map((h) => h.sourcePath).sort()).toEqual([
      'sub/change-email.md',
      'sub/legacy-fax-support.md',
      'sub/reset-password.md',
    ]);
  });

  it('an unreadable nested folder spares only what is under it', async () => {
    const src = await syncedTree();
    mkdirSync(path.join(src, 'sub', 'deeper'));
    writeFileSync(path.join(src, 'sub', 'deeper', 'x.md'), '# Deeper\n\nNested article.\n');
    await syncSource(folder('kb', src), store, { chunking });
    rmSync(path.join(src, 'sub', 'reset-password.md'));
    const source = createFolderSource(folderSourceSchema.parse({ type: 'folder', name: 'kb', path: src }), {
      readdir: failingReaddir(src, ['sub/deeper'], 'EIO'),
    });
    const summary = await syncSource(source, store, { chunking });
    expect(summary.errors.map((e) => [e.sourcePath, e.code])).toEqual([['sub/deeper/', 'read-error']]);
    expect(summary.deleted).toBe(1);
    const left = (await store.listArticleHashes('kb')).map((h) => h.sourcePath).sort();
    expect(left).toEqual(['sub/change-email.md', 'sub/deeper/x.md', 'sub/legacy-fax-support.md', 'top.md']);
  });

  it('an unreadable root folder fails the source as a whole', async () => {
    const src = await syncedTree();
    const source = createFolderSource(folderSourceSchema.parse({ type: 'folder', name: 'kb', path: src }), {
      readdir: failingReaddir(src, ['']),
    });
    const summary = await syncSource(source, store, { chunking });
    expect(summary).toMatchObject({ swept: false, deleted: 0 });
    expect(summary.sourceError).toMatch(/cannot be read.*EACCES/);
    expect((await store.stats()).articles).toBe(4);
  });

  it('an empty root folder (an unmounted share) deletes nothing', async () => {
    const src = await syncedTree();
    rmSync(src, { recursive: true });
    mkdirSync(src);
    const summary = await syncSource(folder('kb', src), store, { chunking });
    expect(summary).toMatchObject({
      swept: false,
      deleted: 0,
      sourceError: 'source returned no articles; nothing deleted (4 known)',
    });
    expect((await store.stats()).articles).toBe(4);
    // A source with nothing known and nothing found is simply empty, not failed.
    const fresh = await syncSource(folder('other', src), store, { chunking });
    expect(fresh).toMatchObject({ swept: true, deleted: 0 });
    expect(fresh.sourceError).toBeUndefined();
  });

  it('a source with only unreadable items is still swept for what it lost', async () => {
    const src = await syncedTree();
    rmSync(path.join(src, 'sub'), { recursive: true });
    writeFileSync(path.join(src, 'top.md'), Buffer.from([0xc3, 0x28, 0xff, 0x0a]));
    const summary = await syncSource(folder('kb', src), store, { chunking });
    expect(summary).toMatchObject({ swept: true, deleted: 3, failed: 1 });
    expect((await store.listArticleHashes('kb')).map((h) => h.sourcePath)).toEqual(['top.md']);
  });

  it('store errors propagate instead of being reported as a source error', async () => {
    const src = path.join(tmp, 'src');
    cpSync(path.join(CASE, 'v1'), src, { recursive: true });
    await syncSource(folder('kb', src), store, { chunking });
    rmSync(src, { recursive: true });
    cpSync(path.join(CASE, 'v2'), src, { recursive: true });
    const full = new Proxy(store, {
      get(target, key) {
        if (key === 'upsertArticle') {
          return async () => {
            throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
          };
        }
        const value = Reflect.get(target, key, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    let closed = false;
    const real = folder('kb', src);
    const watched: Source = {
      name: 'kb',
      type: 'folder',
      async *articles() {
        try {
          yield* real.articles();
        } finally {
          closed = true;
        }
      },
    };
    await expect(syncSource(watched, full, { chunking })).rejects.toMatchObject({ code: 'SQLITE_FULL' });
    expect(closed).toBe(true);
    // Nothing was swept: the article gone from v2 is still there.
    expect((await store.stats()).articles).toBe(3);
  });
});

describe('configured sources only', () => {
  let tmp: string;
  let savedExitCode: typeof process.exitCode;
  beforeEach(() => {
    tmp = mkdtempSync(path.join(tmpdir(), 'supportbot-sync-'));
    cpSync(path.join(CASE, 'v1'), path.join(tmp, 'old'), { recursive: true });
    cpSync(path.join(CASE, 'v2'), path.join(tmp, 'kb'), { recursive: true });
    savedExitCode = process.exitCode;
  });
  afterEach(() => {
    process.exitCode = savedExitCode;
    vi.restoreAllMocks();
    rmSync(tmp, { recursive: true, force: true });
  });

  function config(names: string[]): string {
    const file = path.join(tmp, 'supportbot.config.yaml');
    const sources = names.map((n) => `  - { type: folder, name: ${n}, path: ./${n} }`).join('\n');
    writeFileSync(file, `dataDir: ./data\nsources:\n${sources}\n`);
    return file;
  }

  /** Runs the CLI in-process; resolves to its exit code and what it wrote. */
  async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    let stdout = '';
    let stderr = '';
    const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      stdout += String(chunk);
      return true;
    });
    const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
      stderr += String(chunk);
      return true;
    });
    process.exitCode = undefined;
    try {
      const code = await main([
        'node',
        'supportbot',
        '--config',
        path.join(tmp, 'supportbot.config.yaml'),
        ...args,
      ]);
      return { code, stdout, stderr };
    } finally {
      out.mockRestore();
      err.mockRestore();
      process.exitCode = undefined;
    }
  }

  async function storeStats() {
    const store = SqliteKnowledgeStore.open(path.join(tmp, 'data', 'supportbot.sqlite'));
    try {
      return await store.stats();
    } finally {
      await store.close();
    }
  }

  it('a source removed from the config is neither searched nor cited', async () => {
    config(['old', 'kb']);
    expect((await cli(['sync'])).code).toBe(0);
    // `sync kb` names its sources, so it prunes nothing.
    config(['kb']);
    expect((await cli(['sync', 'kb'])).stderr).not.toMatch(/pruned/);
    expect((await storeStats()).sources).toMatchObject({ old: 3, kb: 2 });

    const runtime = new Runtime(loadConfig({ cwd: tmp, env: {} }));
    try {
      const asked = await runtime.ask('fax invoices to extension 4471, or reset the password?');
      expect(asked.retrieved.length).toBeGreaterThan(0);
      expect(asked.retrieved.every((h) => h.chunk.source === 'kb')).toBe(true);
      expect(asked.citations.every((c) => c.source === 'kb')).toBe(true);
      // A caller's filter is narrowed to configured sources, never widened.
      const narrowed = await runtime.ask('fax invoices extension 4471', { filter: { sources: ['old'] } });
      expect(narrowed.retrieved).toEqual([]);
      const kept = await runtime.ask('reset password link', { filter: { sources: ['kb', 'old'] } });
      expect(kept.retrieved.every((h) => h.chunk.source === 'kb')).toBe(true);
      expect(kept.retrieved.length).toBeGreaterThan(0);
    } finally {
      await runtime.close();
    }
  });

  it('sync with no names prunes sources that are no longer configured', async () => {
    config(['old', 'kb']);
    await cli(['sync']);
    config(['kb']);
    const r = await cli(['sync']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('pruned source old: 3 articles deleted (no longer configured)\n');
    expect((await storeStats()).sources).toEqual({ kb: 2 });
    const again = await cli(['sync', '--json']);
    expect(again.stderr).not.toMatch(/pruned/);
    expect(JSON.parse(again.stdout)).toHaveLength(1);
  });

  it('ask syncs a newly configured source that has no articles yet, and only that one', async () => {
    config(['kb']);
    const first = await cli(['ask', '--json', 'reset password']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toMatch(/syncing the configured sources first/);
    config(['kb', 'old']);
    const second = await cli(['ask', '--json', 'can I fax my invoice to extension 4471?']);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toMatch(/syncing the configured sources first/);
    expect(second.stderr).toMatch(/^old: 3 added/m);
    expect(second.stderr).not.toMatch(/^kb:/m);
    expect(JSON.parse(second.stdout).citations[0]).toMatchObject({ source: 'old', articleId: '910002' });
    const third = await cli(['ask', '--json', 'reset password']);
    expect(third.stderr).not.toMatch(/syncing/);
  });
});
