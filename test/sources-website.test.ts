import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteKnowledgeStore } from '../core/knowledge-store/sqlite.ts';
import { cl100kTokenizer } from '../core/tokenizer.ts';
import type { Article } from '../core/types.ts';
import type { SourceItem } from '../sync/source.ts';
import {
  compileUrlPattern,
  createWebsiteSource,
  DEFAULT_USER_AGENT,
  mapBounded,
  type WebsiteSourceOptions,
  websiteSourceSchema,
} from '../sync/sources/website.ts';
import { syncSource } from '../sync/sync.ts';
import { FakeWebsite, type FakeWebsiteOptions, renderPage } from './fakes/website.ts';

const chunking = { maxTokens: 200, overlapTokens: 20, tokenizer: cl100kTokenizer };
/** examples/helpcenter has 22 articles; robots.txt disallows the 3 under /security/. */
const ALLOWED = 19;

async function collect(items: AsyncIterable<SourceItem>): Promise<SourceItem[]> {
  const out: SourceItem[] = [];
  for await (const item of items) out.push(item);
  return out;
}

describe('website source', () => {
  let site: FakeWebsite;
  let tmp: string;
  let store: SqliteKnowledgeStore;
  const startSite = async (options: FakeWebsiteOptions = {}) => {
    await site?.close();
    site = await new FakeWebsite(options).start();
  };
  const source = (extra: Record<string, unknown> = {}, options: WebsiteSourceOptions = {}) =>
    createWebsiteSource(
      websiteSourceSchema.parse({
        type: 'website',
        name: 'web',
        sitemapUrl: `${site.url}/sitemap.xml`,
        ...extra,
      }),
      { cacheDir: path.join(tmp, 'sources'), ...options },
    );

  beforeEach(async () => {
    site = await new FakeWebsite().start();
    tmp = mkdtempSync(path.join(tmpdir(), 'supportbot-web-'));
    store = SqliteKnowledgeStore.open(path.join(tmp, 'kb.sqlite'));
  });
  afterEach(async () => {
    await site.close();
    await store.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('reads the sitemap index and its (gzipped) sitemaps, skips robots-disallowed pages, and turns main content into Markdown', async () => {
    const src = source();
    const items = await collect(src.articles());
    const articles = items.flatMap((i) => (i.ok ? [i.article] : []));
    expect(items.filter((i) => !i.ok)).toEqual([]);
    expect(articles).toHaveLength(ALLOWED);
    expect(src.lastRun()).toMatchObject({ sitemaps: 3, pages: ALLOWED, fetched: ALLOWED, disallowed: 3 });
    // robots.txt is obeyed: the disallowed pages are never requested
    expect([...site.hits.keys()].filter((p) => p.startsWith('/security/'))).toEqual([]);
    expect(site.log.every((l) => l.path !== '/robots.txt' || l.status === 200)).toBe(true);

    const reminders = articles.find((a) => a.id === 'invoices/payment-reminders') as Article;
    expect(reminders).toMatchObject({
      source: 'web',
      title: 'Send payment reminders for unpaid invoices',
      url: `${site.url}/invoices/payment-reminders`,
      sourcePath: `${site.url}/invoices/payment-reminders`,
      tags: ['invoices'],
      accessGroups: [],
      updatedAt: '2026-10-01T00:00:00.000Z',
    });
    expect(reminders.body).toContain('## Send a reminder by hand');
    expect(reminders.body).toMatch(/1\. Open the invoice\./);
    // site chrome (header, nav, search form, footer) is not part of the article
    expect(reminders.body).not.toMatch(/Ledgerly Help Center|©|Billing · Account/);
    expect(articles.find((a) => a.id === 'account/restablecer-contrasena')?.locale).toBe('es');
    expect(articles.find((a) => a.id === 'support/contact-support')?.title).toBeTruthy();
  });

  it('a second sync costs a 304 per page and reports every page unchanged; changes, removals and broken pages are handled', async () => {
    await startSite({ pageDelayMs: 25 });
    const first = await syncSource(source(), store, { chunking });
    expect(first).toMatchObject({ added: ALLOWED, failed: 0, swept: true });
    const firstRun = source();
    site.resetCounters();

    const second = await syncSource(firstRun, store, { chunking });
    expect(second).toMatchObject({ added: 0, updated: 0, unchanged: ALLOWED, deleted: 0, swept: true });
    expect(site.notModified304).toBe(ALLOWED);
    expect(site.ok200).toBe(0);
    expect(firstRun.lastRun()).toMatchObject({ notModified: ALLOWED, fetched: 0 });
    // every page request carried the validators of the first sync
    const pageRequests = site.log.filter((l) => !l.path.startsWith('/sitemap') && l.path !== '/robots.txt');
    expect(
      pageRequests.every((l) => l.ifNoneMatch?.startsWith('"') && l.ifModifiedSince?.endsWith('GMT')),
    ).toBe(true);
    console.log(
      `website sync (${ALLOWED} pages, 25 ms server latency, concurrency 4): first ${first.seconds} s, second ${second.seconds} s with ${site.notModified304} × 304`,
    );

    // A changed page, a page that now 404s (still listed), a page dropped from the sitemap, a 500.
    site.setPage(
      '/billing/plans-and-pricing',
      renderPage('Plans and pricing', 'en', {
        type: 'root',
        children: [{ type: 'paragraph', children: [{ type: 'text', value: 'New prices from 2027.' }] }],
      }),
    );
    site.pages.delete('/api/webhooks');
    site.listed.splice(site.listed.indexOf('/integrations/slack'), 1);
    site.failing.add('/billing/failed-card-payment');
    site.resetCounters();
    const third = await syncSource(source(), store, { chunking });
    expect(third).toMatchObject({ added: 0, updated: 1, deleted: 2, failed: 1, swept: true });
    expect(third.errors).toEqual([
      {
        sourcePath: `${site.url}/billing/failed-card-payment`,
        code: 'http-500',
        message: expect.any(String),
      },
    ]);
    expect(site.ok200).toBe(1);
    expect(site.notModified304).toBe(ALLOWED - 4);
    const ids = (await store.listArticleHashes('web')).map((h) => h.articleId);
    expect(ids).toContain('billing/failed-card-payment'); // a broken page keeps its stored copy
    expect(ids).not.toContain('api/webhooks');
    expect(ids).not.toContain('integrations/slack');

    // The broken page recovers unchanged: its validators were kept, so it is a 304 again.
    site.failing.clear();
    site.resetCounters();
    const fourth = await syncSource(source(), store, { chunking });
    expect(fourth).toMatchObject({ added: 0, updated: 0, deleted: 0, failed: 0 });
    expect(site.ok200).toBe(0);
  });

  it('honours <meta name="robots"> noindex with its attributes in either order, and only noindex', async () => {
    const page = (meta: string) =>
      renderPage('Plans and pricing', 'en', {
        type: 'root',
        children: [{ type: 'paragraph', children: [{ type: 'text', value: 'Prices.' }] }],
      }).replace('<meta charset="utf-8">', `<meta charset="utf-8">${meta}`);
    site.setPage('/billing/plans-and-pricing', page('<meta content="noindex" name="robots">'));
    site.setPage('/api/webhooks', page("<meta\ncontent='nofollow, NOINDEX'\nname=ROBOTS>"));
    site.setPage('/integrations/slack', page('<meta name="robots" content="noindex">'));
    // Not a robots directive: another meta's content, and a robots meta that allows indexing.
    site.setPage(
      '/invoices/payment-reminders',
      page('<meta content="noindex" name="googlebot-news"><meta content="index, follow" name="robots">'),
    );
    const src = source();
    const articles = (await collect(src.articles())).flatMap((i) => (i.ok ? [i.article.id] : []));
    expect(src.lastRun()).toMatchObject({ gone: 3 });
    expect(articles).toHaveLength(ALLOWED - 3);
    expect(articles).not.toContain('billing/plans-and-pricing');
    expect(articles).not.toContain('api/webhooks');
    expect(articles).not.toContain('integrations/slack');
    expect(articles).toContain('invoices/payment-reminders');
  });

  it('uses Last-Modified alone when the site sends no ETag', async () => {
    await startSite({ etags: false });
    await syncSource(source(), store, { chunking });
    site.resetCounters();
    const second = await syncSource(source(), store, { chunking });
    expect(second.unchanged).toBe(ALLOWED);
    expect(site.notModified304).toBe(ALLOWED);
    expect(site.log.some((l) => l.ifNoneMatch !== undefined)).toBe(false);
  });

  it('without a cache every page is fetched in full (slower, still correct)', async () => {
    await syncSource(source(), store, { chunking });
    site.resetCounters();
    const second = await syncSource(source({}, { cacheDir: undefined }), store, { chunking });
    expect(second).toMatchObject({ unchanged: ALLOWED, updated: 0 });
    expect(site.ok200).toBe(ALLOWED);
    expect(site.notModified304).toBe(0);
  });

  it('keeps at most `concurrency` page requests in flight', async () => {
    await startSite({ pageDelayMs: 40 });
    await collect(source({ concurrency: 3 }, { cacheDir: undefined }).articles());
    expect(site.maxInFlight).toBe(3);
    site.resetCounters();
    await collect(source({ concurrency: 1 }, { cacheDir: undefined }).articles());
    expect(site.maxInFlight).toBe(1);
  });

  it('honours Crawl-delay for its user agent: one request at a time, that many seconds apart', async () => {
    await startSite({
      robotsTxt: `User-agent: ${DEFAULT_USER_AGENT.split('/')[0]}\nCrawl-delay: 1\nDisallow: /security/\n\nUser-agent: *\nDisallow: /\n`,
    });
    const src = source({ include: ['/billing/*'], concurrency: 8 }, { cacheDir: undefined });
    const articles = (await collect(src.articles())).filter((i) => i.ok);
    expect(articles).toHaveLength(4);
    expect(src.lastRun()?.crawlDelay).toBe(1);
    const times = site.log.filter((l) => l.path.startsWith('/billing/')).map((l) => l.at);
    for (let i = 1; i < times.length; i++)
      expect((times[i] as number) - (times[i - 1] as number)).toBeGreaterThanOrEqual(990);
    expect(site.maxInFlight).toBe(1);
  });

  it('filters pages by include and exclude patterns', async () => {
    const articles = (
      await collect(
        source({
          include: ['/billing/**', '/account/*'],
          exclude: ['**/vat-*', 're:restablecer'],
        }).articles(),
      )
    ).flatMap((i) => (i.ok ? [i.article.id] : []));
    expect(articles.sort()).toEqual([
      'account/account-faq',
      'account/delete-account-and-export-data',
      'account/reset-password',
      'account/team-roles-and-permissions',
      'billing/change-plan-cancel-refund',
      'billing/failed-card-payment',
      'billing/plans-and-pricing',
    ]);
  });

  it('fails the source (and deletes nothing) when robots.txt answers 5xx; a 404 robots.txt allows everything', async () => {
    await syncSource(source(), store, { chunking });
    await startSite({ robotsStatus: 503 });
    // the new site has another port, so point a source with the same name at it
    const summary = await syncSource(source(), store, { chunking });
    expect(summary).toMatchObject({ swept: false, deleted: 0 });
    expect(summary.sourceError).toMatch(/robots\.txt answered HTTP 503/);
    await startSite({ robotsStatus: 404 });
    const all = (await collect(source().articles())).filter((i) => i.ok);
    expect(all).toHaveLength(22);
  });

  it('fails the source when a nested sitemap cannot be read', async () => {
    await syncSource(source(), store, { chunking });
    const real = globalThis.fetch;
    const failing: typeof fetch = (input, init) =>
      String(input).endsWith('.xml.gz')
        ? Promise.resolve(new Response('nope', { status: 500 }))
        : real(input, init);
    const summary = await syncSource(source({}, { fetch: failing }), store, { chunking });
    expect(summary).toMatchObject({ swept: false, deleted: 0 });
    expect(summary.sourceError).toMatch(/pages-2\.xml\.gz answered HTTP 500/);
  });
});

describe('url patterns and bounded map', () => {
  it('matches globs on the path, whole URLs, and re: expressions', () => {
    const u = new URL('https://help.example.com/billing/eu/vat-rates?x=1');
    expect(compileUrlPattern('/billing/**').test(u)).toBe(true);
    expect(compileUrlPattern('/billing/*').test(u)).toBe(false);
    expect(compileUrlPattern('/billing/*/vat-*').test(u)).toBe(true);
    expect(compileUrlPattern('https://help.example.com/**').test(u)).toBe(true);
    expect(compileUrlPattern('https://other.example.com/**').test(u)).toBe(false);
    expect(compileUrlPattern('re:/eu/').test(u)).toBe(true);
    expect(() => compileUrlPattern('re:(')).toThrow(/bad URL pattern/);
  });

  it('mapBounded yields in input order with the bound respected', async () => {
    let inFlight = 0;
    let max = 0;
    const out: number[] = [];
    for await (const v of mapBounded([50, 10, 30, 5, 20, 1], 2, async (ms) => {
      inFlight++;
      max = Math.max(max, inFlight);
      await new Promise((r) => setTimeout(r, ms));
      inFlight--;
      return ms;
    }))
      out.push(v);
    expect(out).toEqual([50, 10, 30, 5, 20, 1]);
    expect(max).toBe(2);
  });
});
