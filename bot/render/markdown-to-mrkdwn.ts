import type { Definition, Nodes, PhrasingContent, RootContent, Table } from 'mdast';
import { toString as mdastToString } from 'mdast-util-to-string';
import remarkGfm from 'remark-gfm';
import remarkParse from 'remark-parse';
import { unified } from 'unified';

/**
 * Converts an answer's Markdown (CommonMark + GFM) to Slack mrkdwn, for `mrkdwn` text objects.
 *
 * Source of the rules: Slack's "Formatting text for app surfaces" reference (mrkdwn syntax, and escaping:
 * `&`, `<` and `>` are control characters and must be sent as `&amp;`, `&lt;`, `&gt;`; nothing else is
 * entity-encoded, because Slack decodes only those three).
 *
 * Mapping: `**x**` → `*x*`; `*x*`/`_x_` → `_x_`; `~~x~~` → `~x~`; `[t](u)` and `![t](u)` → `<u|t>` (just
 * `<u>` when the text is the URL; reference links resolved through their definitions; a link without a
 * URL scheme, which Slack cannot open, becomes its text); headings → a bold line; lists → `•` or `1.`
 * lines (task items `☐`/`☑`), nested ones indented by 4 spaces; block quotes → `> ` lines; thematic
 * breaks → a `———` line; tables → a code block of aligned plain-text columns; raw HTML → shown as text.
 * Blocks are separated by a blank line, list items by a line break.
 *
 * Code: fenced and indented code blocks become ```` ``` ```` blocks with their content unchanged except
 * for the three escapes, on lines of their own and never indented (so list nesting cannot change the
 * code); the info string is dropped because mrkdwn has no syntax highlighting and would show it as the
 * first line of code. Inline code keeps its backticks and content (escaped the same way).
 *
 * Text is never backslash-escaped (mrkdwn has no escape character), so a literal `*` or `_` in prose may
 * still format in Slack; formatting inside a heading or a link text is flattened, because Slack does not
 * nest it. The output has no trailing newline; an empty input gives `''`.
 */
export function markdownToMrkdwn(markdown: string): string {
  const tree = processor.parse(markdown.replace(/\r\n?/g, '\n'));
  const definitions = new Map<string, Definition>();
  collectDefinitions(tree, definitions);
  return new Writer(definitions).flow(tree.children, { indent: '', quote: '' }).join('\n\n');
}

/** Escapes Slack's three control characters (`&`, `<`, `>`) in plain text. */
export function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * A mrkdwn link `<url|label>` (`label` is plain text and escaped here). The URL keeps its characters
 * except those that would end the link early or are control characters: `&` → `&amp;`, and `<`, `>`,
 * `|` and whitespace percent-encoded. An empty label, or one equal to the URL, gives `<url>`.
 */
export function mrkdwnLink(url: string, label: string): string {
  const safeUrl = url
    .replace(/&/g, '&amp;')
    .replace(/[<>|\s]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
  const text = label.replace(/\s+/g, ' ').trim();
  return text === '' || text === url ? `<${safeUrl}>` : `<${safeUrl}|${escapeMrkdwn(text)}>`;
}

const processor = unified().use(remarkParse).use(remarkGfm).freeze();

/** A URL Slack can open: one with a scheme (`https:`, `mailto:`…). */
const ABSOLUTE_URL = /^[a-z][a-z0-9+.-]*:/i;

function collectDefinitions(node: Nodes, into: Map<string, Definition>): void {
  if (node.type === 'definition' && !into.has(node.identifier)) into.set(node.identifier, node);
  if ('children' in node) for (const child of node.children) collectDefinitions(child, into);
}

/** Line prefixes of the block being written: `quote` goes on every line, `indent` on all but code lines. */
interface Frame {
  indent: string;
  quote: string;
}

/** Phrasing state: formatting already open, so that nested markers of the same kind are not repeated. */
interface Inline {
  bold: boolean;
  italic: boolean;
  strike: boolean;
}

const PLAIN: Inline = { bold: false, italic: false, strike: false };

class Writer {
  constructor(private readonly definitions: Map<string, Definition>) {}

  /** Each block of `nodes` as text with its line prefixes applied; empty blocks are dropped. */
  flow(nodes: RootContent[], frame: Frame): string[] {
    const out: string[] = [];
    for (const node of nodes) {
      const text = this.block(node, frame);
      if (text !== '') out.push(text);
    }
    return out;
  }

  private block(node: RootContent, frame: Frame): string {
    switch (node.type) {
      case 'paragraph':
        return prefixLines(this.phrasing(node.children, PLAIN), frame.quote + frame.indent);
      case 'heading': {
        const text = this.phrasing(node.children, { ...PLAIN, bold: true }).trim();
        return text === '' ? '' : prefixLines(`*${text}*`, frame.quote + frame.indent);
      }
      case 'thematicBreak':
        return `${frame.quote + frame.indent}———`;
      case 'blockquote': {
        const quote = `${frame.quote + frame.indent}> `;
        return this.flow(node.children, { indent: '', quote }).join(`\n${quote.trimEnd()}\n`);
      }
      case 'list':
        return this.list(node, frame);
      case 'code':
        return codeBlock(node.value, frame.quote);
      case 'html':
        return prefixLines(escapeMrkdwn(node.value), frame.quote + frame.indent);
      case 'table':
        return codeBlock(tableText(node), frame.quote);
      case 'definition':
        return '';
      case 'footnoteDefinition': {
        const body = this.flow(node.children, frame).join('\n');
        return `${frame.quote + frame.indent}[^${escapeMrkdwn(node.label ?? node.identifier)}]: ${body.slice((frame.quote + frame.indent).length)}`;
      }
      default:
        // Phrasing or unknown content at block level (e.g. from a plugin): write it as a paragraph.
        if ('children' in node) return this.flow(node.children as RootContent[], frame).join('\n\n');
        return 'value' in node
          ? prefixLines(escapeMrkdwn(String(node.value)), frame.quote + frame.indent)
          : '';
    }
  }

  private list(node: Extract<Nodes, { type: 'list' }>, frame: Frame): string {
    const items: string[] = [];
    const start = node.start ?? 1;
    node.children.forEach((item, i) => {
      let marker = node.ordered ? `${start + i}.` : '•';
      if (item.checked === true) marker = node.ordered ? `${marker} ☑` : '☑';
      if (item.checked === false) marker = node.ordered ? `${marker} ☐` : '☐';
      const head = `${frame.quote + frame.indent}${marker}`;
      const [first, ...rest] = item.children;
      const lines: string[] = [];
      const nested: Frame = { indent: `${frame.indent}    `, quote: frame.quote };
      if (first?.type === 'paragraph') {
        // The first paragraph continues the marker line; its own soft breaks align under the nested indent.
        const text = this.phrasing(first.children, PLAIN);
        lines.push(`${head} ${prefixLines(text, nested.quote + nested.indent).trimStart()}`);
        lines.push(...this.flow(rest, nested));
      } else {
        lines.push(head);
        lines.push(...this.flow(item.children, nested));
      }
      items.push(lines.join('\n'));
    });
    return items.join('\n');
  }

  private phrasing(nodes: PhrasingContent[], inline: Inline): string {
    return nodes.map((node) => this.inline(node, inline)).join('');
  }

  private inline(node: PhrasingContent, inline: Inline): string {
    switch (node.type) {
      case 'text':
        return escapeMrkdwn(node.value);
      case 'strong':
        return wrap('*', inline.bold, this.phrasing(node.children, { ...inline, bold: true }));
      case 'emphasis':
        return wrap('_', inline.italic, this.phrasing(node.children, { ...inline, italic: true }));
      case 'delete':
        return wrap('~', inline.strike, this.phrasing(node.children, { ...inline, strike: true }));
      case 'inlineCode':
        return `\`${escapeMrkdwn(node.value)}\``;
      case 'break':
        return '\n';
      case 'link':
        return link(node.url, mdastToString(node));
      case 'image':
        return link(node.url, node.alt ?? '');
      case 'linkReference':
      case 'imageReference': {
        const definition = this.definitions.get(node.identifier);
        const label = node.type === 'linkReference' ? mdastToString(node) : (node.alt ?? '');
        return definition === undefined ? escapeMrkdwn(label) : link(definition.url, label);
      }
      case 'footnoteReference':
        return `[^${escapeMrkdwn(node.label ?? node.identifier)}]`;
      case 'html':
        return escapeMrkdwn(node.value);
      default: {
        const other = node as Nodes;
        if ('children' in other) return this.phrasing(other.children as PhrasingContent[], inline);
        return 'value' in other ? escapeMrkdwn(String(other.value)) : '';
      }
    }
  }
}

function wrap(marker: string, alreadyOpen: boolean, inner: string): string {
  if (alreadyOpen || inner.trim() === '') return inner;
  // Slack only recognises a marker next to non-space text: keep the spaces outside it.
  const lead = /^\s*/.exec(inner)?.[0] ?? '';
  const trail = /\s*$/.exec(inner)?.[0] ?? '';
  return `${lead}${marker}${inner.slice(lead.length, inner.length - trail.length)}${marker}${trail}`;
}

function link(url: string, label: string): string {
  if (!ABSOLUTE_URL.test(url)) return escapeMrkdwn(label === '' ? url : label);
  return mrkdwnLink(url, label);
}

function prefixLines(text: string, prefix: string): string {
  return prefix === '' ? text : text.replace(/^/gm, prefix);
}

/** A mrkdwn code block: fence lines of their own, content escaped but otherwise unchanged. */
function codeBlock(value: string, quote: string): string {
  const body = value === '' ? [] : escapeMrkdwn(value).split('\n');
  return ['```', ...body, '```'].map((line) => quote + line).join('\n');
}

const graphemes = new Intl.Segmenter('en', { granularity: 'grapheme' });

function width(text: string): number {
  let count = 0;
  for (const _ of graphemes.segment(text)) count++;
  return count;
}

/** A GFM table as aligned plain-text columns (header, a rule, then rows), cells as plain text. */
function tableText(table: Table): string {
  const rows = table.children.map((row) =>
    row.children.map((cell) => mdastToString(cell).replace(/\s+/g, ' ')),
  );
  const columns = Math.max(0, ...rows.map((row) => row.length));
  const widths = Array.from({ length: columns }, (_, c) =>
    Math.max(1, ...rows.map((row) => width(row[c] ?? ''))),
  );
  const pad = (text: string, c: number): string => {
    const gap = ' '.repeat((widths[c] ?? 0) - width(text));
    return table.align?.[c] === 'right' ? gap + text : text + gap;
  };
  const line = (cells: string[]): string =>
    Array.from({ length: columns }, (_, c) => pad(cells[c] ?? '', c))
      .join(' | ')
      .trimEnd();
  const [header = [], ...body] = rows;
  return [line(header), widths.map((w) => '-'.repeat(w)).join('-+-'), ...body.map(line)].join('\n');
}
