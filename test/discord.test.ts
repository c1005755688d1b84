import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type APIMessage, type APIUser, ChannelType } from 'discord-api-types/v10';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { SupportCommandDeps } from '../bot/commands/support-command.ts';
import {
  ConversationHandler,
  type ConversationLimits,
  HUMAN_COMING_TEXT,
} from '../bot/conversation/handler.ts';
import {
  createDiscordBot,
  type DiscordBot,
  INTERACTION_CLAIM_WAIT_MS,
  reactionRating,
  threadName,
  threadOwnerKey,
  toSendOptions,
} from '../bot/discord/app.ts';
import { registerDiscordCommands, type supportCommandJson } from '../bot/discord/commands.ts';
import { answerToDiscordMessages } from '../bot/discord/messages.ts';
import { answer } from '../core/answer.ts';
import { DEFAULT_SOURCE, folderSourceSchema } from '../core/config.ts';
import { SqliteKnowledgeStore } from '../core/knowledge-store/sqlite.ts';
import { RedisStateStore } from '../core/state-store/redis.ts';
import { SqliteStateStore } from '../core/state-store/sqlite.ts';
import type { StateStore } from '../core/state-store.ts';
import { cl100kTokenizer } from '../core/tokenizer.ts';
import type { AnswerResult, Citation, Turn } from '../core/types.ts';
import { createFolderSource } from '../sync/sources/folder.ts';
import { syncSource } from '../sync/sync.ts';
import {
  buttonInteraction,
  type DiscordWorld,
  FakeDiscordGateway,
  guildChannel,
  member,
  messageCreate,
  reactionAdd,
  reactionRemove,
  role,
  snowflake,
  supportCommandInteraction,
  user,
} from './fakes/discord-gateway.ts';
import { FakeDiscordRest } from './fakes/discord-rest.ts';
import { longAnswerCaseText, makeAnswerResult } from './helpers/answer-result.ts';

const GUILD = '100000000000000001';
const SUPPORT = '400000000000000001'; // text channel, threads allowed
const LOCKED = '400000000000000002'; // text channel where the bot may not start threads
const ESCALATIONS = '400000000000000003';
const VOICE = '400000000000000004'; // a voice channel's text chat: no threads there
const DM = '400000000000000009';
const ADMIN_ROLE = '600000000000000001';
const BOT_ROLE = '600000000000000002';

const bot = user('200000000000000001', 'supportbot', true);
const asker = user('500000000000000001', 'asker');
const other = user('500000000000000002', 'other');
const admin = user('500000000000000003', 'admin');

const world: DiscordWorld = {
  token: 'test-discord-token',
  applicationId: '300000000000000001',
  bot,
  guild: { id: GUILD, name: 'Ledgerly', ownerId: admin.id },
  roles: [role(ADMIN_ROLE, 'support-admins'), role(BOT_ROLE, 'supportbot', { bot_id: bot.id })],
  channels: [
    guildChannel(SUPPORT, GUILD, 'support'),
    guildChannel(LOCKED, GUILD, 'announcements-locked'),
    guildChannel(ESCALATIONS, GUILD, 'escalations'),
    guildChannel(VOICE, GUILD, 'voice', ChannelType.GuildVoice),
  ],
};

// Guilds | GuildMessages | GuildMessageReactions | DirectMessages | DirectMessageReactions | MessageContent
// (https://discord.com/developers/docs/events/gateway#list-of-intents): 1 + 512 + 1024 + 4096 + 8192 + 32768.
const EXPECTED_INTENTS = 46593;

const silent = pino({ level: process.env.TEST_LOG ?? 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let knowledgeDir: string;
let knowledge: SqliteKnowledgeStore;

beforeAll(async () => {
  knowledgeDir = mkdtempSync(path.join(tmpdir(), 'supportbot-discord-kb-'));
  knowledge = SqliteKnowledgeStore.open(path.join(knowledgeDir, 'kb.sqlite'));
  const source = createFolderSource(folderSourceSchema.parse(DEFAULT_SOURCE));
  await syncSource(source, knowledge, {
    chunking: { maxTokens: 300, overlapTokens: 30, tokenizer: cl100kTokenizer },
  });
});

afterAll(async () => {
  await knowledge.close();
  rmSync(knowledgeDir, { recursive: true, force: true });
});

/** `core.answer()` over the example help center, as `serve` wires it. */
const helpCenter = (question: string, history: Turn[], signal: AbortSignal) =>
  answer(question, {
    store: knowledge,
    topK: 5,
    abstainThreshold: 0.4,
    maxAnswerChars: 900,
    history,
    signal,
  });

describe('Discord transport (real discord.js client, local REST and gateway)', () => {
  let tmp: string;
  let gateway: FakeDiscordGateway;
  let rest: FakeDiscordRest;
  const bots: DiscordBot[] = [];
  const stores: StateStore[] = [];

  beforeEach(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'supportbot-discord-'));
    gateway = await FakeDiscordGateway.start(world, { heartbeatIntervalMs: 1_000 });
    rest = await FakeDiscordRest.start(world, gateway);
  });

  afterEach(async () => {
    for (const b of bots.splice(0)) await b.stop();
    for (const s of stores.splice(0)) await s.close();
    await rest.close();
    await gateway.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  const sqlite = () => {
    const s = SqliteStateStore.open(path.join(tmp, 'state.sqlite'));
    stores.push(s);
    return s;
  };

  const commandDeps = (state: StateStore, over: Partial<SupportCommandDeps> = {}): SupportCommandDeps => ({
    state,
    sync: async () => [],
    sourceNames: () => ['examples'],
    status: async () => 'examples: 22 articles',
    ask: async (q) => `answer to ${q}`,
    ...over,
  });

  /** Starts one bot replica (a real discord.js Client) and waits until its session is ready. */
  const launch = async (
    state: StateStore,
    options: {
      answer?: (q: string, h: Turn[], s: AbortSignal) => Promise<AnswerResult>;
      limits?: Partial<ConversationLimits>;
      commands?: Partial<SupportCommandDeps>;
    } = {},
  ) => {
    const escalationFor = () => ({ channelId: ESCALATIONS, mention: `<@&${ADMIN_ROLE}>` });
    const handler = new ConversationHandler({
      answer: options.answer ?? helpCenter,
      state,
      log: silent,
      limits: { perUser: 100, ...options.limits },
      escalationFor,
    });
    const discord = createDiscordBot(
      {
        token: world.token,
        apiUrl: rest.apiUrl,
        upReactions: ['👍'],
        downReactions: ['👎'],
        adminUsers: [],
        adminRoles: [ADMIN_ROLE],
      },
      { handler, commands: commandDeps(state, options.commands), log: silent },
    );
    bots.push(discord);
    await discord.start();
    return { discord, handler };
  };

  const mention = (content: string, over: Partial<Parameters<typeof messageCreate>[0]> = {}) =>
    messageCreate({
      channelId: SUPPORT,
      guildId: GUILD,
      author: asker,
      content: `<@${bot.id}> ${content}`,
      mentions: [bot],
      ...over,
    });

  /** Messages the bot posted in a channel. */
  const answersIn = (channelId: string) => rest.postedIn(channelId);

  /**
   * Waits until `count` answers (messages with buttons) are in the channel and every bot finished
   * the work around them (message ids and history recorded, as right after posting), then returns
   * the channel's messages.
   */
  const answers = async (channelId: string, count = 1) => {
    await rest.waitFor(() => answersIn(channelId).filter((m) => m.components).length >= count);
    await Promise.all(bots.map((b) => b.settled()));
    return answersIn(channelId);
  };

  it('identifies with the documented intents, answers a guild mention in a thread started from it, and records the answer', async () => {
    const state = sqlite();
    await launch(state);
    expect(gateway.identifies).toHaveLength(1);
    expect(gateway.identifies[0]?.intents).toBe(EXPECTED_INTENTS);
    expect(gateway.identifies[0]?.token).toBe(world.token);

    const question = mention('how do I reset my password?');
    gateway.dispatch('MESSAGE_CREATE', question);
    // The thread started from a message has the message's id (Start Thread from Message).
    const posted = await answers(question.id);
    const threadCall = rest.requests.find(
      (r) => r.path === `/channels/${SUPPORT}/messages/${question.id}/threads`,
    );
    expect(threadCall?.method).toBe('POST');
    expect(threadCall?.body).toMatchObject({
      name: 'how do I reset my password?',
      auto_archive_duration: 1440,
    });

    const text = posted.map((m) => m.content).join('\n');
    expect(text).toMatch(/\[1\]/);
    expect(text).toContain('**Sources**');
    expect(text.toLowerCase()).toContain('password');
    expect(posted.every((m) => (m.body.allowed_mentions as { parse: string[] }).parse.length === 0)).toBe(
      true,
    );
    // Buttons once, on the last message, carrying the answer id.
    expect(posted.filter((m) => m.components?.length)).toHaveLength(1);
    const customIds = JSON.stringify(posted[posted.length - 1]?.components).match(
      /feedback:(up|down):[\w-]+/g,
    );
    expect(customIds).toHaveLength(2);

    const answerId = await state.answerForMessage('discord', posted[0]?.id as string);
    expect(answerId).toBeTruthy();
    const record = await state.getAnswer(answerId as string);
    expect(record).toMatchObject({
      platform: 'discord',
      threadId: question.id,
      userId: asker.id,
      question: 'how do I reset my password?',
      messageKeys: posted.map((m) => m.id),
    });
    expect(record?.result.retrievedChunkIds.length).toBeGreaterThan(0);
    expect(customIds?.[0]).toBe(`feedback:up:${answerId}`);

    // The gateway echoes the bot's own messages (MESSAGE_CREATE): they are never answered.
    await sleep(300);
    expect(rest.messages).toHaveLength(posted.length);
    // Heartbeats (every ~1 s here) were acknowledged: a client missing an ACK reconnects and
    // identifies again, so one IDENTIFY after three heartbeats means the session stayed up.
    await waitUntil(async () => gateway.heartbeats.length >= 3, 5_000);
    expect(gateway.identifies).toHaveLength(1);
  });

  it('treats the asker’s messages in the bot’s thread as follow-ups with history; others must mention the bot', async () => {
    const state = sqlite();
    const seen: { q: string; history: Turn[] }[] = [];
    await launch(state, {
      answer: async (q, history, signal) => {
        seen.push({ q, history });
        return helpCenter(q, history, signal);
      },
    });
    const question = mention('how do I export my invoices?');
    gateway.dispatch('MESSAGE_CREATE', question);
    const thread = question.id;
    await answers(thread);

    // Someone else chatting in the thread without a mention is not asking the bot.
    gateway.dispatch(
      'MESSAGE_CREATE',
      messageCreate({ channelId: thread, guildId: GUILD, author: other, content: 'same problem here' }),
    );
    gateway.dispatch(
      'MESSAGE_CREATE',
      messageCreate({ channelId: thread, guildId: GUILD, author: asker, content: 'and as CSV?' }),
    );
    await answers(thread, 2);
    await sleep(200);
    expect(seen.map((s) => s.q)).toEqual(['how do I export my invoices?', 'and as CSV?']);
    expect(seen[1]?.history.map((t) => t.role)).toEqual(['user', 'assistant']);
    expect(seen[1]?.history[0]?.text).toBe('how do I export my invoices?');
    const second = await state.answerForMessage('discord', answersIn(thread).at(-1)?.id as string);
    expect((await state.getAnswer(second as string))?.threadId).toBe(thread);
    // Only one thread was started; the follow-up went into it.
    expect(rest.requests.filter((r) => r.path.endsWith('/threads'))).toHaveLength(1);

    // A mention from the other user in the thread is answered there.
    gateway.dispatch(
      'MESSAGE_CREATE',
      messageCreate({
        channelId: thread,
        guildId: GUILD,
        author: other,
        content: `<@&${BOT_ROLE}> can I pay by card?`,
        mentionRoles: [BOT_ROLE],
      }),
    );
    await answers(thread, 3);
    expect(seen[2]?.q).toBe('can I pay by card?');
  });

  it('follow-ups without a mention stay with the thread’s original asker after someone else mentions the bot there', async () => {
    const state = sqlite();
    const seen: { q: string }[] = [];
    await launch(state, {
      answer: async (q, history, signal) => {
        seen.push({ q });
        return helpCenter(q, history, signal);
      },
    });
    const question = mention('how do I export my invoices?');
    gateway.dispatch('MESSAGE_CREATE', question);
    const thread = question.id;
    await answers(thread);
    // A second user asks the bot in the same thread: answered, but the thread stays the asker's.
    gateway.dispatch(
      'MESSAGE_CREATE',
      messageCreate({
        channelId: thread,
        guildId: GUILD,
        author: other,
        content: `<@${bot.id}> can I pay by card?`,
        mentions: [bot],
      }),
    );
    await answers(thread, 2);
    // The second user's unmentioned chatter is not for the bot ...
    gateway.dispatch(
      'MESSAGE_CREATE',
      messageCreate({ channelId: thread, guildId: GUILD, author: other, content: 'thanks, that is all' }),
    );
    // ... the original asker's unmentioned follow-up is.
    gateway.dispatch(
      'MESSAGE_CREATE',
      messageCreate({ channelId: thread, guildId: GUILD, author: asker, content: 'and as CSV?' }),
    );
    await answers(thread, 3);
    await sleep(300);
    expect(seen.map((x) => x.q)).toEqual([
      'how do I export my invoices?',
      'can I pay by card?',
      'and as CSV?',
    ]);
    expect(await state.answerForMessage('discord', threadOwnerKey(thread))).toBe(asker.id);
  });

  it('a reply that pings the bot is a question only under one of its answers, not under its notices', async () => {
    const state = sqlite();
    let calls = 0;
    await launch(state, {
      limits: { perUser: 1 },
      answer: async () => {
        calls++;
        return makeAnswerResult("I'll bring in someone from the support team.", {
          escalated: true,
          escalationReason: 'the asker wants a refund',
        });
      },
    });
    const question = mention('I want a refund, talk to a human');
    gateway.dispatch('MESSAGE_CREATE', question);
    const notice = await rest.waitFor(() => answersIn(ESCALATIONS)[0]);
    await Promise.all(bots.map((b) => b.settled()));
    // The support person replies "on it" to the escalation notice; the reply pings the bot (the
    // client's default), so discord.js lists the bot in mentions.users.
    const onIt = messageCreate({
      channelId: ESCALATIONS,
      guildId: GUILD,
      author: admin,
      content: 'on it',
      replyTo: { message: notice },
    });
    expect(onIt.mentions.map((u) => u.id)).toEqual([bot.id]);
    expect(onIt.referenced_message?.id).toBe(notice.id);
    gateway.dispatch('MESSAGE_CREATE', onIt);

    // The asker's second question hits the rate limit; someone replies to that notice with a ping.
    const second = mention('and how long does it take?');
    gateway.dispatch('MESSAGE_CREATE', second);
    const busy = await rest.waitFor(() => answersIn(second.id)[0]);
    expect(busy.content).toMatch(/asking faster/);
    gateway.dispatch(
      'MESSAGE_CREATE',
      messageCreate({
        channelId: second.id,
        guildId: GUILD,
        author: other,
        content: 'same here',
        replyTo: { message: busy },
      }),
    );
    await sleep(500);
    await Promise.all(bots.map((b) => b.settled()));
    expect(calls).toBe(1);
    expect(answersIn(ESCALATIONS)).toHaveLength(1);
    expect(answersIn(second.id)).toHaveLength(1);
    expect(rest.requests.filter((r) => r.path.endsWith('/threads'))).toHaveLength(2);

    // A reply that pings the bot under one of its answers (no @ in the text) continues that answer.
    const answerMessage = answersIn(question.id).find((m) => m.components) as APIMessage;
    gateway.dispatch(
      'MESSAGE_CREATE',
      messageCreate({
        channelId: question.id,
        guildId: GUILD,
        author: other,
        content: 'is there an update?',
        replyTo: { message: answerMessage },
      }),
    );
    await waitUntil(async () => calls === 2);
  });

  it('escalates: notifies the target channel with its role mention, tells the asker, then stops answering unasked', async () => {
    const state = sqlite();
    let calls = 0;
    await launch(state, {
      answer: async () => {
        calls++;
        return makeAnswerResult("I'll bring in someone from the support team.", {
          escalated: true,
          escalationReason: 'the asker wants a refund',
        });
      },
    });
    const question = mention('I want a refund, talk to a human');
    gateway.dispatch('MESSAGE_CREATE', question);
    const notice = await rest.waitFor(() => answersIn(ESCALATIONS)[0]);
    expect(notice.content).toContain(`<@&${ADMIN_ROLE}>`);
    expect(notice.content).toContain(`<#${question.id}>`);
    expect(notice.content).toContain(`<@${asker.id}>`);
    expect(notice.content).toContain('the asker wants a refund');
    expect(notice.content).toContain(`https://discord.com/channels/${GUILD}/${question.id}`);
    // Only the configured role may be pinged, not the asker.
    expect(notice.body.allowed_mentions).toEqual({ parse: [], roles: [ADMIN_ROLE], users: [] });
    // The asker is told once, in the answer itself; the transport does not repeat it.
    await rest.waitFor(() =>
      answersIn(question.id).some((m) => m.content.includes("I'll bring in someone from the support team.")),
    );
    await Promise.all(bots.map((b) => b.settled()));
    // The handler ends an escalated answer with what happens next (`escalationText`): one message.
    const told = answersIn(question.id).filter((m) => m.content.includes(HUMAN_COMING_TEXT));
    expect(told).toHaveLength(1);
    expect(told[0]?.content).toContain("I'll bring in someone from the support team.");

    // The asker now talks to a person: no mention, no bot answer; a mention still reaches the bot.
    gateway.dispatch(
      'MESSAGE_CREATE',
      messageCreate({ channelId: question.id, guildId: GUILD, author: asker, content: 'thanks, waiting' }),
    );
    // Other bots (and webhooks) are never answered, even when they mention the bot.
    gateway.dispatch(
      'MESSAGE_CREATE',
      mention('how do I reset my password?', { author: user('800000000000000001', 'otherbot', true) }),
    );
    await sleep(300);
    expect(calls).toBe(1);
    gateway.dispatch(
      'MESSAGE_CREATE',
      messageCreate({
        channelId: question.id,
        guildId: GUILD,
        author: asker,
        content: `<@${bot.id}> any update?`,
        mentions: [bot],
      }),
    );
    await waitUntil(async () => calls === 2);
  });

  it('posts the handler’s notices (rate limit) in the question’s thread, split to 2,000 characters', async () => {
    const state = sqlite();
    await launch(state, { limits: { perUser: 1 } });
    const first = mention('how do I reset my password?');
    gateway.dispatch('MESSAGE_CREATE', first);
    await answers(first.id);
    const second = mention('how do I export invoices?');
    gateway.dispatch('MESSAGE_CREATE', second);
    const notice = await rest.waitFor(() => answersIn(second.id)[0]);
    expect(notice.content).toMatch(/asking faster than I can keep up/);
    expect(notice.components ?? []).toEqual([]);
  });

  it('answers a DM as a reply (no thread), and a channel without thread permission with replies', async () => {
    const state = sqlite();
    await launch(state);
    rest.dmChannels.add(DM);
    const dm = messageCreate({
      channelId: DM,
      author: asker,
      content: 'how do I reset my password?',
      channelType: ChannelType.DM,
    });
    gateway.dispatch('MESSAGE_CREATE', dm);
    const dmPosts = await answers(DM);
    expect(dmPosts[0]?.body.message_reference?.message_id).toBe(dm.id);
    expect(dmPosts.every((m) => m.content.length <= 2000)).toBe(true);
    const dmAnswer = await state.getAnswer(
      (await state.answerForMessage('discord', dmPosts[0]?.id as string)) as string,
    );
    expect(dmAnswer).toMatchObject({ threadId: DM, userId: asker.id });

    // 403 / 50013 on Start Thread: the answer comes as a reply in the channel.
    rest.noThreadChannels.add(LOCKED);
    const q = mention('how do I reset my password?', { channelId: LOCKED });
    gateway.dispatch('MESSAGE_CREATE', q);
    const posts = await answers(LOCKED);
    expect(rest.requests.some((r) => r.path === `/channels/${LOCKED}/messages/${q.id}/threads`)).toBe(true);
    expect(posts.every((m) => m.body.message_reference?.message_id === q.id)).toBe(true);
    expect(rest.requests.filter((r) => r.path.includes('/threads'))).toHaveLength(1);

    // A voice channel's text chat cannot have threads: the bot replies without trying.
    const v = mention('how do I reset my password?', { channelId: VOICE });
    gateway.dispatch('MESSAGE_CREATE', v);
    const voicePosts = await answers(VOICE);
    expect(voicePosts[0]?.body.message_reference?.message_id).toBe(v.id);
    expect(rest.requests.filter((r) => r.path.includes('/threads'))).toHaveLength(1);

    // Replying to that answer with a mention continues its conversation.
    const followUp = mention('and if the link expired?', {
      channelId: LOCKED,
      replyTo: { message: posts.at(-1) as APIMessage },
    });
    gateway.dispatch('MESSAGE_CREATE', followUp);
    await answers(LOCKED, 2);
    const last = await state.answerForMessage('discord', answersIn(LOCKED).at(-1)?.id as string);
    expect((await state.getAnswer(last as string))?.threadId).toBe(q.id);
  });

  it('posts the long-answer case as messages of at most 2,000 characters with balanced fences and buttons once', async () => {
    const state = sqlite();
    const long = longAnswer();
    await launch(state, { answer: async () => long });
    const question = mention('how do I move a workspace?');
    gateway.dispatch('MESSAGE_CREATE', question);
    const posted = await answers(question.id);
    expect(posted.length).toBeGreaterThan(5);
    for (const m of posted) {
      expect([...m.content].length).toBeLessThanOrEqual(2000);
      expect((m.content.match(/^```/gm) ?? []).length % 2).toBe(0);
    }
    // A code block cut across messages is reopened with its info string.
    expect(posted.filter((m) => /^```bash$/m.test(m.content)).length).toBeGreaterThan(2);
    expect(posted.filter((m) => m.components?.length)).toHaveLength(1);
    expect(posted.at(-1)?.components).toBeTruthy();
    expect(posted.at(-1)?.content).toContain('**Sources**');
    // The whole text arrives, in order: every code line once per block.
    const all = posted.map((m) => m.content).join('\n');
    let from = 0;
    for (const line of [...EXPORT_LINES, ...EXPORT_LINES]) {
      const at = all.indexOf(line, from);
      expect(at, line).toBeGreaterThanOrEqual(from);
      from = at + line.length;
    }
    const record = await state.getAnswer(
      (await state.answerForMessage('discord', posted[0]?.id as string)) as string,
    );
    expect(record?.messageKeys).toEqual(posted.map((m) => m.id));
  });

  it('answers one message once: delivered twice, and to two replicas sharing one Redis state store', async () => {
    const prefix = `supportbot-test-discord-${randomUUID()}:`;
    let redisA: RedisStateStore;
    try {
      redisA = await RedisStateStore.connect(
        process.env.SUPPORTBOT_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
        {
          keyPrefix: prefix,
          connectTimeoutMs: 1_000,
        },
      );
    } catch (err) {
      if (process.env.SUPPORTBOT_SKIP_REDIS === '1') return;
      throw err;
    }
    const redisB = await RedisStateStore.connect(
      process.env.SUPPORTBOT_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
      {
        keyPrefix: prefix,
      },
    );
    stores.push(redisA, redisB);
    let generated = 0;
    const slowAnswer = async (q: string, h: Turn[], s: AbortSignal) => {
      generated++;
      await sleep(200);
      return helpCenter(q, h, s);
    };
    await launch(redisA, { answer: slowAnswer });
    await launch(redisB, { answer: slowAnswer });
    expect(gateway.sessions).toHaveLength(2);

    const question = mention('how do I reset my password?');
    gateway.dispatch('MESSAGE_CREATE', question); // to both replicas
    gateway.dispatch('MESSAGE_CREATE', question); // and once more to both
    await answers(question.id);
    await sleep(800);
    expect(generated).toBe(1);
    expect(rest.requests.filter((r) => r.path.endsWith('/threads'))).toHaveLength(1);
    expect(answersIn(question.id).filter((m) => m.components)).toHaveLength(1);
    expect(rest.messages.every((m) => m.channel_id === question.id)).toBe(true);

    // A reaction seen by both replicas counts once.
    const last = answersIn(question.id).at(-1) as APIMessage;
    gateway.dispatch(
      'MESSAGE_REACTION_ADD',
      reactionAdd({
        userId: other.id,
        channelId: question.id,
        messageId: last.id,
        emoji: { id: null, name: '👍' },
        guildId: GUILD,
      }),
    );
    const answerId = (await redisA.answerForMessage('discord', last.id)) as string;
    await waitUntil(async () => (await redisA.ratingSummary(answerId)).up === 1);
    await sleep(200);
    expect(await redisB.ratingSummary(answerId)).toEqual({ up: 1, down: 0 });

    // A button press reaches both replicas too: one acknowledges it (a second callback would get 40060).
    const press = buttonInteraction({
      world,
      user: asker,
      channelId: question.id,
      guildId: GUILD,
      customId: `feedback:down:${answerId}`,
      message: last,
    });
    gateway.dispatch('INTERACTION_CREATE', press);
    await rest.waitFor(() => rest.webhookMessages.find((w) => w.token === press.token && w.kind === 'edit'));
    await sleep(300);
    expect(rest.requests.filter((r) => r.path.startsWith(`/interactions/${press.id}/`))).toHaveLength(1);
    expect(await redisA.ratingSummary(answerId)).toEqual({ up: 1, down: 1 });
  });

  it('records reactions on an answer from before a restart (reaction-uncached case); custom emoji are ignored; removal retracts', async () => {
    const state = sqlite();
    const first = await launch(state);
    const question = mention('how do I reset my password?');
    gateway.dispatch('MESSAGE_CREATE', question);
    const posted = await answers(question.id);
    const answerId = (await state.answerForMessage('discord', posted[0]?.id as string)) as string;
    await first.discord.stop();

    // A new process: another client, another handler, another connection to the state file.
    const restarted = SqliteStateStore.open(path.join(tmp, 'state.sqlite'));
    stores.push(restarted);
    const second = await launch(restarted);
    const target = posted[0] as APIMessage;
    expect(second.discord.client.channels.cache.get(question.id)?.isThread()).toBe(true);
    // The new client never saw the message: it is not in its cache.
    const threadChannel = second.discord.client.channels.cache.get(question.id);
    expect(threadChannel?.isTextBased() && threadChannel.messages.cache.has(target.id)).toBe(false);

    const react = (userId: string, name: string, id: string | null = null, remove = false) =>
      gateway.dispatch(
        remove ? 'MESSAGE_REACTION_REMOVE' : 'MESSAGE_REACTION_ADD',
        remove
          ? reactionRemove({
              userId,
              channelId: question.id,
              messageId: target.id,
              emoji: { id, name },
              guildId: GUILD,
            })
          : reactionAdd({
              userId,
              channelId: question.id,
              messageId: target.id,
              emoji: { id, name },
              guildId: GUILD,
              member: member(USERS.find((u) => u.id === userId) as APIUser),
              messageAuthorId: bot.id,
            }),
      );
    const requestsBefore = rest.requests.length;
    react(other.id, 'thumbsup', '700000000000000001'); // a custom emoji named like 👍: not configured
    react(other.id, '🎉'); // another unicode emoji
    react(bot.id, '👍'); // the bot's own reaction
    react(asker.id, '👍🏽'); // 👍 with a skin tone
    react(admin.id, '👎');
    await waitUntil(async () => {
      const s = await restarted.ratingSummary(answerId);
      return s.up === 1 && s.down === 1;
    });
    await sleep(200);
    expect(await restarted.ratingSummary(answerId)).toEqual({ up: 1, down: 1 });

    react(asker.id, '👍🏽', null, true);
    await waitUntil(async () => (await restarted.ratingSummary(answerId)).up === 0);
    expect(await restarted.ratingSummary(answerId)).toEqual({ up: 0, down: 1 });
    // Nothing was fetched to resolve the reactions.
    expect(rest.requests.slice(requestsBefore).filter((r) => r.method === 'GET')).toEqual([]);

    // A reaction on a message that is not an answer is ignored (the question itself).
    gateway.dispatch(
      'MESSAGE_REACTION_ADD',
      reactionAdd({
        userId: other.id,
        channelId: SUPPORT,
        messageId: question.id,
        emoji: { id: null, name: '👍' },
        guildId: GUILD,
      }),
    );
    await sleep(200);
    expect(await restarted.ratingSummary(answerId)).toEqual({ up: 0, down: 1 });

    // The restarted bot still knows its thread (GUILD_CREATE lists it) and the asker's follow-up.
    gateway.dispatch(
      'MESSAGE_CREATE',
      messageCreate({ channelId: question.id, guildId: GUILD, author: asker, content: 'and on mobile?' }),
    );
    await answers(question.id, 2);
  });

  it('turns 👍/👎 button presses into one changeable rating per user, acknowledged ephemerally', async () => {
    const state = sqlite();
    await launch(state);
    const question = mention('how do I reset my password?');
    gateway.dispatch('MESSAGE_CREATE', question);
    const last = (await answers(question.id)).at(-1) as APIMessage;
    const answerId = (await state.answerForMessage('discord', last.id)) as string;
    const press = (u: APIUser, value: 'up' | 'down') => {
      const i = buttonInteraction({
        world,
        user: u,
        channelId: question.id,
        guildId: GUILD,
        customId: `feedback:${value}:${answerId}`,
        message: last,
      });
      gateway.dispatch('INTERACTION_CREATE', i);
      return i;
    };
    /** The thanks: the deferred reply's edit, once the rating is recorded. */
    const thanks = (i: { token: string }) =>
      rest.waitFor(() => rest.webhookMessages.find((w) => w.token === i.token && w.kind === 'edit'));
    const a = press(asker, 'up');
    await thanks(a);
    expect(await state.ratingSummary(answerId)).toEqual({ up: 1, down: 0 });
    const b = press(asker, 'down');
    await thanks(b);
    expect(await state.ratingSummary(answerId)).toEqual({ up: 0, down: 1 });
    const c = press(other, 'up');
    const cb = await rest.waitFor(() => rest.callbacks.find((x) => x.interactionId === c.id));
    const edit = await thanks(c);
    expect(await state.ratingSummary(answerId)).toEqual({ up: 1, down: 1 });
    // Type 5 (DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE) with the EPHEMERAL flag (64), then the edit.
    expect(cb.type).toBe(5);
    expect((cb.data?.flags ?? 0) & 64).toBe(64);
    expect(edit.content).toContain('👍');

    // A press racing the recording of the message's id still counts: the custom_id names the answer.
    const raced = { ...last, id: snowflake() };
    const d = buttonInteraction({
      world,
      user: admin,
      channelId: question.id,
      guildId: GUILD,
      customId: `feedback:up:${answerId}`,
      message: raced,
    });
    gateway.dispatch('INTERACTION_CREATE', d);
    await thanks(d);
    expect(await state.ratingSummary(answerId)).toEqual({ up: 2, down: 1 });
    expect(await state.answerForMessage('discord', raced.id)).toBe(answerId);
    // A custom_id naming no answer is refused politely and records nothing.
    const e = buttonInteraction({
      world,
      user: admin,
      channelId: question.id,
      guildId: GUILD,
      customId: 'feedback:down:no-such-answer',
      message: { ...last, id: snowflake() },
    });
    gateway.dispatch('INTERACTION_CREATE', e);
    const refused = await thanks(e);
    expect(refused.content).toMatch(/not recorded/);
    expect(await state.ratingSummary(answerId)).toEqual({ up: 2, down: 1 });
  });

  it('/support is deferred at once even when the command is slow, refuses admin subcommands to non-admins, and accepts admins by role', async () => {
    const state = sqlite();
    const synced: string[][] = [];
    await launch(state, {
      commands: {
        status: async () => {
          await sleep(3_500);
          return 'examples: 22 articles, 80 chunks';
        },
        sync: async (names) => {
          synced.push(names);
          return [];
        },
      },
    });
    const dispatchAt = Date.now();
    const status = supportCommandInteraction({
      world,
      user: asker,
      channelId: SUPPORT,
      guildId: GUILD,
      subcommand: 'status',
    });
    gateway.dispatch('INTERACTION_CREATE', status);
    const deferred = await rest.waitFor(() => rest.callbacks.find((c) => c.interactionId === status.id));
    // Type 5 (DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE), ephemeral, well inside Discord's 3 s.
    expect(deferred.type).toBe(5);
    expect((deferred.data?.flags ?? 0) & 64).toBe(64);
    const ackMs = deferred.at - dispatchAt;
    expect(ackMs).toBeLessThan(1_000);
    const edit = await rest.waitFor(
      () => rest.webhookMessages.find((w) => w.token === status.token && w.kind === 'edit'),
      8_000,
    );
    expect(edit.content).toBe('examples: 22 articles, 80 chunks');
    expect(edit.at - dispatchAt).toBeGreaterThanOrEqual(3_400);

    // Non-admin: a clear refusal, nothing runs.
    const refused = supportCommandInteraction({
      world,
      user: other,
      channelId: SUPPORT,
      guildId: GUILD,
      subcommand: 'sync',
    });
    gateway.dispatch('INTERACTION_CREATE', refused);
    const no = await rest.waitFor(() => rest.webhookMessages.find((w) => w.token === refused.token));
    expect(no.content).toMatch(/admins only/);
    expect(synced).toEqual([]);

    // Admin through a role in the interaction's member payload.
    const allowed = supportCommandInteraction({
      world,
      user: admin,
      roles: [ADMIN_ROLE],
      channelId: SUPPORT,
      guildId: GUILD,
      subcommand: 'sync',
      options: { source: 'examples' },
    });
    gateway.dispatch('INTERACTION_CREATE', allowed);
    const done = await rest.waitFor(() =>
      rest.webhookMessages.find((w) => w.token === allowed.token && w.kind === 'followup'),
    );
    expect(rest.webhookMessages.find((w) => w.token === allowed.token && w.kind === 'edit')?.content).toMatch(
      /^Sync started for examples/,
    );
    expect(done.content).toMatch(/^Sync done/);
    // One visibility rule on both platforms: only the ask answer is public; sync reports are ephemeral.
    expect(done.flags & 64).toBe(64);
    expect(synced).toEqual([['examples']]);
    expect(rest.callbacks.filter((c) => c.interactionId === allowed.id)).toHaveLength(1);

    // ask: the answer comes as a public follow-up (not ephemeral) after the ephemeral ack.
    const ask = supportCommandInteraction({
      world,
      user: other,
      channelId: SUPPORT,
      guildId: GUILD,
      subcommand: 'ask',
      options: { question: 'how do I reset my password?' },
    });
    gateway.dispatch('INTERACTION_CREATE', ask);
    const answered = await rest.waitFor(() =>
      rest.webhookMessages.find((w) => w.token === ask.token && w.kind === 'followup'),
    );
    expect(answered.content).toBe('answer to how do I reset my password?');
    expect(answered.flags & 64).toBe(0);

    // In a DM there is no member: only the admin user list counts; help works for everyone.
    const dmHelp = supportCommandInteraction({ world, user: admin, channelId: DM, subcommand: 'help' });
    gateway.dispatch('INTERACTION_CREATE', dmHelp);
    const help = await rest.waitFor(() => rest.webhookMessages.find((w) => w.token === dmHelp.token));
    expect(help.content).toContain('/support ask');
    const dmSync = supportCommandInteraction({ world, user: admin, channelId: DM, subcommand: 'retrain' });
    gateway.dispatch('INTERACTION_CREATE', dmSync);
    expect(
      (await rest.waitFor(() => rest.webhookMessages.find((w) => w.token === dmSync.token))).content,
    ).toMatch(/admins only/);
  });

  it('meets the 3 s interaction deadline when every state-store call takes 2.5 s; two replicas still answer once', async () => {
    const file = path.join(tmp, 'state.sqlite');
    const fast = sqlite();
    let delayMs = 0;
    /** The same SQLite state, with `delayMs` before every call (a remote store on a bad day). */
    const slowed = (inner: StateStore): StateStore =>
      new Proxy(inner, {
        get(target, prop, receiver) {
          const value = Reflect.get(target, prop, receiver);
          if (typeof value !== 'function') return value;
          return async (...args: unknown[]) => {
            if (delayMs > 0) await sleep(delayMs);
            return (value as (...a: unknown[]) => unknown).apply(target, args);
          };
        },
      });
    const second = SqliteStateStore.open(file);
    stores.push(second);
    await launch(slowed(fast));
    await launch(slowed(second));
    const question = mention('how do I reset my password?');
    gateway.dispatch('MESSAGE_CREATE', question);
    const last = (await answers(question.id)).at(-1) as APIMessage;
    const answerId = (await fast.answerForMessage('discord', last.id)) as string;

    delayMs = 2_500;
    const status = supportCommandInteraction({
      world,
      user: asker,
      channelId: SUPPORT,
      guildId: GUILD,
      subcommand: 'status',
    });
    const press = buttonInteraction({
      world,
      user: other,
      channelId: question.id,
      guildId: GUILD,
      customId: `feedback:up:${answerId}`,
      message: last,
    });
    const dispatchAt = Date.now();
    gateway.dispatch('INTERACTION_CREATE', status);
    gateway.dispatch('INTERACTION_CREATE', press);
    const statusAck = await rest.waitFor(() => rest.callbacks.find((c) => c.interactionId === status.id));
    const pressAck = await rest.waitFor(() => rest.callbacks.find((c) => c.interactionId === press.id));
    // Both deferred (type 5, ephemeral) within Discord's 3 s although a claim alone takes 2.5 s.
    for (const ack of [statusAck, pressAck]) {
      expect(ack.type).toBe(5);
      expect((ack.data?.flags ?? 0) & 64).toBe(64);
      // Discord's 3 s also covers the gateway's delivery and the callback's way back: a local
      // ack must leave at least a second of that (a 2.5 s claim followed by the callback would not).
      expect(ack.at - dispatchAt).toBeLessThan(2_000);
      expect(ack.at - dispatchAt).toBeGreaterThanOrEqual(INTERACTION_CLAIM_WAIT_MS - 50);
    }
    const statusEdit = await rest.waitFor(
      () => rest.webhookMessages.find((w) => w.token === status.token && w.kind === 'edit'),
      15_000,
    );
    expect(statusEdit.content).toBe('examples: 22 articles');
    const thanks = await rest.waitFor(
      () => rest.webhookMessages.find((w) => w.token === press.token && w.kind === 'edit'),
      20_000,
    );
    expect(thanks.content).toContain('👍');
    await Promise.all(bots.map((b) => b.settled()));
    delayMs = 0;
    // Both replicas timed out on the claim and sent a callback: Discord took one and refused the
    // other with 40060, so each interaction got exactly one answer.
    expect(rest.callbacks.filter((c) => c.interactionId === status.id)).toHaveLength(1);
    expect(rest.callbacks.filter((c) => c.interactionId === press.id)).toHaveLength(1);
    expect(rest.webhookMessages.filter((w) => w.token === status.token)).toHaveLength(1);
    expect(rest.webhookMessages.filter((w) => w.token === press.token)).toHaveLength(1);
    expect(await fast.ratingSummary(answerId)).toEqual({ up: 1, down: 0 });
  });

  it('registerDiscordCommands PUTs the /support command JSON to a guild and globally', async () => {
    const guild = await registerDiscordCommands({ token: world.token, apiUrl: rest.apiUrl, guildId: GUILD });
    expect(guild).toMatchObject({ scope: 'guild', applicationId: world.applicationId, guildId: GUILD });
    // Without an application id it is read from GET /applications/@me.
    expect(rest.requests.some((r) => r.method === 'GET' && r.path === '/applications/@me')).toBe(true);
    const global = await registerDiscordCommands({
      token: world.token,
      apiUrl: rest.apiUrl,
      applicationId: world.applicationId,
    });
    expect(global.scope).toBe('global');
    expect(rest.commandPuts.map((p) => p.path)).toEqual([
      `/applications/${world.applicationId}/guilds/${GUILD}/commands`,
      `/applications/${world.applicationId}/commands`,
    ]);
    const [body] = (rest.commandPuts[0]?.body ?? []) as ReturnType<typeof supportCommandJson>[];
    expect(rest.commandPuts[1]?.body).toEqual([body]);
    // Application Command JSON: CHAT_INPUT, five SUB_COMMAND (1) options, ask's STRING (3) required.
    expect(body).toMatchObject({ name: 'support', type: 1, contexts: [0, 1], integration_types: [0] });
    expect(body?.options?.map((o) => [o.name, o.type])).toEqual([
      ['ask', 1],
      ['status', 1],
      ['sync', 1],
      ['retrain', 1],
      ['help', 1],
    ]);
    expect(body?.options?.[0]).toMatchObject({
      options: [{ name: 'question', type: 3, required: true, max_length: 4000 }],
    });
    expect(global.commands[0]?.id).toMatch(/^\d+$/);
    await expect(
      registerDiscordCommands({ token: 'wrong', apiUrl: rest.apiUrl, guildId: GUILD }),
    ).rejects.toThrow(/Unauthorized/);
  });
});

describe('Discord helpers', () => {
  it('matches configured reactions by base emoji; custom emoji only when configured', () => {
    const s = { upReactions: ['👍', 'ledgerly_yes'], downReactions: ['👎', '700000000000000002'] };
    expect(reactionRating({ id: null, name: '👍🏿' }, s)).toBe(1);
    expect(reactionRating({ id: null, name: '👎️' }, s)).toBe(-1);
    expect(reactionRating({ id: null, name: '🎉' }, s)).toBeNull();
    expect(reactionRating({ id: '700000000000000001', name: '👍' }, s)).toBe(1); // configured by name
    expect(reactionRating({ id: '700000000000000003', name: 'thumbsup' }, s)).toBeNull();
    expect(reactionRating({ id: '700000000000000002', name: 'nope' }, s)).toBe(-1);
    expect(reactionRating({ id: '700000000000000004', name: 'ledgerly_yes' }, s)).toBe(1);
  });

  it('names threads after the question, within 100 characters', () => {
    expect(threadName('  how do   I reset?  ')).toBe('how do I reset?');
    expect(threadName('')).toBe('Support question');
    const long = threadName('word '.repeat(60));
    expect(long.length).toBeLessThanOrEqual(100);
    expect(long.endsWith('…')).toBe(true);
  });
});

// ── Opt-in: the real Discord API ─────────────────────────────────────────────────────────────────
// Needs a bot in a test server with the Message Content intent enabled in the Developer Portal
// (otherwise Discord closes the gateway with 4014, disallowed intents), Send Messages and Manage
// Messages in DISCORD_TEST_CHANNEL_ID, and the applications.commands scope for DISCORD_TEST_GUILD_ID.

const REAL_TOKEN = process.env.DISCORD_TEST_TOKEN;
const REAL_CHANNEL = process.env.DISCORD_TEST_CHANNEL_ID;
const REAL_GUILD = process.env.DISCORD_TEST_GUILD_ID;
const realReason = !REAL_TOKEN
  ? 'DISCORD_TEST_TOKEN is not set'
  : !REAL_CHANNEL
    ? 'DISCORD_TEST_CHANNEL_ID is not set'
    : null;
if (realReason) {
  process.stderr.write(
    `test/discord.test.ts: skipping the real-Discord test (${realReason}; set DISCORD_TEST_TOKEN, ` +
      'DISCORD_TEST_CHANNEL_ID and optionally DISCORD_TEST_GUILD_ID to run it)\n',
  );
}

describe.skipIf(realReason !== null)(
  `real Discord API (opt-in${realReason ? `; skipped: ${realReason}` : ''})`,
  () => {
    it('logs in with the intents, accepts the long answer as posted, and registers /support in the guild', async () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'supportbot-discord-real-'));
      const state = SqliteStateStore.open(path.join(dir, 'state.sqlite'));
      const handler = new ConversationHandler({
        answer: helpCenter,
        state,
        log: silent,
        escalationFor: () => null,
      });
      const discord = createDiscordBot(
        {
          token: REAL_TOKEN as string,
          upReactions: ['👍'],
          downReactions: ['👎'],
          adminUsers: [],
          adminRoles: [],
        },
        {
          handler,
          log: silent,
          commands: {
            state,
            sync: async () => [],
            sourceNames: () => [],
            status: async () => '',
            ask: async () => '',
          },
        },
      );
      try {
        await discord.start();
        const channel = await discord.client.channels.fetch(REAL_CHANNEL as string);
        if (!channel?.isSendable())
          throw new Error('DISCORD_TEST_CHANNEL_ID is not a channel the bot can post in');
        const sent = [];
        for (const m of answerToDiscordMessages(longAnswer(), {
          answerId: randomUUID(),
          feedbackButtons: true,
        })) {
          sent.push(await channel.send(toSendOptions(m)));
        }
        expect(sent.every((m) => m.content.length <= 2000)).toBe(true);
        for (const m of sent) await m.delete();
        if (REAL_GUILD) {
          const r = await registerDiscordCommands({ token: REAL_TOKEN as string, guildId: REAL_GUILD });
          expect(r.commands.map((c) => c.name)).toEqual(['support']);
        }
      } finally {
        await discord.stop();
        await state.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  },
);

// ── Fixtures ─────────────────────────────────────────────────────────────────────────────────────

const EXPORT_LINES = Array.from(
  { length: 39 },
  (_, i) => `./manage.py export --realm acme --part ${i + 1} --output /tmp/export-${i + 1}.tar.gz`,
);

const CITATIONS: Citation[] = [
  {
    n: 1,
    articleId: 'export',
    source: 'examples',
    title: 'Export your workspace',
    url: 'https://help.example.com/articles/export',
    sourcePath: 'export.md',
    chunkIds: ['examples:export#0'],
  },
  {
    n: 2,
    articleId: 'import',
    source: 'examples',
    title: 'Import a workspace',
    url: null,
    sourcePath: 'moving/import.md',
    chunkIds: ['examples:import#1'],
  },
];

/** The long-answer case (test/fixtures/cases/chat/long-answer.CASE.md): its Sources line becomes citations. */
function longAnswer(): AnswerResult {
  return makeAnswerResult(longAnswerCaseText(), { citations: CITATIONS });
}

const USERS = [asker, other, admin, bot];

async function waitUntil(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > timeoutMs) throw new Error('waitUntil timed out');
    await sleep(20);
  }
}
