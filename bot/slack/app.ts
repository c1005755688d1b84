import type { IncomingMessage as HttpRequest, ServerResponse } from 'node:http';
import { App, type AppOptions, LogLevel } from '@slack/bolt';
import type { WebClient } from '@slack/web-api';
import type { Logger } from 'pino';
import type { AnswerResult } from '../../core/types.ts';
import { runSupportCommand, type SupportCommandDeps } from '../commands/support-command.ts';
import type { ConversationHandler } from '../conversation/handler.ts';
import type { EscalationTarget, IncomingMessage, ReplyChannel } from '../conversation/types.ts';
import { answerToSlackMessages } from './blocks.ts';

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
  /** Extra HTTP routes served by the receiver (e.g. `/healthz`). */
  routes?: { path: string; handler: (req: HttpRequest, res: ServerResponse) => void }[];
}

const MENTION = /<@[UW][A-Z0-9]+(\|[^>]*)?>/g;

/** Slack message key: `channel:ts`, the identity of one posted message. */
export const slackKey = (channel: string, ts: string) => `${channel}:${ts}`;

/** `+1::skin-tone-3` → `+1`. */
function reactionName(name: string): string {
  return name.replace(/::skin-tone-\d$/, '');
}

/**
 * The Slack transport: a Bolt app (Socket Mode when `appToken` is set, else the HTTP receiver
 * with signature verification) that turns `app_mention`s and direct messages into questions for
 * the conversation handler, reactions and 👍/👎 buttons into ratings, and `/support` into the
 * shared command runner. It holds no retrieval or model logic.
 *
 * Events are acknowledged before the answer is generated (Bolt acks HTTP events as soon as the
 * listener starts when `processBeforeResponse` is false), so Slack's 3 s window always holds;
 * re-deliveries and the `app_mention` + `message` pair of one post are answered once, by key.
 */
export function createSlackBot(settings: SlackSettings, deps: SlackBotDeps): App {
  const options: AppOptions = {
    token: settings.botToken,
    signingSecret: settings.signingSecret,
    processBeforeResponse: false,
    logLevel: LogLevel.ERROR,
    clientOptions: settings.apiUrl ? { slackApiUrl: settings.apiUrl } : undefined,
    customRoutes: deps.routes?.map((r) => ({ path: r.path, method: ['GET'], handler: r.handler })),
  };
  if (settings.appToken) Object.assign(options, { socketMode: true, appToken: settings.appToken });
  const app = new App(options);
  const { handler, log } = deps;

  const replyChannel = (client: WebClient): ReplyChannel => ({
    async postAnswer(message, result: AnswerResult, answerId) {
      const [channel, threadTs] = splitThread(message.threadKey);
      const keys: string[] = [];
      for (const m of answerToSlackMessages(result, { answerId, feedbackButtons: true })) {
        const res = await client.chat.postMessage({
          channel,
          thread_ts: threadTs,
          text: m.text,
          blocks: m.blocks,
          unfurl_links: false,
        });
        if (res.ts) keys.push(slackKey(channel, res.ts));
      }
      return keys;
    },
    async postText(message, text) {
      const [channel, threadTs] = splitThread(message.threadKey);
      await client.chat.postMessage({ channel, thread_ts: threadTs, text });
    },
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
      });
      await client.chat.postMessage({
        channel,
        thread_ts: threadTs,
        text: "I've asked someone from the support team to join this thread.",
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
  ) => {
    if (!ev.user) return;
    const message: IncomingMessage = {
      platform: 'slack',
      messageKey: slackKey(ev.channel, ev.ts),
      workspaceId: ev.team ?? 'unknown',
      channelId: ev.channel,
      threadKey: slackKey(ev.channel, ev.thread_ts ?? ev.ts),
      userId: ev.user,
      text: (ev.text ?? '').replace(MENTION, ' ').replace(/\s+/g, ' ').trim(),
      isDirect: ev.channel_type === 'im',
    };
    const outcome = await handler.handleMessage(message, replyChannel(client));
    log.debug({ outcome, messageKey: message.messageKey }, 'slack message handled');
  };

  app.event('app_mention', async ({ event, client }) => {
    await handle(client, event as never);
  });

  app.message(async ({ message, client, context }) => {
    const m = message as { subtype?: string; bot_id?: string; channel_type?: string; text?: string };
    if (m.subtype || m.bot_id) return;
    // Direct messages always; channel messages only when they mention the bot (the same post also
    // arrives as app_mention: the handler answers it once by its channel:ts key).
    const mentionsBot = context.botUserId ? (m.text ?? '').includes(`<@${context.botUserId}>`) : false;
    if (m.channel_type !== 'im' && !mentionsBot) return;
    await handle(client, message as never);
  });

  const reaction =
    (added: boolean) =>
    async ({ event }: { event: unknown }) => {
      const ev = event as {
        user: string;
        reaction: string;
        item: { type: string; channel?: string; ts?: string };
      };
      if (ev.item.type !== 'message' || !ev.item.channel || !ev.item.ts) return;
      const name = reactionName(ev.reaction);
      const value = settings.upReactions.includes(name)
        ? 1
        : settings.downReactions.includes(name)
          ? -1
          : null;
      if (value === null) return;
      await handler.handleRating({
        platform: 'slack',
        messageKey: slackKey(ev.item.channel, ev.item.ts),
        userId: ev.user,
        value: added ? value : null,
        onlyIfCurrent: added ? undefined : value,
      });
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
      if (!entry || Date.now() - entry.at > 5 * 60_000) {
        const res = await client.usergroups.users.list({ usergroup: group }).catch((err) => {
          log.warn({ err, group }, 'usergroups.users.list failed');
          return { users: [] as string[] };
        });
        entry = { users: res.users ?? [], at: Date.now() };
        groupMembers.set(group, entry);
      }
      if (entry.users.includes(userId)) return true;
    }
    return false;
  };

  app.command('/support', async ({ command, ack, respond, client }) => {
    const reply = await runSupportCommand(
      { text: command.text, userId: command.user_id, isAdmin: await isAdmin(client, command.user_id) },
      deps.commands,
    );
    await ack({ response_type: 'ephemeral', text: reply.immediate });
    if (reply.followUp) {
      reply
        .followUp(async (text) => {
          await respond({ response_type: 'in_channel', replace_original: false, text });
        })
        .catch((err) => log.error({ err }, '/support follow-up failed'));
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
