/**
 * A local Zendesk Help Center API on node:http, speaking the documented response shapes of the
 * endpoints `sync/sources/zendesk.ts` calls:
 * - `GET /api/v2/help_center/{locale}/articles|sections|categories?page[size]=N[&page[after]=C]`:
 *   cursor pagination (`meta.has_more`, `meta.after_cursor`, `links.next`; page size at most 100,
 *   else 400), https://developer.zendesk.com/api-reference/introduction/pagination/. Listings leave
 *   out archived articles; drafts are listed (the caller is an agent) with `draft: true`.
 * - `GET /api/v2/help_center/incremental/articles?start_time=S`: every translation whose
 *   `updated_at` is at or after `S` (epoch seconds), oldest first, up to `incrementalPageSize`
 *   (1,000 by default) a page, with `count`, `end_time` (the last item's time) and `next_page` (the
 *   same URL with `start_time=end_time`, or null after a short page). Deleted and archived
 *   articles are simply absent, as the export reports changes only.
 * - API-token Basic auth (`{email}/token:{token}`), else 401 with Zendesk's error body.
 * - `rateLimitNext(n, retryAfter)`: the next `n` requests get `429` with `Retry-After`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeCategory {
  id: number;
  /** Name per locale. */
  names: Record<string, string>;
}
export interface FakeSection {
  id: number;
  category_id: number;
  parent_section_id?: number | null;
  names: Record<string, string>;
}
export interface FakeTranslation {
  title: string;
  body: string;
  draft?: boolean;
  outdated?: boolean;
  /** Epoch seconds. */
  updatedAt: number;
}
export interface FakeArticle {
  id: number;
  section_id: number;
  user_segment_id: number | null;
  /** Enterprise: several segments (`user_segment_id` is then null). */
  user_segment_ids?: number[];
  label_names: string[];
  archived?: boolean;
  translations: Record<string, FakeTranslation>;
}

export interface FakeZendeskOptions {
  email: string;
  token: string;
  incrementalPageSize?: number;
}

export class FakeZendesk {
  readonly categories: FakeCategory[] = [];
  readonly sections: FakeSection[] = [];
  readonly articles = new Map<number, FakeArticle>();
  /** Every request as `METHOD path?query`, in order. */
  readonly requests: string[] = [];
  /** Requests answered with 429. */
  rateLimited = 0;
  /** The help center's clock (epoch seconds); every change moves it forward by one. */
  clock = 1_700_000_000;
  url = '';
  #server: Server;
  #rateLimit: { remaining: number; retryAfter: string } = { remaining: 0, retryAfter: '0' };

  constructor(readonly options: FakeZendeskOptions) {
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((err: Error) => {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: err.message }));
      });
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  /** The next `count` requests get HTTP 429 with this `Retry-After` value. */
  rateLimitNext(count: number, retryAfter: string): void {
    this.#rateLimit = { remaining: count, retryAfter };
  }

  /** Adds or replaces an article translation, stamping it with the next clock tick. */
  put(
    article: Omit<FakeArticle, 'translations'>,
    locale: string,
    translation: Omit<FakeTranslation, 'updatedAt'>,
  ): void {
    const existing = this.articles.get(article.id);
    const record: FakeArticle = existing ? { ...existing, ...article } : { ...article, translations: {} };
    record.translations[locale] = { ...translation, updatedAt: ++this.clock };
    this.articles.set(article.id, record);
  }

  /** Changes a translation (title/body/draft…) at the next clock tick. */
  edit(id: number, locale: string, patch: Partial<Omit<FakeTranslation, 'updatedAt'>>): void {
    const t = this.articles.get(id)?.translations[locale];
    if (!t) throw new Error(`no article ${id} in ${locale}`);
    Object.assign(t, patch, { updatedAt: ++this.clock });
  }

  archive(id: number): void {
    const a = this.articles.get(id);
    if (!a) throw new Error(`no article ${id}`);
    a.archived = true;
    for (const t of Object.values(a.translations)) t.updatedAt = ++this.clock;
  }

  delete(id: number): void {
    this.articles.delete(id);
  }

  #json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
    res.end(JSON.stringify(body));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    this.requests.push(`${req.method} ${url.pathname}${url.search}`);
    const expected = `Basic ${Buffer.from(`${this.options.email}/token:${this.options.token}`).toString('base64')}`;
    if (req.headers.authorization !== expected) {
      this.#json(res, 401, { error: "Couldn't authenticate you" });
      return;
    }
    if (this.#rateLimit.remaining > 0) {
      this.#rateLimit.remaining--;
      this.rateLimited++;
      this.#json(res, 429, { error: 'TooManyRequests' }, { 'retry-after': this.#rateLimit.retryAfter });
      return;
    }
    if (req.method !== 'GET') {
      this.#json(res, 405, { error: 'MethodNotAllowed' });
      return;
    }
    if (url.pathname === '/api/v2/help_center/incremental/articles') {
      this.#incremental(url, res);
      return;
    }
    const m =
      /^\/api\/v2\/help_center\/([a-z]{2}(?:-[a-z]{2,4})?)\/(articles|sections|categories)(?:\.json)?$/i.exec(
        url.pathname,
      );
    if (!m) {
      this.#json(res, 404, { error: 'RecordNotFound', description: 'Not found' });
      return;
    }
    const locale = (m[1] as string).toLowerCase();
    const kind = m[2] as 'articles' | 'sections' | 'categories';
    const knownLocale = [...this.articles.values()].some((a) => locale in a.translations);
    if (!knownLocale) {
      this.#json(res, 404, { error: 'RecordNotFound', description: 'Not found' });
      return;
    }
    const items =
      kind === 'articles'
        ? [...this.articles.values()]
            .filter((a) => !a.archived && a.translations[locale])
            .sort((a, b) => a.id - b.id)
            .map((a) => this.#articleJson(a, locale))
        : kind === 'sections'
          ? this.sections.map((s) => ({
              id: s.id,
              name: s.names[locale] ?? s.names['en-us'],
              category_id: s.category_id,
              parent_section_id: s.parent_section_id ?? null,
              locale,
            }))
          : this.categories.map((c) => ({ id: c.id, name: c.names[locale] ?? c.names['en-us'], locale }));
    this.#cursorPage(url, res, kind, items);
  }

  /** Cursor pagination: the cursor is the base64 of the next offset (opaque to clients). */
  #cursorPage(url: URL, res: ServerResponse, kind: string, items: unknown[]): void {
    const size = Number(url.searchParams.get('page[size]') ?? '100');
    if (!Number.isInteger(size) || size < 1 || size > 100) {
      this.#json(res, 400, { errors: [{ title: 'Invalid page[size]', code: 'InvalidPaginationParameter' }] });
      return;
    }
    const after = url.searchParams.get('page[after]');
    const offset = after ? Number(Buffer.from(after, 'base64url').toString()) : 0;
    const page = items.slice(offset, offset + size);
    const hasMore = offset + size < items.length;
    const cursor = (n: number) => Buffer.from(String(n)).toString('base64url');
    const link = (params: Record<string, string>) => {
      const next = new URL(url.pathname, this.url);
      next.searchParams.set('page[size]', String(size));
      for (const [k, v] of Object.entries(params)) next.searchParams.set(k, v);
      return next.href;
    };
    this.#json(res, 200, {
      [kind]: page,
      meta: {
        has_more: hasMore,
        after_cursor: hasMore ? cursor(offset + size) : null,
        before_cursor: offset > 0 ? cursor(Math.max(0, offset - size)) : null,
      },
      links: {
        first: link({}),
        last: link({}),
        next: hasMore ? link({ 'page[after]': cursor(offset + size) }) : null,
        prev: offset > 0 ? link({ 'page[before]': cursor(Math.max(0, offset - size)) }) : null,
      },
    });
  }

  #incremental(url: URL, res: ServerResponse): void {
    const start = Number(url.searchParams.get('start_time'));
    if (!Number.isInteger(start) || start < 0) {
      this.#json(res, 400, { error: 'InvalidValue', description: 'start_time is required' });
      return;
    }
    const limit = this.options.incrementalPageSize ?? 1000;
    const changed = [...this.articles.values()]
      .filter((a) => !a.archived)
      .flatMap((a) =>
        Object.entries(a.translations)
          .filter(([, t]) => t.updatedAt >= start)
          .map(([locale, t]) => ({ a, locale, t })),
      )
      .sort((x, y) => x.t.updatedAt - y.t.updatedAt || x.a.id - y.a.id);
    const page = changed.slice(0, limit);
    const endTime = page.length > 0 ? (page[page.length - 1] as { t: FakeTranslation }).t.updatedAt : start;
    const full = page.length === limit;
    this.#json(res, 200, {
      articles: page.map(({ a, locale }) => this.#articleJson(a, locale)),
      count: page.length,
      end_time: endTime,
      next_page: full ? `${this.url}/api/v2/help_center/incremental/articles?start_time=${endTime}` : null,
    });
  }

  #articleJson(a: FakeArticle, locale: string) {
    const t = a.translations[locale] as FakeTranslation;
    const iso = new Date(t.updatedAt * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    return {
      id: a.id,
      url: `${this.url}/api/v2/help_center/${locale}/articles/${a.id}.json`,
      html_url: `${this.url}/hc/${locale}/articles/${a.id}-${t.title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`,
      author_id: 1,
      comments_disabled: false,
      draft: t.draft === true,
      promoted: false,
      position: 0,
      vote_sum: 0,
      vote_count: 0,
      section_id: a.section_id,
      created_at: iso,
      updated_at: iso,
      edited_at: iso,
      name: t.title,
      title: t.title,
      source_locale: 'en-us',
      locale,
      outdated: t.outdated === true,
      outdated_locales: [],
      user_segment_id: a.user_segment_id,
      ...(a.user_segment_ids ? { user_segment_ids: a.user_segment_ids } : {}),
      permission_group_id: 1,
      content_tag_ids: [],
      label_names: a.label_names,
      body: t.body,
    };
  }
}

/** A small help center: 2 categories, 3 sections (one nested), 7 articles in en-us, 2 also in de. */
export function seedHelpCenter(zd: FakeZendesk): void {
  zd.categories.push(
    { id: 10, names: { 'en-us': 'Billing', de: 'Abrechnung' } },
    { id: 20, names: { 'en-us': 'Account', de: 'Konto' } },
  );
  zd.sections.push(
    { id: 100, category_id: 10, names: { 'en-us': 'Invoices', de: 'Rechnungen' } },
    { id: 101, category_id: 10, parent_section_id: 100, names: { 'en-us': 'Reminders', de: 'Mahnungen' } },
    { id: 200, category_id: 20, names: { 'en-us': 'Security', de: 'Sicherheit' } },
  );
  const base = { user_segment_id: null, label_names: [] as string[] };
  zd.put({ ...base, id: 1, section_id: 100, label_names: ['vat'] }, 'en-us', {
    title: 'Create an invoice',
    body: '<p>Open <strong>Invoices</strong> and select <em>New</em>.</p><h2>Taxes</h2><ul><li>VAT is added per line.</li></ul>',
  });
  zd.put({ ...base, id: 1, section_id: 100, label_names: ['vat'] }, 'de', {
    title: 'Rechnung erstellen',
    body: '<p>Öffnen Sie <strong>Rechnungen</strong>.</p>',
  });
  zd.put({ ...base, id: 2, section_id: 101 }, 'en-us', {
    title: 'Payment reminders',
    body: '<p>Reminders are sent 3 days after the due date.</p>',
  });
  zd.put({ ...base, id: 3, section_id: 200 }, 'en-us', {
    title: 'Two-factor authentication',
    body: '<p>Turn on 2FA under <a href="/settings">Settings</a>.</p>',
  });
  zd.put({ ...base, id: 3, section_id: 200 }, 'de', {
    title: 'Zwei-Faktor-Authentifizierung',
    body: '<p>Aktivieren Sie 2FA.</p>',
    outdated: true,
  });
  zd.put({ ...base, id: 4, section_id: 200, user_segment_id: 9001 }, 'en-us', {
    title: 'Reset a member’s 2FA (agents only)',
    body: '<p>Agents can reset 2FA from the member page.</p>',
  });
  zd.put({ ...base, id: 5, section_id: 100 }, 'en-us', {
    title: 'Upcoming: invoice templates',
    body: '<p>Not published yet.</p>',
    draft: true,
  });
  zd.put({ ...base, id: 6, section_id: 100 }, 'en-us', {
    title: 'Legacy invoice numbering',
    body: '<p>Old numbering scheme.</p>',
  });
  zd.archive(6);
  zd.put({ ...base, id: 7, section_id: 101 }, 'en-us', {
    title: 'Overdue invoices',
    body: '<p>An invoice is overdue the day after its due date.</p>',
  });
}
