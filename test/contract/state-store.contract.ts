import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SupportbotError } from '../../core/errors.ts';
import type { JobStatus, LockHandle, StateStore } from '../../core/state-store.ts';
import type { AnswerRecord, Turn } from '../../core/types.ts';

/** An answer record with sensible defaults; tests vary `id` and `createdAt`. */
export function makeAnswer(
  id: string,
  createdAt = '2024-05-01T10:00:00.000Z',
  overrides: Partial<AnswerRecord> = {},
): AnswerRecord {
  return {
    id,
    platform: 'slack',
    threadId: `T-${id}`,
    userId: 'U-asker',
    question: `Question ${id}?`,
    result: {
      text: 'Open Billing and choose Refund [1].',
      citations: [
        {
          n: 1,
          articleId: 'billing/refunds',
          source: 'docs',
          title: 'Refunds',
          url: 'https://help.example/refunds',
          sourcePath: 'billing/refunds.md',
          chunkIds: ['docs:billing/refunds#0'],
        },
      ],
      abstained: false,
      escalated: false,
      confidence: 0.82,
      generator: 'extractive',
      latencyMs: 12,
      retrievedChunkIds: ['docs:billing/refunds#0', 'docs:billing/invoices#2'],
    },
    createdAt,
    messageKeys: ['C1:1714557600.000100', 'C1:1714557600.000200'],
    ...overrides,
  };
}

export function makeJob(id: string, overrides: Partial<JobStatus> = {}): JobStatus {
  return { id, kind: 'sync', state: 'queued', startedAt: '2024-05-01T10:00:00.000Z', ...overrides };
}

export interface StateStoreContractOptions {
  /**
   * Another instance on the same data as `store`, with its own connection: a second bot replica,
   * or the bot after a restart. Must work after `store` was closed.
   */
  reopen(store: StateStore): Promise<StateStore>;
  /** Runs after each test, once every store it opened is closed: drop the test's data. */
  cleanup?(): Promise<void>;
}

/**
 * The behaviour every `StateStore` implementation must show. `make` returns a store on new, empty
 * data each time; `opts.reopen` a second instance on the same data. The suite closes every store
 * it opened after each test.
 *
 * Expiry tests use real time with TTLs of 50–150 ms and sleep past them; the SQLite suite tests
 * exact boundaries with a fake clock.
 */
export function describeStateStoreContract(
  name: string,
  make: () => Promise<StateStore>,
  opts: StateStoreContractOptions,
): void {
  describe(`StateStore contract: ${name}`, () => {
    const opened: StateStore[] = [];
    let store: StateStore;
    /** A second instance on `store`'s data (its own connection). */
    const sibling = async (of: StateStore = store): Promise<StateStore> => {
      const other = await opts.reopen(of);
      opened.push(other);
      return other;
    };
    /** Closes `store` and opens it again on the same data, as a restarted bot would. */
    const restart = async (): Promise<StateStore> => {
      await store.close();
      store = await sibling(store);
      return store;
    };

    beforeEach(async () => {
      store = await make();
      opened.push(store);
    });

    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close();
      await opts.cleanup?.();
    });

    describe('answers', () => {
      it('saves and returns an answer unchanged', async () => {
        const record = makeAnswer('a1', '2024-05-01T10:00:00.000Z', {
          result: { ...makeAnswer('x').result, adapter: 'tone-v3' },
        });
        await store.saveAnswer(record);
        expect(await store.getAnswer('a1')).toEqual(record);
        expect(await store.getAnswer('missing')).toBeNull();
      });

      it('saving the same id again replaces the record and keeps its ratings', async () => {
        await store.saveAnswer(makeAnswer('a1'));
        await store.setRating('a1', 'u1', 1);
        await store.saveAnswer(makeAnswer('a1', '2024-06-01T00:00:00.000Z', { question: 'Edited?' }));
        expect((await store.getAnswer('a1'))?.question).toBe('Edited?');
        expect(await store.ratingSummary('a1')).toEqual({ up: 1, down: 0 });
        const listed = await store.listAnswers();
        expect(listed.map((a) => [a.id, a.createdAt])).toEqual([['a1', '2024-06-01T00:00:00.000Z']]);
      });

      it('lists answers oldest first, since (inclusive), limit, newest first', async () => {
        await store.saveAnswer(makeAnswer('c', '2024-05-03T00:00:00.000Z'));
        await store.saveAnswer(makeAnswer('a', '2024-05-01T00:00:00.000Z'));
        await store.saveAnswer(makeAnswer('b', '2024-05-02T00:00:00.000Z'));
        await store.saveAnswer(makeAnswer('b2', '2024-05-02T00:00:00.000Z'));
        const ids = (records: AnswerRecord[]) => records.map((r) => r.id);

        expect(ids(await store.listAnswers())).toEqual(['a', 'b', 'b2', 'c']);
        expect(ids(await store.listAnswers({ since: '2024-05-02T00:00:00.000Z' }))).toEqual(['b', 'b2', 'c']);
        expect(ids(await store.listAnswers({ since: '2024-05-02T00:00:00.001Z' }))).toEqual(['c']);
        expect(ids(await store.listAnswers({ limit: 2 }))).toEqual(['a', 'b']);
        expect(ids(await store.listAnswers({ limit: 0 }))).toEqual([]);
        expect(ids(await store.listAnswers({ order: 'newest-first' }))).toEqual(['c', 'b2', 'b', 'a']);
        expect(ids(await store.listAnswers({ order: 'newest-first', limit: 2 }))).toEqual(['c', 'b2']);
        expect(
          ids(await store.listAnswers({ order: 'newest-first', since: '2024-05-02T00:00:00.000Z' })),
        ).toEqual(['c', 'b2', 'b']);
        expect(ids(await store.listAnswers({ since: '2030-01-01T00:00:00.000Z' }))).toEqual([]);
        expect((await store.listAnswers({ limit: 1 }))[0]).toEqual(
          makeAnswer('a', '2024-05-01T00:00:00.000Z'),
        );
      });

      it('keeps answers and ratings across a restart, visible to another instance', async () => {
        await store.saveAnswer(makeAnswer('a1'));
        await store.setRating('a1', 'u1', 1);
        await store.setRating('a1', 'u2', -1);
        const other = await sibling();
        expect(await other.getAnswer('a1')).toEqual(makeAnswer('a1'));
        await restart();
        expect(await store.getAnswer('a1')).toEqual(makeAnswer('a1'));
        expect(await store.ratingSummary('a1')).toEqual({ up: 1, down: 1 });
        expect(await store.setRating('a1', 'u1', 1)).toBe(1);
        expect(await store.ratingSummary('a1')).toEqual({ up: 1, down: 1 });
      });
    });

    describe('ratings', () => {
      beforeEach(async () => {
        await store.saveAnswer(makeAnswer('a1'));
        await store.saveAnswer(makeAnswer('a2'));
      });

      it('clearRatingIf retracts only the expected value, atomically across instances', async () => {
        await store.setRating('a1', 'u1', -1);
        expect(await store.clearRatingIf('a1', 'u1', 1)).toBe(false);
        expect(await store.ratingSummary('a1')).toEqual({ up: 0, down: 1 });
        expect(await store.clearRatingIf('a1', 'u1', -1)).toBe(true);
        expect(await store.ratingSummary('a1')).toEqual({ up: 0, down: 0 });
        expect(await store.clearRatingIf('a1', 'u1', -1)).toBe(false);
        expect(await store.clearRatingIf('missing', 'u1', 1)).toBe(false);
        // "remove 👍" and "add 👎" from two replicas at once: whatever the order, 👎 survives.
        const other = await sibling();
        for (let i = 0; i < 20; i++) {
          await store.setRating('a2', `u${i}`, 1);
          await Promise.all([other.clearRatingIf('a2', `u${i}`, 1), store.setRating('a2', `u${i}`, -1)]);
        }
        const summary = await store.ratingSummary('a2');
        // Each user ends with 👎 (clear ran first, then the set) or nothing only if the set ran
        // first and the clear then found 👎 and left it: never 👍, and never a lost 👎.
        expect(summary).toEqual({ up: 0, down: 20 });
        await expect(store.clearRatingIf('a1', 'u1', 2 as never)).rejects.toThrow(/rating/);
      });

      it('starts at zero', async () => {
        expect(await store.ratingSummary('a1')).toEqual({ up: 0, down: 0 });
        expect(await store.ratingSummary('unknown')).toEqual({ up: 0, down: 0 });
      });

      it('the same user rating twice counts once', async () => {
        expect(await store.setRating('a1', 'u1', 1)).toBeNull();
        expect(await store.setRating('a1', 'u1', 1)).toBe(1);
        expect(await store.setRating('a1', 'u1', 1)).toBe(1);
        expect(await store.ratingSummary('a1')).toEqual({ up: 1, down: 0 });
      });

      it('a rating can be changed and the change is not double-counted', async () => {
        await store.setRating('a1', 'u1', 1);
        expect(await store.setRating('a1', 'u1', -1)).toBe(1);
        expect(await store.ratingSummary('a1')).toEqual({ up: 0, down: 1 });
        expect(await store.setRating('a1', 'u1', 1)).toBe(-1);
        expect(await store.ratingSummary('a1')).toEqual({ up: 1, down: 0 });
      });

      it('a rating can be retracted; retracting twice is harmless', async () => {
        await store.setRating('a1', 'u1', -1);
        expect(await store.setRating('a1', 'u1', null)).toBe(-1);
        expect(await store.ratingSummary('a1')).toEqual({ up: 0, down: 0 });
        expect(await store.setRating('a1', 'u1', null)).toBeNull();
        expect(await store.ratingSummary('a1')).toEqual({ up: 0, down: 0 });
        expect(await store.setRating('a1', 'u1', 1)).toBeNull();
        expect(await store.ratingSummary('a1')).toEqual({ up: 1, down: 0 });
      });

      it('counts several users separately, per answer', async () => {
        await store.setRating('a1', 'u1', 1);
        await store.setRating('a1', 'u2', 1);
        await store.setRating('a1', 'u3', -1);
        await store.setRating('a2', 'u1', -1);
        await store.setRating('a1', 'u2', null);
        expect(await store.ratingSummary('a1')).toEqual({ up: 1, down: 1 });
        expect(await store.ratingSummary('a2')).toEqual({ up: 0, down: 1 });
      });

      it('rating an unknown answer is unknown-answer, and stores nothing', async () => {
        await expect(store.setRating('nope', 'u1', 1)).rejects.toBeInstanceOf(SupportbotError);
        await expect(store.setRating('nope', 'u1', 1)).rejects.toMatchObject({ code: 'unknown-answer' });
        await expect(store.setRating('nope', 'u1', null)).rejects.toMatchObject({ code: 'unknown-answer' });
        expect(await store.ratingSummary('nope')).toEqual({ up: 0, down: 0 });
      });

      it('rejects values other than 1, -1 and null', async () => {
        for (const value of [0, 2, '1', undefined]) {
          await expect(store.setRating('a1', 'u1', value as unknown as 1)).rejects.toMatchObject({
            code: 'invalid-rating',
          });
        }
        expect(await store.ratingSummary('a1')).toEqual({ up: 0, down: 0 });
      });

      it('two instances rating at once: nothing lost, nothing double-counted', async () => {
        const other = await sibling();
        const users = Array.from({ length: 50 }, (_, i) => `u${i}`);
        const value = (i: number) => (i % 2 === 0 ? 1 : -1);
        // Every user's rating arrives at both replicas at once (a button click and a reaction).
        const set = await Promise.all(
          users.flatMap((u, i) => [store.setRating('a1', u, value(i)), other.setRating('a1', u, value(i))]),
        );
        expect(await store.ratingSummary('a1')).toEqual({ up: 25, down: 25 });
        expect(await other.ratingSummary('a1')).toEqual({ up: 25, down: 25 });
        users.forEach((_, i) => {
          // Exactly one of the two calls saw "no rating before".
          expect([set[2 * i], set[2 * i + 1]].sort()).toEqual([value(i), null].sort());
        });

        // Both replicas retract the 👍s at once.
        const retracted = await Promise.all(
          users.flatMap((u, i) =>
            i % 2 === 0 ? [store.setRating('a1', u, null), other.setRating('a1', u, null)] : [],
          ),
        );
        expect(retracted.filter((r) => r === 1)).toHaveLength(25);
        expect(await other.ratingSummary('a1')).toEqual({ up: 0, down: 25 });
      });
    });

    describe('posted messages → answers', () => {
      it('maps every posted message to its answer; other messages map to nothing', async () => {
        await store.mapMessage('slack', 'C123:1700000000.0001', 'a1');
        await store.mapMessage('slack', 'C123:1700000000.0002', 'a1');
        await store.mapMessage('discord', '1234567890', 'a2');
        expect(await store.answerForMessage('slack', 'C123:1700000000.0001')).toBe('a1');
        expect(await store.answerForMessage('slack', 'C123:1700000000.0002')).toBe('a1');
        expect(await store.answerForMessage('discord', '1234567890')).toBe('a2');
        expect(await store.answerForMessage('slack', 'C123:1700000000.0003')).toBeNull();
        expect(await store.answerForMessage('slack', 'C999:1700000000.0001')).toBeNull();
        expect(await store.answerForMessage('discord', 'C123:1700000000.0001')).toBeNull();
        expect(await store.answerForMessage('slack', '1234567890')).toBeNull();
      });

      it('mapping a message again replaces its answer', async () => {
        await store.mapMessage('slack', 'C1:1.1', 'a1');
        await store.mapMessage('slack', 'C1:1.1', 'a1');
        expect(await store.answerForMessage('slack', 'C1:1.1')).toBe('a1');
        await store.mapMessage('slack', 'C1:1.1', 'a2');
        expect(await store.answerForMessage('slack', 'C1:1.1')).toBe('a2');
      });

      it('keeps platform and message key apart even when they contain colons', async () => {
        await store.mapMessage('a:b', 'c', 'first');
        await store.mapMessage('a', 'b:c', 'second');
        expect(await store.answerForMessage('a:b', 'c')).toBe('first');
        expect(await store.answerForMessage('a', 'b:c')).toBe('second');
      });

      it('survives a restart and is shared with other replicas (reaction on an old answer)', async () => {
        await store.saveAnswer(makeAnswer('a1'));
        await store.mapMessage('discord', '1111', 'a1');
        const other = await sibling();
        expect(await other.answerForMessage('discord', '1111')).toBe('a1');
        await restart();
        const answerId = await store.answerForMessage('discord', '1111');
        expect(answerId).toBe('a1');
        expect(await store.setRating(answerId ?? '', 'u1', 1)).toBeNull();
        expect(await other.ratingSummary('a1')).toEqual({ up: 1, down: 0 });
      });
    });

    describe('thread history', () => {
      const turn = (i: number): Turn => ({ role: i % 2 === 0 ? 'user' : 'assistant', text: `turn ${i}` });

      it('returns the last turns oldest first, capped at maxTurns', async () => {
        for (let i = 0; i < 7; i++) await store.appendTurn('slack:C1:1.1', turn(i), 4);
        expect(await store.threadHistory('slack:C1:1.1', 10)).toEqual([turn(3), turn(4), turn(5), turn(6)]);
        expect(await store.threadHistory('slack:C1:1.1', 2)).toEqual([turn(5), turn(6)]);
        expect(await store.threadHistory('slack:C1:1.1', 0)).toEqual([]);
      });

      it('keeps everything below the cap, and a smaller cap trims older turns', async () => {
        await store.appendTurn('k', turn(0), 10);
        await store.appendTurn('k', turn(1), 10);
        expect(await store.threadHistory('k', 10)).toEqual([turn(0), turn(1)]);
        await store.appendTurn('k', turn(2), 1);
        expect(await store.threadHistory('k', 10)).toEqual([turn(2)]);
      });

      it('keeps conversations apart; an unknown one is empty', async () => {
        await store.appendTurn('slack:C1:1.1', turn(0), 5);
        await store.appendTurn('discord:99', turn(1), 5);
        expect(await store.threadHistory('slack:C1:1.1', 5)).toEqual([turn(0)]);
        expect(await store.threadHistory('discord:99', 5)).toEqual([turn(1)]);
        expect(await store.threadHistory('discord:100', 5)).toEqual([]);
      });

      it('keeps text exactly (Unicode, newlines, JSON-looking text)', async () => {
        const text = 'Héllo 👋\n```json\n{"a": [1, 2]}\n```\n\u0000 end';
        await store.appendTurn('k', { role: 'assistant', text }, 5);
        expect(await store.threadHistory('k', 5)).toEqual([{ role: 'assistant', text }]);
      });

      it('is shared between instances and survives a restart', async () => {
        const other = await sibling();
        await store.appendTurn('k', turn(0), 3);
        await other.appendTurn('k', turn(1), 3);
        await Promise.all([store.appendTurn('k', turn(2), 3), other.appendTurn('k', turn(3), 3)]);
        expect(await other.threadHistory('k', 10)).toHaveLength(3);
        await restart();
        const history = await store.threadHistory('k', 10);
        expect(history).toHaveLength(3);
        expect(history[0]).toEqual(turn(1));
      });

      it('rejects a bad cap, limit or turn with invalid-argument', async () => {
        for (const maxTurns of [0, -1, 1.5, Number.NaN]) {
          await expect(store.appendTurn('k', turn(0), maxTurns)).rejects.toMatchObject({
            code: 'invalid-argument',
          });
        }
        for (const bad of [{ role: 'system', text: 'x' }, { role: 'user' }, null]) {
          await expect(store.appendTurn('k', bad as unknown as Turn, 5)).rejects.toMatchObject({
            code: 'invalid-argument',
          });
        }
        await expect(store.threadHistory('k', -1)).rejects.toMatchObject({ code: 'invalid-argument' });
        expect(await store.threadHistory('k', 10)).toEqual([]);
      });
    });

    describe('event claims', () => {
      it('the first claim wins; later ones lose; keys are independent', async () => {
        expect(await store.claimEvent('Ev1', 60_000)).toBe(true);
        expect(await store.claimEvent('Ev1', 60_000)).toBe(false);
        expect(await store.claimEvent('Ev1', 60_000)).toBe(false);
        expect(await store.claimEvent('Ev2', 60_000)).toBe(true);
      });

      it('50 parallel claims of one key from two instances: exactly one wins', async () => {
        const other = await sibling();
        const results = await Promise.all(
          Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? store : other).claimEvent('Ev-retry', 60_000)),
        );
        expect(results.filter((r) => r === true)).toHaveLength(1);
        expect(results.every((r) => typeof r === 'boolean')).toBe(true);
      });

      it('many keys claimed in parallel from two instances: each exactly once', async () => {
        const other = await sibling();
        const keys = Array.from({ length: 40 }, (_, i) => `Ev${i}`);
        const results = await Promise.all(
          keys.flatMap((k) => [
            store.claimEvent(k, 60_000),
            other.claimEvent(k, 60_000),
            store.claimEvent(k, 60_000),
          ]),
        );
        for (let i = 0; i < keys.length; i++) {
          expect(results.slice(3 * i, 3 * i + 3).filter((r) => r === true)).toHaveLength(1);
        }
      });

      it('a claim expires after ttlMs and can then be claimed again, once', async () => {
        expect(await store.claimEvent('Ev1', 60)).toBe(true);
        expect(await store.claimEvent('Ev1', 60)).toBe(false);
        await sleep(100);
        const other = await sibling();
        const again = await Promise.all([store.claimEvent('Ev1', 60_000), other.claimEvent('Ev1', 60_000)]);
        expect(again.filter(Boolean)).toHaveLength(1);
      });

      it('rejects a ttl that is not a positive integer', async () => {
        for (const ttl of [0, -5, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
          await expect(store.claimEvent('Ev1', ttl)).rejects.toMatchObject({ code: 'invalid-argument' });
        }
        expect(await store.claimEvent('Ev1', 1000)).toBe(true);
      });
    });

    describe('locks', () => {
      it('one holder at a time; release frees it; tokens are random', async () => {
        const first = await store.acquireLock('sync:docs', 60_000);
        expect(first).toMatchObject({ name: 'sync:docs', token: expect.stringMatching(/^[0-9a-f]{32}$/) });
        expect(await store.acquireLock('sync:docs', 60_000)).toBeNull();
        expect(await store.acquireLock('sync:other', 60_000)).not.toBeNull();
        expect(await store.releaseLock(first as LockHandle)).toBe(true);
        expect(await store.releaseLock(first as LockHandle)).toBe(false);
        const second = await store.acquireLock('sync:docs', 60_000);
        expect(second).not.toBeNull();
        expect(second?.token).not.toBe(first?.token);
      });

      it('only the owner’s token renews or releases', async () => {
        const held = (await store.acquireLock('L', 60_000)) as LockHandle;
        const forged: LockHandle = { name: 'L', token: '0'.repeat(32) };
        expect(await store.renewLock(forged, 60_000)).toBe(false);
        expect(await store.releaseLock(forged)).toBe(false);
        expect(await store.acquireLock('L', 60_000)).toBeNull();
        expect(await store.renewLock(held, 60_000)).toBe(true);
        expect(await store.releaseLock(held)).toBe(true);
      });

      it('two instances racing for one lock: exactly one wins', async () => {
        const other = await sibling();
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? store : other).acquireLock('retrain', 60_000)),
        );
        const winners = results.filter((r): r is LockHandle => r !== null);
        expect(winners).toHaveLength(1);
        // The winner's handle works from the other instance too: ownership is the token.
        const [winner] = winners;
        expect(await other.releaseLock(winner as LockHandle)).toBe(true);
      });

      it('an expired lock is free; the stale holder can neither renew nor release it', async () => {
        const stale = (await store.acquireLock('L', 50)) as LockHandle;
        expect(stale).not.toBeNull();
        await sleep(90);
        const other = await sibling();
        const fresh = await other.acquireLock('L', 60_000);
        expect(fresh).not.toBeNull();
        expect(await store.renewLock(stale, 60_000)).toBe(false);
        expect(await store.releaseLock(stale)).toBe(false);
        expect(await store.acquireLock('L', 60_000)).toBeNull();
        expect(await other.releaseLock(fresh as LockHandle)).toBe(true);
      });

      it('an expired lock nobody took cannot be renewed or released by its old holder', async () => {
        const held = (await store.acquireLock('L', 50)) as LockHandle;
        await sleep(90);
        expect(await store.renewLock(held, 60_000)).toBe(false);
        expect(await store.releaseLock(held)).toBe(false);
        expect(await store.acquireLock('L', 60_000)).not.toBeNull();
      });

      it('renewing extends the lock past its first ttl', async () => {
        const held = (await store.acquireLock('L', 150)) as LockHandle;
        await sleep(50);
        expect(await store.renewLock(held, 5_000)).toBe(true);
        await sleep(150);
        expect(await store.acquireLock('L', 60_000)).toBeNull();
        expect(await store.renewLock(held, 60_000)).toBe(true);
      });

      it('rejects a ttl that is not a positive integer', async () => {
        await expect(store.acquireLock('L', 0)).rejects.toMatchObject({ code: 'invalid-argument' });
        const held = (await store.acquireLock('L', 1000)) as LockHandle;
        await expect(store.renewLock(held, -1)).rejects.toMatchObject({ code: 'invalid-argument' });
        expect(await store.releaseLock(held)).toBe(true);
      });
    });

    describe('job status', () => {
      it('records, replaces and returns a job status', async () => {
        expect(await store.getJobStatus('j1')).toBeNull();
        await store.setJobStatus(makeJob('j1', { requestedBy: 'slack:U1' }));
        expect(await store.getJobStatus('j1')).toEqual(makeJob('j1', { requestedBy: 'slack:U1' }));
        const running = makeJob('j1', { state: 'running', progress: 0.4, message: '40 of 100 articles' });
        await store.setJobStatus(running);
        expect(await store.getJobStatus('j1')).toEqual(running);
        const done = makeJob('j1', {
          state: 'succeeded',
          progress: 1,
          finishedAt: '2024-05-01T10:05:00.000Z',
          requestedBy: 'slack:U1',
        });
        await store.setJobStatus(done);
        expect(await store.getJobStatus('j1')).toEqual(done);
        expect(await store.listJobs()).toEqual([done]);
      });

      it('lists newest first, by kind, with a limit', async () => {
        await store.setJobStatus(makeJob('s1', { startedAt: '2024-05-01T00:00:00.000Z' }));
        await store.setJobStatus(makeJob('r1', { kind: 'retrain', startedAt: '2024-05-02T00:00:00.000Z' }));
        await store.setJobStatus(makeJob('s2', { startedAt: '2024-05-03T00:00:00.000Z' }));
        await store.setJobStatus(makeJob('s3', { startedAt: '2024-05-03T00:00:00.000Z' }));
        const ids = (jobs: JobStatus[]) => jobs.map((j) => j.id);
        expect(ids(await store.listJobs())).toEqual(['s3', 's2', 'r1', 's1']);
        expect(ids(await store.listJobs({ kind: 'sync' }))).toEqual(['s3', 's2', 's1']);
        expect(ids(await store.listJobs({ kind: 'retrain' }))).toEqual(['r1']);
        expect(ids(await store.listJobs({ kind: 'export' }))).toEqual([]);
        expect(ids(await store.listJobs({ limit: 2 }))).toEqual(['s3', 's2']);
        expect(ids(await store.listJobs({ kind: 'sync', limit: 2 }))).toEqual(['s3', 's2']);
        expect(ids(await store.listJobs({ limit: 0 }))).toEqual([]);

        // A job whose startedAt changes moves in the listing.
        await store.setJobStatus(makeJob('s1', { startedAt: '2024-05-04T00:00:00.000Z', state: 'running' }));
        expect(ids(await store.listJobs())).toEqual(['s1', 's3', 's2', 'r1']);
      });

      it('finds the newest jobs of a rare kind among many', async () => {
        const startedAt = (i: number) => new Date(Date.UTC(2024, 0, 1) + i * 60_000).toISOString();
        for (let i = 0; i < 250; i++) {
          await store.setJobStatus(
            makeJob(`j${i}`, { kind: i % 25 === 0 ? 'retrain' : 'sync', startedAt: startedAt(i) }),
          );
        }
        const retrains = await store.listJobs({ kind: 'retrain', limit: 8 });
        expect(retrains.map((j) => j.id)).toEqual([
          'j225',
          'j200',
          'j175',
          'j150',
          'j125',
          'j100',
          'j75',
          'j50',
        ]);
        expect(await store.listJobs({ kind: 'retrain' })).toHaveLength(10);
        expect(await store.listJobs({ kind: 'sync' })).toHaveLength(240);
        expect(await store.listJobs()).toHaveLength(250);
      });

      it('is shared between instances', async () => {
        const other = await sibling();
        await store.setJobStatus(makeJob('j1', { state: 'running' }));
        expect(await other.getJobStatus('j1')).toEqual(makeJob('j1', { state: 'running' }));
        await other.setJobStatus(makeJob('j1', { state: 'failed', message: 'source unreachable' }));
        expect((await store.getJobStatus('j1'))?.state).toBe('failed');
      });

      it('rejects a job without id, kind or startedAt, with an unknown state or progress outside 0..1', async () => {
        const bad: Partial<JobStatus>[] = [
          { id: '' },
          { kind: '' },
          { startedAt: '' },
          { state: 'paused' as JobStatus['state'] },
          { progress: 1.5 },
          { progress: -0.1 },
          { progress: Number.NaN },
        ];
        for (const overrides of bad) {
          await expect(store.setJobStatus(makeJob('j1', overrides))).rejects.toMatchObject({
            code: 'invalid-argument',
          });
        }
        expect(await store.listJobs()).toEqual([]);
        await store.setJobStatus(makeJob('j1', { progress: 0 }));
        await store.setJobStatus(makeJob('j2', { progress: 1 }));
        expect(await store.listJobs()).toHaveLength(2);
      });
    });

    describe('rate tokens', () => {
      it('allows limit calls per window, then denies with the time left', async () => {
        for (let i = 0; i < 3; i++) {
          expect(await store.takeRateToken('user:slack:U1', 3, 60_000)).toEqual({
            allowed: true,
            retryAfterMs: 0,
          });
        }
        const denied = await store.takeRateToken('user:slack:U1', 3, 60_000);
        expect(denied.allowed).toBe(false);
        expect(denied.retryAfterMs).toBeGreaterThan(50_000);
        expect(denied.retryAfterMs).toBeLessThanOrEqual(60_000);
        expect((await store.takeRateToken('user:slack:U1', 3, 60_000)).allowed).toBe(false);
        expect((await store.takeRateToken('user:slack:U2', 3, 60_000)).allowed).toBe(true);
      });

      it('a new window starts after windowMs', async () => {
        expect((await store.takeRateToken('u', 1, 80)).allowed).toBe(true);
        const denied = await store.takeRateToken('u', 1, 80);
        expect(denied.allowed).toBe(false);
        expect(denied.retryAfterMs).toBeGreaterThan(0);
        expect(denied.retryAfterMs).toBeLessThanOrEqual(80);
        await sleep(denied.retryAfterMs + 40);
        expect(await store.takeRateToken('u', 1, 80)).toEqual({ allowed: true, retryAfterMs: 0 });
        expect((await store.takeRateToken('u', 1, 80)).allowed).toBe(false);
      });

      it('two instances share the count: exactly limit calls pass', async () => {
        const other = await sibling();
        const results = await Promise.all(
          Array.from({ length: 30 }, (_, i) =>
            (i % 2 === 0 ? store : other).takeRateToken('user:U1', 7, 60_000),
          ),
        );
        expect(results.filter((r) => r.allowed)).toHaveLength(7);
        expect(results.filter((r) => !r.allowed).every((r) => r.retryAfterMs > 0)).toBe(true);
      });

      it('rejects a limit or window that is not a positive integer', async () => {
        await expect(store.takeRateToken('u', 0, 1000)).rejects.toMatchObject({ code: 'invalid-argument' });
        await expect(store.takeRateToken('u', 1.5, 1000)).rejects.toMatchObject({ code: 'invalid-argument' });
        await expect(store.takeRateToken('u', 5, 0)).rejects.toMatchObject({ code: 'invalid-argument' });
        expect((await store.takeRateToken('u', 1, 1000)).allowed).toBe(true);
      });
    });

    describe('lifecycle', () => {
      it('every method throws store-closed after close; close is idempotent', async () => {
        const handle: LockHandle = { name: 'L', token: 'x' };
        await store.close();
        await store.close();
        const calls: [string, () => Promise<unknown>][] = [
          ['saveAnswer', () => store.saveAnswer(makeAnswer('a1'))],
          ['getAnswer', () => store.getAnswer('a1')],
          ['setRating', () => store.setRating('a1', 'u1', 1)],
          ['ratingSummary', () => store.ratingSummary('a1')],
          ['listAnswers', () => store.listAnswers()],
          ['mapMessage', () => store.mapMessage('slack', 'C1:1.1', 'a1')],
          ['answerForMessage', () => store.answerForMessage('slack', 'C1:1.1')],
          ['appendTurn', () => store.appendTurn('k', { role: 'user', text: 'hi' }, 5)],
          ['threadHistory', () => store.threadHistory('k', 5)],
          ['claimEvent', () => store.claimEvent('e', 1000)],
          ['acquireLock', () => store.acquireLock('L', 1000)],
          ['renewLock', () => store.renewLock(handle, 1000)],
          ['releaseLock', () => store.releaseLock(handle)],
          ['setJobStatus', () => store.setJobStatus(makeJob('j1'))],
          ['getJobStatus', () => store.getJobStatus('j1')],
          ['listJobs', () => store.listJobs()],
          ['takeRateToken', () => store.takeRateToken('u', 1, 1000)],
        ];
        for (const [method, call] of calls) {
          await expect(call(), method).rejects.toMatchObject({ code: 'store-closed' });
        }
      });

      it('has an id', () => {
        expect(store.id).toMatch(/^(sqlite|redis):./);
      });
    });
  });
}
