/**
 * Docusaurus Markdown/MDX (Plausible's `docs/`): YAML front matter (`title`, `id`, `slug`,
 * `description`, `sidebar_label`), ESM `import`/`export` lines, JSX components, `:::note` /
 * `:::tip Title` admonitions, `## Heading {#anchor}` ids, `<head>` blocks holding JSON-LD
 * `<script type="application/ld+json">`, and HTML comments.
 *
 * Why not remark-mdx: MDX parsing is strict. Docs written for Docusaurus' lenient loader use bare
 * `<`, `{`, HTML comments and unclosed HTML that remark-mdx rejects, and one parse error would
 * lose the whole article. So this dialect rewrites the MDX-only syntax as *text*, fenced code left
 * alone, and lets plain remark (which treats what is left of HTML as raw HTML) do the rest:
 *
 * - top-level `import` / `export` statements (also spanning lines) are removed;
 * - `<head>…</head>`, `<script>…</script>` and `<style>…</style>` blocks are removed, so JSON-LD
 *   is never indexed;
 * - admonitions become blockquotes: `:::tip Title` → `> **Title**`, `:::note` → `> **Note:** …`;
 * - JSX components are reduced to their content: a container's children are kept (dedented, since
 *   MDX has no indented code), `<TabItem label="Y">` adds a heading (or bold label) `Y` one level
 *   below the current section, `<Tabs>` disappears; self-closing components are dropped, except
 *   the few in `COMPONENTS` whose output is text a reader needs (`<Optional />` → `(optional)`);
 * - JSX expressions alone on a line (`{getExampleCode(…)}`) and `{/* comments *\/}` are removed.
 *
 * HTML comments and the remaining lowercase HTML (`<div>`, `<img src={…} />`, `<details>`) are
 * handled on the tree by the shared clean-up; heading ids are stripped there
 * (`stripAttributeLists`).
 */
import {
  admonitionLines,
  dedent,
  headingDepth,
  humanize,
  indentOf,
  type Line,
  scanLines,
  tabLabelLine,
} from '../normalize/markdown.ts';
import type { Dialect } from './index.ts';

type Attributes = Record<string, string | undefined>;

/**
 * Self-closing components that render text a reader of the article needs, by name; every other
 * self-closing component (`<CtaBox … />`, `<ApiV2Playground />`) renders nothing we keep. These are
 * Plausible's; add a site's own here.
 */
const COMPONENTS: Record<string, (attributes: Attributes) => string> = {
  Optional: () => '(optional)',
  Required: () => '(required)',
  PlanFeatureNote: (a) => {
    const plan = a.plan === 'business' ? 'Business' : 'Enterprise';
    return `> **${plan} plan:** ${a.label ?? 'This'} is ${plan === 'Business' ? 'a' : 'an'} ${plan} plan feature.`;
  },
};

export const docusaurus: Dialect = {
  name: 'docusaurus',
  exclude: [],
  normalize: { stripAttributeLists: true },
  preprocess(text) {
    let out = removeEsm(text);
    out = removeRawBlocks(out);
    out = expandAdmonitions(scanLines(out)).join('\n');
    return expandJsx(scanLines(out), 1).join('\n');
  },
};

// ---------------------------------------------------------------------------------------------
// ESM and raw blocks

/** An ESM statement, not a prose line that happens to start with "import" or "export". */
const ESM_START =
  /^(?:import\s*(?:['"]|[^'"]*\bfrom\s*['"]|[^'"]*[{,]\s*$)|export\s+(?:const|let|var|function|class|default|async|\{|\*))/;
const IMPORT_DONE = /(?:\bfrom\s*['"][^'"]*['"]|^import\s*['"][^'"]*['"])\s*;?\s*$/;

function removeEsm(text: string): string {
  const lines = scanLines(text);
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as Line;
    if (line.code || !ESM_START.test(line.text)) {
      out.push(line.text);
      continue;
    }
    // Skip to the end of the statement: an import ends at its `from '…'`, an export when its
    // brackets balance.
    const isImport = line.text.startsWith('import');
    const start = i;
    let balance = 0;
    for (let j = start; j < lines.length; j++) {
      const t = (lines[j] as Line).text;
      balance += count(t, /[{[(]/g) - count(t, /[}\])]/g);
      i = j;
      const done = isImport ? IMPORT_DONE.test(t) : balance <= 0 && !/[=,(]\s*$/.test(t);
      // A malformed import must not swallow the article: give up after a few lines.
      if (done || j - start >= 20) break;
    }
  }
  return out.join('\n');
}

function count(text: string, pattern: RegExp): number {
  return text.match(pattern)?.length ?? 0;
}

const RAW_OPEN = /^\s*<(head|script|style)(?:[\s>]|$)/i;

function removeRawBlocks(text: string): string {
  const lines = scanLines(text);
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as Line;
    const open = line.code ? null : RAW_OPEN.exec(line.text);
    if (!open) {
      out.push(line.text);
      continue;
    }
    const close = new RegExp(`</${open[1]}\\s*>|^\\s*<${open[1]}[^>]*/>\\s*$`, 'i');
    let j = i;
    while (j < lines.length && !close.test((lines[j] as Line).text)) j++;
    // An unclosed block runs to the end of the file, as it would in a browser.
    const rest = j < lines.length ? ((lines[j] as Line).text.split(close)[1] ?? '') : '';
    if (rest.trim()) out.push(rest);
    i = j;
  }
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Admonitions

const ADMONITION_OPEN = /^([ \t]*):{3,}([a-zA-Z]+)(?:\[([^\]]*)\]|\{[^}]*\})?[ \t]*(.*?)[ \t]*$/;
const ADMONITION_CLOSE = /^[ \t]*:{3,}[ \t]*$/;

function expandAdmonitions(lines: Line[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as Line;
    const open = line.code ? null : ADMONITION_OPEN.exec(line.text);
    if (!open) {
      out.push(line.text);
      continue;
    }
    let depth = 1;
    let j = i + 1;
    for (; j < lines.length; j++) {
      const next = lines[j] as Line;
      if (next.code) continue;
      if (ADMONITION_OPEN.test(next.text)) depth++;
      else if (ADMONITION_CLOSE.test(next.text) && --depth === 0) break;
    }
    const indent = open[1] ?? '';
    const body = lines.slice(i + 1, j).map((l) => ({ ...l, text: dedent(l.text, indent.length) }));
    const title = (open[3] ?? open[4] ?? '').trim();
    const label = title || humanize(open[2] as string);
    out.push('', ...admonitionLines(label, expandAdmonitions(body), indent, Boolean(title)), '');
    i = j;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// JSX

interface Tag {
  name: string;
  attributes: Attributes;
  closing: boolean;
  selfClosing: boolean;
  /** Offset just after the tag's `>` in the text it was read from. */
  end: number;
}

const BLOCK_TAG = /^([ \t]*)<([A-Z][\w.]*)/;
const ANY_TAG = /<\/?[A-Za-z][\w.]*/g;
const EXPRESSION_LINE = /^[ \t]*\{[\s\S]*\}[ \t]*$/;
const MDX_COMMENT = /\{\/\*[\s\S]*?\*\/\}/g;
const LOOKAHEAD_LINES = 60;

function expandJsx(lines: Line[], startDepth: number): string[] {
  const out: string[] = [];
  let depth = startDepth;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as Line;
    if (line.code) {
      out.push(line.text);
      continue;
    }
    depth = headingDepth(line.text) || depth;
    const block = BLOCK_TAG.exec(line.text);
    const window = block ? joinLines(lines, i) : '';
    const tag = block ? readTag(window, (block[1] as string).length) : undefined;
    if (!block || !tag || tag.closing) {
      const text = inlineJsx(line.text);
      if (text !== null) out.push(text);
      continue;
    }
    const indent = block[1] as string;
    const [tagLine, tagCol] = position(window, tag.end, i);
    const after = (lines[tagLine] as Line).text.slice(tagCol);
    if (tag.selfClosing) {
      const rendered = COMPONENTS[tag.name]?.(tag.attributes);
      if (rendered) out.push('', indent + rendered, '');
      pushInline(out, after);
      i = tagLine;
      continue;
    }
    const close = findClose(lines, tag.name, tagLine, tagCol);
    if (!close) {
      // Unclosed: drop the tag, keep what follows.
      pushInline(out, after);
      i = tagLine;
      continue;
    }
    const label = tag.name === 'TabItem' ? (tag.attributes.label ?? tag.attributes.value) : undefined;
    if (label) out.push('', tabLabelLine(label, depth, indent), '');
    const inner: Line[] = [];
    if (close.line === tagLine) {
      inner.push({ text: after.slice(0, close.start - tagCol), code: false });
    } else {
      if (after.trim()) inner.push({ text: after, code: false });
      inner.push(...lines.slice(tagLine + 1, close.line));
      const before = (lines[close.line] as Line).text.slice(0, close.start);
      if (before.trim()) inner.push({ text: before, code: false });
    }
    const minIndent = Math.min(...inner.filter((l) => l.text.trim()).map((l) => indentOf(l.text)));
    const shift = Number.isFinite(minIndent) ? Math.max(0, minIndent - indent.length) : 0;
    const dedented = inner.map((l) => ({ ...l, text: dedent(l.text, shift) }));
    out.push('', ...expandJsx(dedented, depth), '');
    pushInline(out, (lines[close.line] as Line).text.slice(close.end));
    i = close.line;
  }
  return out;
}

function pushInline(out: string[], text: string): void {
  if (!text.trim()) return;
  const rendered = inlineJsx(text);
  if (rendered !== null) out.push(rendered);
}

/** Replaces JSX tags inside one line; `null` when the line was only an expression or comment. */
function inlineJsx(text: string): string | null {
  const withoutComments = text.replace(MDX_COMMENT, '');
  if (withoutComments !== text && !withoutComments.trim()) return null;
  if (EXPRESSION_LINE.test(withoutComments) && !/^\s*\{#/.test(withoutComments)) return null;
  let out = '';
  let last = 0;
  for (const match of withoutComments.matchAll(ANY_TAG)) {
    if (match.index < last) continue;
    const tag = readTag(withoutComments, match.index);
    if (!tag) continue;
    const raw = withoutComments.slice(match.index, tag.end);
    const isComponent = /^[A-Z]/.test(tag.name);
    // HTML with JSX attribute values (`src={useBaseUrl('x.png')}`, `style={{…}}`) is not HTML to
    // CommonMark and would show as text: rewrite it with plain attributes.
    if (!isComponent && !raw.includes('{')) continue;
    out += withoutComments.slice(last, match.index);
    if (!isComponent) out += htmlTag(tag);
    else if (tag.selfClosing) out += (COMPONENTS[tag.name]?.(tag.attributes) ?? '').replace(/^> /, '');
    last = tag.end;
  }
  out += withoutComments.slice(last);
  // `<CodeBlock>{expr}</CodeBlock>` leaves a bare expression behind.
  if (out !== withoutComments && EXPRESSION_LINE.test(out)) return null;
  return out;
}

function htmlTag(tag: Tag): string {
  if (tag.closing) return `</${tag.name}>`;
  const attributes = Object.entries(tag.attributes)
    .filter((entry): entry is [string, string] => entry[1] !== undefined)
    .map(([name, value]) => ` ${name === 'className' ? 'class' : name}="${value.replace(/"/g, '&quot;')}"`)
    .join('');
  return `<${tag.name}${attributes}${tag.selfClosing ? ' /' : ''}>`;
}

function joinLines(lines: Line[], from: number): string {
  return lines
    .slice(from, from + LOOKAHEAD_LINES)
    .map((l) => l.text)
    .join('\n');
}

/** Line index and column of an offset in text joined from `lines` starting at `from`. */
function position(window: string, offset: number, from: number): [number, number] {
  const before = window.slice(0, offset);
  const newlines = before.split('\n').length - 1;
  return [from + newlines, offset - (before.lastIndexOf('\n') + 1)];
}

/** Finds the `</name>` closing the element opened before (`line`, `col`), nesting included. */
function findClose(
  lines: Line[],
  name: string,
  line: number,
  col: number,
): { line: number; start: number; end: number } | undefined {
  const pattern = new RegExp(`<(/?)${name.replace(/\./g, '\\.')}(?![\\w.])`, 'g');
  let depth = 1;
  for (let i = line; i < lines.length; i++) {
    const current = lines[i] as Line;
    if (current.code) continue;
    const text = current.text;
    pattern.lastIndex = i === line ? col : 0;
    for (let match = pattern.exec(text); match; match = pattern.exec(text)) {
      const tag = readTag(joinLines(lines, i), match.index);
      if (!tag) continue;
      if (tag.closing) {
        if (--depth === 0) return { line: i, start: match.index, end: Math.min(tag.end, text.length) };
      } else if (!tag.selfClosing) {
        depth++;
      }
    }
  }
  return undefined;
}

const NAME = /[A-Za-z][\w.:-]*/y;
const ATTRIBUTE_NAME = /[^\s=/>{}"']+/y;

/** Reads a JSX tag starting at `text[start] === '<'`; `undefined` when it does not close. */
function readTag(text: string, start: number): Tag | undefined {
  let j = start + 1;
  const closing = text[j] === '/';
  if (closing) j++;
  NAME.lastIndex = j;
  const name = NAME.exec(text)?.[0];
  if (!name) return undefined;
  j += name.length;
  const attributes: Attributes = {};
  while (j < text.length) {
    while (/\s/.test(text[j] ?? '')) j++;
    const c = text[j];
    if (c === undefined) return undefined;
    if (c === '>') return { name, attributes, closing, selfClosing: false, end: j + 1 };
    if (c === '/' && text[j + 1] === '>') return { name, attributes, closing, selfClosing: true, end: j + 2 };
    if (c === '{') {
      const end = skipBraces(text, j);
      if (end < 0) return undefined;
      j = end;
      continue;
    }
    ATTRIBUTE_NAME.lastIndex = j;
    const attribute = ATTRIBUTE_NAME.exec(text)?.[0];
    if (!attribute) return undefined;
    j += attribute.length;
    while (/[ \t]/.test(text[j] ?? '')) j++;
    if (text[j] !== '=') {
      attributes[attribute] = 'true';
      continue;
    }
    j++;
    while (/\s/.test(text[j] ?? '')) j++;
    const q = text[j];
    if (q === '"' || q === "'") {
      const end = text.indexOf(q, j + 1);
      if (end < 0) return undefined;
      attributes[attribute] = text.slice(j + 1, end);
      j = end + 1;
    } else if (q === '{') {
      const end = skipBraces(text, j);
      if (end < 0) return undefined;
      const literal = /^\{\s*(["'`])([^"'`]*)\1\s*\}$/.exec(text.slice(j, end));
      attributes[attribute] = literal?.[2];
      j = end;
    } else {
      ATTRIBUTE_NAME.lastIndex = j;
      const value = ATTRIBUTE_NAME.exec(text)?.[0] ?? '';
      attributes[attribute] = value;
      j += value.length;
      if (!value) return undefined;
    }
  }
  return undefined;
}

/** Offset just after the `}` matching the `{` at `start`, skipping strings; -1 when unbalanced. */
function skipBraces(text: string, start: number): number {
  let depth = 0;
  for (let j = start; j < text.length; j++) {
    const c = text[j];
    if (c === '"' || c === "'" || c === '`') {
      const end = text.indexOf(c, j + 1);
      if (end < 0) return -1;
      j = end;
    } else if (c === '{') {
      depth++;
    } else if (c === '}' && --depth === 0) {
      return j + 1;
    }
  }
  return -1;
}
