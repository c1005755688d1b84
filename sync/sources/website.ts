/**
 * The website source: a help center published as HTML pages, found through its sitemap.
 *
 * Per sync:
 *  1. `robots.txt` of the sitemap's origin is read (RFC 9309) and matched for our `userAgent` with
 *     robots-parser: 2xx → its rules; 4xx → no rules (RFC 9309 §2.3.1.3); 5xx or unreachable → the
 *     source fails (the RFC says to assume everything is disallowed; failing keeps the stored
 *     articles instead of deleting them all). A `Crawl-delay` for our agent makes page requests
 *     one at a time, that many seconds apart.
 *  2. The sitemap is read (https://www.sitemaps.org/protocol.html): a `<urlset>` gives page URLs
 *     (`<loc>`, `<lastmod>`); a `<sitemapindex>` gives more sitemaps, read recursively (depth ≤ 5,
 *     each once). Gzipped sitemaps (`.xml.gz`, by their magic bytes) are unpacked. A sitemap that
 *     cannot be read fails the source, since the pages it lists would otherwise look deleted.
 *  3. Page URLs are kept when they are on the sitemap's origin (the protocol's rule), match an
 *     `include` pattern (none: all) and no `exclude` pattern, and robots.txt allows them.
 *  4. Pages are fetched `concurrency` at a time, with the validators of the previous sync
 *     (`If-None-Match` ← ETag, `If-Modified-Since` ← Last-Modified; RFC 9110 §13.1). A `304` yields
 *     the article kept from that sync, which the sync engine then counts as unchanged. A `200`
 *     page's main content (`main`, `article`, `[role=main]`, else `body` minus chrome) becomes
 *     Markdown through the shared HTML normalizer. `404`/`410` and `<meta name="robots"
 *     content="noindex">` mean the page is gone (not yielded, so deleted). Other failures are
 *     yielded as item errors (`http-<status>`, `fetch-failed`, `not-html`, `empty`) naming the URL,
 *     so the stored copy is kept. `429`/`503` are retried after `Retry-After` (≤ 60 s, 3 times).
 *
 * Validators and the articles they validate are kept in `<cacheDir>/<name>.website.json`
 * (`sync/sources/cache.ts`), written after each complete run. Without `cacheDir`, or with a lost
 * cache, every page is fetched in full: slower, never wrong.
 *
 * Article fields: `id` is the URL's path and query without the leading `/` (`index` for the
 * root); `sourcePath` is the URL; `url` the final URL after redirects; `title` the first `<h1>`
 * of the main content, else `<title>`; `tags` the path's folders (`/billing/plans` → `billing`);
 * `locale` `<html lang>`, else the configured one; `updatedAt` the sitemap's `<lastmod>`, else
 * `Last-Modified`, else the fetch time; `accessGroups` none (a public site).
 */
import { gunzipSync } from 'node:zlib';
import { XMLParser } from 'fast-xml-parser';
import robotsParserModule from 'robots-parser';
import { z } from 'zod';
import { SupportbotError } from '../../core/errors.ts';
import type { Article } from '../../core/types.ts';
import { htmlPageToMarkdown } from '../normalize/html.ts';
import { normalizeTree, stringifyMarkdown, takeTitle } from '../normalize/markdown.ts';
import { type Source, type SourceItem, sourceNameSchema } from '../source.ts';
import { cacheFile, readJsonCache, writeJsonCache } from './cache.ts';
import { sleep as defaultSleep, parseRetryAfter, redactUrl } from './http.ts';

/**
 * Whether the page carries `<meta name="robots" content="…noindex…">`, with the attributes in any
 * order, quoted or not, and names and values compared case-insensitively (HTML attribute order is
 * not significant, HTML Living Standard §13.1.2.3; the directive is Google's robots meta tag,
 * https://developers.google.com/search/docs/crawling-indexing/robots-meta-tag).
 */
export function metaRobotsNoindex(html: string): boolean {
  for (const tag of html.matchAll(/<meta\s[^>]*>/gi)) {
    const attrs = new Map<string, string>();
    for (const a of tag[0].matchAll(/([\w:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))/g)) {
      attrs.set((a[1] as string).toLowerCase(), a[2] ?? a[3] ?? a[4] ?? '');
    }
    if (attrs.get('name')?.trim().toLowerCase() !== 'robots') continue;
    if (/(?:^|[\s,])noindex(?:$|[\s,])/i.test(attrs.get('content') ?? '')) return true;
  }
  return false;
}

/** The parts of robots-parser's `Robot` we use (its bundled typings do not type the CJS default export). */
interface Robots {
  isAllowed(url: string, userAgent?: string): boolean | undefined;
  getCrawlDelay(userAgent?: string): number | undefined;
}
const robotsParser = robotsParserModule as unknown as (url: string, robotsTxt: string) => Robots;

export const DEFAULT_USER_AGENT = 'supportbot/0.1 (help-center sync)';

/** A `type: website` entry of `sources`. */
export const websiteSourceSchema = z
  .object({
    type: z.literal('website'),
    name: sourceNameSchema,
    /** `https://help.example.com/sitemap.xml` (a sitemap or a sitemap index, optionally gzipped). */
    sitemapUrl: z.string().url(),
    /**
     * URL patterns a page must match (any of them; none: every page). A pattern starting with `/`
     * matches the path (and query), otherwise the whole URL; `*` matches within one path segment,
     * `**` across segments, `?` one character; `re:` starts a regular expression instead.
     */
    include: z.array(z.string().min(1)).default([]),
    /** Pages matching any of these are skipped (same syntax as `include`). */
    exclude: z.array(z.string().min(1)).default([]),
    /** Page requests in flight at once (1 while robots.txt sets a Crawl-delay). */
    concurrency: z.number().int().min(1).max(32).default(4),
    /** Sent with every request and matched against robots.txt groups. */
    userAgent: z.string().min(1).default(DEFAULT_USER_AGENT),
    respectRobotsTxt: z.boolean().default(true),
    /** Locale of pages that do not say (`<html lang>`). */
    locale: z.string().default('en'),
    /** More pages than this fails the sync (a runaway sitemap) instead of indexing them. */
    maxPages: z.number().int().min(1).default(10_000),
    timeoutSeconds: z.number().min(1).max(600).default(30),
    /** Cron expression for scheduled sync (used by `serve`); none means manual only. */
    schedule: z.string().optional(),
    /** IANA time zone of `schedule` (`Europe/Berlin`); default the scheduler's (`TZ`). */
    timezone: z.string().optional(),
  })
  .strict();

export type WebsiteSourceConfig = z.infer<typeof websiteSourceSchema>;

export interface WebsiteSourceOptions {
  fetch?: typeof fetch;
  /** Folder for the validator cache (`<dataDir>/sources`); none: no conditional requests. */
  cacheDir?: string;
  sleep?: (ms: number) => Promise<void>;
}

/** What the last `articles()` run did. */
export interface WebsiteRunStats {
  sitemaps: number;
  /** Page URLs kept after origin, pattern and robots filtering. */
  pages: number;
  /** Pages answered 200 and converted. */
  fetched: number;
  /** Pages answered 304 (served from the cache). */
  notModified: number;
  /** 404/410/noindex pages. */
  gone: number;
  /** Pages yielded as errors. */
  failed: number;
  disallowed: number;
  excluded: number;
  /** All HTTP requests, robots.txt and sitemaps included. */
  requests: number;
  /** Crawl-delay in effect, seconds (0: none). */
  crawlDelay: number;
  seconds: number;
}

export interface WebsiteSource extends Source {
  lastRun(): WebsiteRunStats | null;
}

interface CachedPage {
  etag?: string;
  lastModified?: string;
  article: Article;
}
interface PageCache {
  version: number;
  sitemapUrl: string;
  pages: Record<string, CachedPage>;
}
const CACHE_VERSION = 1;
const MAX_SITEMAP_DEPTH = 5;
const MAX_SITEMAPS = 1000;
const MAX_RETRY_AFTER_S = 60;
const MAX_RETRIES = 3;

export function createWebsiteSource(
  config: WebsiteSourceConfig,
  options: WebsiteSourceOptions = {},
): WebsiteSource {
  const doFetch = options.fetch ?? fetch;
  const sleep = options.sleep ?? defaultSleep;
  const file = options.cacheDir ? cacheFile(options.cacheDir, config.name, 'website') : null;
  const include = config.include.map(compileUrlPattern);
  const exclude = config.exclude.map(compileUrlPattern);
  const sitemapOrigin = new URL(config.sitemapUrl).origin;
  let last: WebsiteRunStats | null = null;

  return {
    name: config.name,
    type: 'website',
    lastRun: () => last,
    async *articles(): AsyncIterable<SourceItem> {
      const started = performance.now();
      const stats: WebsiteRunStats = {
        sitemaps: 0,
        pages: 0,
        fetched: 0,
        notModified: 0,
        gone: 0,
        failed: 0,
        disallowed: 0,
        excluded: 0,
        requests: 0,
        crawlDelay: 0,
        seconds: 0,
      };
      last = stats;
      const request = async (url: string, headers: Record<string, string> = {}): Promise<Response> => {
        for (let attempt = 0; ; attempt++) {
          stats.requests++;
          const res = await doFetch(url, {
            headers: { 'user-agent': config.userAgent, ...headers },
            signal: AbortSignal.timeout(config.timeoutSeconds * 1000),
            redirect: 'follow',
          });
          if ((res.status === 429 || res.status === 503) && attempt < MAX_RETRIES) {
            const wait = parseRetryAfter(res.headers.get('retry-after'));
            if (wait !== null && wait <= MAX_RETRY_AFTER_S) {
              await res.body?.cancel().catch(() => undefined);
              await sleep(wait * 1000);
              continue;
            }
          }
          return res;
        }
      };

      // 1. robots.txt
      let robots: Robots | null = null;
      if (config.respectRobotsTxt) {
        const robotsUrl = `${sitemapOrigin}/robots.txt`;
        let res: Response;
        try {
          res = await request(robotsUrl);
        } catch (err) {
          throw new SupportbotError(
            'website-robots-unreachable',
            `source "${config.name}": ${robotsUrl} could not be read (${(err as Error).message}); nothing is crawled or deleted`,
            { cause: err },
          );
        }
        if (res.ok) robots = robotsParser(robotsUrl, await res.text());
        else {
          await res.body?.cancel().catch(() => undefined);
          if (res.status >= 500) {
            throw new SupportbotError(
              'website-robots-unreachable',
              `source "${config.name}": ${robotsUrl} answered HTTP ${res.status}; nothing is crawled or deleted`,
            );
          }
        }
        stats.crawlDelay = Math.max(0, Number(robots?.getCrawlDelay(config.userAgent) ?? 0) || 0);
      }

      // 2. sitemaps
      const entries = new Map<string, { lastmod?: string }>();
      const seenSitemaps = new Set<string>();
      const readSitemap = async (url: string, depth: number): Promise<void> => {
        if (seenSitemaps.has(url)) return;
        if (depth > MAX_SITEMAP_DEPTH || seenSitemaps.size >= MAX_SITEMAPS) {
          throw new SupportbotError(
            'website-sitemap-failed',
            `source "${config.name}": sitemap nesting deeper than ${MAX_SITEMAP_DEPTH} or more than ${MAX_SITEMAPS} sitemaps at ${url}`,
          );
        }
        seenSitemaps.add(url);
        stats.sitemaps++;
        const parsed = await fetchSitemap(url, request, config.name);
        for (const child of parsed.sitemaps) {
          const next = new URL(child, url);
          if (next.origin !== sitemapOrigin) continue; // the protocol limits a sitemap to its own host
          await readSitemap(next.href, depth + 1);
        }
        for (const page of parsed.urls) {
          let u: URL;
          try {
            u = new URL(page.loc, url);
          } catch {
            continue;
          }
          u.hash = '';
          if (!entries.has(u.href)) entries.set(u.href, { lastmod: page.lastmod });
        }
      };
      await readSitemap(config.sitemapUrl, 0);

      // 3. filters
      const urls: { url: string; lastmod?: string }[] = [];
      for (const [url, entry] of entries) {
        const u = new URL(url);
        if (u.origin !== sitemapOrigin || !matchesPatterns(u, include, exclude)) {
          stats.excluded++;
          continue;
        }
        if (robots && robots.isAllowed(url, config.userAgent) === false) {
          stats.disallowed++;
          continue;
        }
        urls.push({ url, ...entry });
      }
      if (urls.length > config.maxPages) {
        throw new SupportbotError(
          'website-too-many-pages',
          `source "${config.name}": the sitemap lists ${urls.length} pages, more than maxPages ${config.maxPages}`,
        );
      }
      stats.pages = urls.length;

      // 4. pages
      const cache = file ? readJsonCache<PageCache>(file, CACHE_VERSION) : null;
      const previous = cache?.sitemapUrl === config.sitemapUrl ? cache.pages : {};
      const next: Record<string, CachedPage> = {};
      const delayMs = stats.crawlDelay * 1000;
      let nextSlot = 0;
      const pace = async () => {
        if (delayMs <= 0) return;
        const now = Date.now();
        const wait = nextSlot - now;
        nextSlot = Math.max(now, nextSlot) + delayMs;
        if (wait > 0) await sleep(wait);
      };
      const fetchPage = async (page: { url: string; lastmod?: string }): Promise<SourceItem | null> => {
        const fail = (code: string, message: string): SourceItem => {
          stats.failed++;
          // The stored article stays (the sync spares failed paths); so do its validators.
          if (previous[page.url]) next[page.url] = previous[page.url] as CachedPage;
          return { ok: false, error: { sourcePath: page.url, code, message } };
        };
        const cached = previous[page.url];
        const headers: Record<string, string> = { accept: 'text/html,application/xhtml+xml;q=0.9,*/*;q=0.1' };
        if (cached?.etag) headers['if-none-match'] = cached.etag;
        if (cached?.lastModified) headers['if-modified-since'] = cached.lastModified;
        await pace();
        let res: Response;
        try {
          res = await request(page.url, headers);
        } catch (err) {
          return fail('fetch-failed', `${redactUrl(page.url)}: ${(err as Error).message}`);
        }
        if (res.status === 304 && cached) {
          stats.notModified++;
          next[page.url] = cached;
          return { ok: true, article: cached.article };
        }
        if (res.status === 404 || res.status === 410) {
          await res.body?.cancel().catch(() => undefined);
          stats.gone++;
          return null;
        }
        if (!res.ok) {
          await res.body?.cancel().catch(() => undefined);
          return fail(`http-${res.status}`, `${redactUrl(page.url)}: HTTP ${res.status}`);
        }
        const type = res.headers.get('content-type') ?? '';
        if (!/^(text\/html|application\/xhtml\+xml)\b/i.test(type)) {
          await res.body?.cancel().catch(() => undefined);
          return fail('not-html', `${redactUrl(page.url)} is ${type || 'of no content type'}, not HTML`);
        }
        const finalUrl = res.url || page.url;
        if (new URL(finalUrl).origin !== sitemapOrigin) {
          await res.body?.cancel().catch(() => undefined);
          return fail('off-site-redirect', `${redactUrl(page.url)} redirects to another site`);
        }
        const html = await res.text();
        if (metaRobotsNoindex(html)) {
          stats.gone++;
          return null;
        }
        let article: Article;
        try {
          const parsed = htmlPageToMarkdown(html);
          normalizeTree(parsed.tree, { links: { base: finalUrl } });
          const title = takeTitle(parsed.tree, undefined, parsed.title);
          const body = stringifyMarkdown(parsed.tree);
          if (!body.trim()) return fail('empty', `${redactUrl(page.url)} has no main content`);
          const u = new URL(page.url);
          const id = `${u.pathname.replace(/^\/+/, '').replace(/\/+$/, '')}${u.search}` || 'index';
          const lastModified = res.headers.get('last-modified') ?? undefined;
          article = {
            id,
            source: config.name,
            title: title ?? id,
            url: finalUrl,
            sourcePath: page.url,
            body,
            updatedAt: isoDate(page.lastmod) ?? isoDate(lastModified) ?? new Date().toISOString(),
            tags: u.pathname
              .split('/')
              .slice(1, -1)
              .filter(Boolean)
              .map((s) => safeDecode(s)),
            accessGroups: [],
            locale: parsed.lang ?? config.locale,
          };
        } catch (err) {
          return fail('parse-error', `${redactUrl(page.url)}: ${(err as Error).message.split('\n')[0]}`);
        }
        stats.fetched++;
        const etag = res.headers.get('etag') ?? undefined;
        const lastModified = res.headers.get('last-modified') ?? undefined;
        if (etag || lastModified) next[page.url] = { etag, lastModified, article };
        return { ok: true, article };
      };

      let completed = false;
      try {
        for await (const item of mapBounded(urls, delayMs > 0 ? 1 : config.concurrency, fetchPage)) {
          if (item) yield item;
        }
        completed = true;
      } finally {
        stats.seconds = Math.round(performance.now() - started) / 1000;
      }
      if (completed && file)
        writeJsonCache(file, { version: CACHE_VERSION, sitemapUrl: config.sitemapUrl, pages: next });
    },
  };
}

/**
 * Runs `fn` over `items` with at most `limit` calls in flight and yields the results in input
 * order. Stopping the iteration early stops starting new calls (those in flight finish).
 */
export async function* mapBounded<T, R>(
  items: T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): AsyncGenerator<R> {
  interface Slot {
    done: Promise<PromiseSettledResult<R>>;
    settle: (result: PromiseSettledResult<R>) => void;
  }
  const slots: Slot[] = items.map(() => {
    let settle: Slot['settle'] = () => undefined;
    const done = new Promise<PromiseSettledResult<R>>((resolve) => {
      settle = resolve;
    });
    return { done, settle };
  });
  let nextIndex = 0;
  let stopped = false;
  const worker = async (): Promise<void> => {
    while (!stopped && nextIndex < items.length) {
      const i = nextIndex++;
      const slot = slots[i] as Slot;
      try {
        slot.settle({ status: 'fulfilled', value: await fn(items[i] as T) });
      } catch (reason) {
        slot.settle({ status: 'rejected', reason });
      }
    }
  };
  for (let k = 0; k < Math.min(Math.max(1, limit), items.length); k++) void worker();
  try {
    for (const slot of slots) {
      const result = await slot.done;
      if (result.status === 'rejected') throw result.reason;
      yield result.value;
    }
  } finally {
    stopped = true;
  }
}

interface ParsedSitemap {
  sitemaps: string[];
  urls: { loc: string; lastmod?: string }[];
}

const xml = new XMLParser({
  ignoreAttributes: true,
  removeNSPrefix: true,
  parseTagValue: false,
  trimValues: true,
  isArray: (name) => name === 'url' || name === 'sitemap',
});

async function fetchSitemap(
  url: string,
  request: (url: string) => Promise<Response>,
  sourceName: string,
): Promise<ParsedSitemap> {
  const failed = (why: string, cause?: unknown) =>
    new SupportbotError(
      'website-sitemap-failed',
      `source "${sourceName}": sitemap ${redactUrl(url)} ${why}`,
      {
        cause,
      },
    );
  let bytes: Buffer;
  try {
    const res = await request(url);
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined);
      throw failed(`answered HTTP ${res.status}`);
    }
    bytes = Buffer.from(await res.arrayBuffer());
  } catch (err) {
    if (err instanceof SupportbotError) throw err;
    throw failed(`could not be read: ${(err as Error).message}`, err);
  }
  // A `.xml.gz` file is served as gzip bytes (not Content-Encoding, which fetch already undoes).
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes);
    } catch (err) {
      throw failed('is not valid gzip', err);
    }
  }
  let doc: Record<string, unknown>;
  try {
    doc = xml.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch (err) {
    throw failed(`is not XML: ${(err as Error).message}`, err);
  }
  const text = (v: unknown): string | undefined => (typeof v === 'string' && v.trim() ? v.trim() : undefined);
  const index = doc.sitemapindex as { sitemap?: { loc?: unknown }[] } | undefined;
  const urlset = doc.urlset as { url?: { loc?: unknown; lastmod?: unknown }[] } | undefined;
  if (!index && !urlset) throw failed('has neither <urlset> nor <sitemapindex>');
  return {
    sitemaps: (index?.sitemap ?? []).flatMap((s) => text(s.loc) ?? []),
    urls: (urlset?.url ?? []).flatMap((u) => {
      const loc = text(u.loc);
      return loc ? [{ loc, lastmod: text(u.lastmod) }] : [];
    }),
  };
}

/** A compiled include/exclude pattern (see `websiteSourceSchema.include`). */
export interface UrlPattern {
  source: string;
  test(url: URL): boolean;
}

/** Compiles one include/exclude pattern. @throws SupportbotError `config-invalid` for a bad `re:` pattern. */
export function compileUrlPattern(pattern: string): UrlPattern {
  if (pattern.startsWith('re:')) {
    let re: RegExp;
    try {
      re = new RegExp(pattern.slice(3));
    } catch (err) {
      throw new SupportbotError('config-invalid', `bad URL pattern ${pattern}: ${(err as Error).message}`);
    }
    return { source: pattern, test: (url) => re.test(url.href) };
  }
  let body = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*' && pattern[i + 1] === '*') {
      body += '.*';
      i++;
    } else if (c === '*') body += '[^/]*';
    else if (c === '?') body += '[^/]';
    else body += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  const re = new RegExp(`^${body}$`);
  const onPath = pattern.startsWith('/');
  return { source: pattern, test: (url) => re.test(onPath ? `${url.pathname}${url.search}` : url.href) };
}

function matchesPatterns(url: URL, include: UrlPattern[], exclude: UrlPattern[]): boolean {
  if (include.length > 0 && !include.some((p) => p.test(url))) return false;
  return !exclude.some((p) => p.test(url));
}

function isoDate(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : new Date(t).toISOString();
}

function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}
