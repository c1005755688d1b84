/**
 * Scheduled and on-demand sync as one job.
 *
 * `runSyncJob` is the job: `supportbot sync`, `/support sync` and every scheduled tick should all
 * go through it, so they share one single-flight lock per source and write the same job records.
 *  - Lock `job:sync:<source>` in the state store (`acquireLock`: Redis `SET NX PX` with a random
 *    token, SQLite a row with an expiry; https://redis.io/docs/latest/develop/use/patterns/distributed-locks/),
 *    renewed every `ttl/3` while the sync runs, released (token-checked) when it ends. A process
 *    that dies holding it stops renewing, and the lock frees itself `ttl` later.
 *  - A job record `sync:<source>:<startedAt>` (kind `sync`): `running`, then `succeeded` or
 *    `failed` with the one-line summary (`formatSyncSummary`), for `supportbot status` and
 *    `/support status` (see `lastSyncResults`).
 *
 * `startScheduler` runs `runSyncJob` on each source's cron `schedule` (node-cron 4, six fields
 * with seconds allowed, in the source's or the scheduler's IANA `timezone`). With several
 * replicas, every replica's timer fires; each tick is claimed first (`claimEvent` on
 * `sync-tick:<source>:<scheduled second>`, one winner across all processes sharing the state
 * store) and then the lock is taken, so a tick runs once, and never beside another sync of the
 * same source (a long previous run, a manual one): such a tick is skipped and logged.
 */
import { randomBytes } from 'node:crypto';
import cron, { type ScheduledTask } from 'node-cron';
import { SupportbotError } from '../core/errors.ts';
import type { JobStatus, StateStore } from '../core/state-store.ts';
import { formatSyncSummary, type SyncSummary } from './sync.ts';

/** Minimal structured logger (pino's shape: fields first, then the message). */
export interface SchedulerLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

const silent: SchedulerLog = { info() {}, warn() {}, error() {} };

/** What started a sync: a cron tick, or a person (CLI or chat command). */
export type SyncTrigger = 'schedule' | 'manual';

export interface RunSyncContext {
  trigger: SyncTrigger;
  /** The scheduled time of the tick (schedule only). */
  scheduledAt?: Date;
  /** Aborted when the lock was lost (the sync should stop) or the scheduler stops. */
  signal: AbortSignal;
}

/** Syncs one source (e.g. `(name) => runtime.sync([name]).then(([s]) => s)`). */
export type RunSync = (source: string, context: RunSyncContext) => Promise<SyncSummary>;

export interface SyncJobOptions {
  state: StateStore;
  source: string;
  runSync: RunSync;
  trigger?: SyncTrigger;
  scheduledAt?: Date;
  /** Platform user id (`slack:U123`) or `cli` for a manual sync. */
  requestedBy?: string;
  /** Lock time-to-live, ms; renewed every third of it. Default 10 minutes. */
  lockTtlMs?: number;
  log?: SchedulerLog;
  signal?: AbortSignal;
}

export type SyncJobResult =
  | { status: 'succeeded' | 'failed'; job: JobStatus; summary?: SyncSummary; error?: unknown }
  | { status: 'busy' };

export const DEFAULT_LOCK_TTL_MS = 10 * 60_000;

/** The lock name of a source's sync. */
export const syncLockName = (source: string): string => `job:sync:${source}`;

/**
 * Runs one sync of `source` under its single-flight lock and records the job (see the module
 * comment). Resolves `{status: 'busy'}` without running when another sync of the source holds the
 * lock. A sync whose source failed (`summary.sourceError`) or that threw is recorded as `failed`;
 * a throw is returned as `error`, not re-thrown (the job record carries its message).
 *
 * @throws SupportbotError from the state store (`store-unavailable`…) when the lock cannot be asked for.
 */
export async function runSyncJob(options: SyncJobOptions): Promise<SyncJobResult> {
  const { state, source } = options;
  const log = options.log ?? silent;
  const ttl = options.lockTtlMs ?? DEFAULT_LOCK_TTL_MS;
  const trigger = options.trigger ?? 'manual';
  const lock = await state.acquireLock(syncLockName(source), ttl);
  if (!lock) return { status: 'busy' };

  const startedAt = new Date().toISOString();
  const base: JobStatus = {
    id: `sync:${source}:${startedAt}:${randomBytes(3).toString('hex')}`,
    kind: 'sync',
    state: 'running',
    startedAt,
    message: `${source}: syncing (${trigger === 'schedule' ? 'scheduled' : 'manual'})`,
    ...(options.requestedBy ? { requestedBy: options.requestedBy } : {}),
  };
  const abort = new AbortController();
  const onOuterAbort = () => abort.abort(options.signal?.reason);
  options.signal?.addEventListener('abort', onOuterAbort, { once: true });
  // Renew well before expiry; a failed renewal means another process may now hold the lock.
  const renewal = setInterval(
    () => {
      state.renewLock(lock, ttl).then(
        (held) => {
          if (!held && !abort.signal.aborted) {
            log.warn({ source, lock: lock.name }, 'sync lock lost while syncing; asking the sync to stop');
            abort.abort(new SupportbotError('lock-lost', `the sync lock of ${source} expired`));
          }
        },
        (err: Error) => log.warn({ source, err: err.message }, 'could not renew the sync lock'),
      );
    },
    Math.max(50, Math.floor(ttl / 3)),
  );
  renewal.unref?.();
  try {
    await state.setJobStatus(base);
    log.info({ source, trigger, job: base.id }, 'sync started');
    let summary: SyncSummary;
    try {
      summary = await options.runSync(source, {
        trigger,
        signal: abort.signal,
        ...(options.scheduledAt ? { scheduledAt: options.scheduledAt } : {}),
      });
    } catch (error) {
      const job: JobStatus = {
        ...base,
        state: 'failed',
        finishedAt: new Date().toISOString(),
        message: `${source}: sync failed: ${(error as Error).message}`,
      };
      await state.setJobStatus(job);
      log.error({ source, trigger, err: (error as Error).message }, 'sync failed');
      return { status: 'failed', job, error };
    }
    const failed = summary.sourceError !== undefined;
    const job: JobStatus = {
      ...base,
      state: failed ? 'failed' : 'succeeded',
      finishedAt: new Date().toISOString(),
      progress: 1,
      message: formatSyncSummary(summary),
    };
    await state.setJobStatus(job);
    log.info(
      { source, trigger, job: job.id, ...countsOf(summary) },
      failed ? 'sync finished with a source error' : 'sync done',
    );
    return { status: job.state as 'succeeded' | 'failed', job, summary };
  } finally {
    clearInterval(renewal);
    options.signal?.removeEventListener('abort', onOuterAbort);
    await state
      .releaseLock(lock)
      .catch((err: Error) => log.warn({ source, err: err.message }, 'could not release the sync lock'));
  }
}

function countsOf(s: SyncSummary) {
  return { added: s.added, updated: s.updated, unchanged: s.unchanged, deleted: s.deleted, failed: s.failed };
}

/**
 * The latest finished-or-running sync job per source, from the state store's job list (what
 * `runSyncJob` recorded), newest first within the last `scan` jobs. Sources never synced by
 * `runSyncJob` are absent.
 */
export async function lastSyncResults(state: StateStore, scan = 200): Promise<Map<string, JobStatus>> {
  const latest = new Map<string, JobStatus>();
  for (const job of await state.listJobs({ kind: 'sync', limit: scan })) {
    const m = /^sync:([a-z0-9][a-z0-9_-]*):/i.exec(job.id);
    if (m && !latest.has(m[1] as string)) latest.set(m[1] as string, job);
  }
  return latest;
}

export interface ScheduledSource {
  name: string;
  /** Cron expression (5 fields, or 6 with seconds first); none: not scheduled. */
  schedule?: string;
  /** IANA zone for this source's schedule; default the scheduler's. */
  timezone?: string;
}

export interface SchedulerOptions {
  sources: ScheduledSource[];
  state: StateStore;
  runSync: RunSync;
  log?: SchedulerLog;
  /** IANA time zone (`Europe/Berlin`) for schedules; default the process's (`TZ`). */
  timezone?: string;
  lockTtlMs?: number;
  /** How long a tick claim lives, ms; longer than any clock skew between replicas. Default 10 min. */
  tickClaimTtlMs?: number;
}

export interface Scheduler {
  /** The next scheduled time of each scheduled source. */
  nextRuns(): { source: string; schedule: string; timezone: string | null; next: Date | null }[];
  /** Stops the timers and waits for runs in progress to finish (their locks are released). */
  stop(): Promise<void>;
}

/**
 * Starts a cron task per source that has a `schedule` (see the module comment).
 *
 * @throws SupportbotError `config-invalid` naming the source for a bad cron expression or time zone.
 */
export function startScheduler(options: SchedulerOptions): Scheduler {
  const log = options.log ?? silent;
  const tasks: { source: string; schedule: string; timezone: string | null; task: ScheduledTask }[] = [];
  const running = new Set<Promise<unknown>>();
  const stopping = new AbortController();
  const claimTtl = options.tickClaimTtlMs ?? 10 * 60_000;

  const scheduled = options.sources.filter((s) => s.schedule);
  for (const source of scheduled) {
    const schedule = source.schedule as string;
    const timezone = source.timezone ?? options.timezone ?? null;
    const validation = cron.validateDetailed(schedule);
    if (!validation.valid) {
      throw new SupportbotError(
        'config-invalid',
        `source "${source.name}": schedule "${schedule}" is not a cron expression (${validation.errors.map((e) => e.message).join('; ')})`,
      );
    }
    if (timezone && !isTimeZone(timezone)) {
      throw new SupportbotError('config-invalid', `source "${source.name}": unknown time zone "${timezone}"`);
    }
  }

  for (const source of scheduled) {
    const schedule = source.schedule as string;
    const timezone = source.timezone ?? options.timezone ?? null;
    const tick = async (scheduledAt: Date) => {
      if (stopping.signal.aborted) return;
      const slot = Math.floor(scheduledAt.getTime() / 1000);
      const mine = await options.state.claimEvent(`sync-tick:${source.name}:${slot}`, claimTtl);
      if (!mine) return; // another replica took this tick
      const result = await runSyncJob({
        state: options.state,
        source: source.name,
        runSync: options.runSync,
        trigger: 'schedule',
        scheduledAt,
        requestedBy: 'schedule',
        lockTtlMs: options.lockTtlMs,
        log,
        signal: stopping.signal,
      });
      if (result.status === 'busy') {
        log.info(
          { source: source.name, scheduledAt: scheduledAt.toISOString() },
          'scheduled sync skipped: another sync of this source is running',
        );
      }
    };
    const task = cron.schedule(
      schedule,
      (context) => {
        const run = tick(context.date).catch((err: Error) =>
          log.error({ source: source.name, err: err.message }, 'scheduled sync could not start'),
        );
        running.add(run);
        void run.finally(() => running.delete(run));
      },
      { name: `sync:${source.name}`, ...(timezone ? { timezone } : {}) },
    );
    tasks.push({ source: source.name, schedule, timezone, task });
    log.info(
      { source: source.name, schedule, timezone, next: task.getNextRun()?.toISOString() ?? null },
      'sync scheduled',
    );
  }

  return {
    nextRuns: () =>
      tasks.map(({ source, schedule, timezone, task }) => ({
        source,
        schedule,
        timezone,
        next: task.getNextRun(),
      })),
    async stop() {
      stopping.abort(new SupportbotError('stopping', 'the scheduler is stopping'));
      for (const { task } of tasks) await task.destroy();
      await Promise.allSettled([...running]);
    },
  };
}

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}
