import {
  type ButtonInteraction,
  ChannelType,
  type ChatInputCommandInteraction,
  Client,
  type ClientOptions,
  DiscordAPIError,
  type Emoji,
  Events,
  GatewayIntentBits,
  type Interaction,
  type Message,
  type MessageCreateOptions,
  MessageFlags,
  type MessageReaction,
  type PartialMessageReaction,
  Partials,
  type PartialUser,
  RESTJSONErrorCodes,
  ThreadAutoArchiveDuration,
  type User,
} from 'discord.js';
import type { Logger } from 'pino';
import type { AnswerResult } from '../../core/types.ts';
import { runSupportCommand, type SupportCommandDeps } from '../commands/support-command.ts';
import { type ConversationHandler, threadAnswerKey } from '../conversation/handler.ts';
import type { IncomingMessage, ReplyChannel } from '../conversation/types.ts';
import { splitMarkdown } from '../render/split.ts';
import { SUPPORT_COMMAND_NAME, supportCommandText } from './commands.ts';
import {
  answerToDiscordMessages,
  DISCORD_LIMITS,
  type DiscordMessagePayload,
  parseFeedbackCustomId,
} from './messages.ts';

export interface DiscordSettings {
  /** Bot token (`DISCORD_TOKEN`). */
  token: string;
  /** REST base URL (`DISCORD_API_URL`; proxies, tests), e.g. `http://127.0.0.1:8080/api`; Discord's own when unset. */
  apiUrl?: string;
  /**
   * Reactions counted as 👍 / 👎: unicode emoji (matched without skin-tone modifiers and the
   * emoji variation selector, so 👍🏽 counts as 👍), or custom emoji by id, name or `name:id`.
   * Every other reaction is ignored.
   */
  upReactions: string[];
  downReactions: string[];
  /** User ids and role ids allowed admin subcommands (`/support sync`, `retrain`). */
  adminUsers: string[];
  adminRoles: string[];
}

export interface DiscordBotDeps {
  handler: ConversationHandler;
  /** The `/support` runner's deps; its `state` is also where follow-ups and interactions are looked up and claimed. */
  commands: SupportCommandDeps;
  log: Logger;
}

export interface DiscordBot {
  /** The discord.js client (for logs and tests). */
  readonly client: Client;
  /** Logs in and resolves once the gateway session is ready (READY and the guilds' GUILD_CREATE received). */
  start(): Promise<void>;
  /**
   * Graceful stop: ignores new events, waits for the work already started (answers being
   * generated and posted, command follow-ups) up to `drainTimeoutMs` (default 30,000), then closes
   * the gateway connection (close code 1000). Idempotent.
   */
  stop(options?: { drainTimeoutMs?: number }): Promise<void>;
  /** Resolves when every event handled so far is done (answers posted and recorded). */
  settled(): Promise<void>;
}

/**
 * Gateway intents the bot needs (https://discord.com/developers/docs/events/gateway#list-of-intents):
 * guilds and their channels/threads/roles (`Guilds`), messages and their text in servers and DMs
 * (`GuildMessages`, `DirectMessages`, the privileged `MessageContent`), and reactions in both
 * (`GuildMessageReactions`, `DirectMessageReactions`). Bitfield 46593.
 */
export const DISCORD_INTENTS = [
  GatewayIntentBits.Guilds,
  GatewayIntentBits.GuildMessages,
  GatewayIntentBits.MessageContent,
  GatewayIntentBits.GuildMessageReactions,
  GatewayIntentBits.DirectMessages,
  GatewayIntentBits.DirectMessageReactions,
] as const;

/**
 * Partials, so discord.js emits events for things it has not cached: DM channels (a DM's
 * MESSAGE_CREATE arrives for a channel never seen), and reactions on messages from before a
 * restart (MESSAGE_REACTION_ADD carries only ids; https://discordjs.guide/popular-topics/partials).
 */
export const DISCORD_PARTIALS = [
  Partials.Channel,
  Partials.Message,
  Partials.Reaction,
  Partials.User,
] as const;

/**
 * Longest wait for the state store's claim of an interaction before answering it anyway, in ms: a
 * third of Discord's 3 s deadline for the first callback
 * (https://discord.com/developers/docs/interactions/receiving-and-responding#responding-to-an-interaction),
 * leaving the rest for the callback's round trip.
 */
export const INTERACTION_CLAIM_WAIT_MS = 1_000;

/** Discord error codes meaning "no thread here": fall back to replying in the channel. */
const THREAD_NOT_ALLOWED: ReadonlySet<number | string> = new Set([
  RESTJSONErrorCodes.MissingAccess,
  RESTJSONErrorCodes.MissingPermissions,
  RESTJSONErrorCodes.CannotExecuteActionOnThisChannelType,
]);

/** Channel types a thread can be started from a message in (Start Thread from Message). */
const THREAD_PARENTS: ReadonlySet<ChannelType> = new Set([
  ChannelType.GuildText,
  ChannelType.GuildAnnouncement,
]);

/**
 * State-store key (`StateStore.mapMessage('discord', key, userId)`) recording who asked the
 * question a thread was started from: that user's messages in the thread are follow-ups without a
 * mention. The value is a user id, not an answer id.
 */
export const threadOwnerKey = (threadId: string): string => `thread-owner:${threadId}`;

/** The first ~90 characters of a question, cut at a word, as a thread name (Discord allows 1..100). */
export function threadName(question: string): string {
  const text = question.replace(/\s+/g, ' ').trim();
  if (text.length === 0) return 'Support question';
  if (text.length <= 90) return text;
  const cut = text.slice(0, 90);
  const space = cut.lastIndexOf(' ');
  return `${(space > 40 ? cut.slice(0, space) : cut).trimEnd()}…`;
}

/** `👍🏽` → `👍`: drops skin-tone modifiers (U+1F3FB..U+1F3FF) and variation selector 16. */
function baseEmoji(name: string): string {
  return name.replace(/[\u{1F3FB}-\u{1F3FF}\u{FE0F}]/gu, '');
}

/**
 * The rating a reaction emoji stands for, or null. Unicode emoji match by their base form;
 * custom emoji (they have an id) only when configured by id, name or `name:id`.
 */
export function reactionRating(
  emoji: Pick<Emoji, 'id' | 'name'>,
  settings: Pick<DiscordSettings, 'upReactions' | 'downReactions'>,
): 1 | -1 | null {
  const matches = (list: string[]) => {
    if (emoji.id) {
      const forms = [emoji.id, emoji.name ?? '', `${emoji.name ?? ''}:${emoji.id}`];
      return list.some((e) => forms.includes(e));
    }
    return emoji.name !== null && list.some((e) => baseEmoji(e) === baseEmoji(emoji.name as string));
  };
  if (matches(settings.upReactions)) return 1;
  if (matches(settings.downReactions)) return -1;
  return null;
}

/** The discord.js send options for a rendered answer message (embeds suppressed, no mentions, buttons as rendered). */
export function toSendOptions(m: DiscordMessagePayload): MessageCreateOptions {
  return {
    content: m.content,
    flags: MessageFlags.SuppressEmbeds,
    allowedMentions: { parse: [] },
    ...(m.components ? { components: m.components } : {}),
  };
}

/** Where the replies to one question go: a thread, or replies to the question in its channel. */
interface Destination {
  send(options: MessageCreateOptions): Promise<Message>;
  /** Link for escalation notices. */
  url: string;
  /** Mention of the place (`<#thread>`), for escalation notices. */
  mention: string;
}

/**
 * The Discord transport: a discord.js client that turns mentions and DMs into questions for the
 * conversation handler, 👍/👎 reactions and buttons into ratings, and `/support` into the shared
 * command runner. It holds no retrieval or model logic.
 *
 * - A mention in a server channel is answered in a thread started from the question (so the thread
 *   id is the question's message id, and the conversation key); where no thread can be started
 *   (DMs, threads, channel types without threads, missing permissions: 50001/50013/50024) the bot
 *   replies to the question instead. In a thread the bot started, the messages of the person whose
 *   question opened it (`threadOwnerKey`) are follow-ups without a mention, until the thread was
 *   escalated to a person; everyone else mentions the bot. A mention is `<@bot>` in the text or the
 *   bot's managed role; a reply's ping of the bot (Discord lists the replied-to author in
 *   `mentions`) counts only under one of the bot's answers, where it continues that answer's
 *   conversation, never under its notices or escalation posts.
 * - Answers are split by `answerToDiscordMessages` (≤ 2,000 chars, balanced fences, buttons on the
 *   last message). Nothing the bot posts pings anyone, except the configured escalation mention.
 * - Reactions resolve by message id through the state store (never a fetch), so they count on
 *   messages from before a restart (`DISCORD_PARTIALS`); the bot's own reactions are ignored.
 * - `/support` and 👍/👎 buttons are deferred (callback type 5, ephemeral) before any other work, so
 *   Discord's 3 s window holds however slow the command or the state store is; then the original
 *   is edited and progress comes as follow-ups (each within the token's 15 min). Replicas sharing
 *   the state store claim each interaction there first (waiting at most `INTERACTION_CLAIM_WAIT_MS`);
 *   when the store is slower, Discord's refusal of a second callback (40060) settles it.
 * - `/support` visibility, the same rule as on Slack: everything is ephemeral to the invoker except
 *   the `ask` answer, which is posted for the channel (so others see it, as with a mention).
 * - Messages from bots (itself included), webhooks and system messages are ignored.
 */
export function createDiscordBot(settings: DiscordSettings, deps: DiscordBotDeps): DiscordBot {
  const options: ClientOptions = {
    intents: [...DISCORD_INTENTS],
    partials: [...DISCORD_PARTIALS],
    // Generated text must never ping (`@everyone`, roles, users, the replied-to asker).
    allowedMentions: { parse: [], repliedUser: false },
    ...(settings.apiUrl ? { rest: { api: settings.apiUrl } } : {}),
  };
  const client = new Client(options);
  const { handler, log } = deps;
  const state = deps.commands.state;
  let stopping = false;

  const botId = () => client.user?.id ?? '';

  /**
   * Whether the message itself addresses the bot: `<@bot>` in its text or the bot's managed role.
   * A reply's ping of the replied-to author also lands in `mentions.users` (Discord adds it there,
   * not to the content), so it is left out here: support staff replying to the escalation notice or
   * to a rate-limit notice are not asking the bot. `@everyone`/`@here` and ordinary roles do not count.
   */
  const mentionsBot = (message: Message): boolean =>
    (client.user !== null &&
      message.mentions.has(client.user, {
        ignoreRepliedUser: true,
        ignoreEveryone: true,
        ignoreRoles: true,
      })) ||
    // Clients sometimes insert the bot's managed role instead of the bot user.
    message.mentions.roles.some((role) => role.tags?.botId === botId());

  /**
   * Whether the message is a reply that pings the bot. Only meaningful together with a look-up of
   * the replied-to message (`repliedConversation`): the ping alone says nothing about what is asked.
   */
  const replyPingsBot = (message: Message): boolean =>
    message.reference?.messageId !== undefined && message.mentions.users.has(botId());

  const cleanText = (message: Message): string => {
    const roleIds = message.mentions.roles.filter((r) => r.tags?.botId === botId()).map((r) => r.id);
    let text = message.content.replaceAll(`<@${botId()}>`, ' ').replaceAll(`<@!${botId()}>`, ' ');
    for (const id of roleIds) text = text.replaceAll(`<@&${id}>`, ' ');
    return text.replace(/\s+/g, ' ').trim();
  };

  /** The answer record of the conversation in channel/thread `key`, if the bot answered there. */
  const conversationAnswer = async (key: string) => {
    const id = await state.answerForMessage('discord', threadAnswerKey(key));
    return id ? state.getAnswer(id) : null;
  };

  /**
   * Whether a message without a mention continues a thread the bot started for its author: the
   * thread's owner is the person whose question opened it (`threadOwnerKey`), however many others
   * mentioned the bot in it since. Threads opened before owners were recorded fall back to the
   * asker of their latest answer.
   */
  const isFollowUp = async (message: Message): Promise<boolean> => {
    if (!message.channel.isThread() || message.channel.ownerId !== botId()) return false;
    const owner =
      (await state.answerForMessage('discord', threadOwnerKey(message.channelId))) ??
      (await conversationAnswer(message.channelId))?.userId ??
      null;
    if (owner !== message.author.id) return false;
    // Once a person was asked to join, the bot stops answering unasked.
    return (await state.answerForMessage('discord', `escalated:${message.channelId}`)) === null;
  };

  /**
   * The conversation an answer belongs to, when `message` is a reply that pings the bot under one
   * of its answers (looked up by message id in the state store, so notices and escalation posts,
   * which are never mapped, do not count).
   */
  const repliedConversation = async (message: Message): Promise<string | null> => {
    const ref = message.reference?.messageId;
    if (!ref || message.reference?.channelId !== message.channelId) return null;
    if (!replyPingsBot(message) && !mentionsBot(message)) return null;
    const id = await state.answerForMessage('discord', ref);
    const record = id ? await state.getAnswer(id) : null;
    return record?.threadId ?? null;
  };

  const replyTo = (message: Message): Destination => ({
    send: (o) => message.reply({ ...o, failIfNotExists: false }),
    url: message.url,
    mention: `<#${message.channelId}>`,
  });

  /** Starts a thread from the question; where that is not possible, replies in the channel. */
  const openThread = async (message: Message, text: string): Promise<Destination> => {
    if (!message.inGuild() || !THREAD_PARENTS.has(message.channel.type)) return replyTo(message);
    try {
      const thread = await message.startThread({
        name: threadName(text),
        autoArchiveDuration: ThreadAutoArchiveDuration.OneDay,
      });
      // Whose unmentioned messages in this thread are follow-ups (see `isFollowUp`).
      await state.mapMessage('discord', threadOwnerKey(thread.id), message.author.id);
      return { send: (o) => thread.send(o), url: thread.url, mention: `<#${thread.id}>` };
    } catch (err) {
      if (err instanceof DiscordAPIError && err.code === RESTJSONErrorCodes.ThreadAlreadyCreatedForMessage) {
        // The thread of a message shares its id (Start Thread from Message).
        const thread = await client.channels.fetch(message.id);
        if (thread?.isSendable()) {
          await state.mapMessage('discord', threadOwnerKey(thread.id), message.author.id);
          return { send: (o) => thread.send(o), url: message.url, mention: `<#${thread.id}>` };
        }
      }
      const expected = err instanceof DiscordAPIError && THREAD_NOT_ALLOWED.has(err.code);
      log[expected ? 'info' : 'warn'](
        { err, channelId: message.channelId },
        'could not start a thread; replying in the channel',
      );
      return replyTo(message);
    }
  };

  const replyChannel = (destination: () => Promise<Destination>): ReplyChannel => {
    // One destination per question, opened on the first post (only the replica that claimed it posts).
    let opened: Promise<Destination> | undefined;
    const dest = () => {
      opened ??= destination();
      return opened;
    };
    return {
      async postAnswer(_message, result: AnswerResult, answerId, onPosted) {
        const d = await dest();
        const ids: string[] = [];
        for (const m of answerToDiscordMessages(result, { answerId, feedbackButtons: true })) {
          const { id } = await d.send(toSendOptions(m));
          ids.push(id);
          await onPosted?.(id);
        }
        return ids;
      },
      async postText(_message, text) {
        const d = await dest();
        for (const part of splitMarkdown(text, DISCORD_LIMITS.contentChars)) await d.send({ content: part });
      },
      async notifyEscalation(target, message, reason) {
        const d = await dest();
        const channel = await client.channels.fetch(target.channelId);
        if (channel?.isSendable()) {
          const mention = target.mention ?? '';
          const notice = `${mention ? `${mention} ` : ''}A person is needed in ${d.mention} for <@${message.userId}>: ${reason}. ${d.url}`;
          await channel.send({
            content: notice.slice(0, DISCORD_LIMITS.contentChars),
            flags: MessageFlags.SuppressEmbeds,
            // Ping only the configured target, never the asker from here.
            allowedMentions: {
              parse: [],
              roles: [...mention.matchAll(/<@&(\d+)>/g)].map((m) => m[1] as string),
              users: [...mention.matchAll(/<@!?(\d+)>/g)].map((m) => m[1] as string),
            },
          });
        } else {
          log.warn(
            { channelId: target.channelId },
            'escalation channel is not a text channel the bot can post in',
          );
        }
        // Remembered so follow-ups without a mention stop once a person was asked to join.
        const answerId = await state.answerForMessage('discord', threadAnswerKey(message.threadKey));
        await state.mapMessage('discord', `escalated:${message.threadKey}`, answerId ?? message.messageKey);
      },
    };
  };

  const onMessage = async (message: Message) => {
    if (message.author.bot || message.webhookId || message.system) return;
    const isDirect = !message.inGuild();
    const base = {
      platform: 'discord' as const,
      messageKey: message.id,
      workspaceId: message.guildId ?? 'dm',
      channelId: message.channelId,
      userId: message.author.id,
      text: cleanText(message),
      isDirect,
      permalink: message.url,
    };
    let incoming: IncomingMessage;
    let destination: () => Promise<Destination>;
    if (isDirect) {
      // A DM is one conversation: no threads there, answers reply to the question.
      incoming = { ...base, threadKey: message.channelId };
      destination = async () => replyTo(message);
    } else if (message.channel.isThread()) {
      if (
        !mentionsBot(message) &&
        (await repliedConversation(message)) === null &&
        !(await isFollowUp(message))
      )
        return;
      incoming = { ...base, threadKey: message.channelId };
      const thread = message.channel;
      destination = async () => ({
        send: (o) => thread.send(o),
        url: thread.url,
        mention: `<#${thread.id}>`,
      });
    } else {
      const continued = await repliedConversation(message);
      if (continued === null && !mentionsBot(message)) return;
      incoming = { ...base, threadKey: continued ?? message.id };
      destination = continued ? async () => replyTo(message) : () => openThread(message, base.text);
    }
    const outcome = await handler.handleMessage(incoming, replyChannel(destination));
    log.debug({ outcome, messageKey: message.id }, 'discord message handled');
  };

  const onReaction = async (
    reaction: MessageReaction | PartialMessageReaction,
    user: User | PartialUser,
    added: boolean,
  ) => {
    if (user.id === botId() || user.bot) return;
    const value = reactionRating(reaction.emoji, settings);
    if (value === null) return;
    // The message may be a partial from before a restart: only its id is needed, never fetched.
    await handler.handleRating({
      platform: 'discord',
      messageKey: reaction.message.id,
      userId: user.id,
      value: added ? value : null,
      onlyIfCurrent: added ? undefined : value,
    });
  };

  /**
   * True for the one replica (sharing the state store) that answers this interaction, as far as
   * the store can tell within `INTERACTION_CLAIM_WAIT_MS`. A store that is slower than that (or
   * down) must not eat Discord's 3 s window: the replica goes ahead and the interaction callback
   * itself decides, since Discord accepts one callback per interaction and refuses a second with
   * 40060 (see `acknowledge`).
   */
  const claimInteraction = async (interaction: Interaction): Promise<boolean> => {
    const claim = state.claimEvent(`interaction:discord:${interaction.id}`, 15 * 60_000).catch((err) => {
      log.warn({ err }, 'could not claim an interaction; answering it anyway');
      return true;
    });
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), INTERACTION_CLAIM_WAIT_MS);
    });
    const claimed = await Promise.race([claim, late]).finally(() => clearTimeout(timer));
    if (claimed === 'late') {
      log.warn(
        { interactionId: interaction.id, waitMs: INTERACTION_CLAIM_WAIT_MS },
        'state store too slow to claim an interaction; the callback decides',
      );
      return true;
    }
    return claimed;
  };

  /**
   * Sends the interaction callback. Resolves false when another replica already acknowledged the
   * interaction (400, code 40060 "Interaction has already been acknowledged",
   * https://discord.com/developers/docs/topics/opcodes-and-status-codes#json): that replica answers it.
   */
  const acknowledge = async (ack: () => Promise<unknown>): Promise<boolean> => {
    try {
      await ack();
      return true;
    } catch (err) {
      if (
        err instanceof DiscordAPIError &&
        err.code === RESTJSONErrorCodes.InteractionHasAlreadyBeenAcknowledged
      ) {
        log.debug('interaction acknowledged by another replica');
        return false;
      }
      throw err;
    }
  };

  const isAdmin = (interaction: Interaction): boolean => {
    if (settings.adminUsers.includes(interaction.user.id)) return true;
    const member = interaction.member;
    if (!member) return false;
    // A cached guild member exposes roles as a manager; an uncached one as the payload's id list.
    const roles = Array.isArray(member.roles) ? member.roles : [...member.roles.cache.keys()];
    return settings.adminRoles.some((r) => roles.includes(r));
  };

  const onCommand = async (interaction: ChatInputCommandInteraction) => {
    if (!(await claimInteraction(interaction))) return;
    // Acknowledge before anything slow: Discord drops interactions not answered within 3 s.
    if (!(await acknowledge(() => interaction.deferReply({ flags: MessageFlags.Ephemeral })))) return;
    const sub = interaction.options.getSubcommand(false) ?? 'help';
    try {
      const reply = await runSupportCommand(
        { text: supportCommandText(interaction), userId: interaction.user.id, isAdmin: isAdmin(interaction) },
        deps.commands,
      );
      const [first = '…', ...rest] = splitMarkdown(reply.immediate, DISCORD_LIMITS.contentChars);
      await interaction.editReply({ content: first });
      for (const part of rest) await interaction.followUp({ content: part, flags: MessageFlags.Ephemeral });
      if (reply.followUp) {
        // The one visibility rule of `/support` (the same on Slack): only the `ask` answer is for
        // everyone in the channel; acks, status, help, refusals and sync reports are ephemeral.
        const flags =
          sub === 'ask' ? MessageFlags.SuppressEmbeds : MessageFlags.SuppressEmbeds | MessageFlags.Ephemeral;
        await reply.followUp(async (text) => {
          for (const part of splitMarkdown(text, DISCORD_LIMITS.contentChars)) {
            await interaction.followUp({ content: part, flags });
          }
        });
      }
    } catch (err) {
      log.error({ err }, '/support failed');
      await interaction
        .editReply({ content: 'Sorry, that command failed on my side. Please try again.' })
        .catch(() => {});
    }
  };

  const onButton = async (interaction: ButtonInteraction) => {
    const parsed = parseFeedbackCustomId(interaction.customId);
    if (parsed === null) return;
    if (!(await claimInteraction(interaction))) return;
    // Deferred (type 5, ephemeral) before the 2–4 state-store round trips of the rating, so a slow
    // store cannot miss Discord's 3 s window; the thanks then edits the deferred reply.
    if (!(await acknowledge(() => interaction.deferReply({ flags: MessageFlags.Ephemeral })))) return;
    let content: string;
    try {
      const rating = {
        platform: 'discord' as const,
        messageKey: interaction.message.id,
        userId: interaction.user.id,
        value: parsed.value,
      };
      let r = await handler.handleRating(rating);
      if (r.kind === 'ignored' && (await state.getAnswer(parsed.answerId)) !== null) {
        // A press can race the recording of the message ids right after posting. The custom_id
        // names the answer, and Discord only delivers custom_ids the bot itself set on its message.
        await state.mapMessage('discord', interaction.message.id, parsed.answerId);
        r = await handler.handleRating(rating);
      }
      content =
        r.kind === 'ignored'
          ? 'That answer is no longer tracked, so the rating was not recorded.'
          : parsed.value === 1
            ? 'Thanks for the 👍!'
            : 'Thanks — noted 👎. Write in the thread if you need more help.';
    } catch (err) {
      log.error({ err }, 'recording a button rating failed');
      content = 'Sorry, I could not record that rating. Please try again.';
    }
    await interaction.editReply({ content });
  };

  // Work started by events, so a stop can wait for it and tests can wait for it to settle.
  const pending = new Set<Promise<void>>();
  const track = (work: () => Promise<void>, what: string) => {
    if (stopping) return;
    const p = work()
      .catch((err) => log.error({ err }, `discord ${what} failed`))
      .finally(() => pending.delete(p));
    pending.add(p);
  };
  const settled = async () => {
    while (pending.size > 0) await Promise.allSettled([...pending]);
  };

  client.on(Events.MessageCreate, (message) => track(() => onMessage(message), 'message'));
  client.on(Events.MessageReactionAdd, (reaction, user) =>
    track(() => onReaction(reaction, user, true), 'reaction'),
  );
  client.on(Events.MessageReactionRemove, (reaction, user) =>
    track(() => onReaction(reaction, user, false), 'reaction removal'),
  );
  client.on(Events.InteractionCreate, (interaction) => {
    if (interaction.isChatInputCommand() && interaction.commandName === SUPPORT_COMMAND_NAME) {
      track(() => onCommand(interaction), '/support');
    } else if (interaction.isButton()) {
      track(() => onButton(interaction), 'button');
    }
  });
  client.on(Events.Error, (err) => log.error({ err }, 'discord client error'));
  client.on(Events.ShardError, (err) => log.warn({ err }, 'discord gateway error'));

  return {
    client,
    async start() {
      const ready = new Promise<void>((resolve) => client.once(Events.ClientReady, () => resolve()));
      await client.login(settings.token);
      await ready;
      log.info({ user: client.user?.tag, guilds: client.guilds.cache.size }, 'discord bot ready');
    },
    async stop(options = {}) {
      if (stopping) return;
      stopping = true;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), options.drainTimeoutMs ?? 30_000);
      });
      const drained = await Promise.race([settled(), timeout]).finally(() => clearTimeout(timer));
      if (drained === 'timeout')
        log.warn({ pending: pending.size }, 'discord bot stopped with work in flight');
      await client.destroy();
    },
    settled,
  };
}
