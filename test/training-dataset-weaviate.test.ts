/**
 * The feedback dataset built through the runtime (`training/service.ts#feedbackDatasetOf`) while
 * the knowledge store is Weaviate (`KNOWLEDGE_STORE=weaviate`, here the local Weaviate-speaking
 * fake): the rated answers' chunks come from Weaviate, not from the SQLite file beside the state.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Runtime } from '../bot/runtime.ts';
import { answer } from '../core/answer.ts';
import { configSchema } from '../core/config.ts';
import { WeaviateKnowledgeStore } from '../core/knowledge-store/weaviate.ts';
import type { KnowledgeStore } from '../core/knowledge-store.ts';
import { assemblePrompt } from '../core/prompt.ts';
import type { AnswerRecord, AnswerResult } from '../core/types.ts';
import { collectFeedbackExamples, DEFAULT_PROMPT_SETTINGS } from '../training/dataset/build.ts';
import { knowledgeStoreChunkLookup, sqliteChunkLookup } from '../training/dataset/chunks.ts';
import { feedbackDatasetOf, promptSettingsOf } from '../training/service.ts';
import { makeArticle, makeChunks } from './contract/knowledge-store.contract.ts';
import { type FakeWeaviate, startFakeWeaviate } from './fakes/weaviate/server.ts';

let fake: FakeWeaviate;
let tenants = 0;
beforeAll(async () => {
  fake = await startFakeWeaviate();
});
afterAll(async () => {
  expect(fake?.unhandled).toEqual([]);
  await fake?.close();
});

const ARTICLES = [
  {
    article: makeArticle({ id: 'billing/refunds', title: 'Refunds' }),
    texts: [
      'To request a refund, open Billing and choose Request refund on the invoice.',
      'Refunds reach your card within five business days.',
    ],
  },
  {
    article: makeArticle({ id: 'account/password', title: 'Resetting your password' }),
    texts: ['Reset your password from the sign-in page with Forgot password.'],
  },
];

describe('feedback dataset with KNOWLEDGE_STORE=weaviate (fake Weaviate)', () => {
  let tmp: string;
  let rt: Runtime;
  let n = 0;

  beforeEach(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'supportbot-dataset-weaviate-'));
    // The production path: Runtime.open picks Weaviate from the config; state stays in SQLite.
    rt = await Runtime.open(
      configSchema.parse({
        dataDir: tmp,
        log: { level: 'silent' },
        sources: [],
        knowledgeStore: {
          type: 'weaviate',
          weaviate: { url: fake.url, grpcUrl: fake.grpcUrl, tenant: `dataset${++tenants}` },
        },
      }),
    );
    expect(rt.knowledge).toBeInstanceOf(WeaviateKnowledgeStore);
    for (const { article, texts } of ARTICLES) {
      await rt.knowledge.upsertArticle(article, makeChunks(article, texts), `hash-${article.id}`);
    }
    n = 0;
  });
  afterEach(async () => {
    await rt.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  /** Answers with the real `answer()` over the Weaviate store and records it as the handler does. */
  async function ask(
    question: string,
    thread: string,
  ): Promise<{ record: AnswerRecord; result: AnswerResult }> {
    const result = await answer(question, {
      store: rt.knowledge,
      topK: 3,
      abstainThreshold: 0,
      maxAnswerChars: 900,
      history: [],
    });
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
    await rt.state.saveAnswer(record);
    return { record, result };
  }

  it('builds examples from rated answers with the chunks Weaviate holds, in the exact generator prompt', async () => {
    const refund = await ask('How do I request a refund?', 'T1');
    await rt.state.setRating(refund.record.id, 'U1', 1);
    const password = await ask('how do I reset my password', 'T2');
    await rt.state.setRating(password.record.id, 'U1', -1);
    const unrated = await ask('how long do refunds take', 'T3');
    void unrated;
    expect(refund.record.result.retrievedChunkIds.length).toBeGreaterThan(0);
    expect(password.record.result.retrievedChunkIds.length).toBeGreaterThan(0);

    const dataset = await feedbackDatasetOf(rt, { minExamples: 0 });
    expect(dataset.stats.read).toBe(3);
    expect(dataset.stats.skipped).toEqual({ unrated: 1 });
    expect(dataset.stats.kinds).toEqual({ sft: 1, escalation: 0, undesirable: 1 });
    const byOrigin = new Map(dataset.examples.map((e) => [e.origin, e]));
    const settings = { ...DEFAULT_PROMPT_SETTINGS, ...promptSettingsOf(rt) };
    // The prompt is the one the generator assembled from the same chunks at answer time.
    expect(byOrigin.get(`answer:${refund.record.id}`)?.prompt).toEqual(
      assemblePrompt({
        question: refund.record.question,
        history: [],
        contexts: refund.result.retrieved,
        maxChars: settings.maxChars,
        contextWindow: settings.contextWindow,
        reserveForReply: settings.reserveForReply,
        tokenizer: settings.tokenizer,
        tone: settings.tone,
      }).messages,
    );
    expect(byOrigin.get(`answer:${refund.record.id}`)?.prompt.at(-1)?.content).toContain(
      'Refunds reach your card within five business days.',
    );
    expect(byOrigin.get(`answer:${password.record.id}`)).toMatchObject({ kind: 'undesirable', label: false });

    // The SQLite file beside the state holds no chunks: reading it (the old wiring, still what
    // `sqliteChunkLookup` does) finds none and skips every rated answer.
    const fromFile = sqliteChunkLookup(path.join(tmp, 'supportbot.sqlite'));
    try {
      const { raw, skipped } = await collectFeedbackExamples({ state: rt.state, chunks: fromFile });
      expect(raw).toEqual([]);
      expect(skipped['retrieved chunks no longer in the knowledge store']).toBe(2);
    } finally {
      await fromFile.close();
    }
  });

  it('skips the answers whose chunks a re-sync removed from Weaviate, and only those', async () => {
    const refund = await ask('How do I request a refund?', 'T1');
    await rt.state.setRating(refund.record.id, 'U1', 1);
    const password = await ask('how do I reset my password', 'T2');
    await rt.state.setRating(password.record.id, 'U1', 1);
    const gone = 'docs:account/password#0';
    expect(password.record.result.retrievedChunkIds).toContain(gone);
    await rt.knowledge.deleteArticles('docs', ['account/password']);

    const affected = [refund, password].filter((x) => x.record.result.retrievedChunkIds.includes(gone));
    const dataset = await feedbackDatasetOf(rt, { minExamples: 0 });
    expect(dataset.stats.skipped).toEqual({
      'retrieved chunks no longer in the knowledge store': affected.length,
    });
    expect(dataset.examples.map((e) => e.origin).sort()).toEqual(
      [refund, password].filter((x) => !affected.includes(x)).map((x) => `answer:${x.record.id}`),
    );
  });

  it('the lookup asks the store once per answer and leaves the runtime’s store open', async () => {
    const lookup = knowledgeStoreChunkLookup(rt.knowledge);
    const before = fake.calls.get('Search') ?? 0;
    const got = await lookup.get(['docs:billing/refunds#1', 'docs:missing#0', 'docs:billing/refunds#0']);
    expect((fake.calls.get('Search') ?? 0) - before).toBe(1);
    expect([...got.keys()]).toEqual(['docs:billing/refunds#1', 'docs:billing/refunds#0']);
    expect(got.get('docs:billing/refunds#0')).toMatchObject({
      title: 'Refunds',
      articleId: 'billing/refunds',
    });
    expect((await lookup.get([])).size).toBe(0);
    await lookup.close();
    expect((await rt.knowledge.stats()).chunks).toBe(3);
  });

  it('a store without getChunks is refused with a clear error, not an empty dataset', () => {
    const bare = { id: 'bare:test' } as unknown as KnowledgeStore;
    expect(() => knowledgeStoreChunkLookup(bare)).toThrow(
      expect.objectContaining({ code: 'store-unsupported', message: expect.stringContaining('bare:test') }),
    );
  });
});
