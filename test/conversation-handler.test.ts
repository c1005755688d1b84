import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ConversationHandler,
  ESCALATION_FAILED_TEXT,
  escalationText,
  HUMAN_COMING_TEXT,
  NO_ESCALATION_TARGET_TEXT,
} from '../bot/conversation/handler.ts';
import type { IncomingMessage, ReplyChannel } from '../bot/conversation/types.ts';
import { ESCALATE_TEXT } from '../core/answer.ts';
import { SqliteStateStore } from '../core/state-store/sqlite.ts';
import type { Turn } from '../core/types.ts';
import { makeAnswerResult } from './helpers/answer-result.ts';

const result = makeAnswerResult;

/** A ReplyChannel that records what would be posted and hands out Slack-like keys. */
function recorder() {
  const posts: { kind: string; text: string; keys?: string[] }[] = [];
  let ts = 0;
  const channel: ReplyChannel = {
    async postAnswer(_m, r) {
      const keys = [`C1:${++ts}.0`, `C1:${++ts}.0`];
      posts.push({ kind: 'answer', text: r.text, keys });
      return keys;
    },
    async postText(_m, text) {
      posts.push({ kind: 'text', text });
    },
    async notifyEscalation(target, _m, reason) {
      posts.push({ kind: 'escalation', text: `${target.channelId}: ${reason}` });
    },
  };
  return { posts, channel };
}

const msg = (over: Partial<IncomingMessage> = {}): IncomingMessage => ({
  platform: 'slack',
  messageKey: 'C1:100.0',
  workspaceId: 'T1',
  channelId: 'C1',
  threadKey: 'C1:100.0',
  userId: 'U1',
  text: 'how do I reset my password?',
  isDirect: false,
  ...over,
});

describe('ConversationHandler', () => {
  let tmp: string;
  let stateA: SqliteStateStore;
  let stateB: SqliteStateStore;
  beforeEach(() => {
    tmp = mkdtempSync(path.join(tmpdir(), 'supportbot-handler-'));
    stateA = SqliteStateStore.open(path.join(tmp, 'state.sqlite'));
    stateB = SqliteStateStore.open(path.join(tmp, 'state.sqlite'));
  });
  afterEach(async () => {
    await stateA.close();
    await stateB.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  const make = (
    state: SqliteStateStore,
    answer = async (q: string, _h: Turn[]) => result(`answer to ${q}`),
    limits = {},
  ) =>
    new ConversationHandler({
      answer,
      state,
      log: pino({ level: 'silent' }),
      limits,
      escalationFor: () => ({ channelId: 'ESC' }),
    });

  it('two replicas receiving one message three times answer it exactly once', async () => {
    const rec = recorder();
    const a = make(stateA);
    const b = make(stateB);
    const outcomes = await Promise.all([a, b, a, b, a, b].map((h) => h.handleMessage(msg(), rec.channel)));
    expect(outcomes.filter((o) => o.kind === 'answered')).toHaveLength(1);
    expect(outcomes.filter((o) => o.kind === 'duplicate')).toHaveLength(5);
    expect(rec.posts.filter((p) => p.kind === 'answer')).toHaveLength(1);
  });

  it('maps every posted message to the answer; a changed rating counts once; other messages are ignored', async () => {
    const rec = recorder();
    const h = make(stateA);
    const out = await h.handleMessage(msg(), rec.channel);
    if (out.kind !== 'answered') throw new Error(out.kind);
    const [first, last] = rec.posts[0]?.keys ?? [];
    // After a "restart": a second handler on another connection resolves the reaction.
    const restarted = make(stateB);
    await restarted.handleRating({ platform: 'slack', messageKey: last as string, userId: 'U1', value: 1 });
    await restarted.handleRating({
      platform: 'slack',
      messageKey: last as string,
      userId: 'U1',
      value: null,
      onlyIfCurrent: 1,
    });
    await restarted.handleRating({ platform: 'slack', messageKey: first as string, userId: 'U1', value: -1 });
    await restarted.handleRating({ platform: 'slack', messageKey: last as string, userId: 'U2', value: 1 });
    // Removing a 👍 that is no longer the current rating leaves the 👎 alone.
    await restarted.handleRating({
      platform: 'slack',
      messageKey: last as string,
      userId: 'U1',
      value: null,
      onlyIfCurrent: 1,
    });
    expect(await stateA.ratingSummary(out.answerId)).toEqual({ up: 1, down: 1 });
    expect(
      await restarted.handleRating({ platform: 'slack', messageKey: 'C1:999.0', userId: 'U1', value: 1 }),
    ).toEqual({ kind: 'ignored' });
    expect((await stateA.getAnswer(out.answerId))?.messageKeys).toEqual([first, last]);
  });

  it('passes the thread history to follow-ups and escalates when the asker writes again after a 👎', async () => {
    const rec = recorder();
    const seen: Turn[][] = [];
    const h = make(stateA, async (q, history) => {
      seen.push(history);
      return result(`answer to ${q}`);
    });
    const first = await h.handleMessage(msg(), rec.channel);
    if (first.kind !== 'answered') throw new Error(first.kind);
    await h.handleRating({
      platform: 'slack',
      messageKey: rec.posts[0]?.keys?.[0] as string,
      userId: 'U1',
      value: -1,
    });
    const second = await h.handleMessage(
      msg({ messageKey: 'C1:101.0', text: 'that did not work' }),
      rec.channel,
    );
    expect(second).toMatchObject({ kind: 'answered', escalated: true });
    expect(seen[1]?.map((t) => t.role)).toEqual(['user', 'assistant']);
    expect(rec.posts.some((p) => p.kind === 'escalation' && p.text.startsWith('ESC:'))).toBe(true);
  });

  it('maps each message as it is posted: a post that fails half-way keeps the posted part rateable', async () => {
    const h = make(stateA, async () => result('A long answer in two messages.'));
    let ratedDuringPost: { kind: string } | null = null;
    const failing: ReplyChannel = {
      async postAnswer(_m, _r, _id, onPosted) {
        await onPosted?.('C1:first.0');
        // A reaction on the first message while the second is being posted already counts.
        ratedDuringPost = await h.handleRating({
          platform: 'slack',
          messageKey: 'C1:first.0',
          userId: 'U2',
          value: 1,
        });
        throw new Error('chat.postMessage failed: msg_too_long');
      },
      async postText() {},
      async notifyEscalation() {},
    };
    const outcome = await h.handleMessage(msg(), failing);
    expect(outcome.kind).toBe('failed');
    expect(ratedDuringPost).toMatchObject({ kind: 'recorded' });
    const answerId = await stateA.answerForMessage('slack', 'C1:first.0');
    expect(answerId).not.toBeNull();
    expect((await stateA.getAnswer(answerId as string))?.messageKeys).toEqual(['C1:first.0']);
    expect(await stateA.ratingSummary(answerId as string)).toMatchObject({ up: 1, down: 0 });
  });

  it('drain() waits for a message claimed just before close(), so a claimed message is never dropped', async () => {
    let releaseClaim: () => void = () => {};
    const claimGate = new Promise<void>((r) => {
      releaseClaim = r;
    });
    // A state store whose claim is slow (a remote Redis): the message is between "claimed" and "answering".
    const slowState = new Proxy(stateA, {
      get(target, prop) {
        if (prop === 'claimEvent') {
          return async (key: string, ttl: number) => {
            const first = await target.claimEvent(key, ttl);
            await claimGate;
            return first;
          };
        }
        const value = Reflect.get(target, prop, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const h = make(slowState);
    const { posts, channel } = recorder();
    const handled = h.handleMessage(msg(), channel);
    h.close();
    let drained = false;
    const drain = h.drain().then(() => {
      drained = true;
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(drained).toBe(false);
    releaseClaim();
    await drain;
    expect(posts.filter((p) => p.kind === 'answer')).toHaveLength(1);
    expect((await handled).kind).toBe('answered');
    // After close(), new messages are not claimed, so another replica can answer them.
    expect(await h.handleMessage(msg({ messageKey: 'C1:200.0' }), channel)).toEqual({
      kind: 'ignored',
      reason: 'shutting down',
    });
    expect(await stateA.claimEvent('msg:slack:C1:200.0', 1000)).toBe(true);
  });

  it('escalation: the asker is told what happens next, never promised a person nobody was asked for', async () => {
    expect(escalationText(ESCALATE_TEXT, true)).toBe(ESCALATE_TEXT);
    expect(escalationText(ESCALATE_TEXT, false)).toBe(NO_ESCALATION_TARGET_TEXT);
    expect(escalationText('Refunds need a person.', true)).toBe(
      `Refunds need a person.\n\n${HUMAN_COMING_TEXT}`,
    );
    expect(escalationText('Refunds need a person.', false)).toBe(
      `Refunds need a person.\n\n${NO_ESCALATION_TARGET_TEXT}`,
    );
    // A model escalation (its own text, not ESCALATE_TEXT) gets the notice; a failing notice
    // leaves the answer answered and tells the asker to reach out.
    const escalated = async () =>
      result('Refunds over $500 need a person.', { escalated: true, escalationReason: 'refund' });
    const h = make(stateA, escalated);
    const { posts, channel } = recorder();
    const failingNotice: ReplyChannel = {
      ...channel,
      async notifyEscalation() {
        throw new Error('not_in_channel');
      },
    };
    const outcome = await h.handleMessage(msg(), failingNotice);
    expect(outcome).toMatchObject({ kind: 'answered', escalated: true });
    expect(posts.map((p) => p.text)).toEqual([
      `Refunds over $500 need a person.\n\n${HUMAN_COMING_TEXT}`,
      ESCALATION_FAILED_TEXT,
    ]);
  });

  it('rate-limits a user politely and times out slow answers', async () => {
    const rec = recorder();
    const h = make(stateA, undefined, { perUser: 1 });
    await h.handleMessage(msg(), rec.channel);
    const limited = await h.handleMessage(msg({ messageKey: 'C1:102.0' }), rec.channel);
    expect(limited.kind).toBe('rate-limited');
    const slow = make(stateB, () => new Promise((r) => setTimeout(() => r(result('late')), 500)), {
      answerTimeoutMs: 50,
    });
    const out = await slow.handleMessage(msg({ messageKey: 'C1:103.0', userId: 'U9' }), rec.channel);
    expect(out).toEqual({ kind: 'failed', error: 'timeout' });
    expect(rec.posts.some((p) => p.text.includes('late'))).toBe(false);
  });
});
