import type { AnswerRecord } from './types.ts';

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
 * The state store seam: what the bot remembers between messages and processes. Implementations:
 * SQLite (`core/state-store/sqlite.ts`, the default, may share the knowledge store's file) and,
 * later, Redis for several bot replicas.
 *
 * Rules every implementation keeps, so the later parts (thread history, event dedup, locks, job
 * status) fit the same shape and map onto Redis:
 * - Every method is async and atomic on its own; there is no transaction spanning calls. Where a
 *   caller needs read-modify-write, the method does it (e.g. `setRating` returns the previous
 *   value), as a Redis implementation would with MULTI or a Lua script.
 * - Times are ISO-8601 UTC strings; durations are `...Ms`. Keys are opaque strings chosen by
 *   callers (`platform:threadId`, an event id, a lock name).
 * - Records are JSON-serializable domain types from `core/types.ts`.
 *
 * Planned additions (not implemented yet): `appendTurn`/`threadHistory(platform, threadId,
 * limit)`; `markEventSeen(key, ttlMs) → boolean` (first sighting wins, like `SET NX PX`);
 * `acquireLock(name, owner, ttlMs) → boolean` / `releaseLock(name, owner)`; `setJobStatus` /
 * `getJobStatus`.
 *
 * Errors are `SupportbotError`s: `store-closed` after `close()`, plus those named per method.
 */
export interface StateStore {
  /** Short name for logs and `status` (`sqlite:/path/to/file`, `redis:host:port`). */
  readonly id: string;

  /**
   * Records an answer the bot gave. Saving the same `id` again replaces the record (so a retried
   * post is harmless) and keeps its ratings.
   */
  saveAnswer(record: AnswerRecord): Promise<void>;

  /** The answer with this id, or `null`. */
  getAnswer(id: string): Promise<AnswerRecord | null>;

  /**
   * Sets `userId`'s rating of an answer: 1 (👍), -1 (👎), or `null` to retract it. A user has at
   * most one rating per answer; setting the same value again changes nothing. Idempotent.
   *
   * @returns the user's previous rating, `null` when there was none.
   * @throws SupportbotError `unknown-answer` when no answer has this id; `invalid-rating` when
   *   `value` is not 1, -1 or null.
   */
  setRating(answerId: string, userId: string, value: RatingValue | null): Promise<RatingValue | null>;

  /** Current 👍/👎 counts of an answer; `{up: 0, down: 0}` for an unknown answer. */
  ratingSummary(answerId: string): Promise<RatingSummary>;

  /** Answers ordered by `createdAt` then `id`, in `options.order`. */
  listAnswers(options?: ListAnswersOptions): Promise<AnswerRecord[]>;

  /** Release files and connections. Further calls throw `store-closed`. */
  close(): Promise<void>;
}
