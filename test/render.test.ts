import { describe, expect, it } from 'vitest';
import {
  answerToDiscordMessages,
  type DiscordMessagePayload,
  parseFeedbackCustomId,
} from '../bot/discord/messages.ts';
import { escapeMrkdwn, markdownToMrkdwn, mrkdwnLink } from '../bot/render/markdown-to-mrkdwn.ts';
import { MIN_SPLIT_CHARS, splitMarkdown } from '../bot/render/split.ts';
import { answerToSlackMessages, type SlackMessage } from '../bot/slack/blocks.ts';
import { SupportbotError } from '../core/errors.ts';
import type { AnswerResult, Citation } from '../core/types.ts';
import { longAnswerCaseText, makeAnswerResult } from './helpers/answer-result.ts';

// ---------------------------------------------------------------------------------------------------------
// Oracles, written independently of the splitter: a line scanner for top-level fences (CommonMark rules
// for fences indented ≤ 3 spaces) and an exact reassembly check.

function check(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

interface CodeRange {
  /** The opening fence line, as written. */
  opener: string;
  marker: string;
  /** Offset of the first content character (after the opening line). */
  contentStart: number;
  /** Offset of the closing fence line (text length when unclosed). */
  closeStart: number;
}

function codeRanges(text: string): { ranges: CodeRange[]; openAtEnd: boolean } {
  const ranges: CodeRange[] = [];
  let open: Omit<CodeRange, 'closeStart'> | null = null;
  let pos = 0;
  for (const line of text.split('\n')) {
    const lineStart = pos;
    pos += line.length + 1;
    if (open === null) {
      const m = /^ {0,3}(`{3,}(?=[^`]*$)|~{3,})/.exec(line);
      if (m?.[1] !== undefined)
        open = { opener: line, marker: m[1], contentStart: Math.min(pos, text.length) };
    } else {
      const m = /^ {0,3}(`{3,}|~{3,})[ \t]*$/.exec(line);
      if (m?.[1] !== undefined && m[1][0] === open.marker[0] && m[1].length >= open.marker.length) {
        ranges.push({ ...open, closeStart: lineStart });
        open = null;
      }
    }
  }
  if (open !== null) ranges.push({ ...open, closeStart: text.length });
  return { ranges, openAtEnd: open !== null };
}

/** Every fence opened in `piece` is closed in it, with a matching marker. */
function expectBalanced(piece: string): void {
  const { openAtEnd } = codeRanges(piece);
  expect(openAtEnd, `unbalanced fences in:\n${piece}`).toBe(false);
  const fenceLines = piece.split('\n').filter((line) => /^ {0,3}(```|~~~)/.test(line));
  expect(fenceLines.length % 2, `odd number of fence lines in:\n${piece}`).toBe(0);
}

interface Cut {
  /** End of the kept text of the piece before the cut (offset in the input). */
  end: number;
  /** Start of the kept text of the piece after it. */
  next: number;
  /** The cut falls inside a code block (the piece before it got a closing fence added). */
  inCode: boolean;
}

/**
 * Checks the splitter's contract exactly: each piece is [reopen line + "\n"] + a slice of the input +
 * ["\n" + closing fence], where the reopen line is the opening line of the code block the slice starts in
 * and a closing fence is added exactly when the slice ends inside a code block; the slices follow each
 * other in order and what lies between them (and before the first, after the last) is whitespace only —
 * inside a code block exactly one newline or nothing. Returns the cuts.
 */
function reassemble(input: string, pieces: string[]): Cut[] {
  const { ranges } = codeRanges(input);
  const inside = (p: number): CodeRange | undefined =>
    ranges.find((r) => r.contentStart <= p && p < r.closeStart);
  const cuts: Cut[] = [];
  let pos = 0;
  let cutInCode = false;
  pieces.forEach((piece, i) => {
    const end = pos;
    if (cutInCode) {
      if (input[pos] === '\n') pos++;
    } else {
      while (pos < input.length && /\s/.test(input[pos] ?? '')) pos++;
    }
    if (i > 0) cuts.push({ end, next: pos, inCode: cutInCode });
    let body = piece;
    const block = inside(pos);
    if (block !== undefined) {
      check(body.startsWith(`${block.opener}\n`), `piece ${i} should reopen with ${block.opener}:\n${piece}`);
      body = body.slice(block.opener.length + 1);
    }
    cutInCode = false;
    if (!input.startsWith(body, pos)) {
      const close = /\n( {0,3}(?:`{3,}|~{3,}))$/.exec(body);
      check(close !== null, `piece ${i} is not a slice of the input at ${pos}:\n${piece}`);
      body = body.slice(0, close.index);
      check(input.startsWith(body, pos), `piece ${i} is not a slice of the input at ${pos}:\n${piece}`);
      const openBlock = inside(pos + body.length);
      check(openBlock !== undefined, `piece ${i} adds a closing fence outside code`);
      check(
        close[1]?.trim() === openBlock.marker,
        `piece ${i} closes with ${close[1]}, not ${openBlock.marker}`,
      );
      cutInCode = true;
    }
    check(/\S/.test(body), `piece ${i} has no text of its own`);
    pos += body.length;
    check(
      cutInCode || inside(pos) === undefined || pos === inside(pos)?.contentStart,
      `piece ${i} ends inside code unclosed`,
    );
  });
  check(!cutInCode, 'the last piece ends inside code');
  check(
    input.slice(pos).trim() === '',
    `text lost at the end: ${JSON.stringify(input.slice(pos, pos + 80))}`,
  );
  return cuts;
}

const graphemeSegmenter = new Intl.Segmenter('en', { granularity: 'grapheme' });
const wordSegmenter = new Intl.Segmenter('en', { granularity: 'word' });

const boundaryCache = new Map<string, Set<number>>();

/** Offsets where `segmenter` puts a boundary (memoised: segmenting long texts is slow). */
function boundaries(text: string, segmenter: Intl.Segmenter): Set<number> {
  const key = `${segmenter.resolvedOptions().granularity}:${text}`;
  const cached = boundaryCache.get(key);
  if (cached !== undefined) return cached;
  const set = new Set<number>([text.length]);
  for (const s of segmenter.segment(text)) set.add(s.index);
  boundaryCache.set(key, set);
  return set;
}

/**
 * Whether offset p of `text` is an extended grapheme cluster boundary, judged on a window of 64 code
 * units either side (far longer than any cluster the tests use; segmenting whole long texts is slow).
 */
function isGraphemeBoundary(text: string, p: number): boolean {
  const start = Math.max(0, p - 64);
  return boundaries(text.slice(start, p + 64), graphemeSegmenter).has(p - start);
}

/** The maximal run of non-whitespace characters around offset p. */
function tokenAround(text: string, p: number): string {
  let a = p;
  let b = p;
  while (a > 0 && /\S/.test(text[a - 1] ?? '')) a--;
  while (b < text.length && /\S/.test(text[b] ?? '')) b++;
  return text.slice(a, b);
}

/** Every property of splitMarkdown's contract, for one input and size. Returns the cuts. */
function expectValidSplit(input: string, maxChars: number, pieces = splitMarkdown(input, maxChars)): Cut[] {
  for (const piece of pieces) {
    expect(piece.length).toBeLessThanOrEqual(maxChars);
    expect(piece.trim()).not.toBe('');
    expect(piece.isWellFormed()).toBe(true);
    expectBalanced(piece);
  }
  const cuts = reassemble(input, pieces);
  const { ranges } = codeRanges(input);
  const links = [...input.matchAll(/\[[^\]\n]*\]\([^)\s]*\)|<https?:[^<>\s]*>/g)].map((m) => ({
    start: m.index,
    end: m.index + m[0].length,
  }));
  for (const cut of cuts) {
    expect(isGraphemeBoundary(input, cut.end) && isGraphemeBoundary(input, cut.next)).toBe(true);
    if (cut.inCode && cut.end === cut.next) {
      // Inside a code line: only when that line, reopened and closed, cannot fit a piece.
      const block = ranges.find((r) => r.contentStart <= cut.end && cut.end < r.closeStart);
      const lineStart = input.lastIndexOf('\n', cut.end - 1) + 1;
      const line = input.slice(lineStart, input.indexOf('\n', cut.end));
      const overhead = (block?.opener.length ?? 0) + (block?.marker.length ?? 0) + 2;
      expect(line.length + overhead, `cut inside code line ${JSON.stringify(line)}`).toBeGreaterThan(
        maxChars,
      );
    } else if (cut.end === cut.next) {
      // A cut with no whitespace at it: only inside a word or link that cannot fit a piece.
      const token = tokenAround(input, cut.end);
      expect(token.length, `cut inside ${JSON.stringify(token.slice(0, 60))}`).toBeGreaterThan(maxChars / 2);
    }
    for (const link of links) {
      if (link.start < cut.next && cut.end < link.end) {
        expect(link.end - link.start, `cut inside link at ${cut.end}`).toBeGreaterThan(maxChars / 2);
      }
    }
  }
  return cuts;
}

// ---------------------------------------------------------------------------------------------------------
// Fixtures

const answer = makeAnswerResult;

const citations: Citation[] = [
  {
    n: 1,
    articleId: 'export',
    source: 'examples',
    title: 'Export your workspace',
    url: 'https://help.example.com/articles/export?lang=en&v=2',
    sourcePath: 'export.md',
    chunkIds: ['examples:export#0'],
  },
  {
    n: 2,
    articleId: 'import',
    source: 'examples',
    title: 'Import a workspace',
    url: null,
    sourcePath: 'moving/import.md',
    chunkIds: ['examples:import#1'],
  },
];

/**
 * The long-answer case as the generator returned it; its last line ("Sources: [1] … [2] …") is what the
 * citations stand for, so it becomes `citations` and the rest is the answer text.
 */
function longAnswer(): AnswerResult {
  return answer(longAnswerCaseText(), { citations });
}

// Code lines of the case, to check that each arrives exactly once and intact.
const exportLines = Array.from(
  { length: 39 },
  (_, i) => `./manage.py export --realm acme --part ${i + 1} --output /tmp/export-${i + 1}.tar.gz`,
);

function sectionTexts(message: SlackMessage): string[] {
  return message.blocks.flatMap((block) =>
    block.type === 'section' && block.text !== undefined ? [block.text.text] : [],
  );
}

/** Characters of every `text` string in the blocks, counted independently of the module. */
function slackBlockChars(value: unknown, key = ''): number {
  if (typeof value === 'string') return key === 'text' ? value.length : 0;
  if (Array.isArray(value)) return value.reduce((sum: number, item) => sum + slackBlockChars(item, key), 0);
  if (typeof value !== 'object' || value === null) return 0;
  return Object.entries(value).reduce((sum, [k, v]) => sum + slackBlockChars(v, k), 0);
}

function actionsBlocks(messages: SlackMessage[]): { message: number; block: number }[] {
  const found: { message: number; block: number }[] = [];
  messages.forEach((m, i) => {
    m.blocks.forEach((b, j) => {
      if (b.type === 'actions') found.push({ message: i, block: j });
    });
  });
  return found;
}

function expectSlackLimits(messages: SlackMessage[]): void {
  for (const message of messages) {
    expect(message.blocks.length).toBeGreaterThan(0);
    expect(message.blocks.length).toBeLessThanOrEqual(50);
    expect(slackBlockChars(message.blocks)).toBeLessThanOrEqual(12_000);
    expect(message.text.length).toBeGreaterThan(0);
    expect(message.text.length).toBeLessThan(4_000);
    for (const block of message.blocks) {
      if (block.type === 'section') {
        expect(block.text?.type).toBe('mrkdwn');
        expect(block.text?.text.length ?? 0).toBeLessThanOrEqual(3_000);
        // Slack renders each block on its own, so each block's fences must balance.
        expectBalanced(block.text?.text ?? '');
      }
      if (block.type === 'context') {
        for (const element of block.elements)
          if ('text' in element) expect(element.text.length).toBeLessThanOrEqual(3_000);
      }
    }
    expectBalanced(message.text);
  }
}

function sourcesMessages(messages: SlackMessage[]): number[] {
  return messages.flatMap((m, i) =>
    m.blocks.some((b) => b.type === 'context' && JSON.stringify(b).includes('*Sources*')) ? [i] : [],
  );
}

// ---------------------------------------------------------------------------------------------------------

describe('long-answer case (test/fixtures/cases/chat/long-answer.CASE.md)', () => {
  it('fixture is the case as handed over', () => {
    const result = longAnswer();
    expect(result.text.length).toBeGreaterThan(11_000);
    expect(result.text.match(/^```bash$/gm)).toHaveLength(2);
    // Each code block is ~2,900 characters: larger than a Discord message can hold next to anything.
    for (const range of codeRanges(result.text).ranges) {
      expect(range.closeStart - range.contentStart).toBeGreaterThan(2_800);
    }
  });

  describe('Slack', () => {
    const result = longAnswer();
    const messages = answerToSlackMessages(result, { answerId: 'ans-42', feedbackButtons: true });
    const sections = messages.flatMap(sectionTexts);

    it('stays within every block and message limit', () => {
      expectSlackLimits(messages);
      expect(sections.length).toBeGreaterThan(1);
    });

    it('delivers the whole text in order; each ~2,900-character code block fits one section whole', () => {
      reassemble(markdownToMrkdwn(result.text), sections);
      const whole = `\`\`\`\n${exportLines.join('\n')}\n\`\`\``;
      expect(sections.filter((s) => s.includes(whole))).toHaveLength(2);
      const all = sections.join('\n');
      let from = 0;
      for (const line of [...exportLines, ...exportLines]) {
        const at = all.indexOf(`\n${line}\n`, from);
        expect(at, line).toBeGreaterThanOrEqual(from);
        from = at + line.length;
      }
      // mrkdwn has no info strings (Slack would print `bash` as a line of code).
      expect(sections.every((s) => !/^```bash$/m.test(s))).toBe(true);
    });

    it('closes and reopens a code block too big for one section', () => {
      const big = answer(
        `Run all of these:\n\n\`\`\`bash\n${[...exportLines, ...exportLines, ...exportLines].join('\n')}\n\`\`\``,
      );
      const bigSections = answerToSlackMessages(big, { answerId: 'a', feedbackButtons: false }).flatMap(
        sectionTexts,
      );
      expect(bigSections.length).toBeGreaterThanOrEqual(3);
      const cuts = reassemble(markdownToMrkdwn(big.text), bigSections);
      expect(cuts.every((c) => c.inCode)).toBe(true);
      for (const section of bigSections.slice(1))
        expect(section.startsWith('```\n./manage.py export')).toBe(true);
      for (const section of bigSections) expect(section.endsWith('.tar.gz\n```')).toBe(true);
    });

    it('puts the sources and the buttons in the last message only, once', () => {
      const last = messages.length - 1;
      expect(sourcesMessages(messages)).toEqual([last]);
      const lastMessage = messages[last] as SlackMessage;
      const sources = JSON.stringify(lastMessage.blocks.filter((b) => b.type === 'context'));
      expect(sources).toContain(
        '[1] <https://help.example.com/articles/export?lang=en&amp;v=2|Export your workspace>',
      );
      expect(sources).toContain('[2] Import a workspace — moving/import.md');
      expect(actionsBlocks(messages)).toEqual([{ message: last, block: lastMessage.blocks.length - 1 }]);
      const actions = lastMessage.blocks.at(-1);
      expect(actions).toMatchObject({
        type: 'actions',
        elements: [
          {
            type: 'button',
            action_id: 'feedback_up',
            value: 'ans-42',
            text: { type: 'plain_text', text: '👍' },
          },
          {
            type: 'button',
            action_id: 'feedback_down',
            value: 'ans-42',
            text: { type: 'plain_text', text: '👎' },
          },
        ],
      });
    });

    it('splits a longer answer into several messages, still whole and in order', () => {
      const long = answer([result.text, result.text, result.text].join('\n\n'), { citations });
      const many = answerToSlackMessages(long, { answerId: 'ans-43', feedbackButtons: true });
      expect(many.length).toBeGreaterThan(2);
      expectSlackLimits(many);
      reassemble(markdownToMrkdwn(long.text), many.flatMap(sectionTexts));
      expect(sourcesMessages(many)).toEqual([many.length - 1]);
      expect(actionsBlocks(many).map((a) => a.message)).toEqual([many.length - 1]);
    });
  });

  describe('Discord', () => {
    const result = longAnswer();
    const messages = answerToDiscordMessages(result, { answerId: 'ans-42', feedbackButtons: true });
    const last = messages.length - 1;
    const sourcesText = '\n\n**Sources**\n';
    const answerParts = messages.map((m, i) =>
      i === last && m.content.includes(sourcesText)
        ? m.content.slice(0, m.content.indexOf(sourcesText))
        : m.content,
    );

    it('keeps every message within 2,000 characters with balanced fences', () => {
      expect(messages.length).toBeGreaterThan(5);
      for (const m of messages) {
        expect(m.content.length).toBeLessThanOrEqual(2_000);
        expectBalanced(m.content);
        expect(m.flags).toBe(4); // SUPPRESS_EMBEDS
        expect(m.allowed_mentions).toEqual({ parse: [] });
      }
    });

    it('delivers the whole text in order and reopens cut code with its info string', () => {
      const cuts = reassemble(result.text, answerParts);
      const reopened = answerParts.filter((p) =>
        p.startsWith('```bash\n./manage.py export --realm acme --part '),
      );
      expect(reopened.length).toBeGreaterThanOrEqual(2);
      expect(reopened.some((p) => !p.startsWith('```bash\n./manage.py export --realm acme --part 1 '))).toBe(
        true,
      );
      // Cuts prefer block boundaries; only a code block too big for a message is cut, between its lines.
      for (const cut of cuts) {
        const gap = result.text.slice(cut.end, cut.next);
        expect(cut.inCode ? gap === '\n' : gap.includes('\n\n'), JSON.stringify(gap)).toBe(true);
      }
      expect(cuts.filter((c) => c.inCode)).toHaveLength(2);
    });

    it('puts the sources and the buttons in the last message only, once', () => {
      const withSources = messages.flatMap((m, i) => (m.content.includes('**Sources**') ? [i] : []));
      expect(withSources).toEqual([last]);
      const lastMessage = messages[last] as DiscordMessagePayload;
      expect(
        lastMessage.content.endsWith(
          '**Sources**\n[1] [Export your workspace](<https://help.example.com/articles/export?lang=en&v=2>)\n' +
            '[2] Import a workspace — moving/import.md',
        ),
      ).toBe(true);
      expect(messages.filter((m) => m.components !== undefined).length).toBe(1);
      expect(lastMessage.components).toEqual([
        {
          type: 1,
          components: [
            { type: 2, style: 2, custom_id: 'feedback:up:ans-42', emoji: { name: '👍' } },
            { type: 2, style: 2, custom_id: 'feedback:down:ans-42', emoji: { name: '👎' } },
          ],
        },
      ]);
      expect(parseFeedbackCustomId('feedback:down:ans-42')).toEqual({ answerId: 'ans-42', value: -1 });
      expect(parseFeedbackCustomId('feedback:up:a:b')).toEqual({ answerId: 'a:b', value: 1 });
      expect(parseFeedbackCustomId('other:up:x')).toBeNull();
    });
  });
});

describe('answer rendering outside the case', () => {
  it('abstained and escalated answers render their text without sources', () => {
    for (const flags of [{ abstained: true }, { escalated: true, escalationReason: 'asked for a human' }]) {
      const result = answer('I could not find this in the help center. A human will follow up.', {
        citations,
        ...flags,
      });
      const slack = answerToSlackMessages(result, { answerId: 'a1', feedbackButtons: true });
      expect(slack).toHaveLength(1);
      expect(sourcesMessages(slack)).toEqual([]);
      expect(JSON.stringify(slack)).not.toContain('Export your workspace');
      expect(sectionTexts(slack[0] as SlackMessage)).toEqual([
        'I could not find this in the help center. A human will follow up.',
      ]);
      const discord = answerToDiscordMessages(result, { answerId: 'a1', feedbackButtons: true });
      expect(discord.map((m) => m.content)).toEqual([
        'I could not find this in the help center. A human will follow up.',
      ]);
      expect(discord[0]?.components).toHaveLength(1);
    }
  });

  it('leaves the buttons off when feedbackButtons is false', () => {
    const result = answer('Short answer [1].', { citations });
    const slack = answerToSlackMessages(result, { answerId: 'a1', feedbackButtons: false });
    expect(actionsBlocks(slack)).toEqual([]);
    expect(sourcesMessages(slack)).toEqual([0]);
    const discord = answerToDiscordMessages(result, { answerId: 'a1', feedbackButtons: false });
    expect(discord.every((m) => m.components === undefined)).toBe(true);
    expect(discord).toHaveLength(1);
  });

  it('gives the sources a message of their own when they do not fit the last one', () => {
    const text = 'word '.repeat(399).trim(); // 1,994 characters
    const discord = answerToDiscordMessages(answer(text, { citations }), {
      answerId: 'a1',
      feedbackButtons: true,
    });
    expect(discord.map((m) => m.content.length)).toEqual([1_994, expect.any(Number)]);
    expect(discord[1]?.content.startsWith('**Sources**\n[1] ')).toBe(true);
    expect(discord[0]?.components).toBeUndefined();
    expect(discord[1]?.components).toHaveLength(1);
  });

  it('escapes titles and neutralises mentions in sources', () => {
    const tricky: Citation = {
      ...(citations[0] as Citation),
      title: '*Bold* <!channel> & [x]',
      url: 'https://x.example/a b|c>d',
    };
    const slack = answerToSlackMessages(answer('See [1].', { citations: [tricky] }), {
      answerId: 'a1',
      feedbackButtons: false,
    });
    expect(JSON.stringify(slack[0]?.blocks)).toContain(
      '[1] <https://x.example/a%20b%7Cc%3Ed|*Bold* &lt;!channel&gt; &amp; [x]>',
    );
    const discord = answerToDiscordMessages(answer('See [1].', { citations: [tricky] }), {
      answerId: 'a1',
      feedbackButtons: false,
    });
    expect(discord[0]?.content).toContain(
      '[1] [\\*Bold\\* <!channel> & \\[x\\]](<https://x.example/a%20b|c%3Ed>)',
    );
  });

  it('rejects answer ids the buttons cannot carry', () => {
    const result = answer('Hi.');
    expect(() =>
      answerToDiscordMessages(result, { answerId: 'x'.repeat(87), feedbackButtons: true }),
    ).toThrow(SupportbotError);
    expect(answerToDiscordMessages(result, { answerId: 'x'.repeat(86), feedbackButtons: true })).toHaveLength(
      1,
    );
    expect(() => answerToSlackMessages(result, { answerId: '', feedbackButtons: true })).toThrow(
      SupportbotError,
    );
  });

  it('renders an empty answer as one placeholder message', () => {
    expect(answerToSlackMessages(answer('  \n'), { answerId: 'a', feedbackButtons: false })).toHaveLength(1);
    expect(answerToDiscordMessages(answer(''), { answerId: 'a', feedbackButtons: false })[0]?.content).toBe(
      '_(no answer text)_',
    );
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('splitMarkdown', () => {
  it('prefers paragraph, then line, then sentence, then word boundaries', () => {
    const p = (c: string): string => `${c.repeat(59)}.`;
    expect(splitMarkdown(`${p('a')}\n\n${p('b')}\n\n${p('c')}`, 150)).toEqual([
      `${p('a')}\n\n${p('b')}`,
      p('c'),
    ]);
    // One paragraph of lines: cut between lines, not inside the third line.
    expect(splitMarkdown(`${p('a')}\n${p('b')}\n${p('c')}`, 150)).toEqual([`${p('a')}\n${p('b')}`, p('c')]);
    // One line of sentences: cut between sentences.
    const sentences = 'This is one sentence here. '.repeat(8).trim();
    for (const piece of splitMarkdown(sentences, 100)) expect(piece.endsWith('.')).toBe(true);
    // Words: never inside one.
    const words = 'alpha beta gamma delta epsilon '.repeat(10).trim();
    for (const piece of splitMarkdown(words, 45)) {
      for (const w of piece.split(' ')) expect(['alpha', 'beta', 'gamma', 'delta', 'epsilon']).toContain(w);
    }
  });

  it('fills a piece rather than cutting at a paragraph boundary early', () => {
    const text = `Short intro.\n\n${'long line of words here '.repeat(10).trim()}`;
    const pieces = splitMarkdown(text, 120);
    expect(pieces[0]?.startsWith('Short intro.\n\nlong line')).toBe(true);
    expectValidSplit(text, 120, pieces);
  });

  it('keeps a heading with what follows it', () => {
    const text = `${'a '.repeat(45).trim()}\n\n## Next step\n\n${'b '.repeat(45).trim()}`;
    expect(splitMarkdown(text, 120)).toEqual([
      'a '.repeat(45).trim(),
      `## Next step\n\n${'b '.repeat(45).trim()}`,
    ]);
  });

  it('closes and reopens a cut code block with the same fence and info string, within the limit', () => {
    const text = 'Run:\n\n```bash\necho one\necho two\necho three\necho four\n```\n\nDone.';
    const pieces = splitMarkdown(text, 40);
    expect(pieces).toEqual([
      'Run:\n\n```bash\necho one\necho two\n```',
      '```bash\necho three\necho four\n```\n\nDone.',
    ]);
    expectValidSplit(text, 40, pieces);
    const tilde = '~~~~python\nprint(1)\n\n    print(2)\nprint(3)\n~~~~';
    expect(splitMarkdown(tilde, 40)).toEqual([
      '~~~~python\nprint(1)\n\n    print(2)\n~~~~',
      '~~~~python\nprint(3)\n~~~~',
    ]);
    expectValidSplit(tilde, 40);
  });

  it('cuts a code line longer than a piece, inside the line', () => {
    const text = `\`\`\`\n${'x'.repeat(150)}\n\`\`\``;
    const pieces = splitMarkdown(text, 60);
    expect(pieces.every((p) => p.startsWith('```\n') && p.endsWith('\n```'))).toBe(true);
    expect(pieces.map((p) => p.slice(4, -4)).join('')).toBe('x'.repeat(150));
    expectValidSplit(text, 60, pieces);
  });

  it('closes a fence the input leaves open, and re-fences code in lists and quotes', () => {
    expect(splitMarkdown('```sh\nls\nls -l', 100)).toEqual(['```sh\nls\nls -l\n```']);
    expect(splitMarkdown('1. Step:\n   ```sh\n   ls\n   ls -l\n   ls -la\n   ```\n2. Next', 40)).toEqual([
      '1. Step:\n   ```sh\n   ls\n   ls -l\n   ```',
      '   ```sh\n   ls -la\n   ```\n2. Next',
    ]);
    expect(splitMarkdown('> ```py\n> a = 1\n> b = 2\n> c = 3\n> d = 4\n\nafter', 40)).toEqual([
      '> ```py\n> a = 1\n> b = 2\n> c = 3\n> ```',
      '> ```py\n> d = 4\n> ```\n\nafter',
    ]);
  });

  it('never cuts inside a link, a Slack link, inline code or an entity that fits', () => {
    const link = '[the export guide for admins](https://help.example.com/articles/export-guide)';
    const text = `${'Read about it in '.repeat(3)}${link} ${'and then continue '.repeat(4)}`;
    for (const max of [90, 100, 120]) {
      const pieces = splitMarkdown(text, max);
      expect(pieces.some((p) => p.includes(link))).toBe(true);
      expectValidSplit(text, max, pieces);
    }
    const slack = `${'word '.repeat(12)}<https://help.example.com/a|the export guide> &amp; \`npm run build --prod\``;
    // The Slack link is 45 characters: from there on it is never cut.
    for (let max = 45; max <= 100; max++) {
      const pieces = splitMarkdown(slack, max);
      expect(pieces.some((p) => p.includes('<https://help.example.com/a|the export guide>'))).toBe(true);
      expect(pieces.some((p) => p.includes('&amp;'))).toBe(true);
      expect(pieces.some((p) => p.includes('`npm run build --prod`'))).toBe(true);
    }
  });

  it('cuts a word or link longer than a piece at grapheme boundaries', () => {
    const word = 'x'.repeat(450);
    expectValidSplit(`start ${word} end`, 100);
    const link = `[guide](https://help.example.com/${'a'.repeat(300)})`;
    const pieces = splitMarkdown(`see ${link} ok`, 100);
    expect(pieces[0]).toBe('see');
    expect(pieces.slice(1).join('')).toBe(`${link} ok`);
    expectValidSplit(`see ${link} ok`, 100, pieces);
  });

  it('cuts CJK text at sentence and word boundaries and never splits a grapheme cluster', () => {
    const cjk = '東京都の天気は晴れです。明日は雨が降るでしょう。'.repeat(15);
    const words = boundaries(cjk, wordSegmenter);
    for (const max of [40, 41, 53, 100]) {
      const cuts = expectValidSplit(cjk, max);
      for (const cut of cuts) expect(words.has(cut.end)).toBe(true);
    }
    const noPunctuation = '東京都庁舎展望室'.repeat(40);
    const noPunctuationWords = boundaries(noPunctuation, wordSegmenter);
    for (const cut of reassemble(noPunctuation, splitMarkdown(noPunctuation, 50))) {
      expect(noPunctuationWords.has(cut.end)).toBe(true);
    }
    const emoji = '👩‍💻👨‍👩‍👧‍👦🏳️‍🌈🇩🇪👍🏽'.repeat(30);
    for (const max of [40, 41, 42, 43, 77]) {
      const pieces = splitMarkdown(emoji, max);
      expect(pieces.join('')).toBe(emoji);
      for (const p of pieces) {
        expect(p.length).toBeLessThanOrEqual(max);
        expect(
          p.startsWith('👩‍💻') ||
            p.startsWith('👨') ||
            p.startsWith('🏳') ||
            p.startsWith('🇩🇪') ||
            p.startsWith('👍🏽'),
        ).toBe(true);
      }
      expectValidSplit(emoji, max, pieces);
    }
  });

  it('normalises line endings, drops outer whitespace and rejects sizes it cannot honour', () => {
    expect(splitMarkdown('a\r\nb\r\n', 100)).toEqual(['a\nb']);
    expect(splitMarkdown(' \n\t\n', 100)).toEqual([]);
    expect(splitMarkdown('', 100)).toEqual([]);
    expect(() => splitMarkdown('abc', MIN_SPLIT_CHARS - 1)).toThrow(SupportbotError);
    expect(() => splitMarkdown('abc', 100.5)).toThrow(SupportbotError);
  });

  it('has a reassembly oracle that catches lost, reordered or unfenced text', () => {
    const text = 'One two three.\n\n```bash\nls\npwd\n```\n\nFour five.';
    const good = splitMarkdown(text, 40);
    expect(() => reassemble(text, good)).not.toThrow();
    expect(() => reassemble(text, [...good].reverse())).toThrow();
    expect(() =>
      reassemble(
        text,
        good.map((p) => p.replace('three', 'tree')),
      ),
    ).toThrow();
    expect(() =>
      reassemble(text, ['One two three.\n\n```bash\nls\n```', 'pwd\n```\n\nFour five.']),
    ).toThrow();
    expect(() =>
      reassemble(text, ['One two three.\n\n```bash\nls', '```bash\npwd\n```\n\nFour five.']),
    ).toThrow();
    expect(() => expectBalanced('```bash\nls')).toThrow();
  });

  describe('generated documents, many sizes', () => {
    const sizes = [
      40, 41, 47, 64, 80, 99, 100, 101, 128, 150, 199, 256, 333, 500, 777, 1000, 1999, 2000, 3000,
    ];
    const docs = Array.from({ length: 12 }, (_, seed) => generateDocument(seed + 1));

    it('generates the inputs it claims to', () => {
      const all = docs.join('\n');
      for (const needle of [
        '```bash',
        '~~~python',
        '| --- |',
        '    - ',
        '👩‍💻',
        '東京',
        '](https://',
        '&amp;',
      ]) {
        expect(all).toContain(needle);
      }
      expect(all.length).toBeGreaterThan(12 * 2_000);
    });

    for (const size of sizes) {
      it(`maxChars ${size}`, () => {
        for (const doc of docs) expectValidSplit(doc, size);
      });
    }
  });
});

// A small seeded generator (mulberry32) so failures reproduce.
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function generateDocument(seed: number): string {
  const random = rng(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo + 1));
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  const word = (lo = 1, hi = 10): string =>
    Array.from({ length: int(lo, hi) }, () => pick([...letters])).join('');
  const cjk = [...'東京都の天気は晴れですが明日雨降るでしょう設定画面から変更してください'];
  const emoji = ['👩‍💻', '👨‍👩‍👧‍👦', '🏳️‍🌈', '🇩🇪', '👍🏽', '❤️', 'é', 'ñ'];
  const inline = (): string => {
    const r = random();
    if (r < 0.04) return word(120, 400);
    if (r < 0.1) return `[${word()} ${word()} ${word()}](https://example.com/${word(3, 12)})`;
    if (r < 0.12) return `[${word()}](https://example.com/${word(150, 300)})`;
    if (r < 0.15) return `<https://example.com/${word(5, 30)}>`;
    if (r < 0.18) return `\`${word()} ${word()}\``;
    if (r < 0.21) return `**${word()} ${word()}**`;
    if (r < 0.24) return pick(emoji).repeat(int(1, 3));
    if (r < 0.26) return '&amp;';
    return word();
  };
  const sentence = (): string =>
    `${Array.from({ length: int(3, 15) }, inline).join(' ')}${pick(['.', '.', '?', '!', ':'])}`;
  const block = (): string => {
    const r = random();
    if (r < 0.35) return Array.from({ length: int(1, 8) }, sentence).join(pick([' ', ' ', '\n']));
    if (r < 0.45) {
      return Array.from({ length: int(1, 6) }, () => {
        const run = Array.from({ length: int(5, 60) }, () => pick(cjk)).join('');
        return random() < 0.8 ? `${run}。` : run.repeat(int(1, 8));
      }).join('');
    }
    if (r < 0.5) return Array.from({ length: int(5, 60) }, () => pick(emoji)).join(random() < 0.5 ? '' : ' ');
    if (r < 0.6) {
      let depth = 0;
      return Array.from({ length: int(2, 8) }, (_, i) => {
        depth = i === 0 ? 0 : int(0, Math.min(2, depth + 1));
        return `${'    '.repeat(depth)}${pick(['-', '*', '1.'])} ${Array.from({ length: int(1, 12) }, inline).join(' ')}`;
      }).join('\n');
    }
    if (r < 0.7) {
      const cols = int(2, 4);
      const row = (): string => `| ${Array.from({ length: cols }, () => word()).join(' | ')} |`;
      return [row(), `|${' --- |'.repeat(cols)}`, ...Array.from({ length: int(1, 20) }, row)].join('\n');
    }
    if (r < 0.85) {
      const [open, close] = pick([
        ['```bash', '```'],
        ['```', '```'],
        ['~~~python', '~~~'],
        ['````md', '````'],
      ] as const);
      const lines = Array.from({ length: int(1, 40) }, () => {
        const k = random();
        if (k < 0.08) return '';
        if (k < 0.14) return `$ ${word(150, 260)}`;
        return `${'  '.repeat(int(0, 3))}${word()} --${word()}=${word()} ${pick(['<in', '> out', '&&', '| grep', ''])}`;
      });
      return [open, ...lines, close].join('\n');
    }
    if (r < 0.92) return `${'#'.repeat(int(1, 3))} ${word()} ${word()}`;
    return Array.from({ length: int(1, 4) }, sentence).join('\n');
  };
  return Array.from({ length: int(8, 30) }, block).join('\n\n');
}

// ---------------------------------------------------------------------------------------------------------

describe('markdownToMrkdwn', () => {
  it('converts emphasis, links, headings and lists', () => {
    expect(markdownToMrkdwn('Some **bold**, *italic*, _also_ and ~~gone~~ text.')).toBe(
      'Some *bold*, _italic_, _also_ and ~gone~ text.',
    );
    expect(
      markdownToMrkdwn('See [the guide](https://help.example.com/a?x=1&y=2) or <https://example.com>.'),
    ).toBe('See <https://help.example.com/a?x=1&amp;y=2|the guide> or <https://example.com>.');
    expect(markdownToMrkdwn('# Moving **a** workspace\n\nText')).toBe('*Moving a workspace*\n\nText');
    expect(markdownToMrkdwn('- one\n- two\n  - nested **b**\n- [x] done\n\n3. three\n4. four')).toBe(
      '• one\n• two\n    • nested *b*\n☑ done\n\n3. three\n4. four',
    );
    expect(markdownToMrkdwn('[relative](/docs/a) and ![logo](https://img.example.com/l.png)')).toBe(
      'relative and <https://img.example.com/l.png|logo>',
    );
    expect(markdownToMrkdwn('[ref link][r]\n\n[r]: https://ref.example.com "Title"')).toBe(
      '<https://ref.example.com|ref link>',
    );
    expect(markdownToMrkdwn('> quoted\n>\n> more')).toBe('> quoted\n>\n> more');
  });

  it('escapes &, < and > in text, so nothing can mention or link', () => {
    expect(markdownToMrkdwn('a < b && c > d, <!channel> and <@U123>')).toBe(
      'a &lt; b &amp;&amp; c &gt; d, &lt;!channel&gt; and &lt;@U123&gt;',
    );
    expect(escapeMrkdwn('<&>')).toBe('&lt;&amp;&gt;');
    expect(mrkdwnLink('https://x.example/?a=1&b=<2>|3', 'A & B')).toBe(
      '<https://x.example/?a=1&amp;b=%3C2%3E%7C3|A &amp; B>',
    );
    expect(mrkdwnLink('https://x.example', 'https://x.example')).toBe('<https://x.example>');
  });

  it('leaves code untouched apart from the three escapes', () => {
    const code = 'echo "**not bold**" [x](y) _u_\n  indented <in >out && done\n\n# not a heading';
    expect(markdownToMrkdwn(`Run:\n\n\`\`\`bash\n${code}\n\`\`\``)).toBe(
      'Run:\n\n```\necho "**not bold**" [x](y) _u_\n  indented &lt;in &gt;out &amp;&amp; done\n\n# not a heading\n```',
    );
    expect(markdownToMrkdwn('Use `**x** <y>` here')).toBe('Use `**x** &lt;y&gt;` here');
    // Code inside a list item stays flush left, so list indentation never enters the code.
    expect(markdownToMrkdwn('1. Step:\n\n   ```sh\n   ls -la\n   ```')).toBe('1. Step:\n```\nls -la\n```');
  });

  it('renders a table as aligned columns inside a code block', () => {
    expect(markdownToMrkdwn('| Plan | Price |\n|:--|--:|\n| Free & open | 0 |\n| Pro | 12 |')).toBe(
      '```\nPlan        | Price\n------------+------\nFree &amp; open |     0\nPro         |    12\n```',
    );
  });
});
