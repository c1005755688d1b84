import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RedisStateStore } from '../core/state-store/redis.ts';
import { SqliteStateStore } from '../core/state-store/sqlite.ts';
import type { StateStore } from '../core/state-store.ts';
import {
  lastSyncResults,
  type RunSync,
  runSyncJob,
  type Scheduler,
  startScheduler,
  syncLockName,
} from '../sync/scheduler.ts';
import type { SyncSummary } from '../sync/sync.ts';
import { deleteRedisKeys, SKIP_REDIS, TEST_REDIS_URL } from './helpers/redis.ts';

const REDIS_URL = TEST_REDIS_URL;
const runPrefix = `supportbot-test-scheduler:${process.pid}:${Date.now()}:`;
let counter = 0;

const summary = (source: string, extra: Partial<SyncSummary> = {}): SyncSummary => ({
  source,
  added: 1,
  updated: 0,
  unchanged: 2,
  deleted: 0,
  failed: 0,
  chunks: 3,
  seconds: 0.1,
  errors: [],
  swept: true,
  ...extra,
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A replica whose timer fires `ms` late (clock skew, a busy event loop): its store calls that
 * start a tick wait first. Without the tick claim it would take the lock after the punctual
 * replica's short run released it, and run the same tick again.
 */
function lagging(store: StateStore, ms: number): StateStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop === 'claimEvent' || prop === 'acquireLock') {
        return async (...args: unknown[]) => {
          await sleep(ms);
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** A sync that records which scheduled second it ran for and takes `ms`. */
function recordingSync(ms: number) {
  const runs: { source: string; slot: number | null; startedAt: number; replica?: string }[] = [];
  const make =
    (replica: string): RunSync =>
    async (source, context) => {
      runs.push({
        source,
        slot: context.scheduledAt ? Math.floor(context.scheduledAt.getTime() / 1000) : null,
        startedAt: Date.now(),
        replica,
      });
      await sleep(ms);
      return summary(source);
    };
  return { runs, make };
}

describe.skipIf(SKIP_REDIS)('scheduler on one Redis state store shared by two replicas', () => {
  let stores: StateStore[] = [];
  let schedulers: Scheduler[] = [];
  const open = async (prefix: string) => {
    const store = await RedisStateStore.connect(REDIS_URL, { keyPrefix: prefix, connectTimeoutMs: 2_000 });
    stores.push(store);
    return store;
  };
  beforeEach(() => {
    stores = [];
    schedulers = [];
  });
  afterEach(async () => {
    for (const s of schedulers) await s.stop();
    for (const s of stores) await s.close();
  });
  afterAll(async () => {
    await deleteRedisKeys(`${runPrefix}*`);
  });

  it('two schedulers with a 1-second cron run each tick exactly once', async () => {
    const prefix = `${runPrefix}${++counter}:`;
    const [a, b] = [await open(prefix), await open(prefix)];
    const { runs, make } = recordingSync(150);
    const sources = [
      { name: 'docs', schedule: '* * * * * *' },
      { name: 'zd', schedule: '*/2 * * * * *' },
    ];
    schedulers.push(startScheduler({ sources, state: a as StateStore, runSync: make('a') }));
    schedulers.push(startScheduler({ sources, state: lagging(b as StateStore, 400), runSync: make('b') }));
    await sleep(4_300);
    for (const s of schedulers) await s.stop();
    schedulers = [];

    const docs = runs.filter((r) => r.source === 'docs');
    const zd = runs.filter((r) => r.source === 'zd');
    // one run per tick: no scheduled second ran twice, across both replicas
    expect(new Set(docs.map((r) => r.slot)).size).toBe(docs.length);
    expect(new Set(zd.map((r) => r.slot)).size).toBe(zd.length);
    expect(docs.length).toBeGreaterThanOrEqual(4);
    expect(docs.length).toBeLessThanOrEqual(5);
    expect(zd.length).toBeGreaterThanOrEqual(2);
    expect(zd.length).toBeLessThanOrEqual(3);
    expect(zd.every((r) => (r.slot as number) % 2 === 0)).toBe(true);
    // both replicas' timers fired every tick; which one won varies, but every run left a job record
    const latest = await lastSyncResults(a as StateStore);
    expect(latest.get('docs')).toMatchObject({
      kind: 'sync',
      state: 'succeeded',
      message: expect.stringMatching(/^docs: 1 added/),
    });
    expect(latest.get('zd')?.state).toBe('succeeded');
    const jobs = await (b as StateStore).listJobs({ kind: 'sync' });
    expect(jobs.filter((j) => j.id.startsWith('sync:docs:'))).toHaveLength(docs.length);
    expect(jobs.every((j) => j.requestedBy === 'schedule')).toBe(true);
    console.log(
      `scheduler: 2 replicas, 1-s cron for 4.3 s → docs ran ${docs.length}× (replica a ${docs.filter((r) => r.replica === 'a').length}, b ${docs.filter((r) => r.replica === 'b').length}), zd ${zd.length}×`,
    );
  });

  it('a crashed holder blocks runs only until its lock expires; then the next tick runs', async () => {
    const prefix = `${runPrefix}${++counter}:`;
    const state = await open(prefix);
    // A replica took the lock and died: it never renews or releases.
    const crashed = await state.acquireLock(syncLockName('docs'), 2_000);
    expect(crashed).not.toBeNull();
    const crashedAt = Date.now();
    const { runs, make } = recordingSync(50);
    schedulers.push(
      startScheduler({ sources: [{ name: 'docs', schedule: '* * * * * *' }], state, runSync: make('a') }),
    );
    await sleep(4_200);
    expect(runs.length).toBeGreaterThanOrEqual(1);
    // nothing ran while the dead holder's lock was live
    expect(Math.min(...runs.map((r) => r.startedAt)) - crashedAt).toBeGreaterThanOrEqual(1_950);
    expect(await state.releaseLock(crashed as NonNullable<typeof crashed>)).toBe(false);
  });

  it('a long sync keeps its lock by renewal, so a manual sync is refused meanwhile', async () => {
    const state = await open(`${runPrefix}${++counter}:`);
    let release: () => void = () => undefined;
    const blocker = new Promise<void>((r) => {
      release = r;
    });
    const job = runSyncJob({
      state,
      source: 'docs',
      lockTtlMs: 300,
      runSync: async (source) => {
        await blocker;
        return summary(source);
      },
    });
    await sleep(900); // three TTLs: without renewal the lock would be gone
    expect(await runSyncJob({ state, source: 'docs', runSync: async (s) => summary(s) })).toEqual({
      status: 'busy',
    });
    const running = await lastSyncResults(state);
    expect(running.get('docs')).toMatchObject({ state: 'running', message: 'docs: syncing (manual)' });
    release();
    expect(await job).toMatchObject({ status: 'succeeded' });
    expect(await runSyncJob({ state, source: 'docs', runSync: async (s) => summary(s) })).toMatchObject({
      status: 'succeeded',
    });
  });
});

describe('scheduler on the embedded SQLite state store', () => {
  let tmp: string;
  beforeEach(() => {
    tmp = mkdtempSync(path.join(tmpdir(), 'supportbot-sched-'));
  });
  afterEach(() => rmSync(tmp, { recursive: true, force: true }));

  it('two schedulers on one SQLite file also run each tick once', async () => {
    const file = path.join(tmp, 'state.sqlite');
    const a = SqliteStateStore.open(file);
    const b = SqliteStateStore.open(file);
    const { runs, make } = recordingSync(100);
    const sources = [{ name: 'docs', schedule: '* * * * * *' }];
    const s1 = startScheduler({ sources, state: a, runSync: make('a') });
    const s2 = startScheduler({ sources, state: b, runSync: make('b') });
    await sleep(3_200);
    await s1.stop();
    await s2.stop();
    expect(runs.length).toBeGreaterThanOrEqual(3);
    expect(new Set(runs.map((r) => r.slot)).size).toBe(runs.length);
    await a.close();
    await b.close();
  });

  it('records failures: a source error and a throwing sync are failed jobs with their message', async () => {
    const state = SqliteStateStore.open(path.join(tmp, 'state.sqlite'));
    const r1 = await runSyncJob({
      state,
      source: 'web',
      runSync: async (s) => summary(s, { sourceError: 'robots.txt answered HTTP 503', swept: false }),
    });
    expect(r1).toMatchObject({
      status: 'failed',
      job: { state: 'failed', message: expect.stringMatching(/source failed, nothing deleted: robots/) },
    });
    const r2 = await runSyncJob({
      state,
      source: 'zd',
      requestedBy: 'slack:U1',
      runSync: async () => {
        throw new Error('boom');
      },
    });
    expect(r2).toMatchObject({
      status: 'failed',
      job: { message: 'zd: sync failed: boom', requestedBy: 'slack:U1' },
    });
    const latest = await lastSyncResults(state);
    expect([...latest.keys()].sort()).toEqual(['web', 'zd']);
    // the lock was released after the throw
    expect(await state.acquireLock(syncLockName('zd'), 1_000)).not.toBeNull();
    await state.close();
  });

  it('computes next runs in the configured time zone and rejects bad schedules', async () => {
    const state = SqliteStateStore.open(path.join(tmp, 'state.sqlite'));
    const runSync: RunSync = async (s) => summary(s);
    const scheduler = startScheduler({
      sources: [
        { name: 'ny', schedule: '0 3 * * *' },
        { name: 'tokyo', schedule: '0 3 * * *', timezone: 'Asia/Tokyo' },
        { name: 'manual' },
      ],
      state,
      runSync,
      timezone: 'America/New_York',
    });
    const next = scheduler.nextRuns();
    expect(next.map((n) => n.source)).toEqual(['ny', 'tokyo']);
    const local = (d: Date | null, timeZone: string) =>
      new Intl.DateTimeFormat('en-GB', {
        timeZone,
        hour: '2-digit',
        minute: '2-digit',
        hourCycle: 'h23',
      }).format(d as Date);
    const [ny, tokyo] = next;
    expect(local(ny?.next ?? null, 'America/New_York')).toBe('03:00');
    expect(local(tokyo?.next ?? null, 'Asia/Tokyo')).toBe('03:00');
    // 03:00 in New York is 07:00 or 08:00 UTC (DST); in Tokyo it is 18:00 UTC
    expect(['07:00', '08:00']).toContain(local(ny?.next ?? null, 'UTC'));
    expect(local(tokyo?.next ?? null, 'UTC')).toBe('18:00');
    const now = Date.now();
    expect((ny?.next?.getTime() ?? 0) - now).toBeGreaterThan(0);
    expect((ny?.next?.getTime() ?? 0) - now).toBeLessThanOrEqual(24 * 3_600_000);
    await scheduler.stop();

    expect(() =>
      startScheduler({ sources: [{ name: 'x', schedule: '61 * * * *' }], state, runSync }),
    ).toThrow(/source "x": schedule "61 \* \* \* \*" is not a cron expression/);
    expect(() =>
      startScheduler({
        sources: [{ name: 'x', schedule: '0 3 * * *', timezone: 'Mars/Olympus' }],
        state,
        runSync,
      }),
    ).toThrow(/unknown time zone "Mars\/Olympus"/);
    await state.close();
  });
});
