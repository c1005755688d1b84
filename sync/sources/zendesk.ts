/**
 * The Zendesk Help Center source: published articles of the configured locales, read with the
 * Help Center API (https://developer.zendesk.com/api-reference/help_center/help-center-api/articles/).
 *
 * How the article set is read (the Source seam wants every article the help center has now):
 * - **Full listing** (`mode: listing`, the default, and the truth for deletions): per locale,
 *   `GET /api/v2/help_center/{locale}/articles?page[size]=100`, following cursor pagination
 *   (`meta.has_more`, `links.next`). An article missing from a complete listing is gone (deleted,
 *   archived — Zendesk leaves archived articles out of list endpoints — or no longer in that
 *   locale), and the sync engine deletes it.
 * - **Incremental export** (`mode: incremental`, for large help centers): the first sync, and any
 *   sync `fullListingHours` after the last full listing, lists everything as above; the syncs in
 *   between ask only `GET /api/v2/help_center/incremental/articles?start_time=<end_time of the
 *   previous export>` (time-based pagination: `next_page` carries the next `start_time`, the
 *   response's `end_time`; up to 1,000 articles a page; agent or admin only), merge the changed
 *   articles into a snapshot kept in `<cacheDir>/<name>.zendesk.json`, and yield the snapshot. The
 *   export reports changes, not deletions, so a deleted or archived article stays until the next
 *   full listing (at most `fullListingHours` later); an article that turned into a draft or moved
 *   out of the configured locales is dropped at once. Without `cacheDir` every sync is a full
 *   listing. See https://developer.zendesk.com/documentation/help_center/help-center-api/understanding-incremental-article-exports/
 *
 * Article fields: `id` and `sourcePath` are `<locale>/<article id>` (one article per translation);
 * `title`; `url` is `html_url`; `body` is the HTML body converted to Markdown by the shared
 * normalizer; `updatedAt` is `updated_at`; `tags` are the category name, the section names (outer
 * first) and `label_names`; `accessGroups` is empty for articles visible to everyone
 * (`user_segment_id: null`), else the name mapped from the segment id in `userSegments`, else
 * `zendesk-segment:<id>`; `locale` is the article's locale. Drafts (`draft: true`) are skipped;
 * `outdated` translations are kept unless `excludeOutdated`.
 *
 * HTTP: API-token Basic auth (`{email}/token:{apiToken}`); a `429` (or `503`) is retried after its
 * `Retry-After` (seconds or an HTTP date; https://developer.zendesk.com/api-reference/introduction/rate-limits/)
 * when that is at most `maxRetryAfterSeconds`, up to `maxRetries` times. Failures throw
 * SupportbotError: `zendesk-auth-failed` (401/403), `zendesk-not-found` (404: wrong subdomain or
 * locale), `zendesk-rate-limited` (429 beyond the bound), `zendesk-http-error` (other statuses),
 * `zendesk-unreachable` (network, timeout), `zendesk-bad-response` (not the documented JSON);
 * `secret-missing` for an unset `${ENV}` reference. A failing source deletes nothing.
 */
import type { Root } from 'mdast';
import { z } from 'zod';
import { SupportbotError } from '../../core/errors.ts';
import type { Article } from '../../core/types.ts';
import { htmlToBlocks } from '../normalize/html.ts';
import { normalizeTree, stringifyMarkdown } from '../normalize/markdown.ts';
import { type Source, type SourceItem, sourceNameSchema } from '../source.ts';
import { cacheFile, readJsonCache, writeJsonCache } from './cache.ts';
import { sleep as defaultSleep, parseRetryAfter, redactUrl } from './http.ts';
import { resolveSecret } from './secrets.ts';

/** A `type: zendesk` entry of `sources`. Secrets may be `${ENV}` references (`sync/sources/secrets.ts`). */
export const zendeskSourceSchema = z
  .object({
    type: z.literal('zendesk'),
    name: sourceNameSchema,
    /** `acme` for https://acme.zendesk.com; or give `baseUrl` (a host-mapped help center, tests). */
    subdomain: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]*$/i, 'the subdomain only, e.g. acme for acme.zendesk.com')
      .optional(),
    baseUrl: z.string().url().optional(),
    /** Agent or admin email the API token belongs to. */
    email: z.string().min(1),
    /** API token, usually `${ZENDESK_API_TOKEN}`. */
    apiToken: z.string().min(1),
    /** Help Center locales to read, as Zendesk spells them (`en-us`, `de`). */
    locales: z.array(z.string().min(2)).min(1).default(['en-us']),
    mode: z.enum(['listing', 'incremental']).default('listing'),
    /** Incremental mode: a full listing (which detects deletions) at least this often. */
    fullListingHours: z.number().min(0).default(24),
    /** Zendesk user segment id → access group name; unmapped segments become `zendesk-segment:<id>`. */
    userSegments: z.record(z.string(), z.string().min(1)).default({}),
    excludeOutdated: z.boolean().default(false),
    /** Cursor pagination page size, 1..100 (the API's maximum). */
    pageSize: z.number().int().min(1).max(100).default(100),
    maxRetries: z.number().int().min(0).max(20).default(5),
    /** A `Retry-After` longer than this fails the sync with `zendesk-rate-limited` instead of waiting. */
    maxRetryAfterSeconds: z.number().min(0).max(3600).default(120),
    timeoutSeconds: z.number().min(1).max(600).default(30),
    /** Cron expression for scheduled sync (used by `serve`); none means manual only. */
    schedule: z.string().optional(),
    /** IANA time zone of `schedule` (`Europe/Berlin`); default the scheduler's (`TZ`). */
    timezone: z.string().optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (!s.subdomain === !s.baseUrl) {
      ctx.addIssue({ code: 'custom', path: ['subdomain'], message: 'give either subdomain or baseUrl' });
    }
  });

export type ZendeskSourceConfig = z.infer<typeof zendeskSourceSchema>;

export interface ZendeskSourceOptions {
  /** HTTP client (tests inject counters); default the global `fetch`. */
  fetch?: typeof fetch;
  /** Folder for the incremental snapshot (`<dataDir>/sources`); none: every sync is a full listing. */
  cacheDir?: string;
  /** Environment for `${ENV}` references; default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Clock (ms since epoch); tests move it. */
  now?: () => number;
  /** Waits `ms` (tests observe Retry-After waits); default `setTimeout`. */
  sleep?: (ms: number) => Promise<void>;
}

/** What the last `articles()` run did, for logs, tests and the bench. */
export interface ZendeskRunStats {
  mode: 'listing' | 'incremental';
  requests: number;
  /** 429/503 answers waited out. */
  retries: number;
  /** Total seconds slept on Retry-After. */
  waitedSeconds: number;
  articles: number;
  drafts: number;
  /** Articles of the incremental export merged into the snapshot. */
  changed: number;
}

export interface ZendeskSource extends Source {
  /** Stats of the last completed or failed run, `null` before the first. */
  lastRun(): ZendeskRunStats | null;
}

/** The documented article JSON, the fields we read. */
interface ZdArticle {
  id: number;
  title?: string | null;
  name?: string | null;
  html_url?: string | null;
  body?: string | null;
  locale?: string;
  section_id?: number | null;
  user_segment_id?: number | null;
  /** Several segments (Enterprise); an article visible to any of them. */
  user_segment_ids?: number[] | null;
  draft?: boolean;
  outdated?: boolean;
  label_names?: string[];
  updated_at?: string;
}
interface ZdSection {
  id: number;
  name: string;
  category_id?: number | null;
  parent_section_id?: number | null;
}
interface ZdCategory {
  id: number;
  name: string;
}

interface Snapshot {
  version: number;
  /** Where and what the snapshot was read from; another base URL or locale set starts over. */
  origin: string;
  locales: string[];
  /** ms since epoch of the last full listing's start. */
  listedAt: number;
  /** `start_time` for the next incremental export (epoch seconds). */
  endTime: number;
  articles: Record<string, Article>;
}
const SNAPSHOT_VERSION = 1;
const INCREMENTAL_PAGE = 1000;

export function createZendeskSource(
  config: ZendeskSourceConfig,
  options: ZendeskSourceOptions = {},
): ZendeskSource {
  const doFetch = options.fetch ?? fetch;
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? defaultSleep;
  const origin = (config.baseUrl ?? `https://${config.subdomain}.zendesk.com`).replace(/\/+$/, '');
  const locales = config.locales.map((l) => l.toLowerCase());
  const snapshotFile = options.cacheDir ? cacheFile(options.cacheDir, config.name, 'zendesk') : null;
  let last: ZendeskRunStats | null = null;

  return {
    name: config.name,
    type: 'zendesk',
    lastRun: () => last,
    async *articles(): AsyncIterable<SourceItem> {
      const env = options.env ?? process.env;
      const auth = `Basic ${Buffer.from(
        `${resolveSecret(config.email, `source "${config.name}" email`, env)}/token:${resolveSecret(config.apiToken, `source "${config.name}" apiToken`, env)}`,
      ).toString('base64')}`;
      const stats: ZendeskRunStats = {
        mode: 'listing',
        requests: 0,
        retries: 0,
        waitedSeconds: 0,
        articles: 0,
        drafts: 0,
        changed: 0,
      };
      last = stats;
      const get = (url: string) => getJson(url, { auth, config, doFetch, sleep, stats });

      const taxonomy = new Map<string, Taxonomy>();
      for (const locale of locales) taxonomy.set(locale, await readTaxonomy(origin, locale, config, get));
      const toItem = (a: ZdArticle, locale: string): SourceItem | 'skip' => {
        if (a.draft === true) {
          stats.drafts++;
          return 'skip';
        }
        if (config.excludeOutdated && a.outdated === true) return 'skip';
        return articleItem(a, locale, config, taxonomy.get(locale));
      };

      const started = now();
      const snapshot = snapshotFile ? readJsonCache<Snapshot>(snapshotFile, SNAPSHOT_VERSION) : null;
      const incremental =
        config.mode === 'incremental' &&
        snapshot !== null &&
        snapshot.origin === origin &&
        snapshot.locales.join(',') === locales.join(',') &&
        started - snapshot.listedAt < config.fullListingHours * 3_600_000;

      if (!incremental) {
        const fresh: Record<string, Article> = {};
        for (const locale of locales) {
          let url: string | null =
            `${origin}/api/v2/help_center/${encodeURIComponent(locale)}/articles?page[size]=${config.pageSize}`;
          while (url) {
            const page = await get(url);
            const articles = arrayField<ZdArticle>(page, 'articles', url);
            for (const a of articles) {
              const item = toItem(a, locale);
              if (item === 'skip') continue;
              if (item.ok) {
                stats.articles++;
                fresh[item.article.id] = item.article;
              }
              yield item;
            }
            url = nextCursorPage(page, origin);
          }
        }
        if (snapshotFile && config.mode === 'incremental') {
          writeJsonCache(snapshotFile, {
            version: SNAPSHOT_VERSION,
            origin,
            locales,
            listedAt: started,
            // Changes made while we listed are asked for again next time (the export is idempotent).
            endTime: Math.floor(started / 1000),
            articles: fresh,
          } satisfies Snapshot);
        }
        return;
      }

      stats.mode = 'incremental';
      const articles = { ...snapshot.articles };
      const failures: SourceItem[] = [];
      let startTime = snapshot.endTime;
      for (;;) {
        const requestedStart = startTime;
        const url: string = `${origin}/api/v2/help_center/incremental/articles?start_time=${startTime}`;
        const page = await get(url);
        const changed = arrayField<ZdArticle>(page, 'articles', url);
        for (const a of changed) {
          const locale = (a.locale ?? '').toLowerCase();
          if (!locales.includes(locale)) continue;
          stats.changed++;
          const key = `${locale}/${a.id}`;
          const item = toItem(a, locale);
          if (item === 'skip') delete articles[key];
          else if (item.ok) articles[key] = item.article;
          // A failed conversion is reported; the snapshot keeps the last good version, so the
          // article is neither lost now nor deleted by a later sync.
          else failures.push(item);
        }
        const endTime = (page as { end_time?: unknown }).end_time;
        const next = (page as { next_page?: unknown }).next_page;
        const endOfStream = (page as { end_of_stream?: unknown }).end_of_stream === true;
        if (typeof endTime === 'number' && endTime > startTime) startTime = endTime;
        // A short page, no next page or the end of the stream means we are up to date. A full page
        // whose end_time did not move (over 1,000 changes in one second) cannot be paged past.
        if (!next || endOfStream || changed.length < INCREMENTAL_PAGE) break;
        if (startTime === requestedStart) {
          throw new SupportbotError(
            'zendesk-bad-response',
            `source "${config.name}": the incremental export did not advance past start_time ${startTime}`,
          );
        }
      }
      yield* failures;
      // Yield in a stable order so that runs are comparable.
      for (const key of Object.keys(articles).sort()) {
        stats.articles++;
        yield { ok: true, article: articles[key] as Article };
      }
      if (snapshotFile) {
        writeJsonCache(snapshotFile, { ...snapshot, endTime: startTime, articles } satisfies Snapshot);
      }
    },
  };
}

interface Taxonomy {
  sections: Map<number, ZdSection>;
  categories: Map<number, ZdCategory>;
}

/** Sections and categories of a locale, for tags (names are translated per locale). */
async function readTaxonomy(
  origin: string,
  locale: string,
  config: ZendeskSourceConfig,
  get: (url: string) => Promise<unknown>,
): Promise<Taxonomy> {
  const list = async <T>(kind: 'sections' | 'categories'): Promise<T[]> => {
    const out: T[] = [];
    let url: string | null =
      `${origin}/api/v2/help_center/${encodeURIComponent(locale)}/${kind}?page[size]=${config.pageSize}`;
    while (url) {
      const page = await get(url);
      out.push(...arrayField<T>(page, kind, url));
      url = nextCursorPage(page, origin);
    }
    return out;
  };
  const sections = await list<ZdSection>('sections');
  const categories = await list<ZdCategory>('categories');
  return {
    sections: new Map(sections.map((s) => [s.id, s])),
    categories: new Map(categories.map((c) => [c.id, c])),
  };
}

function articleItem(
  a: ZdArticle,
  locale: string,
  config: ZendeskSourceConfig,
  taxonomy: Taxonomy | undefined,
): SourceItem {
  const id = `${locale}/${a.id}`;
  const title = (a.title ?? a.name ?? '').trim();
  const tree: Root = { type: 'root', children: htmlToBlocks(a.body ?? '') };
  normalizeTree(tree, { links: { base: a.html_url ?? null } });
  const body = stringifyMarkdown(tree);
  if (!body.trim()) {
    return { ok: false, error: { sourcePath: id, code: 'empty', message: `${id} has no content` } };
  }
  // Sections nest (parent_section_id); tags go category first, then sections outer to inner.
  const sectionNames: string[] = [];
  let categoryName: string | undefined;
  let sectionId = a.section_id ?? null;
  const visited = new Set<number>();
  while (sectionId !== null && !visited.has(sectionId)) {
    visited.add(sectionId);
    const section = taxonomy?.sections.get(sectionId);
    if (!section) break;
    sectionNames.unshift(section.name);
    if (section.category_id != null) categoryName = taxonomy?.categories.get(section.category_id)?.name;
    sectionId = section.parent_section_id ?? null;
  }
  // Enterprise help centers restrict an article to several segments with `user_segment_ids`
  // (then `user_segment_id` may be null); either way, no segment at all means public.
  const segments = a.user_segment_ids?.length
    ? a.user_segment_ids
    : a.user_segment_id != null
      ? [a.user_segment_id]
      : [];
  const tags = [...(categoryName ? [categoryName] : []), ...sectionNames, ...(a.label_names ?? [])];
  const article: Article = {
    id,
    source: config.name,
    title: title || `Article ${a.id}`,
    url: a.html_url ?? null,
    sourcePath: id,
    body,
    updatedAt: a.updated_at ?? new Date(0).toISOString(),
    tags: [...new Set(tags.filter((t) => t.trim() !== ''))],
    accessGroups: [
      ...new Set(
        segments.map((segment) => config.userSegments[String(segment)] ?? `zendesk-segment:${segment}`),
      ),
    ],
    locale: a.locale ?? locale,
  };
  return { ok: true, article };
}

/** `links.next` while `meta.has_more` (cursor pagination); only URLs on our own origin are followed. */
function nextCursorPage(page: unknown, origin: string): string | null {
  const p = page as { meta?: { has_more?: unknown }; links?: { next?: unknown } };
  if (p.meta?.has_more !== true || typeof p.links?.next !== 'string') return null;
  const next = new URL(p.links.next, origin);
  if (next.origin !== new URL(origin).origin) {
    throw new SupportbotError('zendesk-bad-response', `next page ${next.href} is not on ${origin}`);
  }
  return next.href;
}

function arrayField<T>(page: unknown, field: string, url: string): T[] {
  const value = (page as Record<string, unknown> | null)?.[field];
  if (!Array.isArray(value)) {
    throw new SupportbotError(
      'zendesk-bad-response',
      `${redactUrl(url)}: the response has no "${field}" list`,
    );
  }
  return value as T[];
}

async function getJson(
  url: string,
  ctx: {
    auth: string;
    config: ZendeskSourceConfig;
    doFetch: typeof fetch;
    sleep: (ms: number) => Promise<void>;
    stats: ZendeskRunStats;
  },
): Promise<unknown> {
  const { config, stats } = ctx;
  const where = `source "${config.name}": GET ${redactUrl(url)}`;
  for (let attempt = 0; ; attempt++) {
    let res: Response;
    stats.requests++;
    try {
      res = await ctx.doFetch(url, {
        headers: { authorization: ctx.auth, accept: 'application/json' },
        signal: AbortSignal.timeout(config.timeoutSeconds * 1000),
        redirect: 'follow',
      });
    } catch (err) {
      throw new SupportbotError('zendesk-unreachable', `${where} failed: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (res.ok) {
      try {
        return await res.json();
      } catch (err) {
        throw new SupportbotError('zendesk-bad-response', `${where}: the response is not JSON`, {
          cause: err,
        });
      }
    }
    await res.body?.cancel().catch(() => undefined);
    if (res.status === 429 || res.status === 503) {
      const wait = parseRetryAfter(res.headers.get('retry-after')) ?? Math.min(60, 2 ** attempt);
      if (attempt >= config.maxRetries || wait > config.maxRetryAfterSeconds) {
        throw new SupportbotError(
          'zendesk-rate-limited',
          `${where}: HTTP ${res.status}, Retry-After ${wait} s (gave up after ${attempt} retries; limit ${config.maxRetryAfterSeconds} s)`,
        );
      }
      stats.retries++;
      stats.waitedSeconds += wait;
      await ctx.sleep(wait * 1000);
      continue;
    }
    if (res.status === 401 || res.status === 403) {
      throw new SupportbotError(
        'zendesk-auth-failed',
        `${where}: HTTP ${res.status}; check the email and API token (and that the user is an agent or admin)`,
      );
    }
    if (res.status === 404) {
      throw new SupportbotError('zendesk-not-found', `${where}: HTTP 404; check the subdomain and locales`);
    }
    throw new SupportbotError('zendesk-http-error', `${where}: HTTP ${res.status}`);
  }
}
