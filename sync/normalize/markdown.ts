/**
 * Shared Markdown helpers for every dialect: front matter, fenced-code-aware line scanning,
 * parsing to mdast, the dialect-independent clean-up of the tree (raw HTML, heading ids, GitHub
 * alerts), title extraction and stringifying back to CommonMark + GFM.
 *
 * The pipeline a folder source runs for one Markdown file:
 *
 *     splitFrontMatter → dialect.preprocess (text) → parseMarkdown → normalizeTree → takeTitle
 *       → stringifyMarkdown
 *
 * Dialect syntax that CommonMark would misread (Zulip macros, Docusaurus admonitions and JSX, …) is
 * rewritten as *text* before parsing, because after parsing it is scattered over many nodes; what is
 * plain HTML or plain attribute noise is cleaned on the *tree*, where code is already set apart.
 */
import type { Heading, Nodes, Paragraph, Parents, PhrasingContent, Root, RootContent } from 'mdast';
import { toString as mdastToString } from 'mdast-util-to-string';
import remarkGfm from 'remark-gfm';
import remarkParse from 'remark-parse';
import remarkStringify from 'remark-stringify';
import { unified } from 'unified';
import YAML from 'yaml';
import { htmlToBlocks, resolveInlineHtml } from './html.ts';
import { type LinkContext, resolveLinks } from './links.ts';

// ---------------------------------------------------------------------------------------------
// Front matter

/** Front matter that cannot be parsed; `line` is 1-based in the whole file. */
export class FrontMatterError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(message);
    this.name = 'FrontMatterError';
  }
}

export interface FrontMatter {
  /** The YAML mapping; `{}` when the file has no front matter. Integers are `bigint`-safe (see below). */
  data: Record<string, unknown>;
  /** The text after the front matter. */
  body: string;
  /** 1-based line of the file on which `body` starts. */
  bodyLine: number;
}

const FRONT_MATTER = /^---[ \t]*\r?\n(?:([\s\S]*?)\r?\n)?---[ \t]*(?:\r?\n|$)/;
/** First line of a YAML mapping (`key:`); anything else between `---` lines is a divider, not front matter. */
const YAML_KEY_LINE = /^\s*(?:#.*)?$|^[\w"'$@-][^:]*:(?:\s|$)/;

/**
 * Splits YAML front matter off a Markdown file. The block must open on the first line; a block
 * whose first non-blank line is not a `key:` line is left alone (a file may start with a bare
 * `---` divider). Integers are parsed as `bigint` and turned back into numbers when safe, so a
 * 19-digit Zendesk id keeps every digit.
 *
 * @throws FrontMatterError when the block is not valid YAML or not a mapping.
 */
export function splitFrontMatter(text: string): FrontMatter {
  const source = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const match = FRONT_MATTER.exec(source);
  const yamlText = match?.[1] ?? '';
  const firstLine = yamlText
    .split(/\r?\n/)
    .find((line) => line.trim() !== '' && !line.trim().startsWith('#'));
  if (!match || (firstLine !== undefined && !YAML_KEY_LINE.test(firstLine))) {
    return { data: {}, body: source, bodyLine: 1 };
  }
  const bodyLine = match[0].split('\n').length - (match[0].endsWith('\n') ? 0 : 1);
  const doc = YAML.parseDocument(yamlText, { intAsBigInt: true, prettyErrors: true });
  const error = doc.errors[0];
  if (error) {
    const line = (error.linePos?.[0]?.line ?? 1) + 1;
    throw new FrontMatterError(line, `bad front matter at line ${line}: ${firstSentence(error.message)}`);
  }
  const value: unknown = doc.toJS();
  if (value === null || value === undefined)
    return { data: {}, body: source.slice(match[0].length), bodyLine };
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new FrontMatterError(2, 'bad front matter at line 2: expected a YAML mapping (key: value lines)');
  }
  return { data: unBigInt(value) as Record<string, unknown>, body: source.slice(match[0].length), bodyLine };
}

function firstSentence(message: string): string {
  return (message.split('\n')[0] ?? message).replace(/\s+at line \d+, column \d+:?$/, '').trim();
}

function unBigInt(value: unknown): unknown {
  if (typeof value === 'bigint') {
    return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER)
      ? Number(value)
      : value.toString();
  }
  if (Array.isArray(value)) return value.map(unBigInt);
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, unBigInt(v)]));
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Line scanning for text preprocessors

export interface Line {
  text: string;
  /** Inside a fenced code block, fence lines included. Preprocessors leave these alone. */
  code: boolean;
}

const FENCE_OPEN = /^(\s*(?:>\s*)*)(`{3,}|~{3,})(.*)$/;

/**
 * Splits text into lines and marks fenced code (``` or ~~~, any indentation, also inside
 * blockquotes). Indented code blocks are not detected: dialects use indentation for other things
 * (Zulip admonition bodies, MDX children), and an unmarked indented block is only ever left as is.
 */
export function scanLines(text: string): Line[] {
  const lines = text.split(/\r?\n/);
  const out: Line[] = [];
  let fence: { char: string; length: number } | null = null;
  for (const line of lines) {
    if (fence) {
      out.push({ text: line, code: true });
      const close = FENCE_OPEN.exec(line);
      if (close?.[2] && close[2][0] === fence.char && close[2].length >= fence.length && !close[3]?.trim()) {
        fence = null;
      }
      continue;
    }
    const open = FENCE_OPEN.exec(line);
    // A backtick fence's info string may not contain backticks (that is inline code instead).
    if (open?.[2] && !(open[2][0] === '`' && open[3]?.includes('`'))) {
      fence = { char: open[2][0] as string, length: open[2].length };
      out.push({ text: line, code: true });
      continue;
    }
    out.push({ text: line, code: false });
  }
  return out;
}

export function indentOf(line: string): number {
  return /^[ \t]*/.exec(line)?.[0].replace(/\t/g, '    ').length ?? 0;
}

/** Removes `width` columns of leading whitespace (tabs count as 4), as far as there is whitespace. */
export function dedent(line: string, width: number): string {
  let i = 0;
  let col = 0;
  while (i < line.length && col < width && (line[i] === ' ' || line[i] === '\t')) {
    col += line[i] === '\t' ? 4 : 1;
    i++;
  }
  return line.slice(i);
}

/** A body that starts with its own bold label: `**Note**:`, `**Warning:**`. */
const OWN_LABEL = /^\*\*[^*]{1,30}?(?::\*\*|\*\*:)/;
/** Block constructs that cannot follow an inline label on the same line. */
const BLOCK_START = /^(?:[-*+]\s|\d+[.)]\s|#{1,6}\s|>|`{3}|~{3}|\||<|\s{4}|!\[)/;

/**
 * Renders an admonition (Zulip `!!! tip`, Docusaurus `:::note`) as a blockquote whose first line is
 * a bold label: `> **Tip:** text…`, or `> **Title**` on its own line when there is a title or the
 * body starts with a block (a list, a fence). `indent` is put before every line so the quote stays
 * inside an enclosing list item.
 */
export function admonitionLines(label: string, body: string[], indent = '', ownLine = false): string[] {
  const lines = [...body];
  while (lines.length && !lines[0]?.trim()) lines.shift();
  while (lines.length && !lines[lines.length - 1]?.trim()) lines.pop();
  const first = lines[0];
  const out: string[] = [];
  if (!ownLine && first !== undefined && OWN_LABEL.test(first)) {
    // The body brings its own label (`**Note**: …`); a second one would only stutter.
  } else if (!ownLine && first !== undefined && !BLOCK_START.test(first)) {
    out.push(`**${label}:** ${first}`);
    lines.shift();
  } else {
    out.push(ownLine ? `**${label}**` : `**${label}:**`, '');
  }
  out.push(...lines);
  return out.map((line) => (line.trim() ? `${indent}> ${line}` : `${indent}>`));
}

// ---------------------------------------------------------------------------------------------
// Parse, normalize, stringify

const parser = unified().use(remarkParse).use(remarkGfm);
const serializer = unified().use(remarkGfm, { tablePipeAlign: false }).use(remarkStringify, {
  bullet: '-',
  emphasis: '_',
  strong: '*',
  fence: '`',
  fences: true,
  rule: '-',
  listItemIndent: 'one',
  incrementListMarker: true,
});

/** Parses CommonMark + GFM (no front matter: split it off first). */
export function parseMarkdown(text: string): Root {
  return parser.parse(text);
}

/** Stringifies to CommonMark + GFM with `-` bullets, ``` fences and unpadded tables, trimmed. */
export function stringifyMarkdown(tree: Root): string {
  return serializer.stringify(tree).trim();
}

export interface NormalizeOptions {
  /**
   * Strip kramdown/Pandoc attribute lists from text: `{#heading-id}`, `{.class}`, `{: .class}`
   * (Zendesk exports, Docusaurus heading ids). Off for plain Markdown, where braces are text.
   */
  stripAttributeLists?: boolean;
  /**
   * Make relative links and images absolute against the article's URL, mapping links to other
   * articles of the source to their URLs (`./links.ts`). Omitted: links are left as written.
   */
  links?: LinkContext;
}

const ATTRIBUTE_LIST = /[ \t]*\{(?::[^{}\n]*|[#.][^\s{}]*(?:[ \t]+[#.:][^\s{}]*)*)\}/g;
const BLOCK_PHRASING = new Set(['paragraph', 'heading', 'tableCell']);
const GITHUB_ALERT = /^\[!(NOTE|TIP|IMPORTANT|WARNING|CAUTION)\][ \t]*\n?/i;
const ALERT_LABELS: Record<string, string> = {
  note: 'Note',
  tip: 'Tip',
  important: 'Important',
  warning: 'Warning',
  caution: 'Caution',
};
const PHRASING_PARENTS = new Set([
  'paragraph',
  'heading',
  'tableCell',
  'emphasis',
  'strong',
  'delete',
  'link',
  'linkReference',
]);

/**
 * Dialect-independent clean-up of a parsed tree, in place:
 * - raw HTML: comments dropped; block HTML (adjacent blocks merged first, so a table split by blank
 *   lines stays one table) converted to Markdown by `htmlToBlocks`; inline tags paired up and
 *   turned into links, emphasis, code or plain text by `resolveInlineHtml`;
 * - attribute lists stripped (when `stripAttributeLists`);
 * - GitHub alerts (`> [!NOTE]`) turned into a bold label;
 * - whitespace that removed tags leave at a paragraph's, heading's or cell's edges trimmed;
 * - paragraphs, headings, lists and blockquotes left empty by the above removed;
 * - with `links`, relative links and images resolved (`resolveLinks`), after the HTML is converted
 *   so links that came from `<a href>` are resolved too.
 */
export function normalizeTree(tree: Root, options: NormalizeOptions = {}): void {
  cleanParent(tree, options);
  if (options.links) resolveLinks(tree, options.links);
}

function cleanParent(parent: Parents, options: NormalizeOptions): void {
  if (PHRASING_PARENTS.has(parent.type)) {
    const children = parent.children as PhrasingContent[];
    let next = children.some((c) => c.type === 'html') ? resolveInlineHtml(children) : children;
    if (options.stripAttributeLists) next = stripAttributes(next);
    if (BLOCK_PHRASING.has(parent.type)) next = trimEdges(next);
    (parent as { children: PhrasingContent[] }).children = next;
    for (const child of next) if ('children' in child) cleanParent(child, options);
    return;
  }

  const out: Nodes[] = [];
  const children = parent.children as Nodes[];
  for (let i = 0; i < children.length; i++) {
    const child = children[i] as Nodes;
    if (child.type === 'html') {
      let html = child.value;
      while (children[i + 1]?.type === 'html') html += `\n${(children[++i] as { value: string }).value}`;
      const blocks = htmlToBlocks(html);
      // The converted blocks may hold GitHub alerts or attribute lists of their own.
      const wrapper: Root = { type: 'root', children: blocks };
      cleanParent(wrapper, options);
      out.push(...wrapper.children);
      continue;
    }
    if ('children' in child) cleanParent(child, options);
    if (child.type === 'blockquote') convertAlert(child.children);
    if (isEmpty(child)) continue;
    out.push(child);
  }
  (parent as { children: Nodes[] }).children = out;
}

/**
 * Removed tags and comments leave whitespace at a block's edges, which the serializer would keep
 * as `&#x20;` / `&#xA;`; it means nothing there.
 */
function trimEdges(children: PhrasingContent[]): PhrasingContent[] {
  const out = [...children];
  const first = out[0];
  if (first?.type === 'text') out[0] = { ...first, value: first.value.replace(/^\s+/, '') };
  const lastIndex = out.length - 1;
  const last = out[lastIndex];
  if (last?.type === 'text') out[lastIndex] = { ...last, value: last.value.replace(/\s+$/, '') };
  return out.filter((c) => !(c.type === 'text' && c.value === ''));
}

function stripAttributes(children: PhrasingContent[]): PhrasingContent[] {
  const out: PhrasingContent[] = [];
  for (const child of children) {
    if (child.type !== 'text') {
      out.push(child);
      continue;
    }
    let value = child.value.replace(ATTRIBUTE_LIST, '');
    // `Heading {#id} ` must not leave `Heading ` behind.
    if (value !== child.value && /\}[ \t]*$/.test(child.value)) value = value.trimEnd();
    if (value !== '') out.push({ ...child, value });
  }
  return out;
}

function convertAlert(children: RootContent[]): void {
  const first = children[0];
  if (first?.type !== 'paragraph') return;
  const text = first.children[0];
  if (text?.type !== 'text') return;
  const match = GITHUB_ALERT.exec(text.value);
  if (!match) return;
  const label = ALERT_LABELS[(match[1] as string).toLowerCase()] as string;
  text.value = text.value.slice(match[0].length);
  const rest = first.children.filter((c) => !(c.type === 'text' && c.value === ''));
  first.children = [{ type: 'strong', children: [{ type: 'text', value: `${label}:` }] }];
  if (rest.length) first.children.push({ type: 'text', value: ' ' }, ...rest);
}

function isEmpty(node: Nodes): boolean {
  switch (node.type) {
    case 'paragraph':
    case 'heading':
      return node.children.length === 0 || (!mdastToString(node).trim() && !hasMedia(node));
    case 'blockquote':
    case 'list':
    case 'listItem':
      return node.children.length === 0;
    default:
      return false;
  }
}

function hasMedia(node: Paragraph | Heading): boolean {
  return node.children.some((c) => c.type === 'image' || c.type === 'imageReference' || c.type === 'break');
}

// ---------------------------------------------------------------------------------------------
// Title

/**
 * Chooses the title and removes the title heading from the tree: the front-matter title when given
 * (a leading H1 is then dropped as a duplicate), else the first H1 anywhere (removed), else
 * `fallback`. Returns `undefined` when there is nothing.
 */
export function takeTitle(
  tree: Root,
  frontMatterTitle: string | undefined,
  fallback?: string,
): string | undefined {
  const given = frontMatterTitle?.trim();
  if (given) {
    if (tree.children[0]?.type === 'heading' && tree.children[0].depth === 1) tree.children.shift();
    return given;
  }
  const index = tree.children.findIndex((c) => c.type === 'heading' && c.depth === 1);
  if (index >= 0) {
    const title = mdastToString(tree.children[index] as Heading).trim();
    tree.children.splice(index, 1);
    if (title) return title;
  }
  return fallback?.trim() || undefined;
}

/** `Available-shipping-methods.md` → `Available shipping methods`. */
export function titleFromFileName(fileName: string): string {
  const base = fileName.replace(/^.*\//, '').replace(/\.[^.]+$/, '');
  return humanize(base) || base;
}

/**
 * The line that introduces one tab of a tabbed block (Zulip `{tab|…}`, Docusaurus `<TabItem>`): a
 * heading one level below `depth` (the heading the tabs sit under; 1 for the title), so chunks of
 * each tab carry the tab's name in their heading path, or a bold label when that would be deeper
 * than H6 or the tabs are indented inside a list.
 */
export function tabLabelLine(label: string, depth: number, indent = ''): string {
  return indent === '' && depth < 6 ? `${'#'.repeat(depth + 1)} ${label}` : `${indent}**${label}**`;
}

/** `account-and-privacy` → `Account and privacy`. */
export function humanize(key: string): string {
  const words = key.replace(/[-_]+/g, ' ').trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

const ATX_HEADING = /^ {0,3}(#{1,6})(?:[ \t]|$)/;

/** Depth of an ATX heading line, or 0. */
export function headingDepth(line: string): number {
  return ATX_HEADING.exec(line)?.[1]?.length ?? 0;
}
