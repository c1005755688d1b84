import type { AnswerResult } from '../../core/types.ts';

/** Chat platforms the bot speaks on; `console` is the local front end. */
export type Platform = 'slack' | 'discord' | 'console';

/**
 * A question as every transport hands it to the conversation handler, after validating the
 * platform payload at the edge.
 */
export interface IncomingMessage {
  platform: Platform;
  /**
   * Identity of the platform message, the same however it was delivered (Slack: `channel:ts`, so
   * an `app_mention` and a `message` event of one post share it; Discord: the message id). Used
   * to answer each message once across retries and replicas.
   */
  messageKey: string;
  /** Slack team id / Discord guild id (`dm` for direct messages without one). */
  workspaceId: string;
  channelId: string;
  /** Conversation key: the thread the reply goes to (Slack: `channel:thread_ts`; Discord: thread or channel id). */
  threadKey: string;
  userId: string;
  /** The question with the bot mention removed. */
  text: string;
  isDirect: boolean;
  /** Link to the message or thread, for escalation notices; null when the platform has none. */
  permalink?: string | null;
}

/** Where escalations go: a channel to post in and who to mention there. */
export interface EscalationTarget {
  channelId: string;
  /** Platform mention text, e.g. Slack `<!subteam^S123>` or Discord `<@&role>`. */
  mention?: string;
}

/**
 * What the handler needs from a platform, implemented once per transport (Slack, Discord,
 * console) — the only code that knows how a reply is posted.
 */
export interface ReplyChannel {
  /**
   * Posts an answer in the message's thread, split to the platform's limits, with rating
   * controls on the last message.
   * @param onPosted called with each message's key as soon as that message is posted (before the
   *   next one), so it is rateable at once and kept when a later post fails.
   * @returns the platform keys of every message posted (Slack `channel:ts`, Discord message id),
   *   so reactions on any of them resolve to the answer.
   */
  postAnswer(
    message: IncomingMessage,
    result: AnswerResult,
    answerId: string,
    onPosted?: (key: string) => Promise<void>,
  ): Promise<string[]>;
  /** Posts plain text in the message's thread (rate-limit notices, errors). */
  postText(message: IncomingMessage, text: string): Promise<void>;
  /**
   * Tells the escalation target that a human is needed, with a link to the thread. Only the
   * target: the answer posted to the asker already says a person is coming.
   */
  notifyEscalation(target: EscalationTarget, message: IncomingMessage, reason: string): Promise<void>;
}

/** What became of one incoming message. */
export type HandleOutcome =
  | { kind: 'answered'; answerId: string; escalated: boolean; abstained: boolean }
  | { kind: 'duplicate' }
  | { kind: 'rate-limited'; retryAfterMs: number }
  | { kind: 'busy' }
  | { kind: 'ignored'; reason: string }
  | { kind: 'failed'; error: string };
