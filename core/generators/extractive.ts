import type { GenerateRequest, GenerateResult, Generator } from '../generator.ts';
import { escapeCitationLookalikes } from '../reply-contract.ts';
import { contentTerms, termSet, words } from '../text.ts';
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

/**
 * Actions a support question asks for, as pairs of opposite sides: `[do, undo]` word lists, or
 * two sides that are neither (`import`/`export`). An article often documents both sides under
 * sibling headings ("Add a member" / "Remove a member") with nearly the same words, so term
 * overlap alone cannot tell them apart; the side the question names decides. Words are stemmed
 * like `contentTerms` (Porter), so "removing" and "removed" match "remove".
 */
const ACTION_PAIRS: { sides: [string[], string[]]; undo: boolean }[] = [
  {
    sides: [
      ['add', 'adding', 'invite', 'create'],
      ['remove', 'delete'],
    ],
    undo: true,
  },
  {
    sides: [
      ['enable', 'activate'],
      ['disable', 'deactivate'],
    ],
    undo: true,
  },
  { sides: [['install'], ['uninstall']], undo: true },
  { sides: [['mute'], ['unmute']], undo: true },
  { sides: [['subscribe'], ['unsubscribe', 'cancel']], undo: true },
  { sides: [['connect'], ['disconnect']], undo: true },
  { sides: [['lock'], ['unlock']], undo: true },
  { sides: [['star'], ['unstar']], undo: true },
  { sides: [['pin'], ['unpin']], undo: true },
  { sides: [['archive'], ['unarchive']], undo: true },
  { sides: [['block'], ['unblock']], undo: true },
  { sides: [['join'], ['leave']], undo: true },
  { sides: [['show'], ['hide']], undo: false },
  { sides: [['import'], ['export']], undo: false },
].map(({ sides, undo }) => ({
  sides: sides.map((ws) => ws.flatMap((w) => contentTerms(w))) as [string[], string[]],
  undo,
}));

/** "turn on 2FA" / "switch it off" as the single verbs the action table knows. */
function normalizeActions(text: string): string {
  return text
    .replace(/\b(?:turn|switch)(?:s|ed|ing)?\s+(?:(?:it|them|this|that)\s+)?on\b/gi, 'enable')
    .replace(/\b(?:turn|switch)(?:s|ed|ing)?\s+(?:(?:it|them|this|that)\s+)?off\b/gi, 'disable');
}

/** Which side (0 = do, 1 = undo) of each action pair `terms` name; both or neither are absent. */
function actionSides(terms: Set<string>): Map<number, 0 | 1 | null> {
  const out = new Map<number, 0 | 1 | null>();
  ACTION_PAIRS.forEach(({ sides }, i) => {
    const a = sides[0].some((t) => terms.has(t));
    const b = sides[1].some((t) => terms.has(t));
    out.set(i, a === b ? null : a ? 0 : 1);
  });
  return out;
}

/** What a question asks to do: the action sides it names and the object of its verb. */
interface Asked {
  sides: Map<number, 0 | 1 | null>;
  /** Index in `ACTION_PAIRS` of the question's first action verb, or -1. */
  verb: number;
  /** Topic terms of the words right after that verb ("add a team member to…" → team, member). */
  object: string[];
}

const ACTION_TERMS = new Set(ACTION_PAIRS.flatMap((p) => [...p.sides[0], ...p.sides[1]]));

/** Words that end a verb's object: prepositions and conjunctions ("remove a card from my account"). */
const OBJECT_END = new Set([
  'to',
  'from',
  'in',
  'into',
  'on',
  'for',
  'with',
  'of',
  'at',
  'and',
  'or',
  'so',
  'without',
]);

function askedOf(question: string): Asked {
  const normalized = normalizeActions(question);
  const sides = actionSides(termSet(normalized));
  const ws = words(normalized);
  const at = ws.findIndex((w) => contentTerms(w).some((t) => ACTION_TERMS.has(t)));
  const object: string[] = [];
  let verb = -1;
  if (at >= 0) {
    const stems = contentTerms(ws[at] as string);
    verb = ACTION_PAIRS.findIndex((p) => p.sides.some((side) => side.some((t) => stems.includes(t))));
    for (const w of ws.slice(at + 1)) {
      if (OBJECT_END.has(w)) break;
      object.push(...contentTerms(w));
    }
  }
  return { sides, verb, object };
}

/**
 * How well a section heading's (or a block's) actions fit the question's: 0.35 when it names the
 * opposite side of an action the question asks for, or an "undo" action (remove, disable, …) the
 * question does not mention ("track outbound links" vs "How to disable outbound links"); 1.2
 * when it names the side of the question's verb together with every term of its object ("Inviting
 * team members" for "add a team member", not "Creating multiple teams"); else 1.
 */
function actionFit(asked: Asked, text: string): number {
  const terms = termSet(normalizeActions(text));
  const found = actionSides(terms);
  let fit = 1;
  for (const [i, side] of found) {
    if (side === null) continue;
    const want = asked.sides.get(i) ?? null;
    if (want === null) {
      if (side === 1 && (ACTION_PAIRS[i] as { undo: boolean }).undo) fit = Math.min(fit, 0.35);
    } else if (want !== side) fit = Math.min(fit, 0.35);
    else if (fit >= 1 && i === asked.verb && verbNearObject(asked, side, normalizeActions(text))) fit = 1.2;
  }
  return fit;
}

/** Words either side of the verb within which its object must be ("Data you imported can be deleted"). */
const OBJECT_WINDOW = 6;

/** Whether `text` has a word of the question verb's `side` with every object term near it. */
function verbNearObject(asked: Asked, side: 0 | 1, text: string): boolean {
  if (asked.object.length === 0) return false;
  const verbs = new Set((ACTION_PAIRS[asked.verb] as { sides: [string[], string[]] }).sides[side]);
  const stems = words(text).map((w) => contentTerms(w)[0] ?? '');
  return stems.some((t, at) => {
    if (!verbs.has(t)) return false;
    const near = new Set(stems.slice(Math.max(0, at - OBJECT_WINDOW), at + OBJECT_WINDOW + 1));
    return asked.object.every((o) => near.has(o));
  });
}

/** A list whose every item starts with a link: a table of contents or "related articles". */
function isLinkList(text: string): boolean {
  const items = text.split('\n').filter((l) => /^\s*([-*+]|\d+[.)])\s/.test(l));
  return (
    items.length > 0 && items.every((l) => /^\s*(?:[-*+]|\d+[.)])\s+(?:\*\*|_)?\[[^\]]*\]\([^)]*\)/.test(l))
  );
}

/**
 * Weight of a block by what it is, before the question's terms: a step list answers "how do I"
 * best; an admonition (a `>` quote or a "Note:"/"Tip:" paragraph), a pointer to another page
 * ("See [...]", "[Follow these steps](...)"), a list of links or a short summary restating the
 * article title (`titleTerms`) says little by itself and is quoted only when nothing else
 * matches as well.
 */
function kindFactor(block: Block, titleTerms: Set<string>): number {
  const t = block.text;
  if (block.kind === 'list') return isLinkList(t) ? 0.4 : 1.3;
  if (block.kind !== 'prose') return 1;
  // "Learn how to remove a payment method from your account.": a summary that restates the
  // title matches the question as well as the title does and answers nothing.
  const own = contentTerms(t);
  if (t.length < 200 && own.length > 0 && own.filter((w) => titleTerms.has(w)).length >= 0.6 * own.length)
    return 0.5;
  if (/^>/.test(t) || /^(?:\*\*|_)?(?:note|tip|warning|caution|important)\b\s*:?/i.test(t)) return 0.6;
  const linkText = [...t.matchAll(/\[([^\]]*)\]\([^)]*\)/g)].reduce((n, m) => n + (m[0]?.length ?? 0), 0);
  if (t.length < 240 && (/^see\b/i.test(t) || /\]\([^)]*\)/.test(t)) && linkText > t.length / 3) return 0.6;
  return 1;
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
  // Screenshots are the first thing to go when steps do not fit: the words are the steps.
  const text =
    block.text.length > maxChars
      ? block.text.replace(/^[ \t]*!\[[^\]]*\]\([^)]*\)[ \t]*\n?/gm, '').replace(/\n{3,}/g, '\n\n')
      : block.text;
  return condenseText(text, maxChars);
}

/**
 * The no-LLM generator: quotes the passages of the retrieved chunks that best match the
 * question, condensed to `maxChars`, each followed by its `[n]` citation.
 *
 * Per context (at most three, from different articles) it scores each block by the IDF-weighted
 * question terms it holds plus those of its section's heading path (title and chunk headings
 * also count for every block at half weight), then weighs that by passage preferences: the
 * action the question asks for (`actionFit`: "add" is not answered by the remove steps), the kind
 * of block (`kindFactor`: step lists first; link lists, admonitions, pointers and title-restating
 * summaries last) and how on-point the headings are. It takes the best block, the block before
 * it when that introduces a list, table or code (a line ending in `:`), and the block after it
 * when the best one does. A second or third article is quoted only when its best block's plain
 * term score is at least 60 % of the first one's. Measured on `test/fixtures/answers/passages.jsonl`
 * (`test/answer-passages.test.ts`). It never abstains by itself: `answer()` decides abstention
 * from retrieval confidence.
 */
export class ExtractiveGenerator implements Generator {
  readonly id = 'extractive';

  async generate(request: GenerateRequest): Promise<GenerateResult> {
    const terms = contentTerms(request.question);
    const contexts = request.contexts;
    if (contexts.length === 0 || terms.length === 0) return { text: '', cited: [], abstain: true };
    const weights = termWeights(terms, contexts);
    const asked = askedOf(request.question);

    // `s` chooses the passage within an article; `rel` (the plain term score of the article's
    // best-matching block) decides whether a second article is worth quoting at all, as before
    // passage preferences existed: a preferred step list says nothing about another article.
    type Pick = { ctx: number; article: string; blocks: Block[]; best: number; s: number; rel: number };
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
      let rel = 0;
      for (const ctx of ctxs) {
        const hit = contexts[ctx] as SearchHit;
        const blocks = splitBlocks(hit.chunk.text);
        const headings = hit.chunk.headingPath;
        const headingScore = score(`${hit.chunk.title} ${headings.join(' ')}`, weights) / 2;
        const titleTerms = termSet(hit.chunk.title);
        // A block's own section headings (the path down to it: "Star a message › Desktop") say
        // what it is about: matching headings count fully. The chunk's heading path has no
        // levels; number it 1.. so a heading inside the chunk replaces those at its level.
        const path: { level: number; text: string }[] = headings.map((text, i) => ({ level: i + 1, text }));
        blocks.forEach((b, i) => {
          if (b.kind === 'heading') {
            const level = /^#+/.exec(b.text)?.[0].length ?? 1;
            while (path.length > 0 && (path[path.length - 1] as { level: number }).level >= level) path.pop();
            path.push({ level, text: b.text.replace(/^#+\s*/, '') });
            return;
          }
          // A thematic break ("---") or an image-only line holds nothing to quote.
          if (!/[\p{L}\p{N}]/u.test(b.text.replace(/!\[[^\]]*\]\([^)]*\)/g, ''))) return;
          const section = path.map((h) => h.text).join(' ');
          const base = score(b.text, weights) + score(section, weights) + headingScore;
          // The section heading says which action a block is about; its own text only hints.
          const fit = actionFit(asked, section) * Math.max(actionFit(asked, b.text), 0.7);
          // Of two sections that match alike, the one whose headings say less else is more on
          // point: "Star a message" over "View your starred messages" for "star a message".
          const heads = termSet(section);
          const precision = heads.size > 0 ? [...heads].filter((t) => weights.has(t)).length / heads.size : 0;
          const s = base * fit * kindFactor(b, titleTerms) * (0.85 + 0.15 * precision);
          rel = Math.max(rel, base);
          if (!pick || s > pick.s) pick = { ctx, article: key, blocks, best: i, s, rel: 0 };
        });
      }
      if (pick) picks.push({ ...(pick as Pick), rel });
    }
    if (picks.length === 0) return { text: '', cited: [], abstain: true };

    // The first context is the retriever's best; keep it first, then others good enough.
    const first = picks[0] as Pick;
    const chosen = [first, ...picks.slice(1).filter((p) => p.rel >= 0.6 * first.rel && p.rel > 0)].slice(
      0,
      3,
    );

    let budget = request.maxChars;
    const parts: string[] = [];
    const cited: number[] = [];
    for (const [i, pick] of chosen.entries()) {
      // The first article keeps room for the others only when there are others.
      const share = i === 0 && chosen.length > 1 ? Math.max(budget * 0.7, budget - 300) : budget;
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
