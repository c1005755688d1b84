import { readFileSync } from 'node:fs';
import type { Code, Nodes, Root, Table } from 'mdast';
import { toString as mdastToString } from 'mdast-util-to-string';
import remarkGfm from 'remark-gfm';
import remarkParse from 'remark-parse';
import { unified } from 'unified';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { SupportbotError } from '../core/errors.ts';
import { cl100kTokenizer, type Tokenizer } from '../core/tokenizer.ts';
import type { Chunk } from '../core/types.ts';
import { type ChunkOptions, chunkArticle } from '../sync/chunker.ts';

const tokenizer = cl100kTokenizer;
const markdown = unified().use(remarkParse).use(remarkGfm).freeze();

interface CaseArticle {
  id: string;
  source: string;
  title: string;
  /** Body as a source delivers it: front matter and the title heading removed. */
  body: string;
  /** Front matter removed only: the title H1 is still there, as a careless source would leave it. */
  bodyWithTitle: string;
}

/** Loads a handed case the way a source normalizes it (front matter → fields, title heading dropped). */
function loadCase(name: string): CaseArticle {
  const raw = readFileSync(new URL(`./fixtures/cases/chunking/${name}.md`, import.meta.url), 'utf8');
  const match = /^---\n([\s\S]*?)\n---\n/.exec(raw);
  if (!match) throw new Error(`${name}: no front matter`);
  const meta = parseYaml(match[1] ?? '') as { title: string; id: number };
  const bodyWithTitle = raw.slice(match[0].length);
  const titleLine = /^\s*# (.+)\n+/.exec(bodyWithTitle);
  if (titleLine?.[1] !== meta.title) throw new Error(`${name}: first line is not the title heading`);
  return {
    id: String(meta.id),
    source: 'cases',
    title: meta.title,
    body: bodyWithTitle.slice(titleLine[0].length),
    bodyWithTitle,
  };
}

function chunk(body: string, maxTokens: number, overlapTokens = 0, title = 'Test article'): Chunk[] {
  return chunkArticle({ id: 'a1', source: 'test', title, body }, { maxTokens, overlapTokens, tokenizer });
}

function parse(text: string): Root {
  return markdown.parse(text);
}

function nodesOfType<T extends Nodes['type']>(tree: Nodes, type: T): Extract<Nodes, { type: T }>[] {
  const found: Nodes[] = [];
  const walk = (node: Nodes): void => {
    if (node.type === type) found.push(node);
    if ('children' in node) for (const child of node.children) walk(child);
  };
  walk(tree);
  return found as Extract<Nodes, { type: T }>[];
}

/**
 * The span rule: chunk 0 starts at 0, the last ends at body.length, each chunk's new content starts where
 * the previous span ends (overlap lies before that point). Returns the body rebuilt from the chunk texts
 * with overlap removed; valid only for chunks whose text is an exact slice (no re-fence or header).
 */
function rebuildFromTexts(body: string, chunks: Chunk[]): string {
  let rebuilt = '';
  let previousEnd = 0;
  for (const c of chunks) {
    expect(c.text).toBe(body.slice(c.span.start, c.span.end));
    expect(c.span.start).toBeLessThanOrEqual(previousEnd);
    expect(c.span.end).toBeGreaterThan(previousEnd);
    rebuilt += c.text.slice(previousEnd - c.span.start);
    previousEnd = c.span.end;
  }
  return rebuilt;
}

/** Spans tile the body (overlap removed), whatever the texts add. */
function expectSpansTile(body: string, chunks: Chunk[]): void {
  expect(chunks[0]?.span.start).toBe(0);
  expect(chunks.at(-1)?.span.end).toBe(body.length);
  for (let i = 1; i < chunks.length; i++) {
    const previous = chunks[i - 1] as Chunk;
    const current = chunks[i] as Chunk;
    expect(current.span.start).toBeGreaterThan(previous.span.start);
    expect(current.span.start).toBeLessThanOrEqual(previous.span.end);
    expect(current.span.end).toBeGreaterThan(previous.span.end);
  }
}

function expectTokenCounts(chunks: Chunk[], maxTokens: number): void {
  for (const c of chunks) {
    expect(c.tokenCount).toBe(tokenizer.count(c.text));
    expect(c.tokenCount, c.text).toBeLessThanOrEqual(maxTokens);
  }
}

function graphemeBoundaries(text: string): Set<number> {
  const set = new Set<number>([text.length]);
  for (const g of new Intl.Segmenter('en', { granularity: 'grapheme' }).segment(text)) set.add(g.index);
  return set;
}

const isSpace = (ch: string | undefined) => ch !== undefined && /\s/.test(ch);

// ---------------------------------------------------------------------------------------------------------
// Handed case: chunking/code-fence-comments
// ---------------------------------------------------------------------------------------------------------

describe('case chunking/code-fence-comments', () => {
  const article = loadCase('code-fence-comments');
  const title = article.title;
  const expectedPaths = [
    'Install the command-line tool',
    'Install the command-line tool > Linux',
    'Install the command-line tool > Configure',
    'Install the command-line tool > Configure > Troubleshooting',
  ];
  const blocks = nodesOfType(parse(article.body), 'code');
  const sizes = [30, 45, 60, 100, 2000];

  it('has the two fenced blocks the case is about', () => {
    expect(blocks.map((b) => b.lang)).toEqual(['bash', 'python']);
  });

  for (const variant of ['body', 'bodyWithTitle'] as const) {
    it.each(sizes)(`heading paths are exactly the four sections (%i tokens, ${variant})`, (maxTokens) => {
      const chunks = chunkArticle(
        { ...article, body: article[variant] },
        { maxTokens, overlapTokens: 0, tokenizer },
      );
      const paths = new Set(chunks.map((c) => [title, ...c.headingPath].join(' > ')));
      expect([...paths].sort()).toEqual([...expectedPaths].sort());
      for (const c of chunks) expect(c.headingPath).not.toContain(title);
      expectSpansTile(article[variant], chunks);
    });
  }

  it.each(sizes)('no heading comes from a line inside a fence (%i tokens)', (maxTokens) => {
    const chunks = chunkArticle(article, { maxTokens, overlapTokens: 10, tokenizer });
    const fenceComments = [
      'download the installer',
      "run it with your user's rights, not root",
      'settings.py',
    ];
    for (const c of chunks) {
      for (const name of c.headingPath) expect(fenceComments.some((f) => name.includes(f))).toBe(false);
      // Each chunk read on its own must not turn a fence comment into a heading either.
      const headings = nodesOfType(parse(c.text), 'heading').map((h) => mdastToString(h));
      for (const h of headings) expect(['Linux', 'Configure', 'Troubleshooting']).toContain(h);
    }
  });

  it.each(sizes)(
    'each fenced block is whole when it fits, else re-fenced pieces (%i tokens)',
    (maxTokens) => {
      const chunks = chunkArticle(article, { maxTokens, overlapTokens: 10, tokenizer });
      for (const block of blocks) {
        const source = article.body.slice(block.position?.start.offset, block.position?.end.offset);
        const openLine = source.slice(0, source.indexOf('\n'));
        const holding = chunks.filter(
          (c) =>
            c.span.start < (block.position?.end.offset ?? 0) &&
            c.span.end > (block.position?.start.offset ?? 0),
        );
        if (tokenizer.count(source) <= maxTokens) {
          expect(holding.filter((c) => c.text.includes(source))).toHaveLength(1);
          continue;
        }
        expect(holding.length).toBeGreaterThan(1);
        const values: string[] = [];
        for (const c of holding) {
          const codes = nodesOfType(parse(c.text), 'code');
          expect(codes).toHaveLength(1);
          const code = codes[0] as Code;
          expect(code.lang).toBe(block.lang);
          expect(c.text).toContain(`${openLine}\n`);
          // Balanced: the opening line and exactly one closing fence line of the same marker.
          const fenceLines = c.text.split('\n').filter((l) => l.startsWith(openLine.slice(0, 3)));
          expect(fenceLines).toEqual([openLine, openLine.slice(0, 3)]);
          values.push(code.value);
        }
        expect(values.join('\n')).toBe(block.value);
      }
    },
  );

  it('splits the bash block at a small size (so the re-fence branch above really ran)', () => {
    const chunks = chunkArticle(article, { maxTokens: 30, overlapTokens: 0, tokenizer });
    expect(chunks.filter((c) => c.text.startsWith('```bash')).length).toBeGreaterThan(1);
  });

  it.each(sizes)('the text after the fence stays under Linux (%i tokens)', (maxTokens) => {
    for (const body of [article.body, article.bodyWithTitle]) {
      const chunks = chunkArticle({ ...article, body }, { maxTokens, overlapTokens: 10, tokenizer });
      const after = chunks.filter((c) => c.text.includes('Then open a new terminal.'));
      expect(after).toHaveLength(1);
      expect(after[0]?.headingPath).toEqual(['Linux']);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------
// Handed case: chunking/large-table
// ---------------------------------------------------------------------------------------------------------

/** Okapi BM25 over the given documents only (k1 = 1.2, b = 0.75; Robertson–Spärck Jones idf, +1 inside log). */
function bm25Rank(documents: string[], query: string): number[] {
  const terms = (text: string) => text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
  const docs = documents.map(terms);
  const avgLength = docs.reduce((sum, d) => sum + d.length, 0) / docs.length;
  const df = new Map<string, number>();
  for (const d of docs) for (const t of new Set(d)) df.set(t, (df.get(t) ?? 0) + 1);
  const scores = docs.map((d) => {
    let score = 0;
    for (const t of new Set(terms(query))) {
      const tf = d.filter((x) => x === t).length;
      if (tf === 0) continue;
      const n = df.get(t) ?? 0;
      const idf = Math.log(1 + (docs.length - n + 0.5) / (n + 0.5));
      score += (idf * tf * 2.2) / (tf + 1.2 * (1 - 0.75 + (0.75 * d.length) / avgLength));
    }
    return score;
  });
  return scores.map((_, i) => i).sort((a, b) => (scores[b] ?? 0) - (scores[a] ?? 0));
}

describe('case chunking/large-table', () => {
  const article = loadCase('large-table');
  const lines = article.body.split('\n');
  const header = '| Country | Service | Delivery time (days) | Price | Tracking |';
  const alignment = '|---|:---|:---:|---:|---|';
  const dataRows = lines.filter((l) => l.startsWith('| ') && l !== header);
  const settings = [70, 100, 250, 500].flatMap((maxTokens) => [0, 20].map((overlap) => [maxTokens, overlap]));

  it('has 120 data rows and a header that fits with two rows into the smallest size', () => {
    expect(dataRows).toHaveLength(120);
    expect(tokenizer.count(`${header}\n${alignment}\n${dataRows[0]}\n${dataRows[1]}\n`)).toBeLessThanOrEqual(
      70,
    );
  });

  for (const variant of ['body', 'bodyWithTitle'] as const) {
    it.each(settings)(
      `splits between rows, header repeated (%i tokens, overlap %i, ${variant})`,
      (max, overlap) => {
        const body = article[variant];
        const chunks = chunkArticle(
          { ...article, body },
          { maxTokens: max, overlapTokens: overlap, tokenizer },
        );
        expect(chunks.length).toBeGreaterThan(2);
        expectTokenCounts(chunks, max);
        expectSpansTile(body, chunks);
        for (const c of chunks) {
          const rowsHere = c.text.split('\n').filter((l) => dataRows.includes(l));
          if (rowsHere.length === 0) continue;
          expect(c.text.startsWith(`${header}\n${alignment}\n`)).toBe(true);
          // Valid table on its own: one table, the header cells, the alignments, every row of the piece.
          const tables = nodesOfType(parse(c.text), 'table');
          expect(tables).toHaveLength(1);
          const table = tables[0] as Table;
          expect(table.align).toEqual([null, 'left', 'center', 'right', null]);
          expect(table.children[0]?.children.map((cell) => mdastToString(cell))).toEqual([
            'Country',
            'Service',
            'Delivery time (days)',
            'Price',
            'Tracking',
          ]);
          expect(table.children.length - 1).toBe(rowsHere.length);
        }
        for (const row of dataRows) {
          expect(
            chunks.filter((c) => c.text.split('\n').includes(row)),
            row,
          ).toHaveLength(1);
        }
      },
    );
  }

  it.each(settings)(
    'the sentence after the table keeps the heading path (%i tokens, overlap %i)',
    (max, overlap) => {
      for (const body of [article.body, article.bodyWithTitle]) {
        const chunks = chunkArticle(
          { ...article, body },
          { maxTokens: max, overlapTokens: overlap, tokenizer },
        );
        const intro = chunks.find((c) => c.text.includes('Rates are per parcel'));
        const after = chunks.filter((c) =>
          c.text.includes('Orders placed after 14:00 CET ship the next business day.'),
        );
        expect(after).toHaveLength(1);
        // The title is stored apart from the path, so the article-level path is empty.
        expect(after[0]?.headingPath).toEqual([]);
        expect(after[0]?.headingPath).toEqual(intro?.headingPath);
      }
    },
  );

  it.each([70, 100, 250, 500])(
    'ranks the Portugal/Express chunk first with BM25 (%i tokens)',
    (maxTokens) => {
      const chunks = chunkArticle(article, { maxTokens, overlapTokens: 20, tokenizer });
      const ranking = bm25Rank(
        chunks.map((c) => c.text),
        'how long does express delivery to Portugal take and what does it cost',
      );
      const top = chunks[ranking[0] ?? -1];
      expect(top?.text).toContain('| Portugal | Express | 1–2 | €33.21 | no |');
    },
  );
});

// ---------------------------------------------------------------------------------------------------------
// Handed case: chunking/emoji-boundary
// ---------------------------------------------------------------------------------------------------------

describe('case chunking/emoji-boundary', () => {
  const article = loadCase('emoji-boundary');
  const sizes: number[] = [];
  for (let size = 50; size <= 2000; size += 25) sizes.push(size);
  const overlaps = [0, 10, 30, 49];

  /** Every offset where a chunk starts or ends (the next one's new content starts there) is a grapheme boundary. */
  function cutsAtGraphemes(chunks: Chunk[], boundaries: Set<number>): boolean {
    return chunks.every((c) => boundaries.has(c.span.start) && boundaries.has(c.span.end));
  }

  it('the grapheme check catches a cut through 👩‍💻 or 🇩🇪 (so it can fail)', () => {
    const body = article.body;
    const boundaries = graphemeBoundaries(body);
    for (const cluster of ['👩‍💻', '🇩🇪', '👍🏽', '❤️']) {
      const at = body.indexOf(cluster);
      expect(at).toBeGreaterThan(0);
      const inside = at + cluster.length - 1;
      const fake = [
        { span: { start: 0, end: inside } },
        { span: { start: inside, end: body.length } },
      ] as Chunk[];
      expect(cutsAtGraphemes(fake, boundaries)).toBe(false);
    }
    expect('\ud83d'.isWellFormed()).toBe(false);
  });

  for (const variant of ['body', 'bodyWithTitle'] as const) {
    it(`never cuts a surrogate pair or grapheme, and loses nothing (50..2000 tokens, ${variant})`, () => {
      const body = article[variant];
      const boundaries = graphemeBoundaries(body);
      for (const maxTokens of sizes) {
        for (const overlapTokens of overlaps) {
          const chunks = chunkArticle({ ...article, body }, { maxTokens, overlapTokens, tokenizer });
          const label = `${maxTokens}/${overlapTokens}`;
          if (maxTokens <= 500) expect(chunks.length, label).toBeGreaterThan(2);
          for (const c of chunks) {
            expect(c.text.isWellFormed(), label).toBe(true);
            expect(Buffer.from(c.text, 'utf8').toString('utf8'), label).toBe(c.text);
          }
          expect(cutsAtGraphemes(chunks, boundaries), label).toBe(true);
          expect(rebuildFromTexts(body, chunks), label).toBe(body);
          expectTokenCounts(chunks, maxTokens);
          if (overlapTokens > 0 && maxTokens <= 500) {
            // Overlap really happens inside the long paragraph (else the checks above would be weaker).
            expect(
              chunks.some((c, i) => i > 0 && c.span.start < (chunks[i - 1]?.span.end ?? 0)),
              label,
            ).toBe(true);
          }
        }
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------------------
// Chunker rules beyond the handed cases
// ---------------------------------------------------------------------------------------------------------

const filler = (n: number, word = 'lorem') =>
  Array.from({ length: n }, (_, i) => `${word}${i % 7} ipsum dolor sit amet number ${i}.`).join(' ');

describe('chunkArticle: links, inline code and words stay whole', () => {
  const link =
    '[the refund policy for enterprise customers](https://example.com/help/billing/refunds?plan=enterprise#s-2)';
  const code = '`npm install --save-dev @acme/very-long-package-name`';
  const body = `${filler(6)} Read ${link} before you ask. ${filler(4)} Then run ${code} in a shell. ${filler(6)}\n`;

  it.each([8, 12, 20, 35, 60])('never splits a link or inline code (%i tokens)', (maxTokens) => {
    for (const overlap of [0, Math.floor(maxTokens / 3)]) {
      const chunks = chunk(body, maxTokens, overlap);
      expect(chunks.length).toBeGreaterThan(1);
      for (const unit of [link, code]) {
        const parts = [unit.slice(1, 12), unit.slice(-12, -1)];
        const touching = chunks.filter((c) => parts.some((p) => c.text.includes(p)));
        expect(touching.length).toBeGreaterThan(0);
        for (const c of touching) expect(c.text).toContain(unit);
      }
      expect(rebuildFromTexts(body, chunks)).toBe(body);
      // Only a chunk that is the indivisible unit alone may exceed the size.
      for (const c of chunks.filter((x) => x.tokenCount > maxTokens)) {
        expect([link, code]).toContain(c.text.trim().replace(/^(Read|Then run) /, ''));
      }
    }
  });

  it.each([3, 5, 9, 17])('cuts only between words (%i tokens)', (maxTokens) => {
    const words = 'Synchronization internationalization troubleshooting misconfiguration acknowledgement';
    const text = `${words} ${words.toUpperCase()} ${words}, then retry.\n`;
    for (const overlap of [0, 2]) {
      const chunks = chunk(text, maxTokens, overlap);
      expect(chunks.length).toBeGreaterThan(3);
      for (const c of chunks) {
        expect(c.span.start === 0 || isSpace(text[c.span.start - 1])).toBe(true);
        expect(c.span.end === text.length || isSpace(text[c.span.end - 1])).toBe(true);
        for (const w of c.text.trim().split(/\s+/)) expect(text.split(/\s+/)).toContain(w);
      }
      expect(rebuildFromTexts(text, chunks)).toBe(text);
    }
  });

  it('keeps a word larger than the chunk size whole, as its own oversized chunk', () => {
    const word = 'Pneumonoultramicroscopicsilicovolcanoconiosis';
    const text = `Short words first. ${word} and more words after it.`;
    const chunks = chunk(text, 4);
    const holding = chunks.filter(
      (c) => c.text.includes(word.slice(0, 10)) || c.text.includes(word.slice(-10)),
    );
    expect(holding).toHaveLength(1);
    expect(holding[0]?.text.trim()).toBe(word);
    expect(holding[0]?.tokenCount).toBeGreaterThan(4);
    for (const c of chunks.filter((x) => x !== holding[0])) expect(c.tokenCount).toBeLessThanOrEqual(4);
  });

  it('splits a space-free CJK run at word boundaries, but not an ASCII path inside one', () => {
    const cjk = '表情符号和反应可以在设置中更改'.repeat(6);
    const path = 'settings/notifications/status-and-reactions.html';
    const text = `${cjk}${path}${cjk}\n`;
    const chunks = chunk(text, 12);
    expect(chunks.length).toBeGreaterThan(3);
    expectTokenCounts(
      chunks.filter((c) => !c.text.includes(path.slice(5, 20))),
      12,
    );
    expect(chunks.filter((c) => c.text.includes(path))).toHaveLength(1);
    expect(rebuildFromTexts(text, chunks)).toBe(text);
    const words = new Set<number>([text.length]);
    for (const s of new Intl.Segmenter('en', { granularity: 'word' }).segment(text)) words.add(s.index);
    for (const c of chunks) expect(words.has(c.span.end)).toBe(true);
  });
});

describe('chunkArticle: prose splitting and overlap', () => {
  const sentences = Array.from(
    { length: 30 },
    (_, i) => `Sentence ${i} explains step ${i} of the billing setup in plain words.`,
  );
  const body = `## Billing\n\n${sentences.slice(0, 15).join(' ')}\n\n${sentences.slice(15).join(' ')}\n\n## Next\n\nThe end.\n`;

  it('splits a long paragraph at sentence boundaries when sentences fit', () => {
    const chunks = chunk(body, 40, 0);
    expect(chunks.length).toBeGreaterThan(6);
    expectTokenCounts(chunks, 40);
    for (const c of chunks) expect(c.text.trimEnd()).toMatch(/(\.|Billing|Next)$/);
    expect(rebuildFromTexts(body, chunks)).toBe(body);
  });

  it('repeats up to overlapTokens of the previous tail, from a sentence or word start', () => {
    const chunks = chunk(body, 40, 15);
    expectTokenCounts(chunks, 40);
    expect(rebuildFromTexts(body, chunks)).toBe(body);
    let overlaps = 0;
    for (let i = 1; i < chunks.length; i++) {
      const previous = chunks[i - 1] as Chunk;
      const current = chunks[i] as Chunk;
      const repeated = body.slice(current.span.start, previous.span.end);
      if (repeated === '') continue;
      overlaps += 1;
      expect(tokenizer.count(repeated)).toBeLessThanOrEqual(15);
      expect(isSpace(body[current.span.start - 1])).toBe(true);
      expect(previous.text.endsWith(repeated)).toBe(true);
      expect(current.headingPath).toEqual(previous.headingPath);
    }
    expect(overlaps).toBeGreaterThan(4);
    // A new section never starts with the previous section's tail.
    for (const c of chunks.filter((x) => x.text.includes('## Next')))
      expect(c.text.startsWith('## Next')).toBe(true);
  });

  it('prefers a sentence start for the overlap when a whole sentence fits', () => {
    const chunks = chunk(body, 60, 25);
    const starts = chunks.slice(1).filter((c, i) => c.span.start < (chunks[i]?.span.end ?? 0));
    expect(starts.length).toBeGreaterThan(2);
    for (const c of starts) expect(c.text).toMatch(/^Sentence \d+ /);
  });
});

describe('chunkArticle: fenced code', () => {
  const lines = Array.from(
    { length: 120 },
    (_, i) => `const value${i} = compute(${i}, 'step ${i}'); // ${i}`,
  );
  // A four-backtick fence with a three-backtick line inside: re-fencing must keep the longer marker.
  const code = ['````ts title="src/app.ts"', ...lines.slice(0, 60), '```', ...lines.slice(60), '````'].join(
    '\n',
  );
  const body = `## Example\n\nThe whole program:\n\n${code}\n\nThat is all.\n`;

  it('re-fences every piece of a long block with the same fence and info string', () => {
    const chunks = chunk(body, 80, 20);
    expectTokenCounts(chunks, 80);
    expectSpansTile(body, chunks);
    const pieces = chunks.filter((c) => c.text.includes('const value'));
    expect(pieces.length).toBeGreaterThan(5);
    const values: string[] = [];
    for (const c of pieces) {
      const fenceAt = c.text.indexOf('````ts title="src/app.ts"\n');
      expect(fenceAt).toBeGreaterThanOrEqual(0);
      // One opening and one closing four-backtick fence; the inner ``` line is content.
      expect(c.text.split('\n').filter((l) => l.startsWith('````'))).toEqual([
        '````ts title="src/app.ts"',
        '````',
      ]);
      const codes = nodesOfType(parse(c.text), 'code');
      expect(codes).toHaveLength(1);
      expect(codes[0]?.lang).toBe('ts');
      expect(codes[0]?.meta).toBe('title="src/app.ts"');
      values.push(codes[0]?.value ?? '');
    }
    expect(values.join('\n')).toBe(nodesOfType(parse(body), 'code')[0]?.value);
    // Each code line is in exactly one chunk: no overlap inside code.
    for (const line of lines) expect(chunks.filter((c) => c.text.includes(`${line}\n`))).toHaveLength(1);
    expect(chunks.every((c) => c.headingPath.join('/') === 'Example')).toBe(true);
  });

  it('keeps a block that fits whole in one chunk', () => {
    const small = `An introduction that is long enough to need its own chunk.\n\n${['```bash', '# not a heading', 'echo hi', '```'].join('\n')}\n\nAnd a closing paragraph that also needs a chunk of its own.\n`;
    const chunks = chunk(small, 20);
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.filter((c) => c.text.includes('```bash\n# not a heading\necho hi\n```'))).toHaveLength(1);
    expect(chunks.every((c) => c.headingPath.length === 0)).toBe(true);
  });
});

describe('chunkArticle: heading paths', () => {
  const body = [
    'Preamble before any heading.',
    '# Alpha',
    'Alpha text.',
    '## Beta `sync` **command**',
    'Beta text.',
    '### Gamma',
    'Gamma text.',
    '## Delta',
    'Delta text.',
    'Setext Epsilon\n==============',
    '### Zeta',
    'Zeta text under Epsilon, with no text directly under Epsilon.',
    '## Eta',
    '```sh\n# comment, not a heading\n```',
  ].join('\n\n');

  it('names the headings above each chunk, outermost first, in plain text', () => {
    const chunks = chunk(body, 1000);
    const pathOf = (needle: string) => chunks.find((c) => c.text.includes(needle))?.headingPath;
    expect(pathOf('Preamble')).toEqual([]);
    expect(pathOf('Alpha text.')).toEqual(['Alpha']);
    expect(pathOf('Beta text.')).toEqual(['Alpha', 'Beta sync command']);
    expect(pathOf('Gamma text.')).toEqual(['Alpha', 'Beta sync command', 'Gamma']);
    expect(pathOf('Delta text.')).toEqual(['Alpha', 'Delta']);
    expect(pathOf('Zeta text')).toEqual(['Setext Epsilon', 'Zeta']);
    expect(pathOf('# comment')).toEqual(['Setext Epsilon', 'Eta']);
    // Sections start chunks; the empty Epsilon section shares Zeta's chunk.
    expect(chunks.map((c) => c.text.trimEnd().split('\n')[0])).toEqual([
      'Preamble before any heading.',
      '# Alpha',
      '## Beta `sync` **command**',
      '### Gamma',
      '## Delta',
      'Setext Epsilon',
      '## Eta',
    ]);
    expectSpansTile(body, chunks);
  });

  it('keeps the path on continuation chunks of a long section', () => {
    const long = `# Alpha\n\n## Beta\n\n${filler(40)}\n\n## Gamma\n\nShort.\n`;
    const chunks = chunk(long, 30, 5);
    const beta = chunks.filter((c) => c.text.includes('lorem'));
    expect(beta.length).toBeGreaterThan(3);
    for (const c of beta) expect(c.headingPath).toEqual(['Alpha', 'Beta']);
    expect(chunks.at(-1)?.headingPath).toEqual(['Alpha', 'Gamma']);
  });

  it('leaves a leftover title H1 out of the path, but not a different H1', () => {
    const withTitle = '# Reset your password\n\nOpen settings.\n\n## Email\n\nCheck spam.\n';
    const titled = chunk(withTitle, 100, 0, 'Reset your password');
    expect(titled.map((c) => c.headingPath)).toEqual([[], ['Email']]);
    const other = chunk(withTitle, 100, 0, 'Something else');
    expect(other.map((c) => c.headingPath)).toEqual([
      ['Reset your password'],
      ['Reset your password', 'Email'],
    ]);
  });
});

describe('chunkArticle: tables', () => {
  const rows = Array.from(
    { length: 40 },
    (_, i) => `  | Zone ${i} | €${(i * 1.5).toFixed(2)} | ${i % 2 ? 'yes' : 'no'} |`,
  );
  const body = [
    'Prices depend on the zone.',
    '',
    '- Prices by zone:',
    '',
    '  | Zone | Price | Tracked |',
    '  | --- | ---: | :---: |',
    ...rows,
    '',
    '- Zones are listed on the map.',
    '',
  ].join('\n');

  it('splits a table inside a list between rows, each piece a table with the header', () => {
    const chunks = chunk(body, 60, 15);
    expectTokenCounts(chunks, 60);
    expectSpansTile(body, chunks);
    const withRows = chunks.filter((c) => /\| Zone \d+ \|/.test(c.text));
    expect(withRows.length).toBeGreaterThan(3);
    for (const c of withRows) {
      const tables = nodesOfType(parse(c.text), 'table');
      expect(tables).toHaveLength(1);
      const table = tables[0] as Table;
      expect(table.children[0]?.children.map((cell) => mdastToString(cell))).toEqual([
        'Zone',
        'Price',
        'Tracked',
      ]);
      expect(table.align).toEqual([null, 'right', 'center']);
      expect(table.children.length - 1).toBe(c.text.match(/\| Zone \d+ \|/g)?.length);
    }
    for (const row of rows) {
      expect(chunks.filter((c) => c.text.split('\n').some((l) => l.trim() === row.trim()))).toHaveLength(1);
    }
  });

  it('keeps a table that fits in one chunk whole', () => {
    const small = 'Intro.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n';
    const chunks = chunk(small, 100);
    expect(chunks).toHaveLength(1);
    expect(chunks[0]?.text).toBe(small);
  });
});

describe('chunkArticle: shapes, edges and errors', () => {
  it('gives deterministic ids, indexes and texts', () => {
    const body = `## One\n\n${filler(20)}\n\n## Two\n\n${filler(20, 'dolor')}\n`;
    const article = { id: 'billing/refunds', source: 'examples', title: 'Refunds', body };
    const options: ChunkOptions = { maxTokens: 50, overlapTokens: 10, tokenizer };
    const first = chunkArticle(article, options);
    const second = chunkArticle({ ...article }, { ...options });
    expect(second).toEqual(first);
    expect(first.length).toBeGreaterThan(3);
    first.forEach((c, i) => {
      expect(c.id).toBe(`examples:billing/refunds#${i}`);
      expect(c.index).toBe(i);
      expect(c.articleId).toBe('billing/refunds');
      expect(c.source).toBe('examples');
    });
  });

  it('gives no chunks for an empty or blank body', () => {
    expect(chunk('', 100)).toEqual([]);
    expect(chunk(' \n\n\t\n', 100)).toEqual([]);
  });

  it('gives one chunk for a body that is only a heading', () => {
    const chunks = chunk('## Only a heading', 100);
    expect(chunks).toHaveLength(1);
    expect(chunks[0]).toMatchObject({
      text: '## Only a heading',
      headingPath: ['Only a heading'],
      span: { start: 0, end: 17 },
      index: 0,
    });
  });

  it('rejects sizes out of range', () => {
    const bad = [
      { maxTokens: 0, overlapTokens: 0 },
      { maxTokens: 10.5, overlapTokens: 0 },
      { maxTokens: 10, overlapTokens: 10 },
      { maxTokens: 10, overlapTokens: -1 },
    ];
    for (const sizes of bad) {
      expect(() => chunk('text', sizes.maxTokens, sizes.overlapTokens)).toThrow(SupportbotError);
      expect(() => chunk('text', sizes.maxTokens, sizes.overlapTokens)).toThrow(
        expect.objectContaining({ code: 'chunker-options' }),
      );
    }
    expect(chunk('text', 1)).toHaveLength(1);
  });

  it('counts tokens linearly in the body size (no quadratic re-counting)', () => {
    const section = (i: number) =>
      [
        `## Section ${i}`,
        filler(30),
        `- item one of ${i}\n- item two with [a link](https://example.com/${i})\n- item three`,
        `| k | v |\n|---|---|\n${Array.from({ length: 30 }, (_, r) => `| key ${r} | value ${r} |`).join('\n')}`,
        `\`\`\`js\n${Array.from({ length: 40 }, (_, r) => `console.log(${r});`).join('\n')}\n\`\`\``,
      ].join('\n\n');
    const body = Array.from({ length: 60 }, (_, i) => section(i)).join('\n\n');
    let counted = 0;
    const counting: Tokenizer = {
      ...tokenizer,
      count: (text) => {
        counted += text.length;
        return tokenizer.count(text);
      },
    };
    const chunks = chunkArticle(
      { id: 'big', source: 'test', title: 'Big', body },
      { maxTokens: 120, overlapTokens: 20, tokenizer: counting },
    );
    expect(body.length).toBeGreaterThan(150_000);
    expect(chunks.length).toBeGreaterThan(200);
    expectTokenCounts(chunks, 120);
    expectSpansTile(body, chunks);
    expect(counted / body.length).toBeLessThan(8);
  });
});
