import type { Nodes, RootContent } from 'mdast';
import { toString as mdastToString } from 'mdast-util-to-string';
import remarkFrontmatter from 'remark-frontmatter';
import remarkGfm from 'remark-gfm';
import remarkParse from 'remark-parse';
import { unified } from 'unified';
import { SupportbotError } from '../core/errors.ts';
import type { Tokenizer } from '../core/tokenizer.ts';
import type { Article, Chunk } from '../core/types.ts';

/** How `chunkArticle` sizes chunks. All sizes are in tokens of `tokenizer`. */
export interface ChunkOptions {
  /** Upper bound on `tokenizer.count(chunk.text)`; an integer >= 1. */
  maxTokens: number;
  /**
   * How much of the previous chunk's tail the next chunk repeats; an integer >= 0 and < maxTokens.
   * 0 turns overlap off.
   */
  overlapTokens: number;
  tokenizer: Tokenizer;
}

/**
 * Splits an article body (CommonMark + GFM) into retrievable chunks along its Markdown structure.
 *
 * Shape: one `Chunk` per piece, `index` 0..n-1 in body order, `id` = `${source}:${articleId}#${index}`, so
 * the same body and options always give the same ids and texts. An empty or whitespace-only body gives `[]`.
 *
 * Structure: the body is parsed to an mdast AST (remark-parse + remark-gfm; front matter, if a source left
 * any, is one block), so `#` lines inside fenced code are code, not headings. Every top-level heading starts
 * a new chunk; `headingPath` is the top-level headings above the chunk's content, outermost first, as plain
 * text. The article title is not part of it: a body that still starts with an H1 equal to the title keeps
 * that line in its first chunk's text, but not in any `headingPath`. A heading with nothing under it but a
 * deeper heading shares the chunk of that sub-section (the path then names both); a heading followed by a
 * code block or table that fits a chunk only without it gets a chunk of its own. Inside a section, whole
 * blocks are packed greedily up to `maxTokens`; a block that does not fit in an empty chunk is split:
 * lists, list items and block quotes into their children, a table between rows (every piece after the first
 * starts with the repeated header and alignment rows), fenced code between lines (every piece re-fenced with
 * the original opening line, info string included, and a matching closing fence), a paragraph at sentence
 * boundaries, then at word boundaries (whitespace), and only for runs without spaces (CJK) at
 * `Intl.Segmenter` word boundaries. No cut falls inside a link, image, inline code, table row, code line or
 * extended grapheme cluster; segmentation uses the fixed locale `en` so results do not depend on the host.
 *
 * Span rule (whitespace between blocks): the non-overlapping parts of the spans tile the body exactly:
 * chunk 0 starts at 0, the last chunk ends at `body.length`, and chunk i's new content starts where chunk
 * i-1's span ends. Whitespace separating two blocks belongs to the chunk before the cut, so `text` may end
 * in newlines and is never trimmed. `span.start` of a chunk with overlap lies before the previous span's
 * end. `text` is exactly `prefix + body.slice(span.start, span.end) + suffix`, where prefix and suffix are
 * empty except on pieces of a split table (prefix: header + alignment rows) or fenced code block (prefix:
 * opening fence line; suffix: closing fence). Hence for prose `text === body.slice(span.start, span.end)`
 * and the body is recovered by concatenating `body.slice(max(span.start, previous span.end), span.end)`.
 *
 * Overlap: a chunk that continues the same section repeats up to `overlapTokens` of the previous chunk's
 * prose tail, starting at a sentence boundary when one fits, else at a word boundary (the `span` includes
 * it). Overlap is only added between prose (paragraphs, lists, quotes): never across a heading, never
 * from or into a table or code piece, so table rows and code lines appear in exactly one chunk.
 *
 * Size: `tokenCount === tokenizer.count(text) <= maxTokens`, except when one indivisible unit alone is
 * larger: a single word or URL (with the whitespace after it), a link or inline code span, one table row
 * (with the repeated header on later pieces), one line of code (with its re-fence lines), a grapheme run
 * without word boundaries, a thematic break or link definition. Such a unit becomes a chunk of its own.
 * Token counts are taken per block or piece and summed while packing; only each final text is counted again
 * (and the pack shrunk in the rare case that BPE merges across pieces make it larger), so the work stays
 * linear in the body length.
 *
 * Limits: pieces of a block split inside a list or quote keep their original indentation and markers
 * (valid Markdown, possibly rendered less nested); a link reference and its definition may land in
 * different chunks.
 *
 * @throws SupportbotError `chunker-options` when maxTokens or overlapTokens is out of range.
 */
export function chunkArticle(
  article: Pick<Article, 'id' | 'source' | 'title' | 'body'>,
  options: ChunkOptions,
): Chunk[] {
  checkOptions(options);
  const body = article.body;
  const tree = processor.parse(body);
  const blocks = tree.children.filter((node) => node.position !== undefined);
  if (blocks.length === 0) return [];

  const ctx = new Context(body, options.tokenizer, markUnsplittable(body, blocks));
  const atoms = rootAtoms(ctx, blocks, article.title);
  const drafts = new Packer(ctx, options.maxTokens, options.overlapTokens).pack(atoms);
  return drafts.map((draft, index) => ({
    id: `${article.source}:${article.id}#${index}`,
    articleId: article.id,
    source: article.source,
    index,
    headingPath: draft.headingPath,
    text: draft.text,
    tokenCount: draft.tokenCount,
    span: { start: draft.start, end: draft.end },
  }));
}

// Frozen once; parse() is pure, so one processor serves every article.
const processor = unified().use(remarkParse).use(remarkGfm).use(remarkFrontmatter).freeze();

// A fixed locale keeps chunking identical on every host (the default locale differs between machines).
const sentenceSegmenter = new Intl.Segmenter('en', { granularity: 'sentence' });
const wordSegmenter = new Intl.Segmenter('en', { granularity: 'word' });
const graphemeSegmenter = new Intl.Segmenter('en', { granularity: 'grapheme' });

function checkOptions(options: ChunkOptions): void {
  const { maxTokens, overlapTokens } = options;
  if (!Number.isInteger(maxTokens) || maxTokens < 1) {
    throw new SupportbotError('chunker-options', `maxTokens must be an integer >= 1, got ${maxTokens}`);
  }
  if (!Number.isInteger(overlapTokens) || overlapTokens < 0 || overlapTokens >= maxTokens) {
    throw new SupportbotError(
      'chunker-options',
      `overlapTokens must be an integer >= 0 and < maxTokens (${maxTokens}), got ${overlapTokens}`,
    );
  }
}

/** What an atom is, for the overlap and re-fencing rules. */
type AtomKind = 'heading' | 'prose' | 'code' | 'table' | 'other';

/** How an atom that is too large is split next; `none` means indivisible. */
type SplitHow = 'children' | 'rows' | 'lines' | 'sentences' | 'words' | 'subwords' | 'none';

/** Pieces of one split table or fenced code block share the text a piece needs to stand alone. */
interface Group {
  /** Range of the whole block's atom, to tell a first or last piece from a middle one. */
  start: number;
  end: number;
  /** Added in front of a piece that does not start the block (header + alignment rows, or opening fence). */
  prefix: string;
  prefixTokens: number;
  /** Added after a piece that does not end the block (closing fence); empty for tables. */
  suffix: string;
  suffixTokens: number;
}

/**
 * A contiguous range of the body that the packer places whole. Sibling atoms tile their parent's range:
 * each reaches up to the next one's start, so separators are part of the atom before them.
 */
interface Atom {
  start: number;
  end: number;
  /** tokenizer.count(body.slice(start, end)). */
  tokens: number;
  kind: AtomKind;
  split: SplitHow;
  /** The block node, for `children`, `rows` and `lines` splits. */
  node?: Nodes;
  group?: Group;
  /** Index of the top-level section (a heading and what follows it up to the next heading). */
  section: number;
  /** Heading path of the content of this atom. */
  path: string[];
  /** Set on a top-level heading's atom. */
  heading?: { depth: number };
}

/** Per-article state shared by the splitting and packing steps. */
class Context {
  constructor(
    readonly body: string,
    readonly tokenizer: Tokenizer,
    /** unsplittable[p] === 1 when offset p lies strictly inside a link, inline code, code block, table… */
    readonly unsplittable: Uint8Array,
  ) {}

  count(start: number, end: number): number {
    return this.tokenizer.count(this.body.slice(start, end));
  }

  countText(text: string): number {
    return text === '' ? 0 : this.tokenizer.count(text);
  }

  /**
   * A predicate telling whether offset p (within [start, end]) is an extended grapheme cluster boundary.
   * The range must itself start on a boundary (every atom does).
   */
  graphemeBoundaries(start: number, end: number): (p: number) => boolean {
    const { body } = this;
    let ascii = true;
    for (let i = start; i < end; i++) {
      if (body.charCodeAt(i) > 0x7f) {
        ascii = false;
        break;
      }
    }
    // Between two ASCII characters the only non-boundary is CR LF (UAX #29 GB3); skip the segmenter then.
    if (ascii) return (p) => !(body.charCodeAt(p - 1) === 13 && body.charCodeAt(p) === 10);
    const boundaries = new Set<number>([end]);
    for (const g of graphemeSegmenter.segment(body.slice(start, end))) boundaries.add(start + g.index);
    return (p) => boundaries.has(p);
  }
}

function startOf(node: Nodes): number {
  const offset = node.position?.start.offset;
  if (offset === undefined) throw new Error(`mdast ${node.type} node without a position`);
  return offset;
}

function endOf(node: Nodes): number {
  const offset = node.position?.end.offset;
  if (offset === undefined) throw new Error(`mdast ${node.type} node without a position`);
  return offset;
}

function isSpace(code: number): boolean {
  if (code < 0x80) return code === 32 || (code >= 9 && code <= 13);
  return /\s/u.test(String.fromCharCode(code));
}

// Nodes a cut must never fall inside. Whole code blocks and tables are listed too so that the prose-level
// cuts used for overlap cannot start inside one nested in a list; their own splits do not consult this.
const UNSPLITTABLE = new Set([
  'link',
  'linkReference',
  'image',
  'imageReference',
  'inlineCode',
  'footnoteReference',
  'html',
  'code',
  'table',
  'yaml',
]);

function markUnsplittable(body: string, blocks: RootContent[]): Uint8Array {
  const marks = new Uint8Array(body.length + 1);
  const walk = (node: Nodes): void => {
    if (UNSPLITTABLE.has(node.type) && node.position) {
      marks.fill(1, startOf(node) + 1, endOf(node));
      return; // anything nested is inside the marked range already
    }
    if ('children' in node) for (const child of node.children) walk(child);
  };
  for (const block of blocks) walk(block);
  return marks;
}

function classify(node: Nodes): { kind: AtomKind; split: SplitHow } {
  switch (node.type) {
    case 'heading':
      return { kind: 'heading', split: 'sentences' };
    case 'paragraph':
      return { kind: 'prose', split: 'sentences' };
    case 'list':
    case 'listItem':
    case 'blockquote':
    case 'footnoteDefinition':
      return { kind: 'prose', split: 'children' };
    case 'code':
      return { kind: 'code', split: 'lines' };
    case 'table':
      return { kind: 'table', split: 'rows' };
    case 'html':
    case 'yaml':
      return { kind: 'other', split: 'lines' };
    case 'thematicBreak':
    case 'definition':
      return { kind: 'other', split: 'none' };
    default:
      return { kind: 'other', split: 'words' };
  }
}

function normalizeTitle(text: string): string {
  return text.replace(/\s+/g, ' ').trim().toLowerCase();
}

/** One atom per top-level block, with sections and heading paths assigned. */
function rootAtoms(ctx: Context, blocks: RootContent[], title: string): Atom[] {
  const stack: { depth: number; text: string }[] = [];
  let section = 0;
  let seenHeading = false;
  return blocks.map((node, i) => {
    // Tile the whole body: the first block takes leading whitespace, the last one trailing whitespace.
    const start = i === 0 ? 0 : startOf(node);
    const next = blocks[i + 1];
    const end = next === undefined ? ctx.body.length : startOf(next);
    let heading: Atom['heading'];
    if (node.type === 'heading') {
      section += 1;
      heading = { depth: node.depth };
      const text = mdastToString(node).replace(/\s+/g, ' ').trim();
      // Sources are meant to strip the title heading; if one did not, it still must not enter the path.
      const isTitle =
        !seenHeading && node.depth === 1 && normalizeTitle(text) === normalizeTitle(title) && text !== '';
      seenHeading = true;
      if (!isTitle) {
        while (stack.length > 0 && (stack.at(-1)?.depth ?? 0) >= node.depth) stack.pop();
        if (text !== '') stack.push({ depth: node.depth, text });
      }
    }
    const { kind, split } = classify(node);
    return {
      start,
      end,
      tokens: ctx.count(start, end),
      kind,
      split,
      node,
      section,
      path: stack.map((h) => h.text),
      ...(heading ? { heading } : {}),
    };
  });
}

/** Splits `atom` one level down. The result tiles [atom.start, atom.end) and is never empty. */
function splitAtom(ctx: Context, atom: Atom): Atom[] {
  const { body } = ctx;
  const piece = (start: number, end: number, fields: Partial<Atom>): Atom => ({
    start,
    end,
    tokens: ctx.count(start, end),
    kind: atom.kind,
    split: 'none',
    section: atom.section,
    path: atom.path,
    ...fields,
  });
  // Cuts at `cuts` (strictly increasing, inside the atom); one piece per gap.
  const cutAt = (cuts: number[], fields: (index: number) => Partial<Atom>): Atom[] => {
    const inside = cuts.filter(
      (p, i) => p > atom.start && p < atom.end && (i === 0 || p > (cuts[i - 1] ?? 0)),
    );
    if (inside.length === 0) return [{ ...atom, ...fields(0), group: atom.group, tokens: atom.tokens }];
    const bounds = [atom.start, ...inside, atom.end];
    const pieces: Atom[] = [];
    for (let i = 0; i + 1 < bounds.length; i++) {
      pieces.push(piece(bounds[i] ?? 0, bounds[i + 1] ?? 0, fields(i)));
    }
    return pieces;
  };
  const node = atom.node;
  // A split heading no longer reads as a heading; its pieces carry no overlap either.
  const proseKind: AtomKind = atom.kind === 'heading' ? 'other' : atom.kind;

  switch (atom.split) {
    case 'children': {
      const children = node && 'children' in node ? (node.children as Nodes[]) : [];
      if (children.length === 0) return [{ ...atom, split: 'words', node: undefined }];
      return cutAt(children.slice(1).map(startOf), (i) => {
        const child = children[i] as Nodes;
        return { ...classify(child), node: child };
      });
    }
    case 'rows': {
      const rows = node && node.type === 'table' ? node.children : [];
      const firstDataRow = rows[1];
      if (node === undefined || firstDataRow === undefined) return [{ ...atom, split: 'none' }];
      // Header and alignment rows (the alignment row is no node: it is what lies before the first data
      // row). The first piece keeps them with the first data row, so no piece is a bare header.
      const prefix = body.slice(startOf(node), startOf(firstDataRow));
      const group: Group = {
        start: atom.start,
        end: atom.end,
        prefix,
        prefixTokens: ctx.countText(prefix),
        suffix: '',
        suffixTokens: 0,
      };
      return cutAt(rows.slice(2).map(startOf), () => ({
        kind: 'table',
        split: 'none',
        node: undefined,
        group,
      }));
    }
    case 'lines': {
      if (node === undefined) return [{ ...atom, split: 'words' }];
      const nodeStart = startOf(node);
      const nodeEnd = endOf(node);
      const lineStarts: number[] = [];
      for (
        let p = body.indexOf('\n', nodeStart);
        p !== -1 && p + 1 < nodeEnd;
        p = body.indexOf('\n', p + 1)
      ) {
        lineStarts.push(p + 1);
      }
      const fence =
        node.type === 'code' ? /^([ \t]*)(`{3,}|~{3,})/.exec(body.slice(nodeStart, nodeStart + 100)) : null;
      if (fence === null || lineStarts.length === 0) {
        return cutAt(lineStarts, () => ({ kind: atom.kind, split: 'none', node: undefined }));
      }
      const marker = fence[2] ?? '```';
      // The closing line may carry container markers (`> ` in a quote) before the fence.
      const lastLine = body
        .slice(lineStarts.at(-1) ?? nodeEnd, nodeEnd)
        .replace(/^[\s>]*/, '')
        .trimEnd();
      const closed = lastLine.startsWith(marker) && /^(`+|~+)$/.test(lastLine);
      // Glue the opening fence to the first code line and the closing fence to the last one, so that no
      // piece is an empty code block.
      const cuts = lineStarts.slice(1, closed ? -1 : undefined);
      const prefix = body.slice(nodeStart, lineStarts[0]);
      // The synthetic closing fence sits where the opening one does: list markers before it become spaces,
      // quote markers stay, so it closes the block inside the same container.
      const lineStart = body.lastIndexOf('\n', nodeStart - 1) + 1;
      const indent = body.slice(lineStart, nodeStart + (fence[1]?.length ?? 0)).replace(/[^\t>]/g, ' ');
      const suffix = indent + marker;
      const group: Group = {
        start: atom.start,
        end: atom.end,
        prefix,
        prefixTokens: ctx.countText(prefix),
        suffix,
        suffixTokens: ctx.countText(suffix),
      };
      return cutAt(cuts, () => ({ kind: 'code', split: 'none', node: undefined, group }));
    }
    case 'sentences': {
      const isBoundary = ctx.graphemeBoundaries(atom.start, atom.end);
      const cuts: number[] = [];
      for (const s of sentenceSegmenter.segment(body.slice(atom.start, atom.end))) {
        const p = atom.start + s.index;
        if (ctx.unsplittable[p] === 0 && isBoundary(p)) cuts.push(p);
      }
      return cutAt(cuts, () => ({ kind: proseKind, split: 'words', node: undefined }));
    }
    case 'words': {
      const isBoundary = ctx.graphemeBoundaries(atom.start, atom.end);
      const cuts: number[] = [];
      for (let p = atom.start + 1; p < atom.end; p++) {
        if (
          isSpace(body.charCodeAt(p - 1)) &&
          !isSpace(body.charCodeAt(p)) &&
          ctx.unsplittable[p] === 0 &&
          isBoundary(p)
        ) {
          cuts.push(p);
        }
      }
      return cutAt(cuts, () => ({ kind: proseKind, split: 'subwords', node: undefined }));
    }
    case 'subwords': {
      // Only reached for a whitespace-free run larger than a chunk. Cutting between two ASCII non-space
      // characters would break an English word, a path or a URL, so those stay whole; scripts written
      // without spaces (CJK) and emoji runs get the segmenter's dictionary word boundaries.
      const isBoundary = ctx.graphemeBoundaries(atom.start, atom.end);
      const asciiWord = (code: number) => code < 0x80 && !isSpace(code);
      const cuts: number[] = [];
      for (const s of wordSegmenter.segment(body.slice(atom.start, atom.end))) {
        const p = atom.start + s.index;
        if (asciiWord(body.charCodeAt(p - 1)) && asciiWord(body.charCodeAt(p))) continue;
        // Whitespace stays with the piece before it (the span rule); a piece of bare spaces is useless.
        if (isSpace(body.charCodeAt(p))) continue;
        if (ctx.unsplittable[p] === 0 && isBoundary(p)) cuts.push(p);
      }
      return cutAt(cuts, () => ({ kind: proseKind, split: 'none', node: undefined }));
    }
    case 'none':
      return [atom];
  }
}

interface Draft {
  start: number;
  end: number;
  text: string;
  tokenCount: number;
  headingPath: string[];
  atoms: Atom[];
}

/** Greedy packing of atoms into chunks; splits an atom only when it cannot fit an empty chunk. */
class Packer {
  private readonly drafts: Draft[] = [];
  /** Atoms still to place; the next one is at the end. */
  private readonly pending: Atom[] = [];
  private current: Atom[] = [];
  /** Token sum of the current chunk: prefix + overlap + atoms (the suffix is added when checking fit). */
  private currentTokens = 0;
  /** Start of the repeated tail of the previous chunk, when the current chunk has one. */
  private overlapStart: number | null = null;

  constructor(
    private readonly ctx: Context,
    private readonly maxTokens: number,
    private readonly overlapTokens: number,
  ) {}

  pack(atoms: Atom[]): Draft[] {
    for (let i = atoms.length - 1; i >= 0; i--) this.pending.push(atoms[i] as Atom);
    for (let atom = this.pending.at(-1); atom !== undefined; atom = this.pending.at(-1)) {
      if (this.current.length === 0) {
        this.startWith(atom);
        continue;
      }
      if (!this.canJoin(atom)) {
        this.flush();
        continue;
      }
      if (this.currentTokens + atom.tokens + suffixTokens(atom) <= this.maxTokens) {
        this.pending.pop();
        this.current.push(atom);
        this.currentTokens += atom.tokens;
        continue;
      }
      // Does not fit. After nothing but headings, rather split prose (and anything too big anyway) than
      // leave the heading alone in a chunk; a code block or table that fits a chunk stays whole instead.
      const onlyHeadings = this.current.every((a) => a.heading !== undefined);
      if (
        onlyHeadings &&
        atom.split !== 'none' &&
        (atom.kind === 'prose' || aloneTokens(atom) > this.maxTokens)
      ) {
        this.replaceNext(splitAtom(this.ctx, atom));
        continue;
      }
      this.flush();
    }
    this.flush();
    return this.drafts;
  }

  /** Opens a chunk with `atom`, splitting it first if it cannot fit alone, and adds overlap if allowed. */
  private startWith(atom: Atom): void {
    const alone = aloneTokens(atom);
    if (alone > this.maxTokens && atom.split !== 'none') {
      this.replaceNext(splitAtom(this.ctx, atom));
      return;
    }
    this.pending.pop();
    this.current = [atom];
    this.currentTokens = alone - suffixTokens(atom);
    this.overlapStart = null;
    const overlap = this.overlapFor(atom, Math.min(this.overlapTokens, this.maxTokens - alone));
    if (overlap) {
      this.overlapStart = overlap.start;
      this.currentTokens += overlap.tokens;
    }
  }

  private replaceNext(pieces: Atom[]): void {
    this.pending.pop();
    for (let i = pieces.length - 1; i >= 0; i--) this.pending.push(pieces[i] as Atom);
  }

  /** Headings start chunks, except that a heading-only chunk takes in a deeper sub-section's heading. */
  private canJoin(atom: Atom): boolean {
    const last = this.current.at(-1);
    if (last === undefined || atom.section === last.section) return true;
    return (
      atom.heading !== undefined &&
      last.heading !== undefined &&
      this.current.every((a) => a.heading !== undefined) &&
      atom.heading.depth > last.heading.depth
    );
  }

  /**
   * The tail of the previous chunk to repeat before `next`: at most `limit` tokens, taken from the
   * previous chunk's trailing prose, starting at a sentence boundary if one fits, else a word boundary.
   */
  private overlapFor(next: Atom, limit: number): { start: number; tokens: number } | null {
    const previous = this.drafts.at(-1)?.atoms;
    const last = previous?.at(-1);
    if (!previous || !last || limit <= 0 || next.kind !== 'prose' || last.kind !== 'prose') return null;
    if (last.section !== next.section || last.end !== next.start) return null;
    let first = previous.length - 1;
    while (first > 0 && previous[first - 1]?.kind === 'prose') first--;
    const regionStart = (previous[first] as Atom).start;
    const end = last.end;
    // Never repeat the whole previous chunk: the overlap must start after its first atom's start.
    const floor = (previous[0] as Atom).start;
    const { body, unsplittable } = this.ctx;
    const isBoundary = this.ctx.graphemeBoundaries(regionStart, end);
    const usable = (p: number) =>
      p > floor && p < end && unsplittable[p] === 0 && !isSpace(body.charCodeAt(p)) && isBoundary(p);

    const sentenceStarts: number[] = [];
    for (const s of sentenceSegmenter.segment(body.slice(regionStart, end))) {
      const p = regionStart + s.index;
      if (usable(p)) sentenceStarts.push(p);
    }
    const wordStarts: number[] = [];
    for (let p = regionStart; p < end; p++) {
      if ((p === regionStart || isSpace(body.charCodeAt(p - 1))) && usable(p)) wordStarts.push(p);
    }
    return this.longestTail(sentenceStarts, end, limit) ?? this.longestTail(wordStarts, end, limit);
  }

  /** The earliest of `starts` (ascending) whose tail up to `end` has at most `limit` tokens. */
  private longestTail(
    starts: number[],
    end: number,
    limit: number,
  ): { start: number; tokens: number } | null {
    // Tail size shrinks as the start moves right, so binary search: O(log n) counts of short strings.
    let lo = 0;
    let hi = starts.length;
    let best: { start: number; tokens: number } | null = null;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const start = starts[mid] as number;
      const tokens = this.ctx.count(start, end);
      if (tokens <= limit) {
        best = { start, tokens };
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    return best;
  }

  /** Emits the current chunk, after checking its real token count; gives back atoms that do not fit. */
  private flush(): void {
    while (this.current.length > 0) {
      const first = this.current[0] as Atom;
      const last = this.current.at(-1) as Atom;
      const start = this.overlapStart ?? first.start;
      const prefix = startsMidGroup(first) ? (first.group?.prefix ?? '') : '';
      const suffix = endsMidGroup(last) ? (last.group?.suffix ?? '') : '';
      const text = prefix + this.ctx.body.slice(start, last.end) + suffix;
      const tokenCount = this.ctx.countText(text);
      if (tokenCount > this.maxTokens) {
        // Summed piece counts can undercount by a few tokens (BPE merges across pieces): shrink the pack.
        if (this.current.length > 1) {
          this.pending.push(this.current.pop() as Atom);
          continue;
        }
        if (this.overlapStart !== null) {
          this.overlapStart = null;
          continue;
        }
        if (first.split !== 'none') {
          this.current = [];
          this.pending.push(first);
          this.replaceNext(splitAtom(this.ctx, first));
          break;
        }
        // One indivisible unit larger than a chunk: emitted as is (documented exception).
      }
      this.drafts.push({
        start,
        end: last.end,
        text,
        tokenCount,
        headingPath: last.path,
        atoms: this.current,
      });
      this.current = [];
    }
    this.currentTokens = 0;
    this.overlapStart = null;
  }
}

function startsMidGroup(atom: Atom): boolean {
  return atom.group !== undefined && atom.start !== atom.group.start;
}

function endsMidGroup(atom: Atom): boolean {
  return atom.group !== undefined && atom.end !== atom.group.end && atom.group.suffix !== '';
}

function suffixTokens(atom: Atom): number {
  return endsMidGroup(atom) ? (atom.group?.suffixTokens ?? 0) : 0;
}

/** Tokens of a chunk holding only `atom`, with the prefix and suffix it would need. */
function aloneTokens(atom: Atom): number {
  return atom.tokens + (startsMidGroup(atom) ? (atom.group?.prefixTokens ?? 0) : 0) + suffixTokens(atom);
}
