import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { answer } from '../core/answer.ts';
import { folderSourceSchema } from '../core/config.ts';
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
});
