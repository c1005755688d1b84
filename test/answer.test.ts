import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ABSTAIN_TEXT, answer, citeArticles, retrievalConfidence, retrievalQuery } from '../core/answer.ts';
import { wantsHuman } from '../core/escalation.ts';
import type { Generator } from '../core/generator.ts';
import { ExtractiveGenerator, splitBlocks } from '../core/generators/extractive.ts';
import { SqliteKnowledgeStore } from '../core/knowledge-store/sqlite.ts';
import { termsByCompound } from '../core/text.ts';
import { cl100kTokenizer } from '../core/tokenizer.ts';
import type { Article, SearchHit } from '../core/types.ts';
import { chunkArticle } from '../sync/chunker.ts';
import { articleHash } from '../sync/sync.ts';

const chunking = { maxTokens: 200, overlapTokens: 0, tokenizer: cl100kTokenizer };

function article(id: string, title: string, body: string, extra: Partial<Article> = {}): Article {
  return {
    id,
    source: 'kb',
    title,
    url: `https://help.example/${id}`,
    sourcePath: `${id}.md`,
    body,
    updatedAt: '2026-01-01T00:00:00.000Z',
    tags: [],
    accessGroups: [],
    locale: 'en',
    ...extra,
  };
}

const ARTICLES = [
  article(
    'reset-password',
    'Reset your password',
    'Open the sign-in page and choose **Forgot password**. Enter your account email; the reset link expires after 30 minutes.\n\nIf the email does not arrive, check your spam folder.',
  ),
  article(
    'shipping-times',
    'Delivery times and costs',
    'Delivery times depend on the service:\n\n| Country | Service | Days | Cost |\n|---|---|---:|---:|\n| Portugal | Standard | 5 | €4 |\n| Portugal | Express | 2 | €12 |\n| Spain | Express | 1 | €10 |\n| Italy | Standard | 4 | €5 |',
  ),
  article(
    'api-keys',
    'Create an API key',
    'Go to **Settings → API** and press **New key**. Use it in the header:\n\n```bash\n# keep the key secret\ncurl -H "Authorization: Bearer $KEY" https://api.example.com/v1/invoices\n```\n\nKeys can be revoked at any time.',
  ),
  article(
    'two-factor',
    'Two-factor authentication',
    '## Turn on two-factor authentication\n\nOpen **Security** and select **Set up**, then scan the QR code.\n\n## Turn off two-factor authentication\n\nOpen **Security** and select **Turn off**, then confirm with a code.',
  ),
  article(
    'internal-refunds',
    'Refund approval (staff)',
    'Refunds above €500 need approval from a team lead.',
    {
      accessGroups: ['staff'],
    },
  ),
];

describe('answer()', () => {
  let tmp: string;
  let store: SqliteKnowledgeStore;
  const opts = () => ({ store, topK: 5, abstainThreshold: 0.4, maxAnswerChars: 900 });

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'supportbot-answer-'));
    store = SqliteKnowledgeStore.open(path.join(tmp, 'kb.sqlite'));
    for (const a of ARTICLES)
      await store.upsertArticle(a, chunkArticle(a, chunking), articleHash(a, chunking));
  });
  afterAll(async () => {
    await store.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('answers from the right article with a citation that resolves to it', async () => {
    const r = await answer('I forgot my password, how do I reset it?', opts());
    expect(r.abstained).toBe(false);
    expect(r.escalated).toBe(false);
    expect(r.citations[0]).toMatchObject({
      n: 1,
      articleId: 'reset-password',
      url: 'https://help.example/reset-password',
    });
    expect(r.text).toContain('Forgot password');
    expect(r.text).toMatch(/\[1\]/);
    expect(r.confidence).toBeGreaterThanOrEqual(0.4);
    expect(r.generator).toBe('extractive');
    // Every [n] in the text refers to an existing citation.
    for (const m of r.text.matchAll(/\[(\d+)\]/g))
      expect(Number(m[1])).toBeLessThanOrEqual(r.citations.length);
  });

  it('quotes the matching table rows with the header, not the whole table', async () => {
    const r = await answer('how long does express delivery to Portugal take and what does it cost', opts());
    expect(r.citations[0]?.articleId).toBe('shipping-times');
    expect(r.text).toContain('| Portugal | Express | 2 | €12 |');
    expect(r.text).toContain('| Country | Service | Days | Cost |');
    expect(r.text).not.toContain('Italy');
  });

  it('keeps code fences balanced and the intro line before a code block', async () => {
    const r = await answer('curl example with API key bearer header', opts());
    expect(r.citations[0]?.articleId).toBe('api-keys');
    expect((r.text.match(/```/g) ?? []).length % 2).toBe(0);
    expect(r.text).toContain('# keep the key secret');
  });

  it('tells "turn on" from "turn off"', async () => {
    const on = await answer('How do I turn on two-factor authentication?', opts());
    expect(on.text).toContain('Set up');
    expect(on.text).not.toContain('Turn off');
    const off = await answer('How do I turn off two-factor authentication?', opts());
    expect(off.text).toContain('Turn off');
  });

  it('abstains on questions the help center does not answer, offering a human', async () => {
    for (const q of [
      'What is the capital of Mongolia?',
      'Do you sell gift cards for birthdays?',
      'hello',
      '???',
      '',
    ]) {
      const r = await answer(q, opts());
      expect(r.abstained, q).toBe(true);
      expect(r.text).toBe(ABSTAIN_TEXT);
      expect(r.citations).toEqual([]);
    }
  });

  it('never shows restricted articles to askers outside their access group', async () => {
    const r = await answer('refund approval above €500 team lead', opts());
    expect(r.retrieved.some((h) => h.chunk.articleId === 'internal-refunds')).toBe(false);
    const staff = await answer('refund approval above €500 team lead', {
      ...opts(),
      filter: { accessGroups: ['staff'] },
    });
    expect(staff.citations[0]?.articleId).toBe('internal-refunds');
  });

  it('escalates when the asker asks for a human', async () => {
    const r = await answer('Can I talk to a human please?', opts());
    expect(r.escalated).toBe(true);
    expect(r.escalationReason).toBeTruthy();
    expect(r.abstained).toBe(false);
  });

  it('falls back to extractive when the generator fails, and says so', async () => {
    const broken: Generator = {
      id: 'llama-cpp:test',
      generate: async () => {
        throw new Error('model not loaded');
      },
    };
    const r = await answer('reset my password', { ...opts(), generator: broken });
    expect(r.abstained).toBe(false);
    expect(r.generator).toMatch(/^extractive \(fallback: llama-cpp:test failed: model not loaded\)$/);
    expect(r.text).toMatch(/language model is unavailable/);
    expect(r.citations[0]?.articleId).toBe('reset-password');
  });

  it('honours a generator escalation marker', async () => {
    const gen: Generator = {
      id: 'fake-llm',
      generate: async () => ({
        text: 'A person will help.',
        cited: [],
        escalate: { reason: 'billing dispute' },
      }),
    };
    const r = await answer('reset my password', { ...opts(), generator: gen });
    expect(r).toMatchObject({ escalated: true, escalationReason: 'billing dispute', citations: [] });
  });

  it('parses a trailing ESCALATE: line from any generator and hides it from the asker', async () => {
    const gen: Generator = {
      id: 'fake-llm',
      generate: async () => ({
        text: 'I can see a double charge here [1].\nESCALATE: billing dispute\n',
        cited: [1],
      }),
    };
    const r = await answer('reset my password', { ...opts(), generator: gen });
    expect(r).toMatchObject({ escalated: true, escalationReason: 'billing dispute' });
    expect(r.text).not.toMatch(/ESCALATE/);
  });

  it('never rewrites bracketed numbers inside quoted code or escaped in quoted prose', async () => {
    const gen: Generator = {
      id: 'fake-llm',
      generate: async () => ({
        text: 'Index it like `parts[2]`:\n\n```js\nconst x = parts[0];\n```\n\nSee \\[3\\] and [1].',
        cited: [1],
      }),
    };
    const r = await answer('reset my password', { ...opts(), generator: gen });
    expect(r.text).toContain('`parts[2]`');
    expect(r.text).toContain('const x = parts[0];');
    expect(r.text).toContain('\\[3\\]');
    expect(r.citations).toHaveLength(1);
  });

  it('uses the thread for weak follow-ups but searches a new topic on its own', async () => {
    expect(retrievalQuery('and on mobile?', [{ role: 'user', text: 'reset password' }])).toBe(
      'reset password\nand on mobile?',
    );
    expect(retrievalQuery('and on mobile?', [])).toBe('and on mobile?');
    const followUp = await answer('what if the link expired?', {
      ...opts(),
      history: [{ role: 'user', text: 'how do I reset my password' }],
    });
    expect(followUp.citations[0]?.articleId).toBe('reset-password');
    const switched = await answer('how do I create an API key?', {
      ...opts(),
      history: [{ role: 'user', text: 'how do I reset my password' }],
    });
    expect(switched.citations[0]?.articleId).toBe('api-keys');
  });
});

describe('citeArticles', () => {
  const hit = (id: string, articleId: string): SearchHit => ({
    rank: 1,
    score: 1,
    chunk: {
      id,
      articleId,
      source: 'kb',
      index: 0,
      headingPath: [],
      text: '',
      tokenCount: 0,
      span: { start: 0, end: 0 },
      title: articleId,
      url: null,
      sourcePath: `${articleId}.md`,
      tags: [],
      accessGroups: [],
      locale: 'en',
      updatedAt: '',
    },
  });

  it('numbers articles by first use, merges chunks of one article, and drops markers to unsupplied contexts', () => {
    const contexts = [hit('c1', 'a'), hit('c2', 'b'), hit('c3', 'a')];
    const { text, citations } = citeArticles(
      'B first [2]. Then A [1] and A again [3]. Made up [7]. A [link](x) [1]',
      contexts,
    );
    expect(text).toBe('B first [1]. Then A [2] and A again [2]. Made up . A [link](x) [2]');
    expect(citations.map((c) => [c.n, c.articleId, c.chunkIds])).toEqual([
      [1, 'b', ['c2']],
      [2, 'a', ['c1', 'c3']],
    ]);
  });
});

describe('wantsHuman', () => {
  it.each([
    ['Can I talk to a human?', true],
    ['connect me with an agent', true],
    ['I want to speak to a real person', true],
    ['how do I contact support?', false],
    ['How do I reset my password?', false],
    ['what does the human resources role do', false],
    ['I need to speak with someone', true],
    ['Talk to support please', true],
    ['human please', true],
    ['transfer me to a representative', true],
    ['How do I get a human-readable export of my data?', false],
    ['Can I give an agent access to my account?', false],
    ['I need to add a representative to our account', false],
    ['my team member cannot log in', false],
  ])('%s → %s', (q, expected) => expect(wantsHuman(q)).toBe(expected));
});

describe('splitBlocks', () => {
  it('keeps a loose list (blank lines between items, indented continuations) as one block', () => {
    const blocks = splitBlocks(
      'Steps:\n\n1. Open settings.\n\n2. Click **Mute**.\n\n   It turns grey.\n\n3. Done.\n\nAfter the list.',
    );
    expect(blocks.map((b) => b.kind)).toEqual(['prose', 'list', 'prose']);
    expect(blocks[1]?.text).toContain('1. Open settings.');
    expect(blocks[1]?.text).toContain('3. Done.');
    expect(blocks[1]?.text).toContain('It turns grey.');
  });

  it('keeps fenced code whole across blank lines and separates tables and lists', () => {
    const blocks = splitBlocks(
      'Intro:\n\n```py\n# a\n\nprint(1)\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- one\n- two',
    );
    expect(blocks.map((b) => b.kind)).toEqual(['prose', 'code', 'table', 'list']);
    expect(blocks[1]?.text).toBe('```py\n# a\n\nprint(1)\n```');
  });
});

describe('retrievalConfidence', () => {
  // Articles that share single words with off-topic questions, the way real help centers do
  // (Arduino's "End-of-Life" policy, a Stats API table with `country!=FR`).
  const OFF_TOPIC_ARTICLES = [
    article(
      'eol-policy',
      'Product End-of-Life policy',
      '## End-of-Life (EOL) transparency\n\nWe announce the End-of-Life of a board twelve months ahead. "End-of-Support" has the same meaning where applicable: no more firmware updates.',
    ),
    article(
      'vat-rates',
      'VAT rates by country',
      'We charge VAT by the country of your billing address:\n\n| Country | Rate |\n|---|---:|\n| France | 20% |\n| Germany | 19% |\n| Spain | 21% |',
    ),
    article(
      'two-factor-login',
      'Login security',
      'Turn on two-factor login from **Security**. Recovery codes let you sign in without your phone.',
    ),
    article(
      'firmware',
      'Update the firmware',
      'Open the updater, pick your board and press **Update firmware**.',
    ),
  ];
  let tmp: string;
  let store: SqliteKnowledgeStore;
  const confidence = async (q: string) => retrievalConfidence(store, q, await store.search(q, { k: 5 }));

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'supportbot-confidence-'));
    store = SqliteKnowledgeStore.open(path.join(tmp, 'kb.sqlite'));
    for (const a of OFF_TOPIC_ARTICLES)
      await store.upsertArticle(a, chunkArticle(a, chunking), articleHash(a, chunking));
  });
  afterAll(async () => {
    await store.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('does not count a word found only inside a hyphenated compound the question does not spell out', async () => {
    // "meaning" is in the EOL article and "life" only inside "End-of-Life": before this rule the
    // question covered every topic term of that hit and scored 1.
    expect(await confidence('What is the meaning of life?')).toBeLessThan(0.4);
    // The same article, asked about in its own words, is found: the compound's terms are all asked.
    expect(await confidence('what does end of life mean for my board?')).toBeGreaterThanOrEqual(0.4);
    expect(await confidence('how do I turn on two factor login?')).toBeGreaterThanOrEqual(0.4);
  });

  it('counts a hit half when it shares only one topic term with a multi-term question', async () => {
    // "France" is in the VAT table, "capital" nowhere: one shared word is not an answer.
    const offTopic = await confidence('What is the capital of France?');
    expect(offTopic).toBeGreaterThan(0);
    expect(offTopic).toBeLessThan(0.4);
    expect(await confidence('what is the VAT rate in France?')).toBeGreaterThanOrEqual(0.4);
    // A one-term question that matches is not halved.
    expect(await confidence('firmware?')).toBe(1);
  });

  it('answer() abstains on both off-topic questions', async () => {
    const opts = { store, topK: 5, abstainThreshold: 0.4, maxAnswerChars: 900 };
    for (const q of ['What is the meaning of life?', 'What is the capital of France?']) {
      const r = await answer(q, opts);
      expect(r.abstained, q).toBe(true);
      expect(r.text).toBe(ABSTAIN_TEXT);
    }
  });
});

describe('termsByCompound', () => {
  it('separates words that stand alone from hyphenated compounds', () => {
    const { free, compounds } = termsByCompound(
      'End-of-Life policy: the auto\u2010reply ends \u2013 life goes on',
    );
    expect(compounds).toEqual([
      ['end', 'life'],
      ['auto', 'repli'],
    ]);
    // U+2010 joins, the en dash U+2013 does not: "ends" and "life" stand alone; "of" is a stop word.
    expect([...free].sort()).toEqual(['end', 'goe', 'life', 'on', 'polici']);
  });
});

describe('ExtractiveGenerator passage choice', () => {
  /** One retrieved chunk of article `articleId`, as the store would return it. */
  const chunkHit = (
    articleId: string,
    title: string,
    text: string,
    headingPath: string[] = [],
  ): SearchHit => ({
    rank: 1,
    score: 1,
    chunk: {
      id: `${articleId}#0`,
      articleId,
      source: 'kb',
      index: 0,
      headingPath,
      text,
      tokenCount: 0,
      span: { start: 0, end: 0 },
      title,
      url: `https://help.example/${articleId}`,
      sourcePath: `${articleId}.md`,
      tags: [],
      accessGroups: [],
      locale: 'en',
      updatedAt: '',
    },
  });
  const quote = async (question: string, ...contexts: SearchHit[]) =>
    (await new ExtractiveGenerator().generate({ question, history: [], contexts, maxChars: 900 })).text;

  // The add section says "invite" and the remove section repeats "team member": term overlap
  // alone prefers the remove steps for "add a team member".
  const TEAM = chunkHit(
    'team',
    'Manage your team',
    [
      '## Inviting people',
      '1. Open **Team settings**.\n2. Click **Invite** and enter their email.',
      '## Removing a team member',
      '1. Open **Team settings** and find the team member.\n2. Click the member and select **Remove member**.',
    ].join('\n\n'),
  );

  it('quotes the section of the asked action, not its opposite (add vs remove)', async () => {
    const add = await quote('How do I add a team member?', TEAM);
    expect(add).toContain('Click **Invite**');
    expect(add).not.toContain('Remove member');
    const remove = await quote('How can I remove a member from my team?', TEAM);
    expect(remove).toContain('Remove member');
    expect(remove).not.toContain('Click **Invite**');
  });

  it('does not answer a plain request with the steps to undo it', async () => {
    const ctx = chunkHit(
      'outbound',
      'Outbound link tracking',
      [
        '## Enable outbound link tracking',
        'Open **Site settings** and switch on **Outbound links**.',
        '## Disable outbound link tracking',
        'Open **Site settings** and switch off **Outbound links** to stop tracking outbound link clicks.',
      ].join('\n\n'),
    );
    const text = await quote('How do I track outbound links?', ctx);
    expect(text).toContain('switch on');
    expect(text).not.toContain('switch off');
  });

  it('prefers the steps to an admonition or a list of links that mention the same words', async () => {
    const ctx = chunkHit(
      'import',
      'Google Analytics',
      [
        '## Import from Google Analytics',
        '- [Import Google Analytics data](#import)\n- [Imported data differences](#diff)',
        '> **Note:** Google Analytics data you imported cannot show the Exit Pages tab.',
        '1. Go to **Site settings → Imports**.\n2. Click **Google Analytics** and pick the property to import.',
      ].join('\n\n'),
    );
    const text = await quote('Can I import data from Google Analytics?', ctx);
    expect(text).toContain('pick the property to import');
    expect(text).not.toContain('Exit Pages');
    expect(text).not.toContain('](#diff)');
    expect(text).toMatch(/ \[1\]$/);
  });

  it('quotes a short note when nothing else in the article matches the question', async () => {
    const ctx = chunkHit(
      'limits',
      'Limits',
      'Plans differ in many ways.\n\n> **Note:** imports are limited to 10 properties per site.',
    );
    expect(await quote('How many properties can I import?', ctx)).toContain('10 properties');
  });

  it('skips a summary that restates the title in favour of the steps under the title', async () => {
    const ctx = chunkHit(
      'card',
      'Remove a payment method',
      'Learn how to remove a payment method from your account.\n\n1. Open **Billing**.\n2. Select the payment method and click **Delete**.',
    );
    expect(await quote('How do I remove a payment method?', ctx)).toContain('click **Delete**');
  });

  it('keeps the whole list within maxChars by dropping screenshot lines first', async () => {
    const steps = Array.from(
      { length: 6 },
      (_, i) =>
        `${i + 1}. Step ${i + 1} of removing the card from billing.\n   ![Screenshot ${i + 1}](https://img.example/${'x'.repeat(60)}-${i}.png)`,
    ).join('\n');
    const ctx = chunkHit('card', 'Remove a card', `## Remove a card\n\n${steps}`);
    const r = await new ExtractiveGenerator().generate({
      question: 'How do I remove a card?',
      history: [],
      contexts: [ctx],
      maxChars: 400,
    });
    expect(r.text.length).toBeLessThanOrEqual(400);
    expect(r.text).toContain('Step 6 of removing');
    expect(r.text).not.toContain('img.example');
  });
});
