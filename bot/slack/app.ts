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
import type { ConversationHandler } from '../conversation/handler.ts';
import type { EscalationTarget, IncomingMessage, ReplyChannel } from '../conversation/types.ts';
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
  /** Escalation target for a team and channel; null when none is configured. */
  escalationFor: (message: IncomingMessage) => EscalationTarget | null;
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

const MENTION = /<@[UW][A-Z0-9]+(\|[^>]*)?>/g;
/** Message subtypes that are still a person writing a question (https://api.slack.com/events/message#subtypes). */
const QUESTION_SUBTYPES = new Set(['file_share', 'thread_broadcast']);

/** Slack message key: `channel:ts`, the identity of one posted message. */
export const slackKey = (channel: string, ts: string) => `${channel}:${ts}`;

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
 * with signature verification) that turns `app_mention`s and direct messages into questions for
 * the conversation handler, reactions and 👍/👎 buttons into ratings, and `/support` into the
 * shared command runner. It holds no retrieval or model logic.
 *
 * Events are acknowledged before the answer is generated (Bolt acks Events API requests before
 * running listeners when `processBeforeResponse` is false), so Slack's 3 s window always holds;
 * re-deliveries (`X-Slack-Retry-Num`), the `app_mention` + `message` pair of one post, and the same
 * event reaching several replicas are answered once, by the post's `channel:ts` key in the shared
 * state store. `/support` acks with its immediate reply when that is ready within
 * `COMMAND_ACK_BUDGET_MS`, else with a placeholder, and sends the rest to the `response_url`.
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

  const replyChannel = (client: WebClient): ReplyChannel => ({
    async postAnswer(message, result: AnswerResult, answerId, onPosted) {
      const [channel, threadTs] = splitThread(message.threadKey);
      const keys: string[] = [];
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
      workspaceId: ev.team ?? teamId ?? 'unknown',
      channelId: ev.channel,
      threadKey: slackKey(ev.channel, ev.thread_ts ?? ev.ts),
      userId: ev.user,
      text: slackTextToQuestion(ev.text ?? ''),
      isDirect: ev.channel_type === 'im',
    };
    const outcome = await handler.handleMessage(message, replyChannel(client));
    log.debug({ outcome, messageKey: message.messageKey }, 'slack message handled');
  };

  app.event('app_mention', async ({ event, client, context }) => {
    await handle(client, event as never, context.teamId);
  });

  app.message(async ({ message, client, context }) => {
    const m = message as { subtype?: string; bot_id?: string; channel_type?: string; text?: string };
    if ((m.subtype && !QUESTION_SUBTYPES.has(m.subtype)) || m.bot_id) return;
    // Direct messages always; channel messages only when they mention the bot (the same post also
    // arrives as app_mention: the handler answers it once by its channel:ts key).
    const mentionsBot = context.botUserId ? (m.text ?? '').includes(`<@${context.botUserId}>`) : false;
    if (m.channel_type !== 'im' && !mentionsBot) return;
    await handle(client, message as never, context.teamId);
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
        container?: { channel_id?: string; message_ts?: string };
        message?: { ts: string };
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
    const send = async (text: string) => {
      // A response_url message has the same ~4,000-character text limit as chat.postMessage.
      for (const part of splitMarkdown(text, SLACK_LIMITS.fallbackTextChars)) {
        await respond({ response_type: 'ephemeral', replace_original: false, text: part });
      }
    };
    const sub = (command.text.trim().split(/\s+/)[0] ?? '').toLowerCase();
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
      if (!early) await send(reply.immediate);
      if (reply.followUp) await reply.followUp(send);
    } catch (err) {
      log.error({ err }, '/support follow-up failed');
    }
  });

  app.error(async (err) => {
    log.error({ err }, 'slack app error');
  });
  return app;
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
