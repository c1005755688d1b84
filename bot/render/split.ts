import type { Nodes, Root } from 'mdast';
import remarkGfm from 'remark-gfm';
import remarkParse from 'remark-parse';
import { unified } from 'unified';
import { SupportbotError } from '../../core/errors.ts';

/** Smallest `maxChars` `splitMarkdown` accepts; every size from here up works (≥ 100 is the intended use). */
export const MIN_SPLIT_CHARS = 40;

/**
 * Splits Markdown (CommonMark + GFM, or Slack mrkdwn, which shares the parts that matter here: fences,
 * links in `<…>`, entities) into pieces that each fit a chat message or block of `maxChars` characters.
 *
 * Size: every piece is at most `maxChars` UTF-16 code units (`string.length`), which is never less than
 * the count of Unicode code points, so the bound holds for Slack's and Discord's character limits either
 * way.
 *
 * Where cuts fall, best first: between blocks (a blank line, or the start of a top-level block such as a
 * heading, list or fenced code block), between lines, between sentences (`Intl.Segmenter`), at whitespace,
 * at `Intl.Segmenter` word boundaries (runs without spaces, e.g. CJK), at extended grapheme cluster
 * boundaries. Pieces are packed greedily: among the cuts that keep a piece within `maxChars`, a cut at
 * whitespace or better always beats one inside a word; then cuts that leave the piece at least half full
 * come first, then the better kind, then the later offset. A cut right after a heading ranks as a
 * whitespace cut, so a heading stays with what follows it. No cut falls inside a link or image (`[t](u)`,
 * `[t][ref]`, autolinks and GFM bare URLs), inline code, an HTML tag, an angle-bracket span `<…>` (Slack's
 * `<url|text>`, mentions) or an entity (`&amp;`) unless that unit alone is longer than a piece can hold;
 * then it is cut at grapheme boundaries. A grapheme cluster longer than a piece (pathological) is cut
 * between code points.
 *
 * Code fences: a fenced code block cut across pieces is closed at the end of one piece (a line with the
 * opening fence's marker) and reopened at the start of the next (a line repeating the opening fence, info
 * string included), so every piece has balanced fences; the added lines count towards `maxChars`. Cuts
 * inside code fall before a non-blank line; a cut inside a line (which adds a line break to the code) is
 * taken only for a line that does not fit a piece with its fence lines. The reopen line keeps the opening
 * line's indentation when it is at most 3 columns (and its `>` quote markers), else only the quote markers.
 * A fence whose opening line would take more than a quarter of `maxChars` is reopened without its info
 * string (longer still: the block is split like plain text). A fence the input leaves unclosed is closed
 * where its block ends (at the end of the text, or of the list item or quote holding it).
 *
 * Whole text, exactly: let T be `text` with CR LF / CR turned into LF and missing closing fences added as
 * above. Each piece is `R + C + F`, where R is empty or a reopen line plus `\n`, F is empty or `\n` plus a
 * close line, and C is a slice of T; T is `W0 + C0 + W1 + C1 + … + Ck + W(k+1)` where every W is whitespace
 * only. Inside a code block a W is `\n` or empty (no indentation is lost); outside code every whitespace at
 * a cut is dropped, including leading whitespace of the text and trailing whitespace of each piece. No
 * piece is empty or whitespace only; an empty or whitespace-only text gives `[]`.
 *
 * Limits: emphasis (`**bold words**`) cut across pieces is not re-balanced; a table cut across pieces does
 * not repeat its header; a list or quote cut across pieces restarts at the piece start.
 *
 * @throws SupportbotError `split-options` when `maxChars` is not an integer ≥ `MIN_SPLIT_CHARS`.
 */
export function splitMarkdown(text: string, maxChars: number): string[] {
  if (!Number.isInteger(maxChars) || maxChars < MIN_SPLIT_CHARS) {
    throw new SupportbotError(
      'split-options',
      `maxChars must be an integer >= ${MIN_SPLIT_CHARS}, got ${maxChars}`,
    );
  }
  let t = text.replace(/\r\n?/g, '\n');
  let tree = processor.parse(t);
  // Close fences the input leaves open, so that every block below has both fence lines.
  const insertions = fencesOf(t, tree, maxChars).unclosed;
  if (insertions.length > 0) {
    for (const { at, line } of insertions.sort((a, b) => b.at - a.at)) {
      t = `${t.slice(0, at)}\n${line}${t.slice(at)}`;
    }
    tree = processor.parse(t);
  }
  return new Splitter(t, tree, maxChars).split();
}

// Frozen once; parse() is pure, so one processor serves every call.
const processor = unified().use(remarkParse).use(remarkGfm).freeze();

// A fixed locale keeps splitting identical on every host.
const graphemeSegmenter = new Intl.Segmenter('en', { granularity: 'grapheme' });
const wordSegmenter = new Intl.Segmenter('en', { granularity: 'word' });
const sentenceSegmenter = new Intl.Segmenter('en', { granularity: 'sentence' });

// How good a cut at an offset is; higher is better. FORBIDDEN offsets are never used (except by the
// code-point fallback for a grapheme cluster longer than a piece).
const FORBIDDEN = -1;
const IN_ATOM = 0;
const GRAPHEME = 1;
const WORD = 2;
const SPACE = 3;
const SENTENCE = 4;
const LINE = 5;
const BLOCK = 6;

// Ranking of a cut: any cut at whitespace or better beats every cut inside a word, link or grapheme run
// (those happen only when the unit does not fit); then a cut leaving the piece at least half full beats
// one that does not; then the better kind; then the later offset.
const AT_WHITESPACE_BONUS = 100;
const HALF_FULL_BONUS = 10;

/** A fenced code block of T, by offsets. */
interface Fence {
  /** First content offset (just after the opening line's newline). */
  contentStart: number;
  /** End of the last non-whitespace content character; cuts inside the block lie in (contentStart, this). */
  contentEnd: number;
  /** First fence character of the opening line. No cut falls in (fenceStart, contentStart] or [contentEnd, closeEnd). */
  fenceStart: number;
  /** Start of the closing fence line. */
  closeStart: number;
  /** End of the closing fence line (before its newline). */
  closeEnd: number;
  /** Line that reopens the block at the start of a piece. */
  reopen: string;
  /** Line that closes the block at the end of a piece that holds its opening line. */
  closeAfterOpen: string;
  /** Line that closes the block at the end of a piece that began with `reopen`. */
  closeAfterReopen: string;
}

interface Unclosed {
  at: number;
  line: string;
}

function isWs(code: number): boolean {
  return code === 32 || code === 9 || code === 10 || code === 11 || code === 12 || code === 13;
}

function lineEndOf(t: string, p: number): number {
  const i = t.indexOf('\n', p);
  return i === -1 ? t.length : i;
}

function offsets(node: Nodes): [number, number] | null {
  const start = node.position?.start.offset;
  const end = node.position?.end.offset;
  return start === undefined || end === undefined ? null : [start, end];
}

function walk(node: Nodes, visit: (node: Nodes) => void): void {
  visit(node);
  if ('children' in node) for (const child of node.children) walk(child, visit);
}

/** The fenced code blocks of `t` (indented code is left alone), and where missing closing fences go. */
function fencesOf(t: string, tree: Root, maxChars: number): { fences: Fence[]; unclosed: Unclosed[] } {
  const fences: Fence[] = [];
  const unclosed: Unclosed[] = [];
  walk(tree, (node) => {
    if (node.type !== 'code') return;
    const range = offsets(node);
    if (range === null) return;
    const [start, end] = range;
    let fenceStart = start;
    while (t[fenceStart] === ' ' || t[fenceStart] === '\t') fenceStart++;
    const openEnd = lineEndOf(t, fenceStart);
    const open = /^(`{3,}|~{3,})(.*)$/.exec(t.slice(fenceStart, openEnd));
    if (open === null) return;
    const marker = open[1] ?? '```';
    const info = (open[2] ?? '').trim();
    const lineStart = t.lastIndexOf('\n', fenceStart - 1) + 1;
    // Container markers before the fence (`> `, `1. `) become spaces; `>` and tabs keep their columns.
    const indent = t.slice(lineStart, fenceStart).replace(/[^>\t]/g, ' ');
    const lastLineStart = t.lastIndexOf('\n', end - 1) + 1;
    const closeRe = new RegExp(`^[ \\t>]*${marker[0] === '`' ? '`' : '~'}{${marker.length},}[ \\t]*$`);
    const closed =
      lastLineStart > lineStart && closeRe.test(t.slice(lastLineStart, lineEndOf(t, lastLineStart)));
    if (!closed) {
      let at = end;
      while (at > openEnd && isWs(t.charCodeAt(at - 1))) at--;
      unclosed.push({ at, line: indent + marker });
      return;
    }
    // At a piece start there is no list around the block: keep the indentation only where it still reads
    // as a fence (≤ 3 columns), else keep just the quote markers.
    const reopenPrefix = /^( {0,3}>)* {0,3}$/.test(indent)
      ? indent
      : indent.replace(/[^>]/g, '').replace(/>/g, '> ');
    let reopen = reopenPrefix + marker + info;
    if (reopen.length > maxChars / 4) reopen = reopenPrefix + marker;
    const closeAfterOpen = indent + marker;
    const closeAfterReopen = reopenPrefix + marker;
    // A fence too long to repeat cannot be re-fenced; its content is split as plain text.
    if (Math.max(reopen.length, closeAfterOpen.length) > maxChars / 4) return;
    const contentStart = Math.min(openEnd + 1, t.length);
    let contentEnd = lastLineStart;
    while (contentEnd > contentStart && isWs(t.charCodeAt(contentEnd - 1))) contentEnd--;
    fences.push({
      contentStart,
      contentEnd,
      fenceStart,
      closeStart: lastLineStart,
      closeEnd: lineEndOf(t, lastLineStart),
      reopen,
      closeAfterOpen,
      closeAfterReopen,
    });
  });
  return { fences, unclosed };
}

/**
 * Sets `level[p] = GRAPHEME` at every extended grapheme cluster boundary of `t` (UAX #29). Between two
 * ASCII characters every offset is a boundary (only CR LF joins, and CR is gone), so the segmenter, which
 * is slow on long strings, runs only over non-ASCII runs with one character of context on either side.
 */
function markGraphemeBoundaries(t: string, level: Int8Array): void {
  const n = t.length;
  level.fill(GRAPHEME);
  let i = 0;
  while (i < n) {
    if (t.charCodeAt(i) <= 0x7f) {
      i++;
      continue;
    }
    const start = Math.max(0, i - 1);
    let end = i;
    // Runs separated by a single ASCII character share a window.
    while (end < n && (t.charCodeAt(end) > 0x7f || (t.charCodeAt(end + 1) || 0) > 0x7f)) end++;
    end = Math.min(n, end + 1);
    level.fill(FORBIDDEN, start + 1, end);
    for (const g of graphemeSegmenter.segment(t.slice(start, end))) level[start + g.index] = GRAPHEME;
    i = end;
  }
}

const ATOM_TYPES = new Set<Nodes['type']>([
  'link',
  'image',
  'linkReference',
  'imageReference',
  'inlineCode',
  'html',
  'footnoteReference',
  'definition',
]);

/** `<…>` spans (autolinks, Slack links and mentions) and character references, found in the raw text. */
const RAW_ATOMS = /<[^\s<>][^<>\n]*>|&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});/g;

class Splitter {
  private readonly n: number;
  /** Cut preference at each offset (index = offset of the first character of the next piece). */
  private readonly level: Int8Array;
  /** Index into `fences` of the block a cut at this offset falls inside, or -1. */
  private readonly codeOf: Int32Array;
  /** Offset just after the last non-whitespace character before each offset (0 when none). */
  private readonly contentEndBefore: Int32Array;
  /** Number of non-whitespace characters before each offset. */
  private readonly nonWs: Int32Array;
  private readonly fences: Fence[];

  constructor(
    private readonly t: string,
    tree: Root,
    private readonly maxChars: number,
  ) {
    const n = t.length;
    this.n = n;
    this.fences = fencesOf(t, tree, maxChars).fences;
    this.codeOf = new Int32Array(n + 1).fill(-1);
    this.fences.forEach((fence, k) => {
      for (let p = fence.contentStart + 1; p < fence.contentEnd; p++) this.codeOf[p] = k;
    });
    this.contentEndBefore = new Int32Array(n + 1);
    this.nonWs = new Int32Array(n + 1);
    for (let p = 1; p <= n; p++) {
      const ws = isWs(t.charCodeAt(p - 1));
      this.contentEndBefore[p] = ws ? (this.contentEndBefore[p - 1] ?? 0) : p;
      this.nonWs[p] = (this.nonWs[p - 1] ?? 0) + (ws ? 0 : 1);
    }
    this.level = this.levels(tree);
  }

  private levels(tree: Root): Int8Array {
    const { t, n, codeOf } = this;
    const level = new Int8Array(n + 1).fill(FORBIDDEN);
    markGraphemeBoundaries(t, level);
    // Word boundaries only matter inside a whitespace-free run too long to fit a piece with its fence
    // lines (at most maxChars / 2 of them); the segmenter is slow, so it runs over those runs only.
    for (let a = 0; a < n; ) {
      if (isWs(t.charCodeAt(a))) {
        a++;
        continue;
      }
      let b = a;
      while (b < n && !isWs(t.charCodeAt(b))) b++;
      if (b - a >= this.maxChars / 4) {
        for (const w of wordSegmenter.segment(t.slice(a, b))) {
          if (w.index > 0 && level[a + w.index] === GRAPHEME) level[a + w.index] = WORD;
        }
      }
      a = b;
    }

    // Whitespace: the first character after a run is a cut of the kind the run makes.
    let newlines = -1; // -1: not in a whitespace run
    for (let p = 0; p < n; p++) {
      const c = t.charCodeAt(p);
      if (isWs(c)) {
        newlines = Math.max(newlines, 0) + (c === 10 ? 1 : 0);
        continue;
      }
      if (newlines >= 0 && p > 0 && level[p] !== FORBIDDEN) {
        // Inside code only line breaks are good cuts: a cut inside a line changes the code.
        if ((codeOf[p] ?? -1) >= 0) level[p] = t.charCodeAt(p - 1) === 10 ? LINE : WORD;
        else level[p] = newlines >= 2 ? BLOCK : newlines === 1 ? LINE : SPACE;
      }
      newlines = -1;
    }
    for (const s of sentenceSegmenter.segment(t)) {
      const p = s.index;
      if ((codeOf[p] ?? -1) < 0 && (level[p] ?? FORBIDDEN) >= GRAPHEME && (level[p] ?? 0) < SENTENCE) {
        level[p] = SENTENCE;
      }
    }
    const skipWs = (p: number): number => {
      let q = p;
      while (q < n && isWs(t.charCodeAt(q))) q++;
      return q;
    };
    for (const block of tree.children) {
      const range = offsets(block);
      if (range === null) continue;
      const start = skipWs(range[0]);
      if (start < n && (level[start] ?? FORBIDDEN) >= LINE) level[start] = BLOCK;
      // Keep a heading with what follows it.
      const after = skipWs(range[1]);
      if (block.type === 'heading' && after < n && (level[after] ?? FORBIDDEN) > SPACE) level[after] = SPACE;
    }

    const atom = (start: number, end: number): void => {
      for (let p = start + 1; p < end; p++) if ((level[p] ?? FORBIDDEN) >= GRAPHEME) level[p] = IN_ATOM;
    };
    walk(tree, (node) => {
      const range = offsets(node);
      if (range !== null && ATOM_TYPES.has(node.type)) atom(range[0], range[1]);
    });
    for (const m of t.matchAll(RAW_ATOMS)) atom(m.index, m.index + m[0].length);

    for (const fence of this.fences) {
      // Inside code: cuts between lines, before a line with text (a blank line stays with the piece
      // before the cut); never on a line's newline.
      for (let p = fence.contentStart + 1; p < fence.contentEnd; p++) {
        const blank = t.charCodeAt(p) === 10;
        if (t.charCodeAt(p - 1) === 10) level[p] = blank ? WORD : LINE;
        else if (blank) level[p] = FORBIDDEN;
      }
      for (let p = fence.fenceStart + 1; p <= fence.contentStart; p++) level[p] = FORBIDDEN;
      for (let p = fence.contentEnd; p < fence.closeEnd; p++) level[p] = FORBIDDEN;
    }
    return level;
  }

  split(): string[] {
    const { n, maxChars } = this;
    const pieces: string[] = [];
    let s = this.skipWs(0);
    while (s < n) {
      if (this.cost(s, n) <= maxChars) {
        pieces.push(this.piece(s, n));
        break;
      }
      let best = -1;
      let bestKey = -1;
      for (let p = s + 1; p < n; p++) {
        if (this.nonWsBetween(s, p) > maxChars) break;
        const lvl = this.level[p] ?? FORBIDDEN;
        if (lvl === FORBIDDEN) continue;
        const cost = this.cost(s, p);
        if (cost > maxChars || this.nonWsBetween(s, this.contentEnd(s, p)) === 0) continue;
        const key =
          (lvl >= SPACE ? AT_WHITESPACE_BONUS : 0) + (cost * 2 >= maxChars ? HALF_FULL_BONUS : 0) + lvl;
        if (key >= bestKey) {
          bestKey = key;
          best = p;
        }
      }
      if (best < 0) best = this.codePointCut(s);
      pieces.push(this.piece(s, best));
      s = (this.codeOf[best] ?? -1) >= 0 ? best : this.skipWs(best);
    }
    return pieces;
  }

  /** Fallback for a grapheme cluster longer than a piece: the last code point boundary that fits. */
  private codePointCut(s: number): number {
    let best = -1;
    for (let p = s + 1; p < this.n; p++) {
      if (this.nonWsBetween(s, p) > this.maxChars) break;
      const c = this.t.charCodeAt(p);
      if (c >= 0xdc00 && c <= 0xdfff) continue;
      if (this.cost(s, p) <= this.maxChars && this.nonWsBetween(s, this.contentEnd(s, p)) > 0) best = p;
    }
    if (best < 0)
      throw new SupportbotError('split-options', `maxChars ${this.maxChars} is too small to split`);
    return best;
  }

  private skipWs(p: number): number {
    let q = p;
    while (q < this.n && isWs(this.t.charCodeAt(q))) q++;
    return q;
  }

  private nonWsBetween(a: number, b: number): number {
    return (this.nonWs[b] ?? 0) - (this.nonWs[a] ?? 0);
  }

  private fenceAt(p: number): Fence | undefined {
    const k = this.codeOf[p] ?? -1;
    return k >= 0 ? this.fences[k] : undefined;
  }

  /** End of the original text a piece [s, cut p) keeps: one newline dropped inside code, all whitespace outside. */
  private contentEnd(s: number, p: number): number {
    if (this.fenceAt(p) !== undefined) return this.t.charCodeAt(p - 1) === 10 ? p - 1 : p;
    return Math.max(this.contentEndBefore[p] ?? 0, s);
  }

  private closeLine(s: number, p: number): string | undefined {
    const fence = this.fenceAt(p);
    if (fence === undefined) return undefined;
    return this.codeOf[s] === this.codeOf[p] ? fence.closeAfterReopen : fence.closeAfterOpen;
  }

  private cost(s: number, p: number): number {
    const reopen = this.fenceAt(s)?.reopen;
    const close = this.closeLine(s, p);
    return (
      (reopen === undefined ? 0 : reopen.length + 1) +
      (this.contentEnd(s, p) - s) +
      (close === undefined ? 0 : close.length + 1)
    );
  }

  private piece(s: number, p: number): string {
    const reopen = this.fenceAt(s)?.reopen;
    const close = this.closeLine(s, p);
    return (
      (reopen === undefined ? '' : `${reopen}\n`) +
      this.t.slice(s, this.contentEnd(s, p)) +
      (close === undefined ? '' : `\n${close}`)
    );
  }
}
