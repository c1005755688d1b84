import { randomUUID } from 'node:crypto';
import type { StateStore } from '../../core/state-store.ts';
import type { SyncSummary } from '../../sync/sync.ts';
import { formatSyncSummary } from '../../sync/sync.ts';

/** Subcommands of `/support`, the same on Slack and Discord. */
export const SUBCOMMANDS = ['ask', 'sync', 'status', 'retrain', 'help'] as const;
export type Subcommand = (typeof SUBCOMMANDS)[number];
/** Subcommands only admins may run. */
export const ADMIN_SUBCOMMANDS: ReadonlySet<Subcommand> = new Set(['sync', 'retrain']);

export const HELP_TEXT = [
  '*/support* — ask the help-center bot',
  '• `/support ask <question>` — answer a question here (the answer is posted for the channel; all other replies only you see)',
  '• `/support status` — what is indexed and running',
  '• `/support sync [source]` — re-sync the help center now (admins)',
  '• `/support retrain` — retrain the tone/escalation adapter from rated answers (admins)',
  '• `/support help` — this text',
  'Or mention the bot with your question.',
].join('\n');

export interface CommandInvocation {
  /** Everything after `/support`, e.g. `sync zendesk`. */
  text: string;
  userId: string;
  /** Whether the caller is allowed admin subcommands (the transport checks users and groups). */
  isAdmin: boolean;
}

/** What the platform should do with a command's result. */
export interface CommandReply {
  /** Shown at once (within the platform's 3 s window). */
  immediate: string;
  /** Work that continues after the immediate reply; it reports through `progress`. */
  followUp?: (progress: (text: string) => Promise<void>) => Promise<void>;
}

export interface SupportCommandDeps {
  state: StateStore;
  /** Runs a sync of the named sources (all when empty). */
  sync: (names: string[]) => Promise<SyncSummary[]>;
  /** Names of configured sources, for validation and help. */
  sourceNames: () => string[];
  /** One-paragraph status text. */
  status: () => Promise<string>;
  /** Answers a question and renders it as Markdown for a command reply (transports convert it). */
  ask: (question: string, userId: string) => Promise<string>;
  /**
   * Starts a retrain (`training/job.ts#startTrainingJob`: takes the state-store lock `job:train`
   * and records the job as queued). Resolves to null when a training job is already running, on
   * any replica. Absent when this deployment has no trainer wired; `/support retrain` says so.
   */
  retrain?: (requestedBy: string) => Promise<RetrainHandle | null>;
}

/** A retrain that holds the training lock and waits to run. */
export interface RetrainHandle {
  jobId: string;
  /**
   * Runs the job, posting progress lines through `progress` (phase changes and every quarter of
   * training, not every step). Resolves to a one-line summary; rejects with the failure (the job
   * is then recorded as failed and the lock released).
   */
  run(progress: (text: string) => Promise<void>): Promise<string>;
}

/**
 * Parses and runs one `/support` invocation, platform-neutral. Unknown subcommands and missing
 * arguments get a one-line explanation with the help; admin-only subcommands refuse non-admins
 * clearly. Long work (sync, ask) replies at once and reports progress through `followUp`; one
 * sync or retrain runs at a time across replicas (a state-store lock).
 */
export async function runSupportCommand(
  inv: CommandInvocation,
  deps: SupportCommandDeps,
): Promise<CommandReply> {
  const [rawSub = 'help', ...rest] = inv.text.trim().split(/\s+/).filter(Boolean);
  const sub = rawSub.toLowerCase();
  if (!(SUBCOMMANDS as readonly string[]).includes(sub)) {
    return { immediate: `Unknown subcommand \`${rawSub}\`.\n${HELP_TEXT}` };
  }
  const subcommand = sub as Subcommand;
  if (ADMIN_SUBCOMMANDS.has(subcommand) && !inv.isAdmin) {
    return {
      immediate: `Sorry, \`/support ${subcommand}\` is for admins only. Ask a workspace admin of this bot to run it.`,
    };
  }
  switch (subcommand) {
    case 'help':
      return { immediate: HELP_TEXT };
    case 'status':
      return { immediate: await deps.status() };
    case 'ask': {
      const question = rest.join(' ');
      if (!question) return { immediate: 'Usage: `/support ask <question>`' };
      return {
        immediate: `Looking that up: _${question.slice(0, 200)}_`,
        followUp: async (progress) => progress(await deps.ask(question, inv.userId)),
      };
    }
    case 'sync': {
      const known = deps.sourceNames();
      const unknown = rest.filter((n) => !known.includes(n));
      if (unknown.length > 0)
        return { immediate: `Unknown source ${unknown.join(', ')}. Configured: ${known.join(', ')}.` };
      const lock = await deps.state.acquireLock('job:sync', 30 * 60_000);
      if (!lock) return { immediate: 'A sync is already running; I will not start a second one.' };
      const jobId = randomUUID();
      const startedAt = new Date().toISOString();
      await deps.state.setJobStatus({
        id: jobId,
        kind: 'sync',
        state: 'running',
        startedAt,
        requestedBy: inv.userId,
      });
      return {
        immediate: `Sync started${rest.length ? ` for ${rest.join(', ')}` : ''} (job ${jobId.slice(0, 8)}). I'll report here when it is done.`,
        followUp: async (progress) => {
          try {
            const summaries = await deps.sync(rest);
            const failed = summaries.some((s) => s.sourceError);
            await deps.state.setJobStatus({
              id: jobId,
              kind: 'sync',
              state: failed ? 'failed' : 'succeeded',
              startedAt,
              finishedAt: new Date().toISOString(),
              progress: 1,
              requestedBy: inv.userId,
              message: summaries.map(formatSyncSummary).join('; '),
            });
            await progress(
              `Sync ${failed ? 'finished with errors' : 'done'}:\n${summaries.map(formatSyncSummary).join('\n')}`,
            );
          } catch (err) {
            await deps.state.setJobStatus({
              id: jobId,
              kind: 'sync',
              state: 'failed',
              startedAt,
              finishedAt: new Date().toISOString(),
              requestedBy: inv.userId,
              message: (err as Error).message,
            });
            await progress(`Sync failed: ${(err as Error).message}`);
          } finally {
            await deps.state.releaseLock(lock);
          }
        },
      };
    }
    case 'retrain': {
      if (!deps.retrain) {
        // No trainer wired into this process: keep the request for the admins, visible in status.
        const jobId = randomUUID();
        await deps.state.setJobStatus({
          id: jobId,
          kind: 'retrain',
          state: 'queued',
          startedAt: new Date().toISOString(),
          requestedBy: inv.userId,
          message: 'recorded; no trainer is configured in this bot process (run `supportbot train`)',
        });
        return {
          immediate: `Retrain request recorded (job ${jobId.slice(0, 8)}). No trainer is configured in this bot process; an operator can run \`supportbot train\`.`,
        };
      }
      const handle = await deps.retrain(inv.userId);
      if (!handle) return { immediate: 'A retrain is already running; I will not start a second one.' };
      return {
        immediate: `Retrain started (job ${handle.jobId}). I'll post progress here.`,
        followUp: async (progress) => {
          try {
            const summary = await handle.run(progress);
            await progress(`Retrain done: ${summary}`);
          } catch (err) {
            await progress(`Retrain failed: ${(err as Error).message}`);
          }
        },
      };
    }
  }
}
