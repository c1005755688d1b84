/**
 * A small help-center website on node:http, built at start from `examples/helpcenter`: every
 * Markdown article becomes an HTML page (site chrome around a `<main>`), HTML files are served as
 * they are. It serves what `sync/sources/website.ts` reads:
 * - `/robots.txt` (RFC 9309): by default `Disallow: /security/` for every agent;
 * - `/sitemap.xml`, a sitemap index (https://www.sitemaps.org/protocol.html) pointing at
 *   `/sitemaps/pages-1.xml` and the gzipped `/sitemaps/pages-2.xml.gz`, which list the pages;
 * - pages with `ETag` and `Last-Modified`, answering conditional requests with `304 Not Modified`
 *   as RFC 9110 §13.1–13.2 says: `If-None-Match` (weak comparison) wins over
 *   `If-Modified-Since`, which is only evaluated without it.
 * Counters: requests per path, 200s and 304s, the most page requests ever in flight at once.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Nodes, Root } from 'mdast';
import { parseMarkdown, splitFrontMatter } from '../../sync/normalize/markdown.ts';

export interface FakePage {
  html: string;
  /** HTTP date. */
  lastModified: string;
  etag: string;
}

export interface FakeWebsiteOptions {
  /** Folder of Markdown/HTML articles; default `examples/helpcenter`. */
  root?: string;
  /** robots.txt body; default disallows `/security/`. */
  robotsTxt?: string;
  /** Status for `/robots.txt` instead of the body (e.g. 404, 503). */
  robotsStatus?: number;
  /** Send ETag headers (default true). */
  etags?: boolean;
  /** Send Last-Modified headers (default true). */
  lastModified?: boolean;
  /** Server-side latency per page response, ms (a real site is not on localhost). */
  pageDelayMs?: number;
}

const EXAMPLES = path.resolve(import.meta.dirname, '..', '..', 'examples', 'helpcenter');

export class FakeWebsite {
  readonly pages = new Map<string, FakePage>();
  /** Paths listed in the sitemaps (a page can be listed yet gone, or present yet unlisted). */
  readonly listed: string[] = [];
  readonly hits = new Map<string, number>();
  /** Every request's path and the validators it carried. */
  readonly log: {
    path: string;
    ifNoneMatch?: string;
    ifModifiedSince?: string;
    status: number;
    at: number;
  }[] = [];
  /** Paths answered `500` (a broken page). */
  readonly failing = new Set<string>();
  ok200 = 0;
  notModified304 = 0;
  inFlight = 0;
  maxInFlight = 0;
  url = '';
  #server: Server;

  constructor(readonly options: FakeWebsiteOptions = {}) {
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((err: Error) => {
        res.writeHead(500);
        res.end(err.message);
      });
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    this.#build(this.options.root ?? EXAMPLES);
    return this;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  /** Replaces a page's HTML (new ETag, Last-Modified one hour later). */
  setPage(pathname: string, html: string): void {
    const old = this.pages.get(pathname);
    const modified = old
      ? new Date(Date.parse(old.lastModified) + 3_600_000)
      : new Date(Date.UTC(2026, 9, 1));
    this.pages.set(pathname, { html, lastModified: modified.toUTCString(), etag: etagOf(html) });
    if (!this.listed.includes(pathname)) this.listed.push(pathname);
  }

  resetCounters(): void {
    this.hits.clear();
    this.log.length = 0;
    this.ok200 = 0;
    this.notModified304 = 0;
    this.maxInFlight = 0;
  }

  #build(root: string): void {
    const walk = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)],
      );
    for (const file of walk(root).sort()) {
      const relative = path.relative(root, file).split(path.sep).join('/');
      const text = readFileSync(file, 'utf8');
      if (/\.html?$/.test(relative)) {
        this.setPage(`/${relative.replace(/\.html?$/, '')}`, text);
        continue;
      }
      if (!/\.md$/.test(relative)) continue;
      const { data, body } = splitFrontMatter(text);
      const title = typeof data.title === 'string' ? data.title : relative;
      const lang =
        typeof data.locale === 'string' ? data.locale : typeof data.lang === 'string' ? data.lang : 'en';
      this.setPage(`/${relative.replace(/\.md$/, '')}`, renderPage(title, lang, parseMarkdown(body)));
    }
  }

  #sitemap(paths: string[]): string {
    const urls = paths
      .map((p) => `<url><loc>${this.url}${p}</loc><lastmod>2026-10-01</lastmod></url>`)
      .join('');
    return `<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">${urls}</urlset>`;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    const p = url.pathname;
    this.hits.set(p, (this.hits.get(p) ?? 0) + 1);
    const entry = {
      path: p,
      ifNoneMatch: req.headers['if-none-match'],
      ifModifiedSince: req.headers['if-modified-since'],
      status: 200,
      at: Date.now(),
    };
    this.log.push(entry);
    const send = (
      status: number,
      type: string,
      body: string | Buffer,
      headers: Record<string, string> = {},
    ) => {
      entry.status = status;
      res.writeHead(status, { 'content-type': type, ...headers });
      res.end(body);
    };
    if (p === '/robots.txt') {
      if (this.options.robotsStatus) send(this.options.robotsStatus, 'text/plain', 'unavailable');
      else send(200, 'text/plain', this.options.robotsTxt ?? 'User-agent: *\nDisallow: /security/\n');
      return;
    }
    const half = Math.ceil(this.listed.length / 2);
    if (p === '/sitemap.xml') {
      send(
        200,
        'application/xml',
        `<?xml version="1.0" encoding="UTF-8"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><sitemap><loc>${this.url}/sitemaps/pages-1.xml</loc></sitemap><sitemap><loc>${this.url}/sitemaps/pages-2.xml.gz</loc></sitemap></sitemapindex>`,
      );
      return;
    }
    if (p === '/sitemaps/pages-1.xml') {
      send(200, 'application/xml', this.#sitemap(this.listed.slice(0, half)));
      return;
    }
    if (p === '/sitemaps/pages-2.xml.gz') {
      send(200, 'application/gzip', gzipSync(this.#sitemap(this.listed.slice(half))));
      return;
    }
    const page = this.pages.get(p);
    if (this.failing.has(p)) {
      send(500, 'text/html', '<h1>Internal error</h1>');
      return;
    }
    if (!page) {
      send(404, 'text/html', '<h1>Not found</h1>');
      return;
    }
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.options.pageDelayMs) await new Promise((r) => setTimeout(r, this.options.pageDelayMs));
      const headers: Record<string, string> = {};
      if (this.options.etags !== false) headers.etag = page.etag;
      if (this.options.lastModified !== false) headers['last-modified'] = page.lastModified;
      const inm = req.headers['if-none-match'];
      const ims = req.headers['if-modified-since'];
      let notModified = false;
      if (inm !== undefined) {
        // Weak comparison (RFC 9110 §8.8.3.2): W/ prefixes are ignored.
        const tags = inm.split(',').map((t) => t.trim().replace(/^W\//, ''));
        notModified =
          this.options.etags !== false &&
          (tags.includes('*') || tags.includes(page.etag.replace(/^W\//, '')));
      } else if (ims !== undefined && this.options.lastModified !== false) {
        const since = Date.parse(ims);
        notModified = !Number.isNaN(since) && Date.parse(page.lastModified) <= since;
      }
      if (notModified) {
        this.notModified304++;
        send(304, 'text/html; charset=utf-8', '', headers);
      } else {
        this.ok200++;
        send(200, 'text/html; charset=utf-8', page.html, headers);
      }
    } finally {
      this.inFlight--;
    }
  }
}

function etagOf(html: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < html.length; i++) h = Math.imul(h ^ html.charCodeAt(i), 0x01000193) >>> 0;
  return `"${h.toString(16)}-${html.length}"`;
}

const escapeHtml = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A page as a help-center theme would render it: header, nav and footer around `<main>`. */
export function renderPage(title: string, lang: string, tree: Root): string {
  return `<!doctype html><html lang="${escapeHtml(lang)}"><head><meta charset="utf-8"><title>${escapeHtml(title)} – Ledgerly Help</title></head><body><header><a href="/">Ledgerly Help Center</a><form><input name="q"></form></header><nav><a href="/billing/plans-and-pricing">Billing</a> · <a href="/account/account-faq">Account</a></nav><main><h1>${escapeHtml(title)}</h1>${tree.children.map(renderNode).join('')}</main><footer>© Ledgerly</footer></body></html>`;
}

/** A minimal Markdown (mdast) → HTML renderer covering what the example articles use. */
function renderNode(node: Nodes): string {
  const kids = (n: { children: Nodes[] }): string => n.children.map(renderNode).join('');
  switch (node.type) {
    case 'paragraph':
      return `<p>${kids(node)}</p>`;
    case 'heading':
      return `<h${node.depth}>${kids(node)}</h${node.depth}>`;
    case 'text':
      return escapeHtml(node.value);
    case 'emphasis':
      return `<em>${kids(node)}</em>`;
    case 'strong':
      return `<strong>${kids(node)}</strong>`;
    case 'delete':
      return `<del>${kids(node)}</del>`;
    case 'inlineCode':
      return `<code>${escapeHtml(node.value)}</code>`;
    case 'code':
      return `<pre><code${node.lang ? ` class="language-${escapeHtml(node.lang)}"` : ''}>${escapeHtml(node.value)}</code></pre>`;
    case 'link':
      return `<a href="${escapeHtml(node.url)}">${kids(node)}</a>`;
    case 'image':
      return `<img src="${escapeHtml(node.url)}" alt="${escapeHtml(node.alt ?? '')}">`;
    case 'break':
      return '<br>';
    case 'thematicBreak':
      return '<hr>';
    case 'blockquote':
      return `<blockquote>${kids(node)}</blockquote>`;
    case 'list':
      return node.ordered ? `<ol>${kids(node)}</ol>` : `<ul>${kids(node)}</ul>`;
    case 'listItem':
      return `<li>${kids(node)}</li>`;
    case 'table': {
      const [head, ...rows] = node.children;
      const cells = (row: (typeof node.children)[number], tag: string) =>
        `<tr>${row.children.map((c) => `<${tag}>${kids(c)}</${tag}>`).join('')}</tr>`;
      return `<table><thead>${head ? cells(head, 'th') : ''}</thead><tbody>${rows.map((r) => cells(r, 'td')).join('')}</tbody></table>`;
    }
    case 'html':
      return node.value;
    default:
      return 'children' in node ? kids(node as { children: Nodes[] }) : '';
  }
}
