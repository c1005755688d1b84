/**
 * Relative links and images in an article's Markdown tree, made absolute, so that a quoted passage
 * or a citation posted to Slack or Discord (where there is no page to be relative to) still leads
 * somewhere. Runs on the mdast, after the HTML clean-up, before the body is stringified (and so
 * before chunking: chunk spans stay exact spans of the rewritten body).
 *
 * For each `link`, `image` and `definition` (reference-style links share one definition):
 * - a URL with a scheme (`https:`, `mailto:`, `tel:`, …) is left untouched;
 * - a link naming another article of the same source becomes that article's URL, plus the link's
 *   fragment: a file path (`foo.md`, `../bar.mdx`, relative to the linking file's folder, or
 *   `/sub/foo.md` from the source root) through `articleForFile`, or any other path whose
 *   resolution against the article URL is the URL of an article (`/help/mute-a-stream`) through
 *   `articleForUrl`;
 * - everything else is resolved against the article's URL with WHATWG URL parsing
 *   (https://url.spec.whatwg.org/#concept-basic-url-parser), so `#x` becomes `<article url>#x`
 *   and `/x` goes to the article's origin;
 * - an image whose path is relative to the file (`img/a.png`, `../img/a.png`) names a file of the
 *   source tree, which no source publishes, so it is replaced by its alt text (nothing when it has
 *   none); a root-relative image (`/static/images/x.png`) is a file of the site and is resolved;
 * - an empty link (`[text]()`, a placeholder) is replaced by its text;
 * - when the article has no URL, a relative link or image that cannot be mapped cannot lead
 *   anywhere: a link is replaced by its text, an image by its alt text.
 * Paragraphs and links left empty by removed images are removed.
 */
import path from 'node:path';
import type { Nodes, Parents, PhrasingContent, RootContent } from 'mdast';
import { toString as mdastToString } from 'mdast-util-to-string';

export interface LinkContext {
  /** The article's own URL (absolute), or `null` when it has none. */
  base: string | null;
  /** The file's path relative to the source root (POSIX), for file links; omit for web pages. */
  sourcePath?: string;
  /**
   * URL of the article built from the file at `relativePath` (relative to the source root, POSIX,
   * percent-decoded), `null` when that article has no URL, `undefined` when that file is not an
   * article of the source.
   */
  articleForFile?: (relativePath: string) => string | null | undefined;
  /**
   * The URL of the article published at `url` (absolute, without fragment), or `undefined` when
   * none is. Lets a site-relative link (`/help/x`) map to the article's own URL form.
   */
  articleForUrl?: (url: string) => string | undefined;
}

/** Files a link may name as an article (Docusaurus and GitHub resolve these to the page). */
const ARTICLE_FILE = /\.(?:md|mdx|html?)$/i;
const SCHEME = /^[a-zA-Z][a-zA-Z\d+.-]*:/;

/** Rewrites the links and images of `tree` in place; see the module comment for the rules. */
export function resolveLinks(tree: Parents, context: LinkContext): void {
  // Reference-style links and images take their URL from a definition; keep what the author wrote,
  // since the walk rewrites definitions wherever they sit.
  const definitions = new Map<string, string>();
  walk(tree, (node) => {
    if (node.type === 'definition' && !definitions.has(node.identifier)) {
      definitions.set(node.identifier, node.url);
    }
  });
  rewrite(tree, context, definitions);
  // Definitions whose every reference became text would still print as `[id]: url` lines.
  const used = new Set<string>();
  walk(tree, (node) => {
    if (node.type === 'linkReference' || node.type === 'imageReference') used.add(node.identifier);
  });
  removeWhere(tree, (node) => node.type === 'definition' && !used.has(node.identifier));
}

function walk(node: Nodes, visit: (node: Nodes) => void): void {
  visit(node);
  if ('children' in node) for (const child of node.children) walk(child as Nodes, visit);
}

function removeWhere(parent: Parents, drop: (node: Nodes) => boolean): void {
  const children = (parent.children as Nodes[]).filter((child) => !drop(child));
  (parent as { children: Nodes[] }).children = children;
  for (const child of children) if ('children' in child) removeWhere(child, drop);
}

function rewrite(parent: Parents, context: LinkContext, definitions: Map<string, string>): void {
  const out: Nodes[] = [];
  for (const child of parent.children as Nodes[]) {
    const replaced = rewriteNode(child, context, definitions);
    if (Array.isArray(replaced)) {
      out.push(...replaced);
      continue;
    }
    if ('children' in replaced) {
      rewrite(replaced, context, definitions);
      if (leftEmpty(replaced)) continue;
    }
    out.push(replaced);
  }
  (parent as { children: Nodes[] }).children = out;
}

/** The node to keep (possibly changed), or the nodes to put in its place (none to drop it). */
function rewriteNode(node: Nodes, context: LinkContext, definitions: Map<string, string>): Nodes | Nodes[] {
  switch (node.type) {
    case 'link': {
      const url = resolveHref(node.url, context);
      if (url === null) return unwrap(node.children, context, definitions);
      node.url = url;
      return node;
    }
    case 'definition': {
      const url = resolveHref(node.url, context);
      if (url !== null) node.url = url;
      return node;
    }
    case 'linkReference': {
      const url = definitions.get(node.identifier);
      if (url !== undefined && resolveHref(url, context) === null) {
        return unwrap(node.children, context, definitions);
      }
      return node;
    }
    case 'image':
      if (!imagePublished(node.url, context)) return altOnly(node.alt);
      if (!SCHEME.test(node.url)) node.url = new URL(node.url, context.base as string).href;
      return node;
    case 'imageReference': {
      const url = definitions.get(node.identifier);
      if (url !== undefined && !imagePublished(url, context)) return altOnly(node.alt);
      return node;
    }
    default:
      return node;
  }
}

function unwrap(
  children: PhrasingContent[],
  context: LinkContext,
  definitions: Map<string, string>,
): Nodes[] {
  const holder: Parents = { type: 'paragraph', children };
  rewrite(holder, context, definitions);
  return holder.children;
}

/**
 * An image URL a reader can open: absolute, or site-relative (`/static/x.png`, `//cdn/x.png`)
 * with an article URL to resolve it against. A path relative to the file names a file of the
 * source tree, which is not published.
 */
function imagePublished(url: string, context: LinkContext): boolean {
  const raw = url.trim();
  if (SCHEME.test(raw)) return true;
  return raw.startsWith('/') && context.base !== null;
}

function altOnly(alt: string | null | undefined): Nodes[] {
  const text = (alt ?? '').trim();
  return text ? [{ type: 'text', value: text }] : [];
}

/**
 * The absolute URL for a link's `href`, or `null` when there is none to give (a relative link in
 * an article without a URL that names no article with one).
 */
export function resolveHref(href: string, context: LinkContext): string | null {
  const raw = href.trim();
  // `[text]()` is a placeholder the author never filled in: nothing to link to.
  if (raw === '') return null;
  if (SCHEME.test(raw)) return href;
  const { pathPart, fragment } = splitHref(raw);
  if (
    pathPart !== '' &&
    !raw.startsWith('//') &&
    context.sourcePath !== undefined &&
    context.articleForFile
  ) {
    const decoded = safeDecode(pathPart);
    if (ARTICLE_FILE.test(decoded)) {
      const file = decoded.startsWith('/')
        ? path.posix.normalize(decoded).replace(/^\/+/, '')
        : path.posix.join(path.posix.dirname(context.sourcePath), decoded);
      if (!file.startsWith('../')) {
        const target = context.articleForFile(file);
        if (target) return withFragment(target, fragment);
      }
    }
  }
  if (context.base === null) return null;
  let resolved: URL;
  try {
    resolved = new URL(raw, context.base);
  } catch {
    return null;
  }
  if (pathPart !== '' && context.articleForUrl) {
    const bare = new URL(resolved.href);
    bare.hash = '';
    const target = context.articleForUrl(bare.href);
    if (target) return withFragment(target, fragment);
  }
  return resolved.href;
}

/** `a/b.md?x#y` → path `a/b.md`, fragment `#y` (a query names the same file). */
function splitHref(href: string): { pathPart: string; fragment: string } {
  const hash = href.indexOf('#');
  const beforeHash = hash >= 0 ? href.slice(0, hash) : href;
  const query = beforeHash.indexOf('?');
  return {
    pathPart: query >= 0 ? beforeHash.slice(0, query) : beforeHash,
    fragment: hash >= 0 ? href.slice(hash) : '',
  };
}

function withFragment(url: string, fragment: string): string {
  if (fragment === '' || fragment === '#') return url;
  // A front-matter `url` need not be absolute; then the fragment is appended as written.
  if (!URL.canParse(url)) return `${url.replace(/#.*$/, '')}${fragment}`;
  const u = new URL(url);
  u.hash = fragment;
  return u.href;
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/** A paragraph, heading or link that removed images left without content. */
function leftEmpty(node: Parents): boolean {
  if (!['paragraph', 'link', 'linkReference', 'emphasis', 'strong', 'delete'].includes(node.type))
    return false;
  if (mdastToString(node).trim() !== '') return false;
  return !(node.children as RootContent[]).some(
    (c) => c.type === 'image' || c.type === 'imageReference' || c.type === 'break',
  );
}
