import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ABSTAIN_TEXT, answer, citeArticles } from '../core/answer.ts';
import { SqliteKnowledgeStore } from '../core/knowledge-store/sqlite.ts';
import { assemblePrompt, systemPrompt } from '../core/prompt.ts';
import { SqliteStateStore } from '../core/state-store/sqlite.ts';
import { cl100kTokenizer } from '../core/tokenizer.ts';
import type { AnswerRecord, AnswerResult, Article, Chunk, Turn } from '../core/types.ts';
import {
  buildFeedbackDataset,
  collectFeedbackExamples,
  DatasetTooSmallError,
  DEFAULT_PROMPT_SETTINGS,
  finalizeDataset,
  splitOf,
  toContextMarkers,
} from '../training/dataset/build.ts';
import { sqliteChunkLookup } from '../training/dataset/chunks.ts';
import { ibanValid, looksLikeSecret, luhnValid, PII_KINDS, scrubPii } from '../training/dataset/pii.ts';
import { loadBitextSeed, loadSharedSeeds, parseCsv, seedFiles } from '../training/dataset/seeds.ts';
import { exportDataset } from '../training/export-data.ts';

const FIXTURES = path.join(import.meta.dirname, 'fixtures', 'training');
const SHARED_DATA = path.resolve(import.meta.dirname, '..', '..', 'shared', 'data');

describe('PII scrubber', () => {
  it('replaces emails, phone numbers and mentions with typed placeholders and counts them', () => {
    const r = scrubPii(
      'Write to jane.doe+billing@example.co.uk or ops@help.example.com, call +44 20 7946 0958, ' +
        '(555) 123-4567, 555.867.5309 or 030 1234 5678. Thanks <@U024BE7LH>, <@W12345678|sam>, ' +
        '<@123456789012345678>, <@!876543210987654321> and <!subteam^S0614TZR7|admins>.',
    );
    expect(r.text).toBe(
      'Write to {{EMAIL}} or {{EMAIL}}, call {{PHONE}}, {{PHONE}}, {{PHONE}} or {{PHONE}}. ' +
        'Thanks {{USER}}, {{USER}}, {{USER}}, {{USER}} and {{USER}}.',
    );
    expect(r.counts).toEqual({ email: 2, phone: 4, card: 0, iban: 0, secret: 0, mention: 5 });
  });

  it('replaces card numbers that pass Luhn and a network prefix, and leaves failing ones', () => {
    expect(luhnValid('4111111111111111')).toBe(true);
    expect(luhnValid('4111111111111112')).toBe(false);
    const valid = [
      '4111 1111 1111 1111', // Visa, spaces
      '5555-5555-5555-4444', // Mastercard, dashes
      '378282246310005', // Amex, no separators
      '3782 822463 10005', // Amex 4-6-5
      '6011111111111117', // Discover
      '2223003122003222', // Mastercard 2-series
    ];
    const invalid = [
      '4111 1111 1111 1112', // Luhn fails
      '5555555555554445', // Luhn fails
      '113542617735902', // an order number: no card network starts with 11
      '1234567812345670', // Luhn passes, no network
      '2024-05-01 12:00', // a date
    ];
    for (const n of valid) {
      const r = scrubPii(`pay with ${n} today`);
      expect(r.text, n).toBe('pay with {{CARD_NUMBER}} today');
      expect(r.counts.card, n).toBe(1);
    }
    for (const n of invalid) {
      const r = scrubPii(`ref ${n} today`);
      expect(r.text, n).toBe(`ref ${n} today`);
      expect(r.counts.card, n).toBe(0);
    }
  });

  it('replaces IBANs whose mod-97 check passes, with or without spaces, and leaves failing ones', () => {
    expect(ibanValid('DE89370400440532013000')).toBe(true);
    expect(ibanValid('DE89370400440532013001')).toBe(false);
    expect(ibanValid('GB82WEST12345698765432')).toBe(true);
    expect(ibanValid('GB82WEST1234569876543')).toBe(false); // one character short for GB
    const r = scrubPii(
      'IBAN DE89 3704 0044 0532 0130 00 IS mine; also GB82WEST12345698765432 and FR14 2004 1010 0505 0001 3M02 606.',
    );
    expect(r.text).toBe('IBAN {{IBAN}} IS mine; also {{IBAN}} and {{IBAN}}.');
    expect(r.counts.iban).toBe(3);
    const bad = 'not DE89 3704 0044 0532 0130 01 nor GB00WEST12345698765432';
    expect(scrubPii(bad)).toEqual({ text: bad, counts: { ...scrubPii('').counts } });
  });

  it('replaces tokens with known prefixes and random-looking strings, not long words, slugs or ids', () => {
    const tokens = [
      'sk-proj-4f9Kx2LmQ8vR7tYp3ZwN6bHc1DsA',
      'sk_live_51HqLyjWDarjtT1zdp7dc',
      'xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx',
      'ghp_16C7e42F292c6912E7710c838347Ae178B4a',
      'github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz',
      'glpat-xY9zT8wV7uS6rQ5pO4nM',
      'AKIAIOSFODNN7EXAMPLE',
      'AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY',
      'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U',
      'Zx8Qp2LmN7vRt4KwY9bHc3Ds', // no prefix: entropy
      '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08', // 64 hex
    ];
    for (const t of tokens) {
      const r = scrubPii(`key: ${t} end`);
      expect(r.text, t).toBe('key: {{SECRET}} end');
      expect(r.counts.secret, t).toBe(1);
    }
    const ordinary = [
      'internationalization',
      'Pneumonoultramicroscopicsilicovolcanoconiosis',
      'supercalifragilisticexpialidocious',
      'how-to-reset-your-password-in-2024',
      'ECDHE-RSA-AES128-GCM-SHA256',
      'com.ibm.cloud.cloudant.v1.model.AllDocsResult',
      'SoftLayer_Network_LBaaS_L7Policy',
      '123e4567-e89b-12d3-a456-426614174000',
      'https://help.example.com/articles/360001234567-How-to-reset-2fa/img/a8f3e9c1b2d4f6a7e8c9.png',
    ];
    for (const w of ordinary) {
      if (!w.startsWith('https:')) expect(looksLikeSecret(w), w).toBe(false);
      expect(scrubPii(`see ${w} now`).text, w).toBe(`see ${w} now`);
    }
    // In a URL only a credential-named query value is a secret.
    expect(scrubPii('https://api.example.com/v1/items?token=Zx8Qp2LmN7vRt4KwY9bHc3Ds&page=2').text).toBe(
      'https://api.example.com/v1/items?token={{SECRET}}&page=2',
    );
    expect(scrubPii('Authorization: Bearer abcDEF123456ghiJKL789').text).toBe(
      'Authorization: Bearer {{SECRET}}',
    );
  });

  it('replaces the phone, card, IBAN and token forms a reviewer found it missing, leaving no visible tail', () => {
    const cases: [string, string][] = [
      ['1-555-123-4567', '{{PHONE}}'], // North American with the leading 1
      ['1 (555) 123-4567', '{{PHONE}}'],
      ['1.555.123.4567', '{{PHONE}}'],
      ['07911 123456', '{{PHONE}}'], // UK mobile
      ['0151 12345678', '{{PHONE}}'], // DE mobile
      ['06 12 34 56 78', '{{PHONE}}'], // FR
      ['01.23.45.67.89', '{{PHONE}}'], // FR with dots
      ['4111.1111.1111.1111', '{{CARD_NUMBER}}'], // dots
      ['4111  1111  1111  1111', '{{CARD_NUMBER}}'], // double spaces
      ['5555--5555--5555--4444', '{{CARD_NUMBER}}'],
      ['DE89-3704-0044-0532-0130-00', '{{IBAN}}'], // dashes
      ['de89 3704 0044 0532 0130 00', '{{IBAN}}'], // lower case
      ['gb82west12345698765432', '{{IBAN}}'],
      ['xoxe-1-AbCdEf123456', '{{SECRET}}'], // Slack refresh token (too short for the entropy rule)
      ['xoxe.xoxp-1-AbCdEf12345', '{{SECRET}}'], // Slack rotating user token
      ['AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWYxyz', '{{SECRET}}'], // no tail left of a longer key
    ];
    for (const [input, expected] of cases) {
      const r = scrubPii(`call ${input} now`);
      expect(r.text, input).toBe(`call ${expected} now`);
    }
  });

  it('does not take numbers, dates, versions, prices or ids for phone or card numbers', () => {
    const texts = [
      'Order #113542617735902 shipped; invoice INV-2024-000123 for $1,234.56 (EUR 1.234,56).',
      'Released 2024-05-01 12:00:00, version 10.2.3.4 and 1.2.3; build 2024.05.01.1234.',
      'Ticket 4111 1111 1111 1112 is not a card (Luhn); neither is 1234 5678 1234 5670.',
      'Totals: 1 234 567 units, 12 345 678 bytes, 100 200 300 400 records.',
      'Between 9-17 on weekdays, 1-2 days, pages 10-12, items 1 2 3 4 5 6 7 8 9.',
      'Serial 2024 05 01 12 00 and ISBN 978-3-16-148410-0.',
    ];
    for (const text of texts) expect(scrubPii(text).text, text).toBe(text);
  });

  it('leaves ordinary support text alone', () => {
    const text =
      'Order #113542617735902 shipped on 2024-05-01 at 10:30; version 1.2.3 on 192.168.1.20. Call us on weekdays, 9-17.';
    expect(scrubPii(text)).toEqual({ text, counts: scrubPii('').counts });
  });
});

// ── The dataset from rated answers in a real SQLite state store ──────────────────────────────────

function article(id: string, title: string): Article {
  return {
    id,
    source: 'docs',
    title,
    url: `https://help.example/${id}`,
    sourcePath: `${id}.md`,
    body: '',
    updatedAt: '2026-01-01T00:00:00.000Z',
    tags: [],
    accessGroups: [],
    locale: 'en',
  };
}

function chunk(articleId: string, index: number, text: string, headingPath: string[] = []): Chunk {
  return {
    id: `docs:${articleId}#${index}`,
    articleId,
    source: 'docs',
    index,
    headingPath,
    text,
    tokenCount: cl100kTokenizer.count(text),
    span: { start: 0, end: text.length },
  };
}

const ARTICLES: [Article, Chunk[]][] = [
  [
    article('billing/refunds', 'Refunds'),
    [
      chunk(
        'billing/refunds',
        0,
        'Refunds are issued to the original card within 5 business days of approval.',
        ['Refund timing'],
      ),
      chunk(
        'billing/refunds',
        1,
        'To request a refund, open Billing, choose the invoice and press Request refund.',
        ['Requesting a refund'],
      ),
    ],
  ],
  [
    article('account/password', 'Resetting your password'),
    [
      chunk(
        'account/password',
        0,
        'To reset your password, open Settings, choose Security and press Reset password. The reset link expires after one hour.',
      ),
    ],
  ],
  [
    article('account/delete', 'Deleting your account'),
    [
      chunk(
        'account/delete',
        0,
        'Deleting your account removes all projects. Support staff can delete it for you.',
      ),
    ],
  ],
];

describe('dataset from rated answers (SQLite state and knowledge stores)', () => {
  let tmp: string;
  let file: string;
  let knowledge: SqliteKnowledgeStore;
  let state: SqliteStateStore;
  let n = 0;

  beforeEach(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'supportbot-dataset-'));
    file = path.join(tmp, 'supportbot.sqlite');
    knowledge = SqliteKnowledgeStore.open(file);
    state = SqliteStateStore.open(file);
    for (const [a, chunks] of ARTICLES) await knowledge.upsertArticle(a, chunks, `hash-${a.id}`);
    n = 0;
  });
  afterEach(async () => {
    await knowledge.close();
    await state.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  /** Answers with the real `answer()` (extractive) and records it as the conversation handler does. */
  async function ask(
    question: string,
    thread: string,
    over: { result?: Partial<AnswerResult>; history?: Turn[] } = {},
  ): Promise<{ record: AnswerRecord; result: AnswerResult }> {
    const result = {
      ...(await answer(question, {
        store: knowledge,
        topK: 3,
        abstainThreshold: 0,
        maxAnswerChars: 900,
        history: over.history ?? [],
      })),
      ...over.result,
    };
    const { retrieved, ...rest } = result;
    const record: AnswerRecord = {
      id: `a${++n}`,
      platform: 'slack',
      threadId: thread,
      userId: 'U-asker',
      question,
      result: { ...rest, retrievedChunkIds: retrieved.map((h) => h.chunk.id) },
      createdAt: new Date(Date.UTC(2026, 0, 1, 10, n)).toISOString(),
    };
    await state.saveAnswer(record);
    return { record, result };
  }

  const rate = async (id: string, ...values: (1 | -1)[]) => {
    for (const [i, v] of values.entries()) await state.setRating(id, `U${i}`, v);
  };

  it('turns 👍 answers into SFT examples in the exact generator prompt, 👎 into KTO undesirables, confirmed escalations into escalation examples', async () => {
    const first = await ask('How do I request a refund? My email is jane@example.com', 'T1');
    await rate(first.record.id, 1, 1, -1); // net +1
    // A follow-up in the same thread: its prompt carries the first exchange as history.
    const follow = await ask('And how long does the refund take?', 'T1', {
      history: [
        { role: 'user', text: first.record.question },
        { role: 'assistant', text: first.record.result.text },
      ],
    });
    await rate(follow.record.id, 1);
    const bad = await ask('how do I reset my password', 'T2');
    await rate(bad.record.id, -1, -1);
    const escalated = await ask('please delete my account, card 4111 1111 1111 1111', 'T3', {
      result: {
        text: 'I can not delete accounts myself.',
        citations: [],
        escalated: true,
        escalationReason: 'account deletion needs staff',
      },
    });
    await rate(escalated.record.id, 1);
    const unconfirmed = await ask('I want a human', 'T4', {
      result: {
        text: 'Someone will help.',
        citations: [],
        escalated: true,
        escalationReason: 'asked for a human',
      },
    });
    const tied = await ask('refund for invoice', 'T5');
    await rate(tied.record.id, 1, -1);
    const fallback = await ask('refund please', 'T6', {
      result: { fallback: { from: 'llama-cpp:x', code: 'llm_timeout', reason: 'slow' } },
    });
    await rate(fallback.record.id, 1);
    const abstained = await ask('what is the meaning of life', 'T7', {
      result: { text: ABSTAIN_TEXT, citations: [], abstained: true },
    });
    await rate(abstained.record.id, 1);
    void unconfirmed;

    const chunks = sqliteChunkLookup(file);
    try {
      const { raw, read, skipped } = await collectFeedbackExamples({ state, chunks });
      expect(read).toBe(8);
      expect(skipped).toEqual({
        unrated: 1,
        'tied rating': 1,
        'extractive fallback after an LLM failure': 1,
      });
      const byOrigin = new Map(raw.map((r) => [r.origin, r]));
      const settings = DEFAULT_PROMPT_SETTINGS;

      // The prompt is exactly what the generator assembles from the same question, history and chunks.
      const sft = byOrigin.get(`answer:${first.record.id}`);
      expect(sft?.kind).toBe('sft');
      expect(sft?.label).toBe(true);
      const expected = assemblePrompt({
        question: first.record.question,
        history: [],
        contexts: first.result.retrieved,
        maxChars: settings.maxChars,
        contextWindow: settings.contextWindow,
        reserveForReply: settings.reserveForReply,
        tokenizer: settings.tokenizer,
      }).messages;
      expect(sft?.prompt).toEqual(expected);
      expect(sft?.prompt[0]?.content).toBe(systemPrompt(undefined, 900));
      // The reply's markers are context numbers again: citing them reproduces the recorded answer.
      expect(first.record.result.citations.length).toBeGreaterThan(0);
      expect(citeArticles(sft?.completion ?? '', first.result.retrieved).text).toBe(first.record.result.text);

      const followUp = byOrigin.get(`answer:${follow.record.id}`);
      expect(followUp?.prompt.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user']);
      expect(followUp?.prompt[1]?.content).toBe(first.record.question);
      expect(followUp?.prompt).toEqual(
        assemblePrompt({
          question: follow.record.question,
          history: [
            { role: 'user', text: first.record.question },
            { role: 'assistant', text: first.record.result.text },
          ],
          contexts: follow.result.retrieved,
          maxChars: settings.maxChars,
          contextWindow: settings.contextWindow,
          reserveForReply: settings.reserveForReply,
          tokenizer: settings.tokenizer,
        }).messages,
      );

      expect(byOrigin.get(`answer:${bad.record.id}`)).toMatchObject({ kind: 'undesirable', label: false });
      expect(byOrigin.get(`answer:${escalated.record.id}`)).toMatchObject({
        kind: 'escalation',
        label: true,
        completion: 'I can not delete accounts myself.\n\nESCALATE: account deletion needs staff',
      });
      expect(byOrigin.get(`answer:${abstained.record.id}`)).toMatchObject({
        kind: 'sft',
        completion: ABSTAIN_TEXT,
      });

      // Scrubbed, split and exported: no original PII anywhere on disk.
      const dataset = finalizeDataset(raw, { read, skipped });
      expect(dataset.stats.kinds).toEqual({ sft: 3, escalation: 1, undesirable: 1 });
      expect(dataset.stats.pii.email).toBe(2); // the question, and again as history of the follow-up
      expect(dataset.stats.pii.card).toBe(1);
      const out = path.join(tmp, 'export');
      const summary = exportDataset(dataset, out);
      expect(summary.files.map((f) => path.relative(out, f.path)).sort()).toEqual([
        'chat/train.jsonl',
        'chat/validation.jsonl',
        'dataset.json',
        'examples.jsonl',
        'prompt-completion/train.jsonl',
        'prompt-completion/validation.jsonl',
      ]);
      const all = summary.files.map((f) => readFileSync(f.path, 'utf8')).join('\n');
      expect(all).not.toContain('jane@example.com');
      expect(all).not.toContain('4111 1111 1111 1111');
      expect(all).toContain('{{EMAIL}}');
      expect(all).toContain('{{CARD_NUMBER}}');
      // chat: desirable only, ending with the reply; prompt-completion: all, with labels.
      const lines = (f: string) =>
        readFileSync(path.join(out, f), 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l));
      const chat = [...lines('chat/train.jsonl'), ...lines('chat/validation.jsonl')];
      expect(chat).toHaveLength(4);
      for (const c of chat) expect(c.messages.at(-1).role).toBe('assistant');
      const pc = [...lines('prompt-completion/train.jsonl'), ...lines('prompt-completion/validation.jsonl')];
      expect(pc).toHaveLength(5);
      expect(pc.filter((l) => l.label === false)).toHaveLength(1);
      expect(pc[0].completion[0].role).toBe('assistant');
      expect(pc[0].prompt[0].role).toBe('system');
    } finally {
      await chunks.close();
    }
  });

  it('skips answers whose chunks are gone from the knowledge store, and says so', async () => {
    const a = await ask('how do I reset my password', 'T1');
    await rate(a.record.id, 1);
    const b = await ask('how do I request a refund', 'T2');
    await rate(b.record.id, 1);
    await knowledge.deleteArticles('docs', ['account/password']);
    const chunks = sqliteChunkLookup(file);
    try {
      const { raw, skipped } = await collectFeedbackExamples({ state, chunks });
      expect(a.record.result.retrievedChunkIds).toContain('docs:account/password#0');
      const affected = [a, b].filter((x) =>
        x.record.result.retrievedChunkIds.includes('docs:account/password#0'),
      );
      expect(skipped['retrieved chunks no longer in the knowledge store']).toBe(affected.length);
      expect(raw).toHaveLength(2 - affected.length);
    } finally {
      await chunks.close();
    }
  });

  it('dedupes, splits by a hash of the example (stable as data grows), and refuses too little data with a clear message', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      // Two threads ask the same thing and get the same answer: one example.
      const x = await ask(`how do I request refund number ${i}`, `T${i}`);
      const y = await ask(`how do I request refund number ${i}`, `U${i}`);
      await rate(x.record.id, 1);
      await rate(y.record.id, 1);
      ids.push(x.record.id);
    }
    const chunks = sqliteChunkLookup(file);
    try {
      const once = await buildFeedbackDataset({ state, chunks, minExamples: 0, validationFraction: 0.3 });
      expect(once.stats.duplicates).toBe(6);
      expect(once.examples).toHaveLength(6);
      expect(once.stats.validation).toBeGreaterThanOrEqual(1);
      for (const e of once.examples)
        if (e.split !== splitOf(e.id, 0.3)) expect(once.stats.validation).toBe(1); // only the forced one
      const again = await buildFeedbackDataset({ state, chunks, minExamples: 0, validationFraction: 0.3 });
      expect(again.hash).toBe(once.hash);
      expect(again.examples.map((e) => [e.id, e.split])).toEqual(once.examples.map((e) => [e.id, e.split]));

      const err = await buildFeedbackDataset({ state, chunks, minExamples: 10 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DatasetTooSmallError);
      expect((err as Error).message).toMatch(/6 usable 👍-rated answers/);
      expect((err as Error).message).toMatch(/at least 10 needed: 4 more 👍-rated answers needed/);
    } finally {
      await chunks.close();
    }
  });

  it('maps per-article citation numbers back to context numbers', () => {
    const record = {
      result: {
        text: 'Open Billing [1]. It takes 5 days [2]. See `a[1]` in code.',
        citations: [
          { n: 1, chunkIds: ['docs:b#1'] },
          { n: 2, chunkIds: ['docs:a#0', 'docs:a#3'] },
        ],
        retrievedChunkIds: ['docs:a#3', 'docs:b#1', 'docs:a#0'],
      },
    } as unknown as AnswerRecord;
    expect(toContextMarkers(record)).toBe('Open Billing [2]. It takes 5 days [3]. See `a[1]` in code.');
  });
});

// ── Seed loaders on the fixture and on the shared data ───────────────────────────────────────────

describe('seed loaders', () => {
  it('parse RFC 4180 CSV with quoted commas, quotes and line breaks', () => {
    expect(parseCsv('a,b\r\n"x, y","he said ""hi""\nthen left"\n1,\n')).toEqual([
      ['a', 'b'],
      ['x, y', 'he said "hi"\nthen left'],
      ['1', ''],
    ]);
  });

  it('load the Bitext fixture: escalation intents end with the ESCALATE line, PII is scrubbed', () => {
    const raw = loadBitextSeed(path.join(FIXTURES, 'bitext-sample.csv'));
    expect(raw.map((r) => r.kind)).toEqual(['sft', 'escalation', 'escalation']);
    expect(raw[1]?.completion).toMatch(/\n\nESCALATE: the customer asked for a human agent$/);
    expect(raw[0]?.prompt.at(-1)?.content).toContain('(no sources)');
    const d = finalizeDataset(raw, { read: raw.length });
    const text = JSON.stringify(d.examples);
    expect(text).not.toContain('max@example.org');
    expect(text).not.toContain('+1 415 555 0142');
    expect(d.stats.pii.email).toBe(1);
    expect(d.stats.pii.phone).toBe(1);
  });

  const shared = seedFiles(SHARED_DATA);
  const present = existsSync(SHARED_DATA) && shared.bitext && shared.mtrag && shared.feedbackqa.length > 0;
  describe.skipIf(!present)(`on the shared data (${SHARED_DATA})`, () => {
    it('load Bitext, MTRAG and FeedbackQA and scrub the real text', () => {
      const { raw, counts } = loadSharedSeeds(SHARED_DATA);
      expect(counts.bitext).toBe(4514);
      expect(counts.mtrag).toBeGreaterThan(400);
      expect(counts.feedbackqa).toBeGreaterThan(1000);
      const d = finalizeDataset(raw, { read: raw.length });
      console.log(
        `seed dataset: ${JSON.stringify(counts)}; ${d.examples.length} examples (${d.stats.train} train, ${d.stats.validation} validation), kinds ${JSON.stringify(d.stats.kinds)}, duplicates ${d.stats.duplicates}, PII ${PII_KINDS.map((k) => `${k} ${d.stats.pii[k]}`).join(', ')}`,
      );
      // Bitext's contact_human_agent (161) and complaint (156) rows are the escalation examples.
      expect(d.stats.kinds.escalation).toBe(317);
      expect(d.stats.kinds.undesirable).toBeGreaterThan(100);
      // MTRAG's government pages list public phone numbers and addresses: found and replaced.
      expect(d.stats.pii.phone).toBeGreaterThan(50);
      expect(d.stats.pii.email).toBeGreaterThan(20);
      // After scrubbing nothing the scrubber recognises is left.
      for (const e of d.examples) {
        const again = scrubPii([...e.prompt.map((m) => m.content), e.completion].join('\n'));
        expect(
          Object.values(again.counts).every((c) => c === 0),
          e.origin,
        ).toBe(true);
      }
    });
  });
  if (!present) {
    it.skip(`shared data absent at ${SHARED_DATA}: the real-text seed test is skipped`, () => {});
  }
});
