import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { ESCALATE_TEXT } from '../../core/answer.ts';
import type { StateStore } from '../../core/state-store.ts';
import type { AnswerResult, Turn } from '../../core/types.ts';
import type { EscalationTarget, HandleOutcome, IncomingMessage, Platform, ReplyChannel } from './types.ts';

export interface ConversationLimits {
  /** Questions one user may ask per `rateWindowMs`. */
  perUser: number;
  rateWindowMs: number;
  /** Answers generated at once by this process; more get a "busy" reply. */
  maxConcurrent: number;
  /** Longest time one answer may take, in ms; then the asker is told and nothing is posted. */
  answerTimeoutMs: number;
  /** How long a message key is remembered for de-duplication, in ms (Slack retries within minutes). */
  dedupTtlMs: number;
  /** Longest question accepted, in characters. */
  maxQuestionChars: number;
  /** Turns of thread history kept and passed to `answer()`. */
  historyTurns: number;
}

export const DEFAULT_LIMITS: ConversationLimits = {
  perUser: 10,
  rateWindowMs: 60_000,
  maxConcurrent: 4,
  answerTimeoutMs: 30_000,
  dedupTtlMs: 24 * 3600_000,
  maxQuestionChars: 4000,
  historyTurns: 10,
};

export interface ConversationHandlerOptions {
  /** `core.answer()` bound to the runtime's stores and settings. */
  answer: (
    question: string,
    history: Turn[],
    signal: AbortSignal,
    /** The incoming message, for per-workspace/channel routing (LoRA adapter) and filters. */
    message: IncomingMessage,
  ) => Promise<AnswerResult>;
  state: StateStore;
  log: Logger;
  limits?: Partial<ConversationLimits>;
  /** Escalation target for a message's workspace and channel; null when none is configured. */
  escalationFor: (message: IncomingMessage) => EscalationTarget | null;
  /** Called with what became of every message and rating (metrics); must not throw. */
  observe?: {
    outcome?: (message: IncomingMessage, outcome: HandleOutcome) => void;
    rating?: (event: RatingEvent, recorded: boolean) => void;
  };
}

/** A rating gesture from any platform: a reaction added/removed or a button pressed. */
export interface RatingEvent {
  platform: Platform;
  /** Key of the message that was rated (as `ReplyChannel.postAnswer` returned it). */
  messageKey: string;
  userId: string;
  /** 1 (👍), -1 (👎), or null to retract (reaction removed). */
  value: 1 | -1 | null;
  /** For a removed reaction: only retract when the current rating is this value. */
  onlyIfCurrent?: 1 | -1;
}

export const RATE_LIMITED_TEXT = (seconds: number) =>
  `You're asking faster than I can keep up — please wait about ${seconds} s and ask again.`;
export const BUSY_TEXT = "I'm answering a lot of questions right now — please ask again in a minute.";
export const TIMEOUT_TEXT = 'Sorry, that took too long to answer. Please try again, or ask for a human.';
export const FAILED_TEXT = "Sorry, something went wrong on my side and I couldn't answer. Please try again.";
export const TOO_LONG_TEXT = (max: number) =>
  `That message is too long for me — please keep questions under ${max} characters.`;
/**
 * State-store message key under which a thread's latest answer is mapped
 * (`StateStore.mapMessage(platform, threadAnswerKey(threadKey), answerId)`): how the handler finds
 * the previous answer for 👎-then-wrote escalation and transports find who asked in a thread.
 */
export const threadAnswerKey = (threadKey: string): string => `thread:${threadKey}`;

/** Told when a person is needed but no escalation target is configured for the channel. */
export const NO_ESCALATION_TARGET_TEXT =
  'A person should look at this, but I have no support channel to notify here — please contact the support team directly.';
/** Told when the escalation notice could not be posted. */
export const ESCALATION_FAILED_TEXT =
  "I couldn't reach the support team automatically — please contact them directly.";

/**
 * The asker-facing text of an escalated answer: it always ends by saying what happens next, and
 * never promises a person when nobody can be notified. `answer()`'s own escalation reply
 * (`ESCALATE_TEXT`) already promises one, so it is kept or replaced rather than repeated.
 */
export function escalationText(text: string, hasTarget: boolean): string {
  if (text === ESCALATE_TEXT) return hasTarget ? text : NO_ESCALATION_TARGET_TEXT;
  return `${text}\n\n${hasTarget ? HUMAN_COMING_TEXT : NO_ESCALATION_TARGET_TEXT}`;
}

export const HUMAN_COMING_TEXT = "I've asked someone from the support team to join this thread.";

/**
 * The platform-neutral conversation handler (DESIGN.md data flow): event in → de-duplicate →
 * rate and concurrency limits → thread history → `answer()` with a timeout → post the reply →
 * record the Answer and map every posted message to it → escalate when needed. Transports only
 * translate platform payloads to `IncomingMessage`/`RatingEvent` and implement `ReplyChannel`.
 *
 * Safe with several replicas sharing one state store: a message is answered by whichever replica
 * claims its key first (`StateStore.claimEvent`, SET NX semantics).
 */
export class ConversationHandler {
  readonly limits: ConversationLimits;
  #inFlight = 0;
  /** `answer()` calls running now; `maxConcurrent` bounds these, not the posting around them. */
  #generating = 0;
  #closed = false;
  readonly #idle = new Set<() => void>();

  constructor(private readonly options: ConversationHandlerOptions) {
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
  }

  /** Questions this process is answering now (generating or posting); `drain()` waits for these. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Handles one question. Never throws: failures are logged, told to the asker when possible,
   * and returned as `{kind: 'failed'}`.
   */
  async handleMessage(message: IncomingMessage, reply: ReplyChannel): Promise<HandleOutcome> {
    const outcome = await this.#handleMessage(message, reply);
    this.options.observe?.outcome?.(message, outcome);
    return outcome;
  }

  async #handleMessage(message: IncomingMessage, reply: ReplyChannel): Promise<HandleOutcome> {
    const { state, log } = this.options;
    const text = message.text.trim();
    if (!text) return { kind: 'ignored', reason: 'empty message' };
    // Not claimed: a replica that keeps running answers the platform's re-delivery instead.
    if (this.#closed) return { kind: 'ignored', reason: 'shutting down' };
    // Counted from here, before the first await: once a message is claimed, drain() waits for it
    // (a claim lasts the dedup TTL, so a claimed message dropped at shutdown is never answered).
    this.#inFlight++;
    try {
      const first = await state.claimEvent(
        `msg:${message.platform}:${message.messageKey}`,
        this.limits.dedupTtlMs,
      );
      if (!first) return { kind: 'duplicate' };
      if (text.length > this.limits.maxQuestionChars) {
        await reply.postText(message, TOO_LONG_TEXT(this.limits.maxQuestionChars));
        return { kind: 'ignored', reason: 'too long' };
      }
      const token = await state.takeRateToken(
        `rate:${message.platform}:${message.userId}`,
        this.limits.perUser,
        this.limits.rateWindowMs,
      );
      if (!token.allowed) {
        await reply.postText(message, RATE_LIMITED_TEXT(Math.max(1, Math.ceil(token.retryAfterMs / 1000))));
        return { kind: 'rate-limited', retryAfterMs: token.retryAfterMs };
      }
      return await this.#answer(message, text, reply);
    } catch (err) {
      log.error({ err, messageKey: message.messageKey }, 'handling a message failed');
      await reply.postText(message, FAILED_TEXT).catch(() => {});
      return { kind: 'failed', error: (err as Error).message };
    } finally {
      this.#inFlight--;
      if (this.#inFlight === 0) for (const resolve of this.#idle) resolve();
    }
  }

  async #answer(message: IncomingMessage, text: string, reply: ReplyChannel): Promise<HandleOutcome> {
    const { state, log } = this.options;
    const conversation = `${message.platform}:${message.threadKey}`;
    const history = await state.threadHistory(conversation, this.limits.historyTurns);
    // The asker writing again after a 👎 on the thread's last answer wants more than the bot gave.
    const previousId = await state.answerForMessage(message.platform, threadAnswerKey(message.threadKey));
    const previous = previousId ? await state.getAnswer(previousId) : null;
    const downvotedBefore =
      previous !== null &&
      previous.userId === message.userId &&
      (await state.ratingSummary(previous.id)).down > 0;

    // The limit is on generation (the expensive part); posting and state writes around it are not
    // counted, so slow Web API calls or a remote state store do not turn questions away.
    if (this.#generating >= this.limits.maxConcurrent) {
      await reply.postText(message, BUSY_TEXT);
      return { kind: 'busy' };
    }
    this.#generating++;
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => {
        controller.abort(new Error('answer timed out'));
        resolve('timeout');
      }, this.limits.answerTimeoutMs);
    });
    const result = await Promise.race([
      // Inside a promise chain, so a synchronous throw still reaches the finally below.
      Promise.resolve().then(() => this.options.answer(text, history, controller.signal, message)),
      timeout,
    ]).finally(() => {
      clearTimeout(timer);
      this.#generating--;
    });
    if (result === 'timeout') {
      log.warn(
        { messageKey: message.messageKey, timeoutMs: this.limits.answerTimeoutMs },
        'answer timed out',
      );
      await reply.postText(message, TIMEOUT_TEXT);
      return { kind: 'failed', error: 'timeout' };
    }

    const escalate = result.escalated || downvotedBefore;
    const target = escalate ? this.options.escalationFor(message) : null;
    const shown = escalate ? { ...result, text: escalationText(result.text, target !== null) } : result;
    const answerId = randomUUID();
    const { retrieved, ...rest } = shown;
    const record = {
      id: answerId,
      platform: message.platform,
      threadId: message.threadKey,
      userId: message.userId,
      question: text,
      result: { ...rest, retrievedChunkIds: retrieved.map((h) => h.chunk.id) },
      createdAt: new Date().toISOString(),
      messageKeys: [] as string[],
    };
    // Saved before posting, and each message mapped as soon as it is posted, so that a reaction
    // racing the post already finds the answer, and a post that fails half-way keeps the
    // messages that did go out rateable.
    await state.saveAnswer(record);
    const posted: string[] = [];
    const onPosted = async (key: string) => {
      posted.push(key);
      await state.mapMessage(message.platform, key, answerId);
    };
    try {
      const keys = await reply.postAnswer(message, shown, answerId, onPosted);
      for (const key of keys) if (!posted.includes(key)) await onPosted(key);
    } finally {
      await state.mapMessage(message.platform, threadAnswerKey(message.threadKey), answerId);
      await state.saveAnswer({ ...record, messageKeys: posted });
    }
    await state.appendTurn(conversation, { role: 'user', text }, this.limits.historyTurns);
    await state.appendTurn(conversation, { role: 'assistant', text: shown.text }, this.limits.historyTurns);

    if (escalate) {
      const reason =
        result.escalationReason ??
        (downvotedBefore ? 'the asker rated the last answer 👎 and wrote again' : 'escalated');
      if (target) {
        // The answer is out; a failed notice must not turn it into "couldn't answer".
        try {
          await reply.notifyEscalation(target, message, reason);
        } catch (err) {
          log.error({ err, messageKey: message.messageKey, target }, 'escalation notice failed');
          await reply.postText(message, ESCALATION_FAILED_TEXT).catch(() => {});
        }
      } else {
        log.warn(
          { messageKey: message.messageKey, reason },
          'escalation wanted but no escalation target is configured',
        );
      }
    }
    return { kind: 'answered', answerId, escalated: escalate, abstained: result.abstained };
  }

  /**
   * Records a rating gesture against the answer its message belongs to. Ratings on messages that
   * are not the bot's answers are ignored.
   * @returns `recorded` with the answer id, or `ignored`.
   */
  async handleRating(
    event: RatingEvent,
  ): Promise<{ kind: 'recorded'; answerId: string } | { kind: 'ignored' }> {
    const answerId = await this.options.state.answerForMessage(event.platform, event.messageKey);
    this.options.observe?.rating?.(event, answerId !== null);
    if (!answerId) return { kind: 'ignored' };
    if (event.value === null && event.onlyIfCurrent !== undefined) {
      // Removing 👍 must not erase a 👎 the same user set meanwhile (reactions arrive unordered,
      // possibly at two replicas): one compare-and-delete in the store.
      await this.options.state.clearRatingIf(answerId, event.userId, event.onlyIfCurrent);
    } else {
      await this.options.state.setRating(answerId, event.userId, event.value);
    }
    return { kind: 'recorded', answerId };
  }

  /**
   * Stops taking new questions (graceful shutdown): later `handleMessage` calls return
   * `{kind: 'ignored', reason: 'shutting down'}` without claiming the message. Answers in flight
   * finish (await `drain()`); ratings are still recorded. Idempotent.
   */
  close(): void {
    this.#closed = true;
  }

  /** Resolves when no answer is in flight (graceful shutdown). */
  async drain(): Promise<void> {
    if (this.#inFlight === 0) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.#idle.delete(done);
        resolve();
      };
      this.#idle.add(done);
    });
  }
}
