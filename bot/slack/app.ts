import type { IncomingMessage as HttpRequest, ServerResponse } from 'node:http';
import { App, type AppOptions, LogLevel } from '@slack/bolt';
import type { Logger as BoltLogger } from '@slack/logger';
import type { WebClient } from '@slack/web-api';
import type { Logger } from 'pino';
import { SupportbotError } from '../../core/errors.ts';
import type { AnswerResult } from '../../core/types.ts';
import {
  ADMIN_SUBCOMMANDS,
  type CommandReply,
  runSupportCommand,
  type Subcommand,
  type SupportCommandDeps,
} from '../commands/support-command.ts';
import { type ConversationHandler, threadAnswerKey } from '../conversation/handler.ts';
import type { IncomingMessage, ReplyChannel } from '../conversation/types.ts';
import { escapeMrkdwn, markdownToMrkdwn } from '../render/markdown-to-mrkdwn.ts';
import { splitMarkdown } from '../render/split.ts';
import { answerToSlackMessages, SLACK_LIMITS } from './blocks.ts';

export interface SlackSettings {
  botToken: string;
  /** Verifies HTTP requests (https://api.slack.com/authentication/verifying-requests-from-slack). */
  signingSecret: string;
  /** `xapp-…`: Socket Mode instead of the HTTP receiver. */
  appToken?: string;
  /** Web API base URL (proxies, tests); Slack's own when unset. */
  apiUrl?: string;
  /** Reaction names counted as 👍 / 👎 (without colons; skin tones are ignored). */
  upReactions: string[];
  downReactions: string[];
  /** User ids and user-group ids allowed admin subcommands. */
  adminUsers: string[];
  adminGroups: string[];
}

export interface SlackBotDeps {
  handler: ConversationHandler;
  commands: SupportCommandDeps;
  log: Logger;
  /**
   * Extra GET routes served by the HTTP receiver (e.g. `/healthz`). Ignored in Socket Mode, where
   * there is no receiver: the caller serves them on its own HTTP server.
   */
  routes?: { path: string; handler: (req: HttpRequest, res: ServerResponse) => void }[];
}

/**
 * How long `/support` waits for its immediate reply before acknowledging with a placeholder, in ms.
 * Slack needs the ack within 3,000 ms (https://api.slack.com/interactivity/slash-commands#responding_basic_receipt);
 * the rest is margin for the network and the event loop.
 */
export const COMMAND_ACK_BUDGET_MS = 2_000;
/** How long a user group's member list is trusted before `usergroups.users.list` is asked again, in ms. */
export const ADMIN_GROUP_CACHE_MS = 5 * 60_000;
export const COMMAND_WORKING_TEXT = 'Working on it…';
/**
 * Slack accepts at most this many posts to one `response_url`, within `RESPONSE_URL_TTL_MS` of the
 * command ("up to 5 times within 30 minutes",
 * https://api.slack.com/interactivity/handling#message_responses); later posts are refused.
 */
export const RESPONSE_URL_MAX_POSTS = 5;
export const RESPONSE_URL_TTL_MS = 30 * 60_000;
/** Margin before the `response_url` expires after which the Web API is used instead, in ms. */
const RESPONSE_URL_MARGIN_MS = 60_000;
/** Ends a `/support` reply that had to be cut to fit Slack's `response_url` limits. */
export const COMMAND_TRUNCATED_TEXT =
  '_(cut short: Slack allows only 5 replies to one command — mention me with the question for the full answer)_';

const MENTION = /<@[UW][A-Z0-9]+(\|[^>]*)?>/g;
/** Message subtypes that are still a person writing a question (https://api.slack.com/events/message#subtypes). */
const QUESTION_SUBTYPES = new Set(['file_share', 'thread_broadcast']);

/** Slack message key: `channel:ts`, the identity of one posted message. */
export const slackKey = (channel: string, ts: string) => `${channel}:${ts}`;

/**
 * State-store key (`StateStore.mapMessage('slack', key, userId)`) recording whose question the bot
 * first answered in the thread `threadKey` (`channel:thread_ts`): that user's messages in the thread
 * are follow-ups without a mention. The value is a user id, not an answer id. Same rule and key
 * shape as Discord's `threadOwnerKey`.
 */
export const slackThreadOwnerKey = (threadKey: string): string => `thread-owner:${threadKey}`;

/**
 * State-store key recording that the thread `threadKey` was escalated to a person (the value is the
 * answer id that escalated it): from then on the bot answers there only when mentioned.
 */
export const slackEscalatedKey = (threadKey: string): string => `escalated:${threadKey}`;

/** `+1::skin-tone-3` → `+1` (Slack appends the skin tone to the reaction name). */
export function reactionName(name: string): string {
  return name.replace(/::skin-tone-\d$/, '');
}

/**
 * A message's text as the question the handler sees: bot and user mentions removed, Slack's
 * control sequences turned back into what the person typed (`<url|label>` → `label (url)`,
 * `<url>` → `url`, `<#C1|name>` → `#name`, `<!here>` → `@here`), then `&lt;`, `&gt;` and `&amp;`
 * decoded, per "Formatting text for app surfaces" (https://api.slack.com/reference/surfaces/formatting#escaping).
 */
export function slackTextToQuestion(text: string): string {
  return text
    .replace(MENTION, ' ')
    .replace(/<#[CG][A-Z0-9]+\|([^>]*)>/g, '#$1')
    .replace(/<!(?:subteam\^[A-Z0-9]+\|)?([^>|]+)(?:\|[^>]*)?>/g, '@$1')
    .replace(/<((?:https?|mailto):[^>|]+)\|([^>]+)>/g, (_m, url: string, label: string) =>
      label === url ? url : `${label} (${url})`,
    )
    .replace(/<((?:https?|mailto):[^>|]+)>/g, '$1')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ')
    .trim();
}

/**
 * Bolt's `App`, initialised on `start()` instead of in the constructor: `start` first calls
 * `auth.test`, so a bad token makes `start` reject instead of starting a bot whose every event
 * fails (and whose constructor's unawaited `auth.test` would surface as an unhandled rejection).
 */
class SlackBotApp extends App {
  override async start(...args: Parameters<App['start']>): ReturnType<App['start']> {
    try {
      await this.init();
    } catch (err) {
      const e = err as { code?: string; data?: { error?: string } };
      if (e.code === 'slack_webapi_request_error') {
        throw new SupportbotError(
          'slack-unreachable',
          `cannot reach the Slack Web API (${this.client.slackApiUrl}): ${(err as Error).message}`,
          { cause: err },
        );
      }
      const code = e.data?.error ?? (err as Error).message;
      throw new SupportbotError('slack-auth', `Slack did not accept the bot token (auth.test: ${code})`, {
        cause: err,
      });
    }
    return super.start(...args);
  }
}

/**
 * The Slack transport: a Bolt app (Socket Mode when `appToken` is set, else the HTTP receiver
 * with signature verification) that turns `app_mention`s, direct messages and thread follow-ups
 * into questions for the conversation handler, reactions and 👍/👎 buttons into ratings, and
 * `/support` into the shared command runner. It holds no retrieval or model logic.
 *
 * Follow-ups, the same rule as on Discord: in a thread the bot answered, the messages of the person
 * whose question it first answered there (`slackThreadOwnerKey`, recorded when that answer is
 * posted) are questions without a mention, until the thread was escalated to a person
 * (`slackEscalatedKey`, recorded with the escalation notice), so support staff joining afterwards
 * are not answered. Everyone else mentions the bot. Channel messages arrive as `message` events
 * (`message.channels`, `message.groups` for private channels); a top-level message without a
 * mention is never a question.
 *
 * Events are acknowledged before the answer is generated (Bolt acks Events API requests before
 * running listeners when `processBeforeResponse` is false), so Slack's 3 s window always holds;
 * re-deliveries (`X-Slack-Retry-Num`), the `app_mention` + `message` pair of one post, and the same
 * event reaching several replicas are answered once, by the post's `channel:ts` key in the shared
 * state store. `/support` acks with its immediate reply when that is ready within
 * `COMMAND_ACK_BUDGET_MS`, else with a placeholder, and sends the rest to the `response_url`
 * within Slack's limits for it (see `CommandResponses`). Visibility, the same rule as on Discord:
 * everything is ephemeral to the invoker except the `ask` answer (rendered Markdown → mrkdwn),
 * which is posted for the channel (`response_type: in_channel`) under `askedBy` (a delayed
 * response does not show the command to the channel).
 *
 * The workspace of a message is the installation's team (Bolt's `context.teamId`, else the
 * envelope's `team_id`), never `event.team`, which in Slack Connect channels is the sender's.
 *
 * Start it with `app.start(port)` (HTTP) or `app.start()` (Socket Mode); `start` checks the token
 * with `auth.test` first.
 * @throws (from `start`) SupportbotError `slack-auth` when Slack rejects the token.
 */
export function createSlackBot(settings: SlackSettings, deps: SlackBotDeps): App {
  const { handler, log } = deps;
  const options: AppOptions = {
    token: settings.botToken,
    signingSecret: settings.signingSecret,
    processBeforeResponse: false,
    deferInitialization: true,
    logger: boltLogger(log),
    clientOptions: {
      ...(settings.apiUrl ? { slackApiUrl: settings.apiUrl } : {}),
      // The WebClient's default retries a failed call for about 30 minutes: an answer that late is
      // useless and a start-up against an unreachable Slack would hang. About 10 s, then an error.
      retryConfig: { retries: 3, factor: 2, minTimeout: 500, maxTimeout: 5000 },
    },
  };
  // In Socket Mode Bolt would open its own HTTP server (port 3000) just for custom routes; the
  // caller serves them there instead (see `SlackBotDeps.routes`).
  if (settings.appToken) Object.assign(options, { socketMode: true, appToken: settings.appToken });
  else
    options.customRoutes = deps.routes?.map((r) => ({ path: r.path, method: ['GET'], handler: r.handler }));
  const app = new SlackBotApp(options);

  const state = deps.commands.state;

  /**
   * Records the asker as the thread's owner unless one is recorded already (the first answered
   * question of a thread opens it; later mentions by others do not take it over). A read then a
   * write: two first questions of one thread answered at the same instant by two replicas could
   * both write, and the later one wins, which is still one of the thread's askers.
   */
  const recordOwner = async (message: IncomingMessage) => {
    const key = slackThreadOwnerKey(message.threadKey);
    if ((await state.answerForMessage('slack', key)) === null)
      await state.mapMessage('slack', key, message.userId);
  };

  const replyChannel = (client: WebClient): ReplyChannel => ({
    async postAnswer(message, result: AnswerResult, answerId, onPosted) {
      const [channel, threadTs] = splitThread(message.threadKey);
      const keys: string[] = [];
      // Once something is posted, the thread is one the bot answered: whose follow-ups count is
      // recorded then (a DM needs none: every direct message is a question).
      let ownerRecorded = message.isDirect;
      for (const m of answerToSlackMessages(result, { answerId, feedbackButtons: true })) {
        const res = await client.chat.postMessage({
          channel,
          thread_ts: threadTs,
          text: m.text,
          blocks: m.blocks,
          unfurl_links: false,
          unfurl_media: false,
        });
        if (res.ts) {
          keys.push(slackKey(channel, res.ts));
          await onPosted?.(slackKey(channel, res.ts));
          if (!ownerRecorded) {
            ownerRecorded = true;
            await recordOwner(message);
          }
        }
      }
      return keys;
    },
    async postText(message, text) {
      const [channel, threadTs] = splitThread(message.threadKey);
      await client.chat.postMessage({ channel, thread_ts: threadTs, text });
    },
    // Only the escalation target is told here: the asker's reply already says a human is coming.
    async notifyEscalation(target, message, reason) {
      const [channel, threadTs] = splitThread(message.threadKey);
      let link = '';
      try {
        const res = await client.chat.getPermalink({ channel, message_ts: threadTs });
        link = res.permalink ? ` <${res.permalink}|Open the thread>` : '';
      } catch (err) {
        log.warn({ err }, 'could not get a permalink for an escalation');
      }
      await client.chat.postMessage({
        channel: target.channelId,
        text: `${target.mention ? `${target.mention} ` : ''}A person is needed in <#${channel}> for <@${message.userId}>: ${reason}.${link}`,
        unfurl_links: false,
      });
      // A person was asked to join: from now on the bot answers in this thread only when mentioned.
      const answerId = await state.answerForMessage('slack', threadAnswerKey(message.threadKey));
      await state.mapMessage('slack', slackEscalatedKey(message.threadKey), answerId ?? message.messageKey);
    },
  });

  const handle = async (
    client: WebClient,
    ev: {
      channel: string;
      ts: string;
      thread_ts?: string;
      user?: string;
      text?: string;
      team?: string;
      channel_type?: string;
    },
    teamId: string | undefined,
  ) => {
    if (!ev.user || !ev.channel || !ev.ts) return;
    const message: IncomingMessage = {
      platform: 'slack',
      messageKey: slackKey(ev.channel, ev.ts),
      // The installation's team, not `event.team`: in a Slack Connect channel that is the
      // sender's workspace, which has no routing or settings of its own here.
      workspaceId: teamId ?? ev.team ?? 'unknown',
      channelId: ev.channel,
      threadKey: slackKey(ev.channel, ev.thread_ts ?? ev.ts),
      userId: ev.user,
      text: slackTextToQuestion(ev.text ?? ''),
      isDirect: ev.channel_type === 'im',
    };
    const outcome = await handler.handleMessage(message, replyChannel(client));
    log.debug({ outcome, messageKey: message.messageKey }, 'slack message handled');
  };

  /** The installation's team: Bolt's (from `authorizations[0]` or the token), else the envelope's `team_id`. */
  const installationTeam = (contextTeam: string | undefined, body: unknown): string | undefined =>
    contextTeam ?? (body as { team_id?: string }).team_id;

  app.event('app_mention', async ({ event, client, context, body }) => {
    await handle(client, event as never, installationTeam(context.teamId, body));
  });

  /**
   * Whether a channel message without a mention continues a thread for its author: a reply
   * (`thread_ts` set and not its own `ts`, https://api.slack.com/messaging/retrieving#finding_threads)
   * in a thread the bot answered, from the thread's owner (`slackThreadOwnerKey`; threads answered
   * before owners were recorded fall back to the asker of their latest answer), and not escalated.
   */
  const isFollowUp = async (m: { channel?: string; ts?: string; thread_ts?: string; user?: string }) => {
    if (!m.channel || !m.ts || !m.user || !m.thread_ts || m.thread_ts === m.ts) return false;
    const threadKey = slackKey(m.channel, m.thread_ts);
    let owner = await state.answerForMessage('slack', slackThreadOwnerKey(threadKey));
    if (owner === null) {
      const answerId = await state.answerForMessage('slack', threadAnswerKey(threadKey));
      owner = answerId ? ((await state.getAnswer(answerId))?.userId ?? null) : null;
    }
    if (owner !== m.user) return false;
    // Once a person was asked to join, the bot stops answering unasked.
    return (await state.answerForMessage('slack', slackEscalatedKey(threadKey))) === null;
  };

  app.message(async ({ message, client, context, body }) => {
    const m = message as {
      subtype?: string;
      bot_id?: string;
      channel_type?: string;
      text?: string;
      channel?: string;
      ts?: string;
      thread_ts?: string;
      user?: string;
    };
    if ((m.subtype && !QUESTION_SUBTYPES.has(m.subtype)) || m.bot_id) return;
    // Direct messages always; channel messages when they mention the bot (the same post also
    // arrives as app_mention: the handler answers it once by its channel:ts key) or follow up in
    // the asker's thread. Top-level chatter costs no state-store look-up (`isFollowUp` returns first).
    const mentionsBot = context.botUserId ? (m.text ?? '').includes(`<@${context.botUserId}>`) : false;
    if (m.channel_type !== 'im' && !mentionsBot && !(await isFollowUp(m))) return;
    await handle(client, message as never, installationTeam(context.teamId, body));
  });

  // reaction_added/removed carry only {type, channel, ts} of the item
  // (https://api.slack.com/events/reaction_added): the answer is found by that key alone.
  const reaction =
    (added: boolean) =>
    async ({ event }: { event: unknown }) => {
      const ev = event as {
        user: string;
        reaction: string;
        item: { type: string; channel?: string; ts?: string };
      };
      if (ev.item?.type !== 'message' || !ev.item.channel || !ev.item.ts || !ev.user) return;
      const name = reactionName(ev.reaction);
      const value = settings.upReactions.includes(name)
        ? 1
        : settings.downReactions.includes(name)
          ? -1
          : null;
      if (value === null) return;
      const r = await handler.handleRating({
        platform: 'slack',
        messageKey: slackKey(ev.item.channel, ev.item.ts),
        userId: ev.user,
        value: added ? value : null,
        onlyIfCurrent: added ? undefined : value,
      });
      log.debug({ rating: r, reaction: ev.reaction, added }, 'slack reaction handled');
    };
  app.event('reaction_added', reaction(true));
  app.event('reaction_removed', reaction(false));

  for (const [actionId, value] of [
    ['feedback_up', 1],
    ['feedback_down', -1],
  ] as const) {
    app.action(actionId, async ({ ack, body, client }) => {
      await ack();
      const b = body as {
        user: { id: string };
        channel?: { id: string };
        container?: { channel_id?: string; message_ts?: string; thread_ts?: string };
        message?: { ts: string; thread_ts?: string };
      };
      const channel = b.channel?.id ?? b.container?.channel_id;
      const ts = b.message?.ts ?? b.container?.message_ts;
      if (!channel || !ts) return;
      const r = await handler.handleRating({
        platform: 'slack',
        messageKey: slackKey(channel, ts),
        userId: b.user.id,
        value,
      });
      if (r.kind === 'recorded') {
        await client.chat
          .postEphemeral({
            channel,
            user: b.user.id,
            // In the answer's thread, where the press happened (without it, it shows in the channel).
            thread_ts: b.container?.thread_ts ?? b.message?.thread_ts,
            text:
              value === 1
                ? 'Thanks for the 👍!'
                : 'Thanks — noted 👎. Reply in the thread if you need more help.',
          })
          .catch((err) => log.warn({ err }, 'ephemeral thanks failed'));
      }
    });
  }

  const groupMembers = new Map<string, { users: string[]; at: number }>();
  const isAdmin = async (client: WebClient, userId: string): Promise<boolean> => {
    if (settings.adminUsers.includes(userId)) return true;
    for (const group of settings.adminGroups) {
      let entry = groupMembers.get(group);
      if (!entry || Date.now() - entry.at > ADMIN_GROUP_CACHE_MS) {
        try {
          const res = await client.usergroups.users.list({ usergroup: group });
          entry = { users: res.users ?? [], at: Date.now() };
          groupMembers.set(group, entry);
        } catch (err) {
          // Not cached: a failed lookup must not lock admins out for the cache period.
          log.warn({ err, group }, 'usergroups.users.list failed; treating the group as empty');
          continue;
        }
      }
      if (entry.users.includes(userId)) return true;
    }
    return false;
  };

  app.command('/support', async ({ command, ack, respond, client }) => {
    const receivedAt = Date.now();
    const sub = (command.text.trim().split(/\s+/)[0] ?? '').toLowerCase();
    // One visibility rule for `/support`, the same on Discord: only the `ask` answer is for the
    // channel; the ack, status, help, refusals and sync reports are ephemeral to the invoker.
    const followUpVisibility: Visibility = sub === 'ask' ? 'in_channel' : 'ephemeral';
    const out = new CommandResponses({
      respond: (message) => respond(message),
      client,
      channel: command.channel_id,
      user: command.user_id,
      receivedAt,
      log,
    });
    // Admin membership is looked up only for admin subcommands (it may cost a Web API call).
    const work: Promise<CommandReply> = (async () =>
      runSupportCommand(
        {
          text: command.text,
          userId: command.user_id,
          isAdmin: ADMIN_SUBCOMMANDS.has(sub as Subcommand) ? await isAdmin(client, command.user_id) : false,
        },
        deps.commands,
      ))().catch((err) => {
      log.error({ err }, '/support failed');
      return { immediate: `Sorry, that failed: ${(err as Error).message}` };
    });
    let timer: NodeJS.Timeout | undefined;
    const early = await Promise.race([
      work,
      new Promise<null>((resolve) => {
        timer = setTimeout(() => resolve(null), COMMAND_ACK_BUDGET_MS);
      }),
    ]).finally(() => clearTimeout(timer));
    if (early) await ack({ response_type: 'ephemeral', text: early.immediate });
    else await ack({ response_type: 'ephemeral', text: COMMAND_WORKING_TEXT });
    const reply = early ?? (await work);
    try {
      if (!early) await out.send(reply.immediate, 'ephemeral');
      if (reply.followUp) {
        const followUp = reply.followUp;
        // The ask answer is Markdown (the answer with its sources); Slack shows mrkdwn. A delayed
        // in_channel response does not show the command, so the channel is told what was asked.
        const question = slackTextToQuestion(command.text.trim().replace(/^\S+\s*/, '')).slice(0, 200);
        const render =
          sub === 'ask'
            ? (text: string) => `${askedBy(command.user_id, question)}\n\n${markdownToMrkdwn(text)}`
            : (text: string) => text;
        await followUp((text) => out.send(render(text), followUpVisibility));
      }
      await out.finish();
    } catch (err) {
      log.error({ err }, '/support follow-up failed');
    }
  });

  app.error(async (err) => {
    log.error({ err }, 'slack app error');
  });
  return app;
}

/** The line above a `/support ask` answer posted for the channel: `<@U1> asked: _question_`. */
export function askedBy(userId: string, question: string): string {
  return `<@${userId}> asked: _${escapeMrkdwn(question)}_`;
}

/** Who sees a `/support` message: the invoker only, or everyone in the channel. */
type Visibility = 'ephemeral' | 'in_channel';

interface CommandResponsesOptions {
  /** Posts to the command's `response_url` (Bolt's `respond`); rejects on a non-2xx answer. */
  respond: (message: {
    response_type: Visibility;
    replace_original: false;
    text: string;
  }) => Promise<unknown>;
  client: WebClient;
  channel: string;
  /** The invoker, for ephemeral Web API messages. */
  user: string;
  /** `Date.now()` when the command arrived: the `response_url` is valid for 30 minutes from then. */
  receivedAt: number;
  log: Logger;
}

/**
 * Delivers the messages of one `/support` invocation after its ack, within the `response_url`'s
 * limits (`RESPONSE_URL_MAX_POSTS` posts within `RESPONSE_URL_TTL_MS`,
 * https://api.slack.com/interactivity/handling#message_responses):
 *
 * - Each text is split to `SLACK_LIMITS.fallbackTextChars`; every part is one post.
 * - One post is kept for the final result: a progress message that would use it waits, and is
 *   replaced by a newer one (the newest progress is the one worth showing); `finish()` sends
 *   what waits, with all remaining posts.
 * - A message whose parts do not fit the remaining posts, or that comes within a minute of the
 *   url's expiry, or that the url refuses (any non-2xx answer, e.g. `used_url`/`expired_url`), goes through
 *   the Web API instead: `chat.postMessage` for channel-visible ones, `chat.postEphemeral` to the
 *   invoker otherwise (no post limit; needs the bot in the channel). When that fails too, what
 *   fits is posted on the url, ending with `COMMAND_TRUNCATED_TEXT`.
 */
class CommandResponses {
  #used = 0;
  #urlDead = false;
  #waiting: { text: string; visibility: Visibility } | null = null;

  constructor(private readonly o: CommandResponsesOptions) {}

  /** Sends (or holds back, see above) one progress or result message. */
  async send(text: string, visibility: Visibility): Promise<void> {
    const parts = splitMarkdown(text, SLACK_LIMITS.fallbackTextChars);
    // Past the url (expired or refused), the Web API has no post limit: nothing needs to wait.
    // Otherwise a message goes now only when a post is left after it for the final result, and
    // nothing older waits (order is kept).
    if (!this.#urlUsable()) {
      await this.finish();
      await this.#deliver(parts, visibility);
      return;
    }
    if (this.#waiting === null && parts.length <= this.#left() - 1) {
      await this.#deliver(parts, visibility);
      return;
    }
    if (this.#waiting) this.o.log.info('a /support progress message was replaced by a newer one');
    this.#waiting = { text, visibility };
  }

  /** Sends the message held back, if any, with every post left. */
  async finish(): Promise<void> {
    const waiting = this.#waiting;
    this.#waiting = null;
    if (waiting)
      await this.#deliver(splitMarkdown(waiting.text, SLACK_LIMITS.fallbackTextChars), waiting.visibility);
  }

  #left(): number {
    return RESPONSE_URL_MAX_POSTS - this.#used;
  }

  #urlUsable(): boolean {
    return !this.#urlDead && Date.now() < this.o.receivedAt + RESPONSE_URL_TTL_MS - RESPONSE_URL_MARGIN_MS;
  }

  async #deliver(parts: string[], visibility: Visibility): Promise<void> {
    let i = 0;
    if (this.#urlUsable() && parts.length <= this.#left()) {
      try {
        for (; i < parts.length; i++) await this.#post(parts[i] as string, visibility);
        return;
      } catch (err) {
        this.#urlDead = true;
        this.o.log.warn({ err }, 'the response_url refused a /support message; using the Web API');
      }
    }
    try {
      for (; i < parts.length; i++) await this.#webApi(parts[i] as string, visibility);
      return;
    } catch (err) {
      this.o.log.warn({ err }, 'could not post a /support message with the Web API');
    }
    // Last resort: what fits on the url, cut short with a note.
    const room = this.#urlUsable() ? this.#left() : 0;
    if (room === 0) return;
    const rest = parts.slice(i);
    const shown = rest.slice(0, room);
    if (shown.length < rest.length) {
      const last = shown.length - 1;
      const budget = SLACK_LIMITS.fallbackTextChars - COMMAND_TRUNCATED_TEXT.length - 2;
      shown[last] =
        `${(splitMarkdown(shown[last] as string, budget)[0] ?? '').trimEnd()}\n\n${COMMAND_TRUNCATED_TEXT}`;
    }
    try {
      for (const part of shown) await this.#post(part, visibility);
    } catch (err) {
      this.#urlDead = true;
      this.o.log.error({ err }, 'a /support message could not be delivered');
    }
  }

  async #post(text: string, visibility: Visibility): Promise<void> {
    // Counted before the call: a post that failed on the way may still have reached Slack.
    this.#used++;
    await this.o.respond({ response_type: visibility, replace_original: false, text });
  }

  async #webApi(text: string, visibility: Visibility): Promise<void> {
    const { client, channel, user } = this.o;
    if (visibility === 'in_channel') await client.chat.postMessage({ channel, text, unfurl_links: false });
    else await client.chat.postEphemeral({ channel, user, text });
  }
}

function splitThread(threadKey: string): [string, string] {
  const i = threadKey.indexOf(':');
  return [threadKey.slice(0, i), threadKey.slice(i + 1)];
}

/** Bolt's and the WebClient's logging into the bot's pino logger (Bolt's own level: warn and up). */
function boltLogger(log: Logger): BoltLogger {
  const child = log.child({ component: 'bolt' });
  let level = LogLevel.WARN;
  const text = (msg: unknown[]) => msg.map((m) => (m instanceof Error ? m.message : String(m))).join(' ');
  return {
    debug: (...msg) => child.debug(text(msg)),
    info: (...msg) => child.info(text(msg)),
    warn: (...msg) => child.warn(text(msg)),
    error: (...msg) => child.error(text(msg)),
    setLevel: (l) => {
      level = l;
    },
    getLevel: () => level,
    setName: () => {},
  };
}
