import { SupportbotError } from './errors.ts';
import type { AnswerRecord, Turn } from './types.ts';

/** A rating value as stored: +1 (👍) or -1 (👎). `null` in calls means "no rating". */
export type RatingValue = 1 | -1;

/** Counts of current ratings of one answer; a retracted rating counts nowhere. */
export interface RatingSummary {
  up: number;
  down: number;
}

export interface ListAnswersOptions {
  /** ISO-8601 UTC; only answers with `createdAt >= since`. */
  since?: string;
  /** At most this many answers, counted in `order`. Default: all. */
  limit?: number;
  /** Default `oldest-first` (for exports that resume from `since`); `newest-first` for listings. */
  order?: 'oldest-first' | 'newest-first';
}

/**
 * Proof of holding a lock, returned by `acquireLock`. `token` is random per acquisition (128 bits,
 * hex), so only this holder can renew or release the lock, even after it expired and someone else
 * took it (the "unique random value" of the Redis distributed-lock pattern,
 * https://redis.io/docs/latest/develop/use/patterns/distributed-locks/).
 */
export interface LockHandle {
  readonly name: string;
  readonly token: string;
}

/** What a job does. `sync` and `retrain` are the known ones; other kinds are accepted as-is. */
export type JobKind = 'sync' | 'retrain' | (string & {});

/** `queued` → `running` → `succeeded` | `failed`. The store does not enforce transitions. */
export type JobState = 'queued' | 'running' | 'succeeded' | 'failed';

/** The last known status of a long-running job (a sync, a retrain request), for `/support status`. */
export interface JobStatus {
  /** Unique per job, chosen by the caller (`sync-2024-05-01T10:00:00Z-docs`, a uuid). */
  id: string;
  kind: JobKind;
  state: JobState;
  /** ISO-8601 UTC; when the job was requested or started. Listings are ordered by it. */
  startedAt: string;
  /** ISO-8601 UTC; set once the job `succeeded` or `failed`. */
  finishedAt?: string;
  /** 0..1, fraction done, when the job can tell. */
  progress?: number;
  /** One line for people: what it is doing, or why it failed. */
  message?: string;
  /** Platform user id of whoever asked for it (`slack:U123`), for audits. */
  requestedBy?: string;
}

export interface ListJobsOptions {
  /** Only jobs of this kind. */
  kind?: JobKind;
  /** At most this many jobs. Default: all. */
  limit?: number;
}

/** Outcome of `takeRateToken`. */
export interface RateTokenResult {
  /** Whether this call fits in the current window. */
  allowed: boolean;
  /** 0 when allowed; otherwise ms until the current window ends and calls are allowed again. */
  retryAfterMs: number;
}

/**
 * The state store seam: what the bot remembers between messages and processes. Implementations:
 * SQLite (`core/state-store/sqlite.ts`, the default, may share the knowledge store's file) and
 * Redis (`core/state-store/redis.ts`, for several bot replicas sharing one state).
 *
 * Rules every implementation keeps:
 * - Every method is async and atomic on its own, also across processes sharing the store; there
 *   is no transaction spanning calls. Where a caller needs read-modify-write, the method does it
 *   (e.g. `setRating` returns the previous value), as the Redis implementation does with MULTI or
 *   a Lua script and the SQLite one with a single statement or an IMMEDIATE transaction.
 * - Times are ISO-8601 UTC strings; durations are `...Ms` (positive safe integers, else
 *   `invalid-argument`). Keys and names are opaque strings chosen by callers
 *   (`slack:T123:C123:1700000000.0001`, an event id, a lock name).
 * - Expiring entries (event claims, locks, rate windows) behave as if deleted at their expiry;
 *   SQLite compares stored expiry times with its clock, Redis uses key expiry (`PX`).
 * - Records are JSON-serializable domain types from `core/types.ts` and this file.
 *
 * Errors are `SupportbotError`s: `store-closed` after `close()`; `store-unavailable` when the
 * backend cannot be reached (Redis down or not answering; fails fast, never hangs);
 * `store-failed` when the backend refuses a command (a Redis error reply); `invalid-argument` for a
 * bad duration, limit, turn or job; plus those named per method.
 */
export interface StateStore {
  /** Short name for logs and `status` (`sqlite:/path/to/file`, `redis:host:port`). */
  readonly id: string;

  // ── Answers and ratings ────────────────────────────────────────────────────────────────────

  /**
   * Records an answer the bot gave. Saving the same `id` again replaces the record (so a retried
   * post is harmless) and keeps its ratings.
   */
  saveAnswer(record: AnswerRecord): Promise<void>;

  /** The answer with this id, or `null`. */
  getAnswer(id: string): Promise<AnswerRecord | null>;

  /**
   * Sets `userId`'s rating of an answer: 1 (👍), -1 (👎), or `null` to retract it. A user has at
   * most one rating per answer; setting the same value again changes nothing. Idempotent, and
   * atomic across processes: two replicas rating at once never lose or double-count a rating,
   * and of two identical concurrent calls exactly one sees the previous value `null`.
   *
   * @returns the user's previous rating, `null` when there was none.
   * @throws SupportbotError `unknown-answer` when no answer has this id; `invalid-rating` when
   *   `value` is not 1, -1 or null.
   */
  setRating(answerId: string, userId: string, value: RatingValue | null): Promise<RatingValue | null>;

  /**
   * Retracts `userId`'s rating only when it is currently `expected` (compare-and-delete, atomic
   * across processes): a removed 👍 reaction must not erase a 👎 the same user set meanwhile,
   * whatever order replicas handle the two events in.
   * @returns true when a rating was removed. Unknown answers and other values: false.
   */
  clearRatingIf(answerId: string, userId: string, expected: RatingValue): Promise<boolean>;

  /** Current 👍/👎 counts of an answer (one consistent snapshot); `{up: 0, down: 0}` for an unknown answer. */
  ratingSummary(answerId: string): Promise<RatingSummary>;

  /** Answers ordered by `createdAt` then `id` (string order), in `options.order`. */
  listAnswers(options?: ListAnswersOptions): Promise<AnswerRecord[]>;

  // ── Posted messages → answers ──────────────────────────────────────────────────────────────

  /**
   * Remembers that the platform message `messageKey` shows (part of) answer `answerId`. Every
   * message the bot posts for an answer is mapped, so a reaction or button on any of them finds
   * the answer, also after a restart. `messageKey` is opaque and unique per platform:
   * `${channel}:${ts}` on Slack (`C123:1700000000.0001`), the message id on Discord. Mapping the
   * same key again replaces the answer id (last write wins). The answer need not be saved yet.
   * Mappings do not expire.
   */
  mapMessage(platform: string, messageKey: string, answerId: string): Promise<void>;

  /** The answer id mapped to this platform message, or `null` (not one of the bot's answers). */
  answerForMessage(platform: string, messageKey: string): Promise<string | null>;

  // ── Thread history ─────────────────────────────────────────────────────────────────────────

  /**
   * Appends one turn to a conversation and keeps only its last `maxTurns` turns (a capped list,
   * like `RPUSH` + `LTRIM key -maxTurns -1` in one MULTI, https://redis.io/docs/latest/commands/ltrim/).
   * `conversationKey` is opaque (`slack:T123:C123:1700000000.0001`, `discord:<thread id>`).
   *
   * @throws SupportbotError `invalid-argument` when `maxTurns` is not a positive integer or the
   *   turn is not `{role: 'user' | 'assistant', text: string}`.
   */
  appendTurn(conversationKey: string, turn: Turn, maxTurns: number): Promise<void>;

  /**
   * The last `limit` turns of a conversation, oldest first; `[]` for an unknown one or `limit` 0.
   *
   * @throws SupportbotError `invalid-argument` when `limit` is not a non-negative integer.
   */
  threadHistory(conversationKey: string, limit: number): Promise<Turn[]>;

  // ── Event dedup ────────────────────────────────────────────────────────────────────────────

  /**
   * Claims `key` for `ttlMs`: `true` for exactly one caller per key until the claim expires,
   * across all processes sharing the store; `false` for every other caller meanwhile. After
   * expiry the next caller gets `true` again. Semantics of `SET key 1 NX PX ttlMs`
   * (https://redis.io/docs/latest/commands/set/). Used to answer each platform message once
   * (key `msg:<platform>:<messageKey>`: Slack `channel:ts`, shared by a post's `app_mention` and
   * `message` events and their retries; Discord message id) and each Discord interaction once.
   * Delivery is at most once: a claim whose reply is lost (a Redis timeout after `SET` succeeded)
   * leaves the message unanswered rather than answered twice.
   *
   * @throws SupportbotError `invalid-argument` when `ttlMs` is not a positive safe integer.
   */
  claimEvent(key: string, ttlMs: number): Promise<boolean>;

  // ── Locks ──────────────────────────────────────────────────────────────────────────────────

  /**
   * Takes the lock `name` for `ttlMs` unless someone holds it: a handle with a fresh random token,
   * or `null` when it is held. An expired lock is free. Single-instance Redis lock pattern:
   * `SET name token NX PX ttlMs` (https://redis.io/docs/latest/develop/use/patterns/distributed-locks/).
   * Not reentrant: the holder acquiring again gets `null`.
   *
   * @throws SupportbotError `invalid-argument` when `ttlMs` is not a positive safe integer.
   */
  acquireLock(name: string, ttlMs: number): Promise<LockHandle | null>;

  /**
   * Extends a held lock to expire `ttlMs` from now, only if `handle` still owns it (compare the
   * token, then `PEXPIRE`, atomically).
   *
   * @returns `false` when the lock expired or belongs to someone else (it is then left alone).
   * @throws SupportbotError `invalid-argument` when `ttlMs` is not a positive safe integer.
   */
  renewLock(handle: LockHandle, ttlMs: number): Promise<boolean>;

  /**
   * Releases a lock only if `handle` still owns it (compare the token, then `DEL`, atomically;
   * the pattern's release script).
   *
   * @returns `false` when it had already expired or belongs to someone else (left alone).
   */
  releaseLock(handle: LockHandle): Promise<boolean>;

  // ── Job status ─────────────────────────────────────────────────────────────────────────────

  /**
   * Records the status of a job, replacing any earlier status with the same `id` (write the whole
   * record each time: `queued`, then `running` with progress, then `succeeded`/`failed`).
   *
   * @throws SupportbotError `invalid-argument` when `id`, `kind` or `startedAt` is empty, `state`
   *   is not one of the four, or `progress` is outside 0..1.
   */
  setJobStatus(job: JobStatus): Promise<void>;

  /** The last status recorded for this job id, or `null`. */
  getJobStatus(id: string): Promise<JobStatus | null>;

  /** Jobs newest first (by `startedAt`, then `id`, both descending), optionally of one kind. */
  listJobs(options?: ListJobsOptions): Promise<JobStatus[]>;

  // ── Rate limiting ──────────────────────────────────────────────────────────────────────────

  /**
   * Counts one call against `key` (`user:slack:U123`) in a fixed window of `windowMs` that starts
   * with the first call after the previous window ended; the call is allowed while the window's
   * count is at most `limit`. Denied calls are counted too (they do not shorten the wait). Shared
   * by all processes using the store. The Redis rate-limiter pattern `INCR` + `PEXPIRE` on first
   * increment (https://redis.io/docs/latest/commands/incr/#pattern-rate-limiter-1).
   *
   * @throws SupportbotError `invalid-argument` when `limit` or `windowMs` is not a positive safe integer.
   */
  takeRateToken(key: string, limit: number, windowMs: number): Promise<RateTokenResult>;

  /** Release files and connections. Further calls throw `store-closed`. Idempotent. */
  close(): Promise<void>;
}

// ── Argument checks shared by the implementations, so both reject exactly the same inputs ──────

/** @throws SupportbotError `invalid-argument` unless `value` is a positive safe integer. */
export function checkPositiveInt(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new SupportbotError('invalid-argument', `${name} must be a positive integer, not ${String(value)}`);
  }
}

/** @throws SupportbotError `invalid-argument` unless `value` is a non-negative safe integer. */
export function checkNonNegativeInt(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new SupportbotError(
      'invalid-argument',
      `${name} must be a non-negative integer, not ${String(value)}`,
    );
  }
}

/** @throws SupportbotError `invalid-rating` unless `value` is 1, -1 or null. */
export function checkRating(value: unknown): asserts value is RatingValue | null {
  if (value !== 1 && value !== -1 && value !== null) {
    throw new SupportbotError('invalid-rating', `a rating is 1, -1 or null, not ${String(value)}`);
  }
}

/** @throws SupportbotError `invalid-argument` unless `turn` is `{role: 'user' | 'assistant', text: string}`. */
export function checkTurn(turn: Turn): void {
  const ok =
    typeof turn === 'object' &&
    turn !== null &&
    (turn.role === 'user' || turn.role === 'assistant') &&
    typeof turn.text === 'string';
  if (!ok)
    throw new SupportbotError('invalid-argument', 'a turn is {role: "user" | "assistant", text: string}');
}

const JOB_STATES: ReadonlySet<string> = new Set<JobState>(['queued', 'running', 'succeeded', 'failed']);

/** @throws SupportbotError `invalid-argument` for a job `setJobStatus` rejects (see there). */
export function checkJob(job: JobStatus): void {
  const fail = (problem: string): never => {
    throw new SupportbotError('invalid-argument', problem);
  };
  if (typeof job !== 'object' || job === null) fail('a job status is an object');
  if (typeof job.id !== 'string' || job.id === '') fail('a job needs an id');
  if (typeof job.kind !== 'string' || job.kind === '') fail(`job ${job.id} needs a kind`);
  if (!JOB_STATES.has(job.state)) {
    fail(`job ${job.id} has state ${String(job.state)}, not one of ${[...JOB_STATES].join(', ')}`);
  }
  if (typeof job.startedAt !== 'string' || job.startedAt === '') fail(`job ${job.id} needs startedAt`);
  const { progress } = job;
  if (progress !== undefined && !(typeof progress === 'number' && progress >= 0 && progress <= 1)) {
    fail(`job ${job.id} has progress ${String(progress)}, outside 0..1`);
  }
}
