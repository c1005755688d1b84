import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HELP_TEXT, runSupportCommand, type SupportCommandDeps } from '../bot/commands/support-command.ts';
import { SqliteStateStore } from '../core/state-store/sqlite.ts';
import type { SyncSummary } from '../sync/sync.ts';

/** A sync that waits until released, so tests can hold it "running". */
function gate() {
  let open: () => void = () => {};
  const opened = new Promise<void>((r) => {
    open = r;
  });
  return { open, opened };
}

const summary = (source: string, over: Partial<SyncSummary> = {}): SyncSummary => ({
  source,
  added: 1,
  updated: 0,
  unchanged: 0,
  deleted: 0,
  failed: 0,
  chunks: 3,
  seconds: 0.5,
  errors: [],
  swept: true,
  ...over,
});

describe('/support command runner', () => {
  let tmp: string;
  let state: SqliteStateStore;
  let syncCalls: string[][];
  let syncGate: ReturnType<typeof gate>;
  let deps: SupportCommandDeps;
  beforeEach(() => {
    tmp = mkdtempSync(path.join(tmpdir(), 'supportbot-command-'));
    state = SqliteStateStore.open(path.join(tmp, 'state.sqlite'));
    syncCalls = [];
    syncGate = gate();
    deps = {
      state,
      sync: async (names) => {
        syncCalls.push(names);
        await syncGate.opened;
        return (names.length ? names : ['docs', 'faq']).map((n) => summary(n));
      },
      sourceNames: () => ['docs', 'faq'],
      status: async () => 'indexed: 2 articles',
      ask: async (q, user) => `answer to "${q}" for ${user}`,
    };
  });
  afterEach(async () => {
    await state.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  const run = (text: string, isAdmin = false, userId = 'U1') =>
    runSupportCommand({ text, userId, isAdmin }, deps);

  it('help, empty text and unknown subcommands explain the usage', async () => {
    expect((await run('help')).immediate).toBe(HELP_TEXT);
    expect((await run('')).immediate).toBe(HELP_TEXT);
    const unknown = await run('deploy now');
    expect(unknown.immediate).toContain('Unknown subcommand `deploy`');
    expect(unknown.immediate).toContain('/support ask');
    expect(unknown.followUp).toBeUndefined();
  });

  it('admin subcommands refuse non-admins and start nothing', async () => {
    for (const sub of ['sync', 'retrain', 'SYNC docs']) {
      const r = await run(sub, false);
      expect(r.immediate).toMatch(/for admins only/);
      expect(r.followUp).toBeUndefined();
    }
    expect(syncCalls).toEqual([]);
    expect(await state.listJobs()).toEqual([]);
  });

  it('ask replies at once and delivers the answer as a follow-up', async () => {
    expect((await run('ask')).immediate).toMatch(/^Usage/);
    const r = await run('ask how do refunds work?', false, 'U7');
    expect(r.immediate).toContain('how do refunds work?');
    const posted: string[] = [];
    await r.followUp?.(async (t) => {
      posted.push(t);
    });
    expect(posted).toEqual(['answer to "how do refunds work?" for U7']);
  });

  it('sync: one at a time, unknown sources refused, job status recorded', async () => {
    expect((await run('sync nope', true)).immediate).toMatch(/Unknown source nope\. Configured: docs, faq/);
    const first = await run('sync docs', true);
    expect(first.immediate).toMatch(/Sync started for docs/);
    // A second request (from this or another replica: the lock is in the state store) is refused.
    const second = await runSupportCommand({ text: 'sync', userId: 'U2', isAdmin: true }, deps);
    expect(second.immediate).toMatch(/already running/);
    expect(second.followUp).toBeUndefined();
    const progress: string[] = [];
    const done = first.followUp?.(async (t) => {
      progress.push(t);
    });
    const [running] = await state.listJobs();
    expect(running).toMatchObject({ kind: 'sync', state: 'running', requestedBy: 'U1' });
    syncGate.open();
    await done;
    expect(syncCalls).toEqual([['docs']]);
    expect(progress).toHaveLength(1);
    expect(progress[0]).toMatch(/^Sync done:\ndocs: 1 added/);
    const [finished] = await state.listJobs();
    expect(finished).toMatchObject({ state: 'succeeded', progress: 1 });
    // The lock was released: the next sync starts.
    expect((await run('sync', true)).immediate).toMatch(/Sync started/);
  });

  it('a failing sync is reported, recorded as failed, and releases the lock', async () => {
    deps.sync = async () => {
      throw new Error('source unreachable');
    };
    const r = await run('sync', true);
    const progress: string[] = [];
    await r.followUp?.(async (t) => {
      progress.push(t);
    });
    expect(progress).toEqual(['Sync failed: source unreachable']);
    expect((await state.listJobs())[0]).toMatchObject({ state: 'failed', message: 'source unreachable' });
    expect((await run('sync', true)).immediate).toMatch(/Sync started/);
  });

  it('retrain records a queued request for admins', async () => {
    const r = await run('retrain', true, 'U9');
    expect(r.immediate).toMatch(/Retrain request recorded/);
    expect((await state.listJobs())[0]).toMatchObject({
      kind: 'retrain',
      state: 'queued',
      requestedBy: 'U9',
    });
  });

  it('status shows the runtime status', async () => {
    expect((await run('status')).immediate).toBe('indexed: 2 articles');
  });
});
