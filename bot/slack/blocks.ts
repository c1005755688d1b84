import type { ActionsBlock, ContextBlock, KnownBlock, SectionBlock } from '@slack/types';
import { SupportbotError } from '../../core/errors.ts';
import type { AnswerResult, Citation } from '../../core/types.ts';
import { escapeMrkdwn, markdownToMrkdwn, mrkdwnLink } from '../render/markdown-to-mrkdwn.ts';
import { splitMarkdown } from '../render/split.ts';

/**
 * Slack's message limits this module keeps (chat.postMessage). Sources: Block Kit reference (section text
 * ≤ 3,000 characters, ≤ 50 blocks per message) and observed API behaviour (blocks together fail with
 * `msg_blocks_too_long` around 13,200 characters; `text` over ~4,000 characters fails with `msg_too_long`),
 * kept with a margin.
 */
export const SLACK_LIMITS = {
  /** Text of one section or context text object. */
  sectionTextChars: 3_000,
  blocksPerMessage: 50,
  /** Sum of every `text` string in one message's blocks. */
  blockTextCharsPerMessage: 12_000,
  /** The plain-text fallback `text` of a message (Slack's hard limit is about 4,000). */
  fallbackTextChars: 3_000,
  /** A button's `value`. */
  buttonValueChars: 2_000,
} as const;

/** `action_id`s of the feedback buttons; their `value` is the answer id. */
export const FEEDBACK_ACTION_UP = 'feedback_up';
export const FEEDBACK_ACTION_DOWN = 'feedback_down';
/** `block_id` of the actions block holding the feedback buttons. */
export const FEEDBACK_BLOCK_ID = 'feedback';

/** One chat.postMessage payload: the notification/fallback text and the Block Kit blocks. */
export interface SlackMessage {
  /** mrkdwn fallback for notifications and clients without blocks; at most `fallbackTextChars`. */
  text: string;
  blocks: KnownBlock[];
}

export interface SlackAnswerOptions {
  /** Id of the recorded answer; the buttons carry it as their `value`. */
  answerId: string;
  /** Attach 👍/👎 buttons to the last message. */
  feedbackButtons: boolean;
}

/**
 * Renders an answer as one or more Slack messages, to be posted in order in one thread.
 *
 * Shape: the answer's Markdown is converted to mrkdwn (`markdownToMrkdwn`) and split (`splitMarkdown`)
 * into section blocks of at most 3,000 characters, each with balanced code fences; consecutive sections
 * are packed into a message while it stays within 50 blocks and 12,000 characters of block text, so the
 * text arrives whole and in order across the messages. The last message ends with a context block
 * `*Sources*` listing every citation as `[n] <url|title>` (`[n] title — path` without a URL; more context
 * blocks if the list is longer than 3,000 characters) and, with `feedbackButtons`, an actions block with
 * the 👍/👎 buttons (`action_id` `feedback_up` / `feedback_down`, `value` = answerId); when these do not
 * fit in the last answer message they get a message of their own, so the buttons are always on the last
 * message and appear once. Abstained or escalated results have no Sources block. An empty answer text
 * gives one `_(no answer text)_` section.
 *
 * Each message's `text` is the mrkdwn of its blocks, cut at 3,000 characters (at a Markdown boundary,
 * with ` …` appended) — Slack shows it in notifications.
 *
 * @throws SupportbotError `render-answer-id` when answerId is empty or longer than a button value allows.
 */
export function answerToSlackMessages(result: AnswerResult, opts: SlackAnswerOptions): SlackMessage[] {
  if (
    opts.feedbackButtons &&
    (opts.answerId === '' || opts.answerId.length > SLACK_LIMITS.buttonValueChars)
  ) {
    throw new SupportbotError(
      'render-answer-id',
      `answerId must be 1..${SLACK_LIMITS.buttonValueChars} characters for a Slack button value`,
    );
  }
  let sections = splitMarkdown(markdownToMrkdwn(result.text), SLACK_LIMITS.sectionTextChars);
  if (sections.length === 0) sections = ['_(no answer text)_'];

  const tail: KnownBlock[] = [];
  if (!result.abstained && !result.escalated && result.citations.length > 0) {
    tail.push(...sourcesBlocks(result.citations));
  }
  if (opts.feedbackButtons) tail.push(feedbackBlock(opts.answerId));

  const groups: KnownBlock[][] = [];
  let current: KnownBlock[] = [];
  for (const text of sections) {
    const block: SectionBlock = { type: 'section', text: { type: 'mrkdwn', text } };
    if (current.length > 0 && !fits([...current, block])) {
      groups.push(current);
      current = [];
    }
    current.push(block);
  }
  if (tail.length > 0 && !fits([...current, ...tail])) {
    groups.push(current);
    current = [];
  }
  current.push(...tail);
  groups.push(current);
  return groups.map((blocks) => ({ text: fallbackText(blocks), blocks }));
}

/** Sum of the lengths of every `text` string in the blocks (section, context and button texts). */
export function blockTextChars(blocks: readonly KnownBlock[]): number {
  let total = 0;
  const visit = (value: unknown, key: string): void => {
    if (typeof value === 'string') {
      if (key === 'text') total += value.length;
    } else if (Array.isArray(value)) {
      for (const item of value) visit(item, key);
    } else if (typeof value === 'object' && value !== null) {
      for (const [k, v] of Object.entries(value)) visit(v, k);
    }
  };
  visit(blocks, '');
  return total;
}

function fits(blocks: KnownBlock[]): boolean {
  return (
    blocks.length <= SLACK_LIMITS.blocksPerMessage &&
    blockTextChars(blocks) <= SLACK_LIMITS.blockTextCharsPerMessage
  );
}

function citationLine(c: Citation): string {
  if (c.url !== null && c.url !== '') return `[${c.n}] ${mrkdwnLink(c.url, c.title)}`;
  return `[${c.n}] ${escapeMrkdwn(c.title)} — ${escapeMrkdwn(c.sourcePath)}`;
}

function sourcesBlocks(citations: Citation[]): ContextBlock[] {
  const text = ['*Sources*', ...citations.map(citationLine)].join('\n');
  return splitMarkdown(text, SLACK_LIMITS.sectionTextChars).map((part) => ({
    type: 'context',
    elements: [{ type: 'mrkdwn', text: part }],
  }));
}

function feedbackBlock(answerId: string): ActionsBlock {
  return {
    type: 'actions',
    block_id: FEEDBACK_BLOCK_ID,
    elements: [
      {
        type: 'button',
        action_id: FEEDBACK_ACTION_UP,
        text: { type: 'plain_text', text: '👍', emoji: true },
        value: answerId,
        accessibility_label: 'Helpful',
      },
      {
        type: 'button',
        action_id: FEEDBACK_ACTION_DOWN,
        text: { type: 'plain_text', text: '👎', emoji: true },
        value: answerId,
        accessibility_label: 'Not helpful',
      },
    ],
  };
}

function fallbackText(blocks: KnownBlock[]): string {
  const parts: string[] = [];
  for (const block of blocks) {
    if (block.type === 'section' && block.text !== undefined) parts.push(block.text.text);
    if (block.type === 'context') {
      for (const element of block.elements) if (element.type === 'mrkdwn') parts.push(element.text);
    }
  }
  const text = parts.length > 0 ? parts.join('\n\n') : 'Was this answer helpful?';
  if (text.length <= SLACK_LIMITS.fallbackTextChars) return text;
  const suffix = ' …';
  return (splitMarkdown(text, SLACK_LIMITS.fallbackTextChars - suffix.length)[0] ?? '') + suffix;
}
