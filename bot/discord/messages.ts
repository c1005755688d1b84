import {
  type APIActionRowComponent,
  type APIButtonComponentWithCustomId,
  ButtonStyle,
  ComponentType,
  escapeMarkdown,
  hideLinkEmbed,
  MessageFlags,
} from 'discord.js';
import { SupportbotError } from '../../core/errors.ts';
import type { AnswerResult, Citation } from '../../core/types.ts';
import { splitMarkdown } from '../render/split.ts';

/** Discord's limits this module keeps. Source: Discord API reference, Create Message and Message Components. */
export const DISCORD_LIMITS = {
  /** `content` of one message. */
  contentChars: 2_000,
  /** `custom_id` of a component. */
  customIdChars: 100,
} as const;

/** Prefix of the feedback buttons' `custom_id`: `feedback:up:<answerId>` / `feedback:down:<answerId>`. */
export const FEEDBACK_CUSTOM_ID_PREFIX = 'feedback';

/**
 * A Create Message request body (Discord API shape, snake_case), as sent to
 * `POST /channels/{id}/messages`. With discord.js, pass `content`, `components` and `flags` to `send()`
 * and set `allowedMentions: { parse: [] }` on the client, since discord.js reads `allowedMentions`.
 */
export interface DiscordMessagePayload {
  content: string;
  /** Present only on the last message, when feedback buttons are on: one action row with 👍 and 👎. */
  components?: APIActionRowComponent<APIButtonComponentWithCustomId>[];
  /** `SUPPRESS_EMBEDS`: links in an answer never unfurl into embeds. */
  flags: number;
  /** Nothing in generated text may ping anyone (`@everyone`, roles, users). */
  allowed_mentions: { parse: [] };
}

export interface DiscordAnswerOptions {
  /** Id of the recorded answer; the buttons carry it in their `custom_id`. */
  answerId: string;
  /** Attach 👍/👎 buttons to the last message. */
  feedbackButtons: boolean;
}

/**
 * Renders an answer as one or more Discord messages, to be posted in order in one thread (or reply chain).
 *
 * Shape: the answer's Markdown (Discord renders it as is) is split by `splitMarkdown` into messages of at
 * most 2,000 characters with balanced code fences (a block cut across messages is closed and reopened with
 * its info string). The last message ends with a `**Sources**` list, `[n] [title](<url>)` (the angle
 * brackets suppress the embed; `[n] title — path` without a URL), appended to the last answer message when
 * it fits and in messages of its own otherwise. With `feedbackButtons`, the last message (and only it)
 * carries one action row with two secondary buttons, 👍 `feedback:up:<answerId>` and 👎
 * `feedback:down:<answerId>`. Abstained or escalated results have no Sources list. An empty answer text
 * gives one `_(no answer text)_` message. Every message has `flags: SUPPRESS_EMBEDS` and
 * `allowed_mentions: { parse: [] }`.
 *
 * @throws SupportbotError `render-answer-id` when answerId is empty or makes a `custom_id` over 100 characters.
 */
export function answerToDiscordMessages(
  result: AnswerResult,
  opts: DiscordAnswerOptions,
): DiscordMessagePayload[] {
  const max = DISCORD_LIMITS.contentChars;
  const contents = splitMarkdown(result.text, max);
  if (contents.length === 0) contents.push('_(no answer text)_');
  if (!result.abstained && !result.escalated && result.citations.length > 0) {
    const sources = ['**Sources**', ...result.citations.map(citationLine)].join('\n');
    const last = contents.length - 1;
    const joined = `${contents[last]}\n\n${sources}`;
    if (joined.length <= max) contents[last] = joined;
    else contents.push(...splitMarkdown(sources, max));
  }
  const messages: DiscordMessagePayload[] = contents.map((content) => ({
    content,
    flags: MessageFlags.SuppressEmbeds,
    allowed_mentions: { parse: [] },
  }));
  const last = messages[messages.length - 1];
  if (opts.feedbackButtons && last !== undefined) last.components = [feedbackRow(opts.answerId)];
  return messages;
}

/** The rating a feedback button's `custom_id` stands for, or `null` when it is not one of ours. */
export function parseFeedbackCustomId(customId: string): { answerId: string; value: 1 | -1 } | null {
  const match = /^feedback:(up|down):(.+)$/s.exec(customId);
  if (match === null || match[2] === undefined) return null;
  return { answerId: match[2], value: match[1] === 'up' ? 1 : -1 };
}

function citationLine(c: Citation): string {
  // Escaped so a title cannot format, mention or break out of the link text.
  const title = escapeMarkdown(c.title).replace(/[[\]]/g, '\\$&');
  if (c.url !== null && c.url !== '') {
    const url = c.url.replace(
      /[<>()\s]/g,
      (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`,
    );
    return `[${c.n}] [${title}](${hideLinkEmbed(url)})`;
  }
  return `[${c.n}] ${title} — ${escapeMarkdown(c.sourcePath)}`;
}

function feedbackRow(answerId: string): APIActionRowComponent<APIButtonComponentWithCustomId> {
  const down = `${FEEDBACK_CUSTOM_ID_PREFIX}:down:${answerId}`;
  if (answerId === '' || down.length > DISCORD_LIMITS.customIdChars) {
    throw new SupportbotError(
      'render-answer-id',
      `answerId must be 1..${DISCORD_LIMITS.customIdChars - down.length + answerId.length} characters for a Discord custom_id`,
    );
  }
  return {
    type: ComponentType.ActionRow,
    components: [
      {
        type: ComponentType.Button,
        style: ButtonStyle.Secondary,
        custom_id: `${FEEDBACK_CUSTOM_ID_PREFIX}:up:${answerId}`,
        emoji: { name: '👍' },
      },
      { type: ComponentType.Button, style: ButtonStyle.Secondary, custom_id: down, emoji: { name: '👎' } },
    ],
  };
}
