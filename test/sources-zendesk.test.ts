import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteKnowledgeStore } from '../core/knowledge-store/sqlite.ts';
import { cl100kTokenizer } from '../core/tokenizer.ts';
import type { Article } from '../core/types.ts';
import type { SourceItem } from '../sync/source.ts';
import { parseRetryAfter } from '../sync/sources/http.ts';
import { resolveSecret } from '../sync/sources/secrets.ts';
import {
  createZendeskSource,
  type ZendeskSourceOptions,
  zendeskSourceSchema,
} from '../sync/sources/zendesk.ts';
import { syncSource } from '../sync/sync.ts';
import { FakeZendesk, seedHelpCenter } from './fakes/zendesk.ts';

/** `${NAME}` built without a literal that linters take for a forgotten template string. */
const ref = (name: string): string => `\${${name}}`;
const chunking = { maxTokens: 200, overlapTokens: 20, tokenizer: cl100kTokenizer };
const EMAIL = 'agent@example.com';
const TOKEN = 'zd-token-123';

async function collect(items: AsyncIterable<SourceItem>): Promise<SourceItem[]> {
  const out: SourceItem[] = [];
  for await (const item of items) out.push(item);
  return out;
}
const articlesOf = (items: SourceItem[]): Article[] =>
  items.flatMap((i) => (i.ok ? [i.article] : [])).sort((a, b) => (a.id < b.id ? -1 : 1));

describe('zendesk source', () => {
  let zd: FakeZendesk;
  let tmp: string;
  let store: SqliteKnowledgeStore;
  const env = { ZENDESK_API_TOKEN: TOKEN };
  const source = (extra: Record<string, unknown> = {}, options: ZendeskSourceOptions = {}) =>
    createZendeskSource(
      zendeskSourceSchema.parse({
        type: 'zendesk',
        name: 'zd',
        baseUrl: zd.url,
        email: EMAIL,
        apiToken: ref('ZENDESK_API_TOKEN'),
        locales: ['en-us', 'de'],
        pageSize: 2,
        userSegments: { '9001': 'agents' },
        ...extra,
      }),
      { env, ...options },
    );

  beforeEach(async () => {
    zd = await new FakeZendesk({ email: EMAIL, token: TOKEN }).start();
    seedHelpCenter(zd);
    tmp = mkdtempSync(path.join(tmpdir(), 'supportbot-zd-'));
    store = SqliteKnowledgeStore.open(path.join(tmp, 'kb.sqlite'));
  });
  afterEach(async () => {
    await zd.close();
    await store.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('lists published articles of every locale across cursor pages, with tags, access groups and Markdown bodies', async () => {
    const src = source();
    const articles = articlesOf(await collect(src.articles()));
    expect(articles.map((a) => a.id)).toEqual([
      'de/1',
      'de/3',
      'en-us/1',
      'en-us/2',
      'en-us/3',
      'en-us/4',
      'en-us/7',
    ]);
    // draft 5 and archived 6 are not articles
    expect(articles.some((a) => a.id.endsWith('/5') || a.id.endsWith('/6'))).toBe(false);
    expect(src.lastRun()?.drafts).toBe(1);
    const invoice = articles.find((a) => a.id === 'en-us/1') as Article;
    expect(invoice).toMatchObject({
      source: 'zd',
      title: 'Create an invoice',
      url: `${zd.url}/hc/en-us/articles/1-create-an-invoice`,
      tags: ['Billing', 'Invoices', 'vat'],
      accessGroups: [],
      locale: 'en-us',
      updatedAt: expect.stringMatching(/^2023-11-14T22:1\d:\d\dZ$/),
    });
    expect(invoice.body).toBe('Open **Invoices** and select _New_.\n\n## Taxes\n\n- VAT is added per line.');
    // nested section: category, outer section, inner section
    expect(articles.find((a) => a.id === 'en-us/2')?.tags).toEqual(['Billing', 'Invoices', 'Reminders']);
    expect(articles.find((a) => a.id === 'de/1')?.tags).toEqual(['Abrechnung', 'Rechnungen', 'vat']);
    // the restricted user segment becomes the mapped access group
    expect(articles.find((a) => a.id === 'en-us/4')?.accessGroups).toEqual(['agents']);
    // page size 2: en-us has 6 listed articles (one draft) → 3 pages; de 2 → 1 page
    const articlePages = zd.requests.filter((r) => /\/help_center\/(en-us|de)\/articles/.test(r));
    expect(articlePages).toHaveLength(4);
    expect(articlePages[1]).toMatch(/page%5Bafter%5D=|page\[after\]=/);
  });

  it('an article restricted to several segments (user_segment_ids) is never public', async () => {
    zd.put(
      { id: 7, section_id: 200, user_segment_id: null, user_segment_ids: [9001, 9002], label_names: [] },
      'en-us',
      {
        title: 'Escalation runbook (agents and managers)',
        body: '<p>Internal steps.</p>',
      },
    );
    const articles = articlesOf(await collect(source().articles()));
    expect(articles.find((a) => a.id === 'en-us/7')?.accessGroups).toEqual([
      'agents',
      'zendesk-segment:9002',
    ]);
  });

  it('names unmapped segments zendesk-segment:<id> and can drop outdated translations', async () => {
    const articles = articlesOf(
      await collect(source({ userSegments: {}, excludeOutdated: true }).articles()),
    );
    expect(articles.find((a) => a.id === 'en-us/4')?.accessGroups).toEqual(['zendesk-segment:9001']);
    expect(articles.map((a) => a.id)).not.toContain('de/3');
  });

  it('waits out a 429 for its Retry-After, then goes on', async () => {
    zd.rateLimitNext(2, '1');
    const started = performance.now();
    const src = source();
    const articles = articlesOf(await collect(src.articles()));
    const seconds = (performance.now() - started) / 1000;
    expect(articles).toHaveLength(7);
    expect(zd.rateLimited).toBe(2);
    expect(src.lastRun()).toMatchObject({ retries: 2, waitedSeconds: 2 });
    expect(seconds).toBeGreaterThanOrEqual(1.9);
  });

  it('fails the source with zendesk-rate-limited when Retry-After exceeds the bound, and the sync deletes nothing', async () => {
    await syncSource(source(), store, { chunking });
    zd.rateLimitNext(1, '3600');
    const summary = await syncSource(source({ maxRetryAfterSeconds: 30 }), store, { chunking });
    expect(summary.swept).toBe(false);
    expect(summary.deleted).toBe(0);
    expect(summary.sourceError).toMatch(/HTTP 429, Retry-After 3600 s/);
    await expect(
      collect(source({ maxRetryAfterSeconds: 30, maxRetries: 0 }).articles()),
    ).resolves.toHaveLength(7); // the fake's 429 was used up above
    zd.rateLimitNext(1, '5');
    await expect(collect(source({ maxRetries: 0 }).articles())).rejects.toMatchObject({
      code: 'zendesk-rate-limited',
    });
  });

  it('rejects a wrong token with zendesk-auth-failed and an unknown locale with zendesk-not-found', async () => {
    await expect(
      collect(source({}, { env: { ZENDESK_API_TOKEN: 'wrong' } }).articles()),
    ).rejects.toMatchObject({ code: 'zendesk-auth-failed' });
    await expect(collect(source({ locales: ['fr'] }).articles())).rejects.toMatchObject({
      code: 'zendesk-not-found',
    });
    await expect(collect(source({}, { env: {} }).articles())).rejects.toMatchObject({
      code: 'secret-missing',
      message: expect.stringContaining(ref('ZENDESK_API_TOKEN')),
    });
  });

  it('listing mode: a deleted, an archived and an edited article between two syncs are deleted, deleted and updated', async () => {
    const first = await syncSource(source(), store, { chunking });
    expect(first).toMatchObject({ added: 7, updated: 0, deleted: 0, failed: 0, swept: true });
    zd.delete(2);
    zd.archive(7);
    zd.edit(3, 'en-us', { body: '<p>Turn on 2FA under Settings → Security.</p>' });
    zd.edit(1, 'de', { draft: true }); // back to draft: unpublished
    const second = await syncSource(source(), store, { chunking });
    expect(second).toMatchObject({ added: 0, updated: 1, unchanged: 3, deleted: 3, failed: 0, swept: true });
    const ids = (await store.listArticleHashes('zd')).map((h) => h.articleId).sort();
    expect(ids).toEqual(['de/3', 'en-us/1', 'en-us/3', 'en-us/4']);
  });

  it('incremental mode: changes come from the incremental export, deletions from the next full listing', async () => {
    let clock = Date.UTC(2026, 0, 1);
    const options = { cacheDir: path.join(tmp, 'sources'), now: () => clock };
    const incremental = () => source({ mode: 'incremental', fullListingHours: 24 }, options);

    const first = incremental();
    expect(await syncSource(first, store, { chunking })).toMatchObject({ added: 7, swept: true });
    expect(first.lastRun()?.mode).toBe('listing');

    // The fake's clock is in 2023; the snapshot's end_time is the listing's start (2026), so move
    // the help center's clock past it for the edits to count as changes after the export.
    zd.clock = Math.floor(clock / 1000) + 10;
    zd.edit(3, 'en-us', { title: 'Two-factor authentication (2FA)' });
    zd.edit(2, 'en-us', { draft: true });
    zd.put({ id: 8, section_id: 200, user_segment_id: null, label_names: [] }, 'en-us', {
      title: 'Passkeys',
      body: '<p>Sign in with a passkey.</p>',
    });
    zd.delete(7);
    zd.requests.length = 0;
    clock += 3_600_000;
    const second = incremental();
    const summary = await syncSource(second, store, { chunking });
    expect(second.lastRun()).toMatchObject({ mode: 'incremental', changed: 3 });
    expect(zd.requests.filter((r) => r.includes('/articles?page'))).toEqual([]);
    expect(zd.requests.filter((r) => r.includes('/incremental/articles'))).toHaveLength(1);
    // 8 added, 3 updated, 2 (now a draft) deleted; 7 was deleted but the export cannot tell
    expect(summary).toMatchObject({ added: 1, updated: 1, deleted: 1, swept: true });
    let ids = (await store.listArticleHashes('zd')).map((h) => h.articleId).sort();
    expect(ids).toContain('en-us/7');
    expect(ids).not.toContain('en-us/2');

    // A day later the full listing comes round and removes the deleted article.
    clock += 24 * 3_600_000;
    const third = incremental();
    const full = await syncSource(third, store, { chunking });
    expect(third.lastRun()?.mode).toBe('listing');
    expect(full).toMatchObject({ added: 0, updated: 0, deleted: 1, swept: true });
    ids = (await store.listArticleHashes('zd')).map((h) => h.articleId).sort();
    expect(ids).toEqual(['de/1', 'de/3', 'en-us/1', 'en-us/3', 'en-us/4', 'en-us/8']);
  });

  it('follows next_page of the incremental export over several pages', async () => {
    await zd.close();
    zd = await new FakeZendesk({ email: EMAIL, token: TOKEN, incrementalPageSize: 1000 }).start();
    seedHelpCenter(zd);
    let clock = Date.UTC(2026, 0, 1);
    const options = { cacheDir: path.join(tmp, 'sources'), now: () => clock };
    await syncSource(source({ mode: 'incremental' }, options), store, { chunking });
    zd.clock = Math.floor(clock / 1000) + 10;
    for (let i = 0; i < 2100; i++) {
      zd.put({ id: 1000 + i, section_id: 100, user_segment_id: null, label_names: [] }, 'en-us', {
        title: `Generated ${i}`,
        body: `<p>Body ${i}</p>`,
      });
    }
    clock += 60_000;
    zd.requests.length = 0;
    const src = source({ mode: 'incremental' }, options);
    const summary = await syncSource(src, store, { chunking });
    expect(summary.added).toBe(2100);
    expect(zd.requests.filter((r) => r.includes('/incremental/articles'))).toHaveLength(3);
  });
});

describe('zendesk config', () => {
  it('needs exactly one of subdomain and baseUrl and is strict', () => {
    const base = { type: 'zendesk', name: 'zd', email: 'a@b.c', apiToken: 't' };
    expect(zendeskSourceSchema.safeParse({ ...base, subdomain: 'acme' }).success).toBe(true);
    expect(zendeskSourceSchema.safeParse(base).success).toBe(false);
    expect(
      zendeskSourceSchema.safeParse({ ...base, subdomain: 'acme', baseUrl: 'https://help.acme.com' }).success,
    ).toBe(false);
    expect(zendeskSourceSchema.safeParse({ ...base, subdomain: 'acme', path: '/x' }).success).toBe(false);
    expect(zendeskSourceSchema.parse({ ...base, subdomain: 'acme' })).toMatchObject({
      locales: ['en-us'],
      mode: 'listing',
    });
  });

  it('resolves environment references and parses Retry-After in both forms', () => {
    expect(resolveSecret(`${ref('A')}/token`, 'x', { A: 'me' })).toBe('me/token');
    expect(resolveSecret(`$${ref('A')}`, 'x', { A: 'me' })).toBe(ref('A'));
    expect(() => resolveSecret(ref('B'), 'source "zd" apiToken', {})).toThrow(
      /source "zd" apiToken refers to \$\{B\}/,
    );
    expect(parseRetryAfter('7')).toBe(7);
    expect(
      parseRetryAfter(new Date(Date.UTC(2026, 0, 1, 0, 0, 30)).toUTCString(), Date.UTC(2026, 0, 1)),
    ).toBe(30);
    expect(parseRetryAfter('soon')).toBeNull();
  });
});
