/**
 * HTML → Markdown: whole HTML pages (`.html` files), raw HTML blocks found inside Markdown (Zendesk
 * tables and hub `div`s, Docusaurus wrappers) and inline HTML tags inside Markdown paragraphs.
 *
 * Block and page HTML goes through rehype-parse → rehype-remark (hast-util-to-mdast), after a hast
 * clean-up that keeps what a reader of a help article needs: text, links, lists, tables. Images,
 * media, forms, scripts and comments are dropped (the folder source does not stage image files, and
 * alt text in these help centers is mostly empty). Lists and line breaks inside table cells are
 * flattened with `; ` because a GFM cell holds one line only.
 */
import type { Element, ElementContent, RootContent as HastContent, Root as HastRoot, Text } from 'hast';
import { select } from 'hast-util-select';
import { toText } from 'hast-util-to-text';
import type { Nodes, PhrasingContent, Root, RootContent } from 'mdast';
import { toString as mdastToString } from 'mdast-util-to-string';
import rehypeParse from 'rehype-parse';
import rehypeRemark from 'rehype-remark';
import { unified } from 'unified';

const fragmentParser = unified().use(rehypeParse, { fragment: true });
const documentParser = unified().use(rehypeParse);
const toMdast = unified().use(rehypeRemark);

/** Elements whose content is never article text. */
const DROP = new Set([
  'script',
  'style',
  'noscript',
  'template',
  'head',
  'title',
  'meta',
  'link',
  'form',
  'input',
  'button',
  'select',
  'textarea',
  'option',
  'svg',
  'img',
  'picture',
  'video',
  'audio',
  'source',
  'track',
  'object',
  'embed',
  'canvas',
  'map',
]);
/** Page chrome, dropped when a page has no `main`/`article` and its whole `body` is used. */
const CHROME = new Set(['nav', 'header', 'footer', 'aside']);

/** Converts a raw HTML block (or several adjacent ones, joined) to Markdown blocks. */
export function htmlToBlocks(html: string): RootContent[] {
  if (/^\s*<!--[\s\S]*-->\s*$/.test(html)) return [];
  const hast = fragmentParser.parse(html);
  cleanHast(hast, DROP);
  return hastToMdast(hast).children;
}

export interface HtmlPage {
  /** The main content as Markdown; its first `<h1>` is still in the tree (see `takeTitle`). */
  tree: Root;
  /** Text of `<title>`, if any. */
  title: string | undefined;
  /** `<html lang>`, if any. */
  lang: string | undefined;
}

/**
 * Converts a whole HTML page to Markdown. The main content is the first of `main`, `article`,
 * `[role=main]`; without one, `body` minus `nav`, `header`, `footer` and `aside`. Navigation
 * (`nav`) is dropped inside the main content too.
 */
export function htmlPageToMarkdown(html: string): HtmlPage {
  const doc = documentParser.parse(html);
  const titleEl = select('title', doc);
  const title = titleEl ? toText(titleEl).replace(/\s+/g, ' ').trim() || undefined : undefined;
  const lang = select('html', doc)?.properties.lang;
  const main = select('main', doc) ?? select('article', doc) ?? select('[role=main]', doc);
  const target = main ?? select('body', doc);
  const content: HastRoot = { type: 'root', children: target ? [target] : [] };
  cleanHast(content, main ? new Set([...DROP, 'nav']) : new Set([...DROP, ...CHROME]));
  return { tree: hastToMdast(content), title, lang: typeof lang === 'string' && lang ? lang : undefined };
}

function hastToMdast(hast: HastRoot): Root {
  const tree = toMdast.runSync(hast) as Root;
  dropEmptyLinks(tree);
  return tree;
}

function cleanHast(node: HastRoot | Element, drop: Set<string>): void {
  const kept: ElementContent[] = [];
  for (const child of node.children as HastContent[]) {
    if (child.type === 'comment' || child.type === 'doctype') continue;
    if (child.type === 'element') {
      if (drop.has(child.tagName)) continue;
      if (child.tagName === 'td' || child.tagName === 'th') {
        child.children = flattenCell(child.children);
      } else {
        cleanHast(child, drop);
      }
    }
    kept.push(child as ElementContent);
  }
  node.children = kept;
}

/** A table cell's content as one line: list items and paragraphs joined with `; `. */
function flattenCell(children: ElementContent[]): ElementContent[] {
  const parts: ElementContent[][] = [[]];
  const visit = (nodes: ElementContent[]): void => {
    for (const node of nodes) {
      if (node.type === 'comment') continue;
      if (node.type === 'text') {
        parts[parts.length - 1]?.push(node);
        continue;
      }
      if (DROP.has(node.tagName)) continue;
      if (node.tagName === 'br') {
        parts[parts.length - 1]?.push(text(' '));
      } else if (
        ['li', 'p', 'div', 'ul', 'ol', 'tr', 'table', 'tbody', 'blockquote'].includes(node.tagName)
      ) {
        parts.push([]);
        visit(node.children);
        parts.push([]);
      } else {
        node.children = flattenCell(node.children);
        parts[parts.length - 1]?.push(node);
      }
    }
  };
  visit(children);
  const nonEmpty = parts.filter((part) => part.some((n) => n.type !== 'text' || n.value.trim()));
  return nonEmpty.flatMap((part, i) => (i === 0 ? part : [text('; '), ...part]));
}

function text(value: string): Text {
  return { type: 'text', value };
}

function dropEmptyLinks(node: Nodes): void {
  if (!('children' in node)) return;
  const children = node.children as Nodes[];
  (node as { children: Nodes[] }).children = children.filter(
    (child) => !(child.type === 'link' && !mdastToString(child).trim()),
  );
  for (const child of node.children as Nodes[]) dropEmptyLinks(child);
}

// ---------------------------------------------------------------------------------------------
// Inline HTML inside Markdown

const VOID = new Set([
  'area',
  'base',
  'br',
  'col',
  'embed',
  'hr',
  'img',
  'input',
  'link',
  'meta',
  'source',
  'track',
  'wbr',
]);
/** HTML elements we know; an unclosed `<port>` or `<username>` placeholder is kept as text. */
const KNOWN = new Set([
  ...VOID,
  ...DROP,
  'a',
  'abbr',
  'b',
  'bdi',
  'big',
  'cite',
  'code',
  'del',
  'dfn',
  'div',
  'em',
  'font',
  'i',
  'ins',
  'kbd',
  'mark',
  'p',
  'q',
  's',
  'samp',
  'small',
  'span',
  'strike',
  'strong',
  'sub',
  'sup',
  'tt',
  'u',
  'var',
  'center',
  'figure',
  'figcaption',
  'details',
  'summary',
  'li',
  'ul',
  'ol',
  'table',
  'tr',
  'td',
  'th',
]);
const OPEN_TAG = /^<([a-zA-Z][\w-]*)((?:\s[^>]*)?)>$/;
const CLOSE_TAG = /^<\/([a-zA-Z][\w-]*)\s*>$/;
const HREF = /\shref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))/i;

interface Frame {
  tag: string;
  raw: string;
  attrs: string;
  children: PhrasingContent[];
}

/**
 * Resolves inline HTML among a paragraph's (or heading's, or table cell's) children: micromark
 * gives each tag as its own `html` node, so open and close tags are paired up here and what they
 * enclose becomes a link (`<a href>`), strong (`<b>`, `<strong>`), emphasis (`<i>`, `<em>`), a
 * deletion (`<s>`, `<del>`), inline code (`<code>`, `<kbd>`, `<samp>`, `<var>`) or plain content
 * (everything else). `<br>` becomes a line break; comments, images and other void elements go.
 * A tag left unclosed is dropped, except an unknown one (`<port>` in prose), which stays as text.
 */
export function resolveInlineHtml(children: PhrasingContent[]): PhrasingContent[] {
  const root: Frame = { tag: '', raw: '', attrs: '', children: [] };
  const stack: Frame[] = [root];
  const top = (): Frame => stack[stack.length - 1] as Frame;
  for (const node of children) {
    if (node.type !== 'html') {
      top().children.push(node);
      continue;
    }
    const raw = node.value.trim();
    if (raw.startsWith('<!--') || raw.startsWith('<?') || raw.startsWith('<!')) continue;
    const close = CLOSE_TAG.exec(raw);
    if (close) {
      const tag = (close[1] as string).toLowerCase();
      const at = stack.map((f) => f.tag).lastIndexOf(tag);
      if (at <= 0) {
        if (!KNOWN.has(tag)) top().children.push({ type: 'text', value: raw });
        continue;
      }
      while (stack.length > at) closeFrame(stack, false);
      continue;
    }
    const open = OPEN_TAG.exec(raw);
    if (!open) {
      top().children.push({ type: 'text', value: raw });
      continue;
    }
    const tag = (open[1] as string).toLowerCase();
    const attrs = open[2] ?? '';
    if (tag === 'br') {
      top().children.push({ type: 'break' });
    } else if (!VOID.has(tag) && !attrs.trimEnd().endsWith('/')) {
      stack.push({ tag, raw, attrs, children: [] });
    }
  }
  while (stack.length > 1) closeFrame(stack, true);
  // `<br>` then a newline: the break is the line end already.
  return root.children.map((node, i, all) =>
    node.type === 'text' && all[i - 1]?.type === 'break'
      ? { ...node, value: node.value.replace(/^\s+/, '') }
      : node,
  );
}

function closeFrame(stack: Frame[], unclosed: boolean): void {
  const frame = stack.pop() as Frame;
  const parent = stack[stack.length - 1] as Frame;
  if (unclosed) {
    if (!KNOWN.has(frame.tag)) parent.children.push({ type: 'text', value: frame.raw });
    parent.children.push(...frame.children);
    return;
  }
  const content = frame.children;
  const hasText = content.some((c) => mdastToString(c).trim() !== '');
  // `<b>*</b>` footnote marks: emphasis on punctuation only would just make the serializer escape.
  const hasWords = content.some((c) => /[\p{L}\p{N}]/u.test(mdastToString(c)));
  switch (frame.tag) {
    case 'a': {
      const href = HREF.exec(frame.attrs);
      const url = href?.[1] ?? href?.[2] ?? href?.[3];
      if (!hasText) return;
      if (url) parent.children.push({ type: 'link', url, children: content });
      else parent.children.push(...content);
      return;
    }
    case 'b':
    case 'strong':
      if (hasWords) parent.children.push({ type: 'strong', children: content });
      else parent.children.push(...content);
      return;
    case 'i':
    case 'em':
      if (hasWords) parent.children.push({ type: 'emphasis', children: content });
      else parent.children.push(...content);
      return;
    case 's':
    case 'del':
    case 'strike':
      if (hasWords) parent.children.push({ type: 'delete', children: content });
      else parent.children.push(...content);
      return;
    case 'code':
    case 'kbd':
    case 'samp':
    case 'tt':
    case 'var': {
      const value = content.map((c) => mdastToString(c)).join('');
      if (value.trim()) parent.children.push({ type: 'inlineCode', value });
      return;
    }
    default:
      if (DROP.has(frame.tag)) return;
      parent.children.push(...content);
  }
}
