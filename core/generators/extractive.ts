import type { GenerateRequest, GenerateResult, Generator } from '../generator.ts';
import { escapeCitationLookalikes } from '../reply-contract.ts';
import { contentTerms, termSet } from '../text.ts';
import type { SearchHit } from '../types.ts';

/** A Markdown block of a chunk: a paragraph, a list, a table or a fenced code block. */
interface Block {
  text: string;
  kind: 'prose' | 'list' | 'table' | 'code' | 'heading';
  /** Position in the chunk, to keep the article's order when several blocks are quoted. */
  order: number;
}

/**
 * Splits chunk Markdown into blocks at blank lines, keeping fenced code blocks whole (a blank
 * line inside a fence does not end it) and tables whole.
 */
export function splitBlocks(markdown: string): Block[] {
  const lines = markdown.split('\n');
  const blocks: Block[] = [];
  let current: string[] = [];
  let current0 = '';
  let fence: string | null = null;
  const flush = () => {
    const text = current.join('\n').trim();
    current0 = current[0] ?? '';
    current = [];
    if (!text) return;
    const kind = classify(text);
    const prev = blocks[blocks.length - 1];
    // A "loose" list has blank lines between its items, and indented paragraphs continue an
    // item: keep the whole list one block, or a quote would start at step 3.
    const continuesList = prev?.kind === 'list' && (kind === 'list' || /^\s{2,}\S/.test(current0));
    if (prev && continuesList) {
      prev.text = `${prev.text}\n\n${text}`;
      return;
    }
    blocks.push({ text, kind, order: blocks.length });
  };
  for (const line of lines) {
    const marker = /^\s*(`{3,}|~{3,})/.exec(line)?.[1];
    if (fence) {
      current.push(line);
      if (marker && marker[0] === fence[0] && marker.length >= fence.length && line.trim() === marker) {
        fence = null;
        flush();
      }
      continue;
    }
    if (marker) {
      flush();
      fence = marker;
      current.push(line);
      continue;
    }
    if (line.trim() === '') {
      flush();
      continue;
    }
    if (/^#{1,6}\s/.test(line)) {
      flush();
      current.push(line);
      flush();
      continue;
    }
    current.push(line);
  }
  flush();
  return blocks;
}

function classify(text: string): Block['kind'] {
  if (/^(`{3,}|~{3,})/.test(text)) return 'code';
  if (/^#{1,6}\s/.test(text)) return 'heading';
  if (/^\|.*\|\s*$/m.test(text.split('\n')[0] ?? '') && /^\|?\s*:?-+:?\s*\|/m.test(text)) return 'table';
  if (/^\s*([-*+]|\d+[.)])\s/.test(text)) return 'list';
  return 'prose';
}

/** Weight of each query term: rarer among the offered contexts is more telling (smoothed IDF). */
function termWeights(terms: string[], contexts: SearchHit[]): Map<string, number> {
  const docs = contexts.map((h) =>
    termSet(`${h.chunk.title} ${h.chunk.headingPath.join(' ')} ${h.chunk.text}`),
  );
  const n = Math.max(docs.length, 1);
  return new Map(
    terms.map((t) => {
      const df = docs.filter((d) => d.has(t)).length;
      return [t, Math.log(1 + (n + 1) / (df + 0.5))];
    }),
  );
}

function score(text: string, weights: Map<string, number>): number {
  const present = termSet(text);
  let s = 0;
  for (const [t, w] of weights) if (present.has(t)) s += w;
  return s;
}

/** Keeps a table's header and alignment rows plus the rows that match best, within `maxChars`. */
function condenseTable(table: string, weights: Map<string, number>, maxChars: number): string {
  const rows = table.split('\n');
  const head = rows.slice(0, 2);
  const body = rows.slice(2).map((row, i) => ({ row, i, s: score(row, weights) }));
  const ranked = [...body].sort((a, b) => b.s - a.s || a.i - b.i);
  const keep: typeof body = [];
  let size = head.join('\n').length;
  for (const r of ranked) {
    if (r.s === 0 && keep.length > 0) break;
    if (size + r.row.length + 1 > maxChars) break;
    keep.push(r);
    size += r.row.length + 1;
  }
  // A header without rows says nothing; the caller then quotes something else.
  if (keep.length === 0) return '';
  keep.sort((a, b) => a.i - b.i);
  return [...head, ...keep.map((r) => r.row)].join('\n');
}

/** Cuts prose at the last sentence end that fits, else at a word boundary, adding `…`. */
function condenseText(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text;
  const sentences = new Intl.Segmenter('en', { granularity: 'sentence' }).segment(text);
  let out = '';
  for (const s of sentences) {
    if ((out + s.segment).length > maxChars) break;
    out += s.segment;
  }
  if (out.trim()) return `${out.trim()} …`;
  const cut = text.slice(0, maxChars);
  return `${cut.slice(0, Math.max(cut.lastIndexOf(' '), 1))} …`;
}

function condenseCode(code: string, maxChars: number): string {
  if (code.length <= maxChars) return code;
  const lines = code.split('\n');
  const open = lines[0] ?? '```';
  const close = open.trim().replace(/[^`~].*$/, '');
  const kept: string[] = [open];
  let size = open.length + close.length + 2;
  for (const line of lines.slice(1, -1)) {
    if (size + line.length + 1 > maxChars) break;
    kept.push(line);
    size += line.length + 1;
  }
  return [...kept, close].join('\n');
}

function condense(block: Block, weights: Map<string, number>, maxChars: number): string {
  if (block.kind === 'table') return condenseTable(block.text, weights, maxChars);
  if (block.kind === 'code') return condenseCode(block.text, maxChars);
  return condenseText(block.text, maxChars);
}

/**
 * The no-LLM generator: quotes the passages of the retrieved chunks that best match the
 * question, condensed to `maxChars`, each followed by its `[n]` citation.
 *
 * Per context (at most three, from different articles) it scores each block by the IDF-weighted
 * question terms it holds (title and headings count for every block of the chunk at half
 * weight), takes the best block, the block before it when that introduces a list, table or code
 * (a line ending in `:`), and the block after it when the best one does. A second or third
 * article is quoted only when its best block scores at least 60 % of the first one's.
 * It never abstains by itself: `answer()` decides abstention from retrieval confidence.
 */
export class ExtractiveGenerator implements Generator {
  readonly id = 'extractive';

  async generate(request: GenerateRequest): Promise<GenerateResult> {
    const terms = contentTerms(request.question);
    const contexts = request.contexts;
    if (contexts.length === 0 || terms.length === 0) return { text: '', cited: [], abstain: true };
    const weights = termWeights(terms, contexts);

    type Pick = { ctx: number; article: string; blocks: Block[]; best: number; s: number };
    // Group the retrieved chunks by article (first appearance keeps the retriever's order) and
    // pick each article's best block among all its retrieved chunks: the chunk BM25 ranked first
    // is often a neighbour of the passage that answers (rules next to the steps).
    const byArticle = new Map<string, number[]>();
    contexts.forEach((hit, ctx) => {
      const key = `${hit.chunk.source}:${hit.chunk.articleId}`;
      byArticle.set(key, [...(byArticle.get(key) ?? []), ctx]);
    });
    const picks: Pick[] = [];
    for (const [key, ctxs] of byArticle) {
      let pick: Pick | null = null;
      for (const ctx of ctxs) {
        const hit = contexts[ctx] as SearchHit;
        const blocks = splitBlocks(hit.chunk.text);
        const headings = hit.chunk.headingPath;
        const headingScore = score(`${hit.chunk.title} ${headings.join(' ')}`, weights) / 2;
        // A block's own section heading says what it is about: a matching heading counts fully.
        let section = headings[headings.length - 1] ?? '';
        blocks.forEach((b, i) => {
          if (b.kind === 'heading') {
            section = b.text.replace(/^#+\s*/, '');
            return;
          }
          const s = score(b.text, weights) + score(section, weights) + headingScore;
          if (!pick || s > pick.s) pick = { ctx, article: key, blocks, best: i, s };
        });
      }
      if (pick) picks.push(pick);
    }
    if (picks.length === 0) return { text: '', cited: [], abstain: true };

    // The first context is the retriever's best; keep it first, then others good enough.
    const first = picks[0] as Pick;
    const chosen = [first, ...picks.slice(1).filter((p) => p.s >= 0.6 * first.s && p.s > 0)].slice(0, 3);

    let budget = request.maxChars;
    const parts: string[] = [];
    const cited: number[] = [];
    for (const [i, pick] of chosen.entries()) {
      const share = i === 0 ? Math.max(budget * 0.7, budget - 300) : budget;
      if (share < 120) break;
      const sel = new Set([pick.best]);
      const bestBlock = pick.blocks[pick.best] as Block;
      const prev = pick.blocks[pick.best - 1];
      const next = pick.blocks[pick.best + 1];
      if (prev && prev.kind === 'prose' && /:\s*$/.test(prev.text) && bestBlock.kind !== 'prose')
        sel.add(pick.best - 1);
      if (next && next.kind !== 'heading' && /:\s*$/.test(bestBlock.text)) sel.add(pick.best + 1);
      else if (next && next.kind === 'prose' && bestBlock.kind === 'list' && next.text.length <= 240)
        sel.add(pick.best + 1);
      const text = [...sel]
        .sort((a, b) => a - b)
        .map((b) => pick.blocks[b] as Block)
        .reduce<string[]>((acc, block) => {
          const used = acc.join('\n\n').length;
          const room = share - used - 8;
          const piece = room > 60 ? condense(block, weights, room) : '';
          if (piece) acc.push(piece);
          return acc;
        }, [])
        .join('\n\n');
      if (!text) continue;
      // Quoted prose may hold "[2]"-like text of its own; escape it so only our markers cite.
      const quoted = escapeCitationLookalikes(text);
      const n = pick.ctx + 1;
      // A citation after a fence or a table row would break the Markdown; put it on its own line.
      parts.push(/(```|~~~|\|)\s*$/.test(quoted) ? `${quoted}\n\n[${n}]` : `${quoted} [${n}]`);
      cited.push(n);
      budget -= text.length + 8;
    }
    if (parts.length === 0) return { text: '', cited: [], abstain: true };
    return { text: parts.join('\n\n'), cited };
  }
}
