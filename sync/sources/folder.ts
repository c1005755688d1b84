/**
 * The folder source: a directory of Markdown (`.md`, `.mdx`) and HTML (`.html`, `.htm`) files, in
 * one of the dialects of `sync/dialects/`, turned into `Article`s.
 *
 * One file → one article. Per file, in order:
 *  1. read; binary files (`binary-file`) and bytes that are not UTF-8 (`invalid-utf8`) are reported;
 *  2. HTML files: main content → Markdown (`sync/normalize/html.ts`), no dialect; `.mdx` files of
 *     a `markdown` source get the `docusaurus` rewrite (imports, JSX, admonitions);
 *  3. Markdown: split YAML front matter (`bad-front-matter`, naming the line); `draft: true` files
 *     are skipped (not published, so not an article); the dialect rewrites its syntax
 *     (`bad-include` from Zulip); parse, clean up, take the title, stringify;
 *     relative links and images are resolved on the tree against the article's URL, links to
 *     other articles of the source becoming those articles' URLs (`sync/normalize/links.ts`);
 *  4. an article whose body is empty after all that is reported as `empty`.
 * A path the include globs match that is not a readable file is reported, never skipped (a skip
 * would look like a deleted article to the sync): a symlink to nothing (`dangling-symlink`), a
 * symlink that leads back to itself (`symlink-loop`), a folder named like an article file
 * (`reset-password.md/`, `not-a-file`, named without the slash so only that article is spared).
 * A Markdown file holding nothing but a relative path to another `.md` file is a symlink that Git
 * checked out as text (Zulip's `integrations-overview.md`); it is reported as `symlink-stub`.
 * Anything else that throws on one file is reported as `parse-error`. Every error names the file
 * (`sourcePath`) and the walk goes on. A folder that cannot be listed (permissions, I/O error) is
 * reported as `read-error` with its path and a trailing slash (`sub/`), so that the sync keeps
 * the articles it had from there; only a missing or unreadable root folder fails the whole source.
 *
 * Article fields: `id` is front matter `id` (as a string), else the path without extension;
 * `title` is front matter `title`, else the first H1, else the file name; `url` is front matter
 * `url`, else `urlTemplate` with `{id}`, `{slug}` (front matter `slug`, else the path without
 * extension; URL-encoded per segment) and `{path}`; `updatedAt` is front matter
 * `updatedAt`/`updated`/`updated_at`/`last_update.date`, else the file's mtime; `tags` are front
 * matter `tags` followed by the names of the folders the file is in (`Store Support/Shipping/x.md`
 * → `Store Support`, `Shipping`); `accessGroups` from `accessGroups`/`access` (`public` = none);
 * `locale` from front matter `locale`/`lang` (or `<html lang>`), else the source's.
 */
import { type Dirent, readFileSync, realpath as realpathCallback } from 'node:fs';
import { lstat, readdir, readFile, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import { isBinaryFile } from 'isbinaryfile';
import { type FileSystemAdapter, glob } from 'tinyglobby';
import type { FolderSourceConfig } from '../../core/config.ts';
import { SupportbotError } from '../../core/errors.ts';
import type { Article } from '../../core/types.ts';
import { type Dialect, type DialectContext, dialects, getDialect } from '../dialects/index.ts';
import { htmlPageToMarkdown } from '../normalize/html.ts';
import type { LinkContext } from '../normalize/links.ts';
import {
  FrontMatterError,
  normalizeTree,
  parseMarkdown,
  splitFrontMatter,
  stringifyMarkdown,
  takeTitle,
  titleFromFileName,
} from '../normalize/markdown.ts';
import type { Source, SourceItem, SourceItemError } from '../source.ts';

/** Git checks a symlink out as a one-line text file holding its target when symlinks are off. */
const SYMLINK_STUB = /^\.{0,2}\/?(?:[\w.-]+\/)*[\w.-]+\.(?:md|mdx|html?)\s*$/;

export interface FolderSourceOptions {
  /**
   * Lists one folder (an absolute path) for the walk; defaults to `fs.promises.readdir` with
   * `withFileTypes`. Tests inject failures here, since root ignores folder permissions.
   */
  readdir?: (dir: string) => Promise<Dirent[]>;
}

/** A `readdir` error that means the folder is gone (deleted during the walk), not unreadable. */
const GONE = new Set(['ENOENT', 'ENOTDIR']);

export function createFolderSource(config: FolderSourceConfig, options: FolderSourceOptions = {}): Source {
  const root = path.resolve(config.path);
  const baseDialect = getDialect(config.dialect);
  const listDir = options.readdir ?? ((dir: string) => readdir(dir, { withFileTypes: true }));
  return {
    name: config.name,
    type: 'folder',
    async *articles(): AsyncIterable<SourceItem> {
      const rootStat = await stat(root).catch(() => null);
      if (!rootStat?.isDirectory()) {
        throw new SupportbotError(
          'source-unavailable',
          `source "${config.name}": folder ${root} ${rootStat ? 'is not a directory' : 'does not exist'}`,
        );
      }
      const { files, notFiles, unreadable } = await listFiles(root, config, baseDialect, listDir);
      if (unreadable.has('')) {
        throw new SupportbotError(
          'source-unavailable',
          `source "${config.name}": folder ${root} cannot be read: ${unreadable.get('')}`,
        );
      }
      for (const [dir, reason] of [...unreadable].sort(([a], [b]) => byCodePoint(a, b))) {
        yield {
          ok: false,
          error: { sourcePath: dir, code: 'read-error', message: `cannot read folder ${dir}: ${reason}` },
        };
      }
      const cache = new Map<string, string | undefined>();
      const readSourceFile = (relativePath: string): string | undefined => {
        const absolute = path.resolve(root, relativePath);
        if (path.relative(root, absolute).startsWith('..')) return undefined;
        if (!cache.has(absolute)) {
          try {
            cache.set(absolute, readFileSync(absolute, 'utf8'));
          } catch {
            cache.set(absolute, undefined);
          }
        }
        return cache.get(absolute);
      };
      const links = createLinkResolver(config, files, readSourceFile);
      const notFileSet = new Set(notFiles);
      for (const sourcePath of [...files, ...notFiles].sort(byCodePoint)) {
        const item = notFileSet.has(sourcePath)
          ? notAFile(sourcePath)
          : await readArticle(config, root, sourcePath, baseDialect, readSourceFile, links);
        if (item) yield item;
      }
    },
  };
}

/**
 * The source's files (relative, sorted), the folders named like article files (`x.md/`, listed
 * without the slash in `notFiles`), and the folders the glob could not list, as relative paths
 * with a trailing slash (`''` for the root) → the error code. The glob skips unreadable folders
 * silently, so its `readdir` is wrapped to record them; its `realpath` to map a symlinked folder,
 * which the glob lists under its real path, back to the path of the link.
 *
 * The glob also drops symlinks it cannot stat (dangling, or in a loop) without a word, and with
 * `onlyFiles` it drops folders; either would make the article the path used to hold look deleted.
 * So the wrapped `readdir` shows a symlink that cannot be followed as a plain file (reading it then
 * reports `dangling-symlink` or `symlink-loop`), and folders are listed too, keeping those whose
 * name has an article extension.
 */
async function listFiles(
  root: string,
  config: FolderSourceConfig,
  baseDialect: Dialect,
  listDir: (dir: string) => Promise<Dirent[]>,
): Promise<{ files: string[]; notFiles: string[]; unreadable: Map<string, string> }> {
  const unreadable = new Map<string, string>();
  const linkOf = new Map<string, string>();
  const withSlash = (p: string): string => (p.endsWith(path.sep) || p.endsWith('/') ? p : p + path.sep);
  const record = (dir: string, err: NodeJS.ErrnoException): void => {
    if (err.code && GONE.has(err.code)) return;
    const logical = linkOf.get(withSlash(path.resolve(dir))) ?? path.resolve(dir);
    const relative = path.relative(root, logical).split(path.sep).join('/');
    unreadable.set(relative === '' ? '' : `${relative}/`, err.code ?? err.message.split('\n')[0] ?? 'error');
  };
  const adapter: FileSystemAdapter = {
    readdir: ((dir: string, ...rest: unknown[]) => {
      const callback = rest[rest.length - 1] as (
        err: NodeJS.ErrnoException | null,
        entries: Dirent[],
      ) => void;
      listDir(dir).then(
        (entries) => showBrokenLinksAsFiles(dir, entries).then((shown) => callback(null, shown)),
        (err: NodeJS.ErrnoException) => {
          record(dir, err);
          callback(err, []);
        },
      );
    }) as FileSystemAdapter['readdir'],
    realpath: ((link: string, ...rest: unknown[]) => {
      const callback = rest[rest.length - 1] as (err: NodeJS.ErrnoException | null, resolved: string) => void;
      realpathCallback(link, (err, resolved) => {
        if (!err && !linkOf.has(withSlash(resolved))) linkOf.set(withSlash(resolved), link);
        callback(err, resolved);
      });
    }) as FileSystemAdapter['realpath'],
  };
  const found = await glob(config.include, {
    cwd: root,
    ignore: [...config.exclude, ...baseDialect.exclude],
    onlyFiles: false,
    dot: false,
    fs: adapter,
  });
  const files = found.filter((p) => !p.endsWith('/')).sort(byCodePoint);
  const notFiles = found
    .filter((p) => p.endsWith('/') && ARTICLE_EXTENSION.test(p.slice(0, -1)))
    .map((p) => p.slice(0, -1))
    .sort(byCodePoint);
  return { files, notFiles, unreadable };
}

/** Names that a folder source reads as articles; a folder named so is reported, not skipped. */
const ARTICLE_EXTENSION = /\.(?:md|mdx|html?)$/i;

/** A symlink that `stat` cannot follow, presented to the glob as a file (see `listFiles`). */
async function showBrokenLinksAsFiles(dir: string, entries: Dirent[]): Promise<Dirent[]> {
  if (!entries.some((e) => e.isSymbolicLink())) return entries;
  return Promise.all(
    entries.map(async (entry) => {
      if (!entry.isSymbolicLink()) return entry;
      const followed = await stat(path.join(dir, entry.name)).then(
        () => true,
        () => false,
      );
      if (followed) return entry;
      return Object.assign(Object.create(Object.getPrototypeOf(entry) as object) as Dirent, entry, {
        isFile: () => true,
        isDirectory: () => false,
        isSymbolicLink: () => false,
      });
    }),
  );
}

function notAFile(sourcePath: string): SourceItem {
  return {
    ok: false,
    error: {
      sourcePath,
      code: 'not-a-file',
      message: `${sourcePath} is a folder, not a file: an article file cannot be read from it`,
    },
  };
}

function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

async function readArticle(
  config: FolderSourceConfig,
  root: string,
  sourcePath: string,
  baseDialect: Dialect,
  readSourceFile: (relativePath: string) => string | undefined,
  links: LinkResolver,
): Promise<SourceItem | null> {
  const fail = (code: string, message: string): SourceItem => ({
    ok: false,
    error: { sourcePath, code, message },
  });
  const absolute = path.join(root, sourcePath);
  let bytes: Buffer;
  let mtime: Date;
  try {
    [bytes, mtime] = await Promise.all([readFile(absolute), stat(absolute).then((s) => s.mtime)]);
  } catch (err) {
    return readFailure(absolute, sourcePath, err as NodeJS.ErrnoException);
  }
  if (bytes.length > 0 && (await isBinaryFile(bytes, bytes.length))) {
    return fail('binary-file', `${sourcePath} is a binary file, not text`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    const line = new TextDecoder('utf-8').decode(bytes).split('\uFFFD')[0]?.split('\n').length ?? 1;
    return fail('invalid-utf8', `${sourcePath} is not valid UTF-8 (first bad byte on line ${line})`);
  }

  try {
    const ext = path.extname(sourcePath).toLowerCase();
    const fields =
      ext === '.html' || ext === '.htm'
        ? fromHtml(text, links.context(sourcePath, {}))
        : fromMarkdown(
            text,
            sourcePath,
            ext === '.mdx' && baseDialect.name === 'markdown' ? dialects.docusaurus : baseDialect,
            readSourceFile,
            links,
          );
    if ('error' in fields) return { ok: false, error: { sourcePath, ...fields.error } };
    if (fields.skip) return null;
    if (!fields.body.trim()) return fail('empty', `${sourcePath} has no content after normalization`);
    return { ok: true, article: buildArticle(config, sourcePath, fields, mtime) };
  } catch (err) {
    if (err instanceof FrontMatterError) return fail('bad-front-matter', `${sourcePath}: ${err.message}`);
    if (err instanceof SupportbotError) return fail(err.code, `${sourcePath}: ${err.message}`);
    return fail('parse-error', `${sourcePath}: ${(err as Error).message.split('\n')[0]}`);
  }
}

interface Fields {
  skip?: boolean;
  title: string | undefined;
  body: string;
  frontMatter: Record<string, unknown>;
  lang?: string | undefined;
}

/** Why a listed file could not be read, with the code that names a broken symlink or a folder. */
async function readFailure(
  absolute: string,
  sourcePath: string,
  err: NodeJS.ErrnoException,
): Promise<SourceItem> {
  const fail = (code: string, message: string): SourceItem => ({
    ok: false,
    error: { sourcePath, code, message },
  });
  const link = await lstat(absolute).catch(() => null);
  if (err.code === 'ELOOP') {
    return fail('symlink-loop', `${sourcePath} is a symlink that leads back to itself (a symlink loop)`);
  }
  if (link?.isSymbolicLink() && (err.code === 'ENOENT' || err.code === 'ENOTDIR')) {
    const target = await readlink(absolute).catch(() => '?');
    return fail('dangling-symlink', `${sourcePath} is a symlink to ${target}, which does not exist`);
  }
  if (err.code === 'EISDIR') return notAFile(sourcePath);
  return fail('read-error', `cannot read ${sourcePath}: ${err.code ?? err.message}`);
}

function fromHtml(text: string, links: LinkContext): Fields {
  const page = htmlPageToMarkdown(text);
  normalizeTree(page.tree, { links });
  const title = takeTitle(page.tree, undefined, page.title);
  return { title, body: stringifyMarkdown(page.tree), frontMatter: {}, lang: page.lang };
}

function fromMarkdown(
  text: string,
  sourcePath: string,
  dialect: Dialect,
  readSourceFile: (relativePath: string) => string | undefined,
  links: LinkResolver,
): Fields | { error: Omit<SourceItemError, 'sourcePath'> } {
  const { data, body } = splitFrontMatter(text);
  if (data.draft === true) return { skip: true, title: undefined, body: '', frontMatter: data };
  if (SYMLINK_STUB.test(body.trim()) && !body.trim().includes('\n')) {
    return {
      error: {
        code: 'symlink-stub',
        message: `${sourcePath} only holds the path "${body.trim()}": a symlink checked out as a file`,
      },
    };
  }
  const context: DialectContext = { sourcePath, frontMatter: data, readFile: readSourceFile };
  const tree = parseMarkdown(dialect.preprocess(body, context));
  normalizeTree(tree, { ...dialect.normalize, links: links.context(sourcePath, data) });
  const title = takeTitle(tree, stringField(data.title));
  return { title, body: stringifyMarkdown(tree), frontMatter: data };
}

function buildArticle(config: FolderSourceConfig, sourcePath: string, fields: Fields, mtime: Date): Article {
  const fm = fields.frontMatter;
  const slugPath = sourcePath.replace(/\.[^./]+$/, '');
  const id = scalarField(fm.id) ?? slugPath;
  const url = articleUrl(config, sourcePath, fm);
  const folders = sourcePath.split('/').slice(0, -1);
  return {
    id,
    source: config.name,
    title: fields.title ?? titleFromFileName(sourcePath),
    url,
    sourcePath,
    body: fields.body,
    updatedAt:
      dateField(fm.updatedAt ?? fm.updated ?? fm.updated_at ?? lastUpdate(fm)) ?? mtime.toISOString(),
    tags: unique([...listField(fm.tags), ...folders]),
    accessGroups: listField(fm.accessGroups ?? fm.access_groups ?? fm.access).filter((g) => g !== 'public'),
    locale: stringField(fm.locale) ?? stringField(fm.lang) ?? fields.lang ?? config.locale,
  };
}

/** The article's URL: front matter `url`, else the source's `urlTemplate` expanded; `null` without both. */
function articleUrl(
  config: FolderSourceConfig,
  sourcePath: string,
  fm: Record<string, unknown>,
): string | null {
  const slugPath = sourcePath.replace(/\.[^./]+$/, '');
  const id = scalarField(fm.id) ?? slugPath;
  return (
    stringField(fm.url) ??
    expandUrl(config.urlTemplate, id, slugField(fm.slug, slugPath) ?? slugPath, sourcePath)
  );
}

interface LinkResolver {
  /** What `resolveLinks` needs for the file at `sourcePath` with front matter `frontMatter`. */
  context(sourcePath: string, frontMatter: Record<string, unknown>): LinkContext;
}

/**
 * Maps links between the articles of one pass over the source: a file's article URL is computed
 * from its front matter (read through the pass's file cache) the way `buildArticle` does, so a
 * link to `excluding.md` gets the URL that article is cited with. A file that is not listed, is a
 * draft or has broken front matter is not an article, so links to it are only resolved as URLs.
 * The URL → article index for site-relative links (`/help/x`) is built on first use.
 */
function createLinkResolver(
  config: FolderSourceConfig,
  files: string[],
  readSourceFile: (relativePath: string) => string | undefined,
): LinkResolver {
  const listed = new Set(files);
  const urls = new Map<string, string | null | undefined>();
  const urlOfFile = (file: string): string | null | undefined => {
    if (!listed.has(file)) return undefined;
    if (urls.has(file)) return urls.get(file);
    let url: string | null | undefined;
    const text = readSourceFile(file);
    if (text === undefined) url = undefined;
    else if (/\.html?$/i.test(file)) url = articleUrl(config, file, {});
    else {
      try {
        const { data } = splitFrontMatter(text);
        url = data.draft === true ? undefined : articleUrl(config, file, data);
      } catch {
        url = undefined;
      }
    }
    urls.set(file, url);
    return url;
  };
  let byUrl: Map<string, string> | undefined;
  const urlKey = (url: string): string => url.replace(/[#].*$/, '').replace(/\/+$/, '');
  const articleForUrl = (url: string): string | undefined => {
    if (!byUrl) {
      byUrl = new Map();
      for (const file of files) {
        const own = urlOfFile(file);
        if (own && !byUrl.has(urlKey(own))) byUrl.set(urlKey(own), own);
      }
    }
    return byUrl.get(urlKey(url));
  };
  return {
    context: (sourcePath, frontMatter) => ({
      base: articleUrl(config, sourcePath, frontMatter),
      sourcePath,
      articleForFile: urlOfFile,
      articleForUrl,
    }),
  };
}

function expandUrl(
  template: string | undefined,
  id: string,
  slug: string,
  sourcePath: string,
): string | null {
  if (!template) return null;
  const encodePath = (p: string): string => p.split('/').map(encodeURIComponent).join('/');
  return template
    .replaceAll('{id}', encodePath(id))
    .replaceAll('{slug}', encodePath(slug))
    .replaceAll('{path}', encodePath(sourcePath));
}

/** Docusaurus-style `slug`: `/x` is from the root (leading `/` dropped), `x` is beside the file. */
function slugField(value: unknown, slugPath: string): string | undefined {
  const slug = stringField(value);
  if (slug === undefined) return undefined;
  if (slug.startsWith('/')) return slug.replace(/^\/+/, '');
  const dir = slugPath.includes('/') ? slugPath.slice(0, slugPath.lastIndexOf('/')) : '';
  return dir ? `${dir}/${slug}` : slug;
}

function lastUpdate(fm: Record<string, unknown>): unknown {
  const value = fm.last_update;
  return value && typeof value === 'object' ? (value as Record<string, unknown>).date : undefined;
}

function stringField(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() ? value.trim() : undefined;
}

function scalarField(value: unknown): string | undefined {
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  return stringField(value);
}

function listField(value: unknown): string[] {
  const items = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',') : [];
  return items.map((v) => scalarField(v)).filter((v): v is string => v !== undefined);
}

function dateField(value: unknown): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const date = value instanceof Date ? value : new Date(String(value));
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}
