import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExtractiveGenerator } from '../core/generators/extractive.ts';
import type { SqliteKnowledgeStore } from '../core/knowledge-store/sqlite.ts';
import { RedisStateStore } from '../core/state-store/redis.ts';
import { type Delivery, FakeSlackApi } from './fakes/slack-api.ts';
import {
  BOT_TOKEN,
  delayed,
  exampleKnowledge,
  type RunningSlackBot,
  sleep,
  startSlackBot,
  waitFor,
} from './fakes/slack-bot-harness.ts';
import { deleteRedisKeys, SKIP_REDIS, TEST_REDIS_URL } from './helpers/redis.ts';

// The slack-retry case (test/fixtures/cases/chat/slack-retry.CASE.md, /work/shared/cases/chat/) on two
// replicas sharing the real Redis on 127.0.0.1:6379, as CI runs it.
const REDIS_URL = TEST_REDIS_URL;
const SKIP = SKIP_REDIS;
const PREFIX = `supportbot-test:slack-retry:${process.pid}:${Date.now()}:`;
const CHANNEL = 'C0RETRY';
const GENERATION_MS = 5_000;

describe.skipIf(SKIP)(
  'slack-retry: slow answer, re-deliveries, app_mention + message, two replicas on one Redis',
  () => {
    let tmp: string;
    let knowledge: SqliteKnowledgeStore;
    let fake: FakeSlackApi;
    let stateA: RedisStateStore;
    let stateB: RedisStateStore;
    let a: RunningSlackBot;
    let b: RunningSlackBot;

    beforeAll(async () => {
      tmp = mkdtempSync(path.join(tmpdir(), 'supportbot-slack-retry-'));
      ({ knowledge } = await exampleKnowledge(path.join(tmp, 'kb.sqlite')));
      fake = await FakeSlackApi.start({ botToken: BOT_TOKEN });
      stateA = await RedisStateStore.connect(REDIS_URL, { keyPrefix: PREFIX });
      stateB = await RedisStateStore.connect(REDIS_URL, { keyPrefix: PREFIX });
      // The answer takes 5 s: longer than Slack's 3 s ack window, so Slack would re-deliver.
      const generator = delayed(new ExtractiveGenerator(), GENERATION_MS);
      a = await startSlackBot({ fake, knowledge, state: stateA, generator });
      b = await startSlackBot({ fake, knowledge, state: stateB, generator });
    });
    afterAll(async () => {
      await a?.stop();
      await b?.stop();
      await stateA?.close();
      await stateB?.close();
      await fake?.close();
      await knowledge?.close();
      await deleteRedisKeys(`${PREFIX}*`);
      rmSync(tmp, { recursive: true, force: true });
    });

    const mention = (ts: string, user: string, text: string) => ({
      type: 'app_mention',
      user,
      text: `<@UBOT> ${text}`,
      ts,
      channel: CHANNEL,
      event_ts: ts,
    });
    // With the message.channels subscription the same post also arrives as a `message` event, with
    // its own event_id.
    const message = (ts: string, user: string, text: string) => ({
      type: 'message',
      channel_type: 'channel',
      user,
      text: `<@UBOT> ${text}`,
      ts,
      channel: CHANNEL,
      event_ts: ts,
    });

    it('answers exactly once for any interleaving, and every ack is well within 3 s', async () => {
      const acks: Delivery[] = [];
      const send = async (p: Promise<Delivery>) => {
        const d = await p;
        acks.push(d);
        expect(d.status).toBe(200);
      };

      // Post 1: staggered like Slack: the first delivery, the `message` twin, then retries 1..3 (same
      // event_id, X-Slack-Retry-Num/-Reason) while the answer is still being generated, alternating
      // between the replicas; one more retry after the answer was posted.
      const ts1 = '1760001000.000100';
      const env1 = a.deliver.envelope(mention(ts1, 'U1', 'How do I reset my password?'));
      const twin1 = b.deliver.envelope(message(ts1, 'U1', 'How do I reset my password?'));
      const staggered = (async () => {
        await send(a.deliver.event(env1));
        await send(b.deliver.event(twin1));
        await sleep(1_000);
        await send(b.deliver.event(env1, { num: 1, reason: 'http_timeout' }));
        await sleep(1_000);
        await send(a.deliver.event(env1, { num: 2, reason: 'http_timeout' }));
        await sleep(1_200);
        await send(b.deliver.event(env1, { num: 3, reason: 'http_timeout' }));
      })();

      // Post 2: everything at the same instant on both replicas, the `message` twin first.
      const ts2 = '1760001000.000200';
      const env2 = b.deliver.envelope(mention(ts2, 'U2', 'How do I turn on two-factor authentication?'));
      const twin2 = a.deliver.envelope(message(ts2, 'U2', 'How do I turn on two-factor authentication?'));
      const burst = Promise.all([
        send(a.deliver.event(twin2)),
        send(b.deliver.event(twin2, { num: 1 })),
        send(a.deliver.event(env2)),
        send(b.deliver.event(env2)),
        send(a.deliver.event(env2, { num: 1 })),
        send(b.deliver.event(env2, { num: 2 })),
        send(a.deliver.event(env2, { num: 3 })),
      ]);
      await Promise.all([staggered, burst]);

      await waitFor(
        () => fake.thread(CHANNEL, ts1).length > 0 && fake.thread(CHANNEL, ts2).length > 0,
        GENERATION_MS + 10_000,
        'both answers',
      );
      // A late re-delivery after the answer was posted, to the replica that did not answer.
      await send(b.deliver.event(env1, { num: 3, reason: 'http_timeout' }));
      await send(a.deliver.event(twin2, { num: 2 }));
      await sleep(300);
      await Promise.all([a.handler.drain(), b.handler.drain()]);

      for (const ts of [ts1, ts2]) {
        const thread = fake.thread(CHANNEL, ts);
        expect(thread, `replies to ${ts}`).toHaveLength(1);
        expect(thread[0]?.blocks?.some((blk) => blk.type === 'actions')).toBe(true);
      }
      expect(fake.callsTo('chat.postMessage')).toHaveLength(2);
      const answers = await stateA.listAnswers();
      expect(answers.map((x) => x.threadId).sort()).toEqual([`${CHANNEL}:${ts1}`, `${CHANNEL}:${ts2}`]);
      expect(answers.every((x) => x.result.generator === `extractive+delay${GENERATION_MS}`)).toBe(true);
      expect(acks).toHaveLength(14);
      for (const d of acks) expect(d.ms).toBeLessThan(3000);
      // "Well within": the slowest ack is a small fraction of the window even with a 5 s answer running.
      expect(Math.max(...acks.map((d) => d.ms))).toBeLessThan(1000);
    });
  },
);
