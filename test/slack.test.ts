import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { HELP_TEXT } from '../bot/commands/support-command.ts';
import { BUSY_TEXT, HUMAN_COMING_TEXT } from '../bot/conversation/handler.ts';
import type { IncomingMessage } from '../bot/conversation/types.ts';
import {
  askedBy,
  COMMAND_WORKING_TEXT,
  createSlackBot,
  RESPONSE_URL_MAX_POSTS,
  RESPONSE_URL_TTL_MS,
  slackTextToQuestion,
} from '../bot/slack/app.ts';
import { FEEDBACK_ACTION_DOWN, FEEDBACK_ACTION_UP } from '../bot/slack/blocks.ts';
import type { Generator } from '../core/generator.ts';
import { ExtractiveGenerator } from '../core/generators/extractive.ts';
import type { SqliteKnowledgeStore } from '../core/knowledge-store/sqlite.ts';
import { SqliteStateStore } from '../core/state-store/sqlite.ts';
import type { Turn } from '../core/types.ts';
import {
  FAKE_RESPONSE_URL_LIMITS,
  FAKE_SLACK_LIMITS,
  FakeSlackApi,
  type PostedMessage,
} from './fakes/slack-api.ts';
import {
  BOT_TOKEN,
  delayed,
  exampleKnowledge,
  logLines,
  type RunningSlackBot,
  sleep,
  startSlackBot,
  waitFor,
} from './fakes/slack-bot-harness.ts';
import { longAnswerCaseText } from './helpers/answer-result.ts';

const QUESTION = 'How do I reset my password?';
const CHANNEL = 'C0QUESTIONS';

type Block = Record<string, unknown> & { type: string };

function sectionTexts(m: PostedMessage): string[] {
  return ((m.blocks ?? []) as Block[])
    .filter((b) => b.type === 'section')
    .map((b) => (b.text as { text: string }).text);
}

function actionsBlocks(m: PostedMessage): Block[] {
  return ((m.blocks ?? []) as Block[]).filter((b) => b.type === 'actions');
}

let seq = 0;
/** A fresh message ts (`<seconds>.<micro>`), unique within the run. */
const newTs = () => `${1_760_000_000 + ++seq}.${String(seq).padStart(6, '0')}`;

function mention(user: string, ts: string, text = QUESTION, channel = CHANNEL, threadTs?: string) {
  return {
    type: 'app_mention',
    user,
    text: `<@UBOT> ${text}`,
    ts,
    channel,
    event_ts: ts,
    ...(threadTs ? { thread_ts: threadTs } : {}),
  };
}

function reaction(
  kind: 'reaction_added' | 'reaction_removed',
  user: string,
  name: string,
  channel: string,
  ts: string,
) {
  return {
    type: kind,
    user,
    reaction: name,
    item_user: 'UBOT',
    item: { type: 'message', channel, ts },
    event_ts: newTs(),
  };
}

function blockAction(user: string, actionId: string, m: PostedMessage, answerId: string) {
  return {
    type: 'block_actions',
    user: { id: user, username: user.toLowerCase(), name: user.toLowerCase(), team_id: 'T0FAKE' },
    api_app_id: 'A0FAKE',
    token: 'deprecated',
    container: {
      type: 'message',
      message_ts: m.ts,
      channel_id: m.channel,
      is_ephemeral: false,
      thread_ts: m.threadTs,
    },
    trigger_id: '123.456.abc',
    team: { id: 'T0FAKE', domain: 'fake' },
    channel: { id: m.channel, name: 'questions' },
    message: {
      type: 'message',
      user: 'UBOT',
      bot_id: 'BBOT',
      ts: m.ts,
      thread_ts: m.threadTs,
      text: m.text,
      blocks: m.blocks,
    },
    response_url: 'http://127.0.0.1:9/unused',
    actions: [
      {
        type: 'button',
        action_id: actionId,
        block_id: 'feedback',
        value: answerId,
        text: { type: 'plain_text', text: '👍', emoji: true },
        action_ts: newTs(),
      },
    ],
  };
}

describe('Slack transport (real Bolt app, HTTP receiver, local Web API)', () => {
  let tmp: string;
  let knowledge: SqliteKnowledgeStore;
  let sync: Awaited<ReturnType<typeof exampleKnowledge>>['sync'];
  let fake: FakeSlackApi;
  let state: SqliteStateStore;
  const bots: RunningSlackBot[] = [];
  const start = async (o: Partial<Parameters<typeof startSlackBot>[0]> = {}) => {
    const bot = await startSlackBot({ fake, knowledge, state, sync, ...o });
    bots.push(bot);
    return bot;
  };

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'supportbot-slack-'));
    ({ knowledge, sync } = await exampleKnowledge(path.join(tmp, 'kb.sqlite')));
    // One Web API for the file (reset per test): fewer servers coming and going on recycled ports.
    fake = await FakeSlackApi.start({
      botToken: BOT_TOKEN,
      userGroups: { SADMINS: ['UGROUPADMIN'], SOTHER: ['U1'] },
    });
  });
  afterAll(async () => {
    await fake?.close();
    await knowledge.close();
    rmSync(tmp, { recursive: true, force: true });
  });
  let n = 0;
  let stateFile: string;
  const setup = async () => {
    logLines.length = 0;
    fake.reset();
    stateFile = path.join(tmp, `state-${++n}.sqlite`);
    state = SqliteStateStore.open(stateFile);
  };
  afterEach(async () => {
    for (const bot of bots.splice(0)) await bot.stop().catch(() => {});
    await state?.close();
  });

  it('answers an app_mention in its thread with sections, Sources and 👍/👎 buttons, and records the Answer', async () => {
    await setup();
    const bot = await start();
    const ts = newTs();
    const res = await bot.deliver.event(bot.deliver.envelope(mention('U1', ts)));
    expect(res.status).toBe(200);
    expect(res.ms).toBeLessThan(3000);
    await waitFor(() => fake.thread(CHANNEL, ts).length > 0, 15_000, 'the reply');
    await bot.handler.drain();

    const posted = fake.thread(CHANNEL, ts);
    expect(posted).toHaveLength(1);
    const reply = posted[0] as PostedMessage;
    expect(reply.threadTs).toBe(ts);
    const blocks = reply.blocks as Block[];
    expect(sectionTexts(reply).join('\n')).toMatch(/password/i);
    const context = blocks.filter((b) => b.type === 'context');
    const sources = context.map((b) => (b.elements as { text: string }[])[0]?.text ?? '').join('\n');
    expect(sources).toMatch(/^\*Sources\*/);
    expect(sources).toContain('<https://help.ledgerly.example/articles/');
    const actions = actionsBlocks(reply);
    expect(actions).toHaveLength(1);
    const buttons = (actions[0]?.elements as { action_id: string; value: string }[]) ?? [];
    expect(buttons.map((b) => b.action_id)).toEqual([FEEDBACK_ACTION_UP, FEEDBACK_ACTION_DOWN]);
    // Every Web API call carried the bot token and succeeded.
    expect(fake.calls.every((c) => c.token === BOT_TOKEN && c.response.ok === true)).toBe(true);

    const answerId = await state.answerForMessage('slack', `${CHANNEL}:${reply.ts}`);
    expect(answerId).toBe(buttons[0]?.value);
    const record = await state.getAnswer(answerId as string);
    expect(record).toMatchObject({
      platform: 'slack',
      threadId: `${CHANNEL}:${ts}`,
      userId: 'U1',
      question: QUESTION,
      messageKeys: [`${CHANNEL}:${reply.ts}`],
    });
    expect(record?.result.citations.length).toBeGreaterThan(0);
    expect(record?.result.retrievedChunkIds.length).toBeGreaterThan(0);
    expect(record?.result.generator).toBe('extractive');
  });

  it('the workspace of a message is the installation’s team, also when a Slack Connect event names the sender’s', async () => {
    await setup();
    const bot = await start();
    const seen: IncomingMessage[] = [];
    const handle = bot.handler.handleMessage.bind(bot.handler);
    bot.handler.handleMessage = async (message, reply) => {
      seen.push(message);
      return handle(message, reply);
    };
    // In a shared channel `event.team` is the sender's workspace; the envelope (team_id,
    // authorizations) names the workspace that installed the bot.
    const ts = newTs();
    await bot.deliver.event(bot.deliver.envelope({ ...mention('U1', ts), team: 'TSENDERORG' }));
    await waitFor(() => fake.thread(CHANNEL, ts).length > 0, 15_000, 'the reply');
    await bot.handler.drain();
    expect(seen.map((m) => m.workspaceId)).toEqual([fake.teamId]);
  });

  it('a rate-limited chat.postMessage (HTTP 429, Retry-After) is retried after the wait and posted once', async () => {
    await setup();
    const bot = await start();
    fake.rateLimitNext('chat.postMessage', 1);
    const ts = newTs();
    const started = Date.now();
    await bot.deliver.event(bot.deliver.envelope(mention('U8', ts)));
    await waitFor(() => fake.thread(CHANNEL, ts).length > 0, 15_000, 'the reply after the rate limit');
    await bot.handler.drain();
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(fake.callsTo('chat.postMessage').map((c) => c.response.ok)).toEqual([false, true]);
    expect(fake.thread(CHANNEL, ts)).toHaveLength(1);
    const answerId = await state.answerForMessage('slack', `${CHANNEL}:${fake.thread(CHANNEL, ts)[0]?.ts}`);
    expect(answerId).toBeTruthy();
  });

  it('the generation limit (maxConcurrent) answers politely when full and frees its slot afterwards', async () => {
    await setup();
    const bot = await start({
      generator: delayed(new ExtractiveGenerator(), 1_500),
      limits: { maxConcurrent: 1 },
    });
    const [t1, t2, t3] = [newTs(), newTs(), newTs()];
    await bot.deliver.event(bot.deliver.envelope(mention('U11', t1)));
    await sleep(200);
    await bot.deliver.event(bot.deliver.envelope(mention('U12', t2)));
    await waitFor(
      () => fake.thread(CHANNEL, t1).length > 0 && fake.thread(CHANNEL, t2).length > 0,
      15_000,
      'two replies',
    );
    expect(fake.thread(CHANNEL, t2).map((m) => m.text)).toEqual([BUSY_TEXT]);
    expect(JSON.stringify(fake.thread(CHANNEL, t1)[0]?.blocks)).toContain('feedback_up');
    await bot.handler.drain();
    await bot.deliver.event(bot.deliver.envelope(mention('U13', t3)));
    await waitFor(() => fake.thread(CHANNEL, t3).length > 0, 15_000, 'the third reply');
    expect(JSON.stringify(fake.thread(CHANNEL, t3)[0]?.blocks)).toContain('feedback_up');
  });

  it('answers a direct message (message event, channel_type im)', async () => {
    await setup();
    const bot = await start();
    const ts = newTs();
    const dm = {
      type: 'message',
      channel_type: 'im',
      channel: 'D0DM',
      user: 'U7',
      text: QUESTION,
      ts,
      event_ts: ts,
    };
    const res = await bot.deliver.event(bot.deliver.envelope(dm));
    expect(res.status).toBe(200);
    await waitFor(() => fake.thread('D0DM', ts).length > 0, 15_000, 'the DM reply');
    await bot.handler.drain();
    expect(fake.thread('D0DM', ts)).toHaveLength(1);
    const answerId = await state.answerForMessage('slack', `D0DM:${fake.thread('D0DM', ts)[0]?.ts}`);
    expect((await state.getAnswer(answerId as string))?.userId).toBe('U7');
    // A channel message that does not mention the bot, and the bot's own messages, are not questions.
    const chatter = {
      type: 'message',
      channel_type: 'channel',
      channel: CHANNEL,
      user: 'U7',
      text: QUESTION,
      ts: newTs(),
    };
    const own = {
      type: 'message',
      subtype: 'bot_message',
      bot_id: 'BBOT',
      channel: 'D0DM',
      channel_type: 'im',
      text: 'hi',
      ts: newTs(),
    };
    await bot.deliver.event(bot.deliver.envelope(chatter));
    await bot.deliver.event(bot.deliver.envelope(own));
    await sleep(300);
    await bot.handler.drain();
    expect(fake.callsTo('chat.postMessage')).toHaveLength(1);
  });

  it('rejects a request with a bad or stale signature (401) and posts nothing', async () => {
    await setup();
    const bot = await start();
    const bad = await bot.deliver.event(bot.deliver.envelope(mention('U1', newTs())), undefined, true);
    expect(bad.status).toBe(401);
    const body = JSON.stringify(bot.deliver.envelope(mention('U1', newTs())));
    const { slackSignatureHeaders } = await import('./fakes/slack-api.ts');
    // Older than five minutes: a replay (https://api.slack.com/authentication/verifying-requests-from-slack).
    const stale = await fetch(bot.endpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...slackSignatureHeaders(
          'test-signing-secret-0123456789abcdef',
          body,
          Math.floor(Date.now() / 1000) - 600,
        ),
      },
      body,
    });
    expect(stale.status).toBe(401);
    await sleep(500);
    expect(fake.callsTo('chat.postMessage')).toHaveLength(0);
    expect(await state.listAnswers()).toHaveLength(0);
  });

  it('reaction-in-thread: reactions on the answer (item = {type, channel, ts} only) set one changeable rating per user, also after a restart', async () => {
    await setup();
    let bot = await start();
    const q = newTs();
    await bot.deliver.event(bot.deliver.envelope(mention('U1', q)));
    await waitFor(() => fake.thread(CHANNEL, q).length > 0, 15_000, 'the reply');
    await bot.handler.drain();
    const replyTs = fake.thread(CHANNEL, q)[0]?.ts as string;
    const answerId = (await state.answerForMessage('slack', `${CHANNEL}:${replyTs}`)) as string;
    expect(answerId).toBeTruthy();

    const react = async (
      b: RunningSlackBot,
      kind: 'reaction_added' | 'reaction_removed',
      user: string,
      name: string,
      expected: { up: number; down: number },
      ts = replyTs,
    ) => {
      const res = await b.deliver.event(b.deliver.envelope(reaction(kind, user, name, CHANNEL, ts)));
      expect(res.status).toBe(200);
      expect(res.ms).toBeLessThan(3000);
      await waitFor(
        async () => JSON.stringify(await state.ratingSummary(answerId)) === JSON.stringify(expected),
        5_000,
        `${kind} ${name} by ${user} → ${JSON.stringify(expected)}`,
      );
    };
    await react(bot, 'reaction_added', 'U1', '+1', { up: 1, down: 0 });
    await react(bot, 'reaction_removed', 'U1', '+1', { up: 0, down: 0 });
    await react(bot, 'reaction_added', 'U1', '-1::skin-tone-4', { up: 0, down: 1 });
    await react(bot, 'reaction_added', 'U2', '+1::skin-tone-2', { up: 1, down: 1 });
    // The same reaction re-delivered (same event_id, retry headers) counts once.
    const again = bot.deliver.envelope(reaction('reaction_added', 'U2', '+1', CHANNEL, replyTs));
    await bot.deliver.event(again);
    await bot.deliver.event(again, { num: 1 });
    // Ignored: reactions on the question (not the bot's answer), on an unknown message, other emoji, files.
    await bot.deliver.event(bot.deliver.envelope(reaction('reaction_added', 'U3', '+1', CHANNEL, q)));
    await bot.deliver.event(bot.deliver.envelope(reaction('reaction_added', 'U3', '-1', CHANNEL, newTs())));
    await bot.deliver.event(bot.deliver.envelope(reaction('reaction_added', 'U3', 'tada', CHANNEL, replyTs)));
    await bot.deliver.event(
      bot.deliver.envelope({
        ...reaction('reaction_added', 'U3', '+1', CHANNEL, replyTs),
        item: { type: 'file', file: 'F1' },
      }),
    );
    await sleep(400);
    expect(await state.ratingSummary(answerId)).toEqual({ up: 1, down: 1 });
    expect(await state.answerForMessage('slack', `${CHANNEL}:${q}`)).toBeNull();

    // Restart: a new App and handler over the same state file (a new connection, nothing cached).
    await bot.stop();
    bots.splice(bots.indexOf(bot), 1);
    await state.close();
    state = SqliteStateStore.open(stateFile);
    bot = await start({ state });
    await react(bot, 'reaction_added', 'U3', 'thumbsup', { up: 2, down: 1 });
    // Removing a 👍 U1 no longer has leaves U1's 👎 alone; removing the 👎 retracts it.
    await bot.deliver.event(bot.deliver.envelope(reaction('reaction_removed', 'U1', '+1', CHANNEL, replyTs)));
    await sleep(300);
    expect(await state.ratingSummary(answerId)).toEqual({ up: 2, down: 1 });
    await react(bot, 'reaction_removed', 'U1', '-1::skin-tone-4', { up: 2, down: 0 });
  });

  it('👍/👎 buttons (block_actions) set the presser’s single rating; pressing twice counts once', async () => {
    await setup();
    const bot = await start();
    const q = newTs();
    await bot.deliver.event(bot.deliver.envelope(mention('U1', q)));
    await waitFor(() => fake.thread(CHANNEL, q).length > 0, 15_000, 'the reply');
    await bot.handler.drain();
    const reply = fake.thread(CHANNEL, q)[0] as PostedMessage;
    const answerId = (await state.answerForMessage('slack', `${CHANNEL}:${reply.ts}`)) as string;
    const press = async (
      user: string,
      actionId: string,
      expected: { up: number; down: number },
      m = reply,
    ) => {
      const res = await bot.deliver.interaction(blockAction(user, actionId, m, answerId));
      expect(res.status).toBe(200);
      expect(res.ms).toBeLessThan(3000);
      await waitFor(
        async () => JSON.stringify(await state.ratingSummary(answerId)) === JSON.stringify(expected),
        5_000,
        `${actionId} by ${user}`,
      );
    };
    await press('U1', FEEDBACK_ACTION_UP, { up: 1, down: 0 });
    await press('U1', FEEDBACK_ACTION_DOWN, { up: 0, down: 1 });
    await press('U1', FEEDBACK_ACTION_DOWN, { up: 0, down: 1 });
    await press('U2', FEEDBACK_ACTION_UP, { up: 1, down: 1 });
    await waitFor(() => fake.callsTo('chat.postEphemeral').length === 4, 5_000, 'the ephemeral thanks');
    expect(fake.callsTo('chat.postEphemeral').map((c) => c.body.user)).toEqual(['U1', 'U1', 'U1', 'U2']);
    // The thanks shows in the answer's thread, where the button was pressed.
    expect(fake.callsTo('chat.postEphemeral').map((c) => c.body.thread_ts)).toEqual([q, q, q, q]);
    // A button on a message that is not an answer is ignored (no rating, no thanks).
    const stranger: PostedMessage = { channel: CHANNEL, ts: newTs(), text: 'x', blocks: reply.blocks };
    const res = await bot.deliver.interaction(blockAction('U3', FEEDBACK_ACTION_UP, stranger, answerId));
    expect(res.status).toBe(200);
    await sleep(300);
    expect(await state.ratingSummary(answerId)).toEqual({ up: 1, down: 1 });
    expect(fake.callsTo('chat.postEphemeral')).toHaveLength(4);
  });

  it('escalates "I need a human" to the target channel with a permalink to the thread', async () => {
    await setup();
    const bot = await start();
    const q = newTs();
    await bot.deliver.event(bot.deliver.envelope(mention('U4', q, 'I want to talk to a human please')));
    await waitFor(() => fake.messages.some((m) => m.channel === 'CESCALATE'), 15_000, 'the escalation');
    await bot.handler.drain();
    const notice = fake.messages.find((m) => m.channel === 'CESCALATE');
    expect(notice?.text).toContain('<!subteam^SSUPPORT>');
    expect(notice?.text).toContain(`<#${CHANNEL}>`);
    expect(notice?.text).toContain(`https://fake.slack.com/archives/${CHANNEL}/p${q.replace('.', '')}`);
    expect(fake.callsTo('chat.getPermalink')[0]?.body).toMatchObject({ channel: CHANNEL, message_ts: q });
    // The asker gets one reply in the thread saying a person is coming; no Sources on an escalation.
    const thread = fake.thread(CHANNEL, q);
    expect(thread).toHaveLength(1);
    expect(sectionTexts(thread[0] as PostedMessage).join(' ')).toMatch(/support team/);
    expect(JSON.stringify(thread[0]?.blocks)).not.toContain('*Sources*');
  });

  it('a 👎 then the asker writing again in the thread: answered with the thread history, escalated once', async () => {
    await setup();
    const bot = await start();
    const q = newTs();
    await bot.deliver.event(bot.deliver.envelope(mention('U5', q)));
    await waitFor(() => fake.thread(CHANNEL, q).length > 0, 15_000, 'the first reply');
    await bot.handler.drain();
    const first = fake.thread(CHANNEL, q)[0] as PostedMessage;
    const firstId = (await state.answerForMessage('slack', `${CHANNEL}:${first.ts}`)) as string;
    await bot.deliver.event(bot.deliver.envelope(reaction('reaction_added', 'U5', '-1', CHANNEL, first.ts)));
    await waitFor(async () => (await state.ratingSummary(firstId)).down === 1, 5_000, 'the 👎');

    const followUp = newTs();
    await bot.deliver.event(bot.deliver.envelope(mention('U5', followUp, 'that did not work', CHANNEL, q)));
    await waitFor(() => fake.thread(CHANNEL, q).length === 2, 15_000, 'the second reply');
    await waitFor(() => fake.messages.some((m) => m.channel === 'CESCALATE'), 5_000, 'the escalation');
    await bot.handler.drain();
    await sleep(200);
    const second = fake.thread(CHANNEL, q)[1] as PostedMessage;
    expect(sectionTexts(second).join('\n')).toContain(HUMAN_COMING_TEXT);
    // The asker is told once (in the answer), the support channel once.
    expect(fake.thread(CHANNEL, q)).toHaveLength(2);
    const shown = (m: PostedMessage) => (m.blocks ? sectionTexts(m).join('\n') : (m.text ?? ''));
    const told = fake.thread(CHANNEL, q).map(shown).join('\n').split(HUMAN_COMING_TEXT).length - 1;
    expect(told).toBe(1);
    expect(fake.messages.filter((m) => m.channel === 'CESCALATE')).toHaveLength(1);
    const record = await state.getAnswer(
      (await state.answerForMessage('slack', `${CHANNEL}:${second.ts}`)) as string,
    );
    expect(record?.threadId).toBe(`${CHANNEL}:${q}`);
    expect(record?.question).toBe('that did not work');
  });

  describe('thread follow-ups without a mention (message.channels / message.groups)', () => {
    /** A `message` event as Slack sends it for a channel post (or, with `threadTs`, a thread reply). */
    const channelMessage = (
      user: string,
      ts: string,
      text: string,
      threadTs?: string,
      channelType: 'channel' | 'group' = 'channel',
      channel = CHANNEL,
    ) => ({
      type: 'message',
      channel_type: channelType,
      channel,
      user,
      text,
      ts,
      event_ts: ts,
      ...(threadTs ? { thread_ts: threadTs } : {}),
    });
    /** A generator that records the history of every generation, then answers extractively. */
    const recording = () => {
      const histories: Turn[][] = [];
      const inner = new ExtractiveGenerator();
      const generator: Generator = {
        id: 'recording',
        generate(request) {
          histories.push(request.history.map((t) => ({ ...t })));
          return inner.generate(request);
        },
      };
      return { generator, histories };
    };
    /** Lets the listeners of events delivered just now finish (Bolt runs them after the ack). */
    const settle = async (bot: RunningSlackBot) => {
      await sleep(300);
      await bot.handler.drain();
    };
    /** Asks `QUESTION` with a mention at the top level and waits for the answer in its thread. */
    const opened = async (bot: RunningSlackBot, user: string, text = QUESTION) => {
      const q = newTs();
      await bot.deliver.event(bot.deliver.envelope(mention(user, q, text)));
      await waitFor(() => fake.thread(CHANNEL, q).length > 0, 15_000, 'the first reply');
      await bot.handler.drain();
      return q;
    };

    it('the asker’s reply in the bot’s thread needs no mention and is answered with the thread history', async () => {
      await setup();
      const { generator, histories } = recording();
      const bot = await start({ generator });
      const q = await opened(bot, 'U20');
      expect(await state.answerForMessage('slack', `thread-owner:${CHANNEL}:${q}`)).toBe('U20');
      const generations = histories.length;

      const followUp = newTs();
      const res = await bot.deliver.event(
        bot.deliver.envelope(channelMessage('U20', followUp, 'How do I change my password?', q)),
      );
      expect(res.status).toBe(200);
      await waitFor(() => fake.thread(CHANNEL, q).length === 2, 15_000, 'the follow-up reply');
      await bot.handler.drain();
      const second = fake.thread(CHANNEL, q)[1] as PostedMessage;
      expect(second.threadTs).toBe(q);
      const record = await state.getAnswer(
        (await state.answerForMessage('slack', `${CHANNEL}:${second.ts}`)) as string,
      );
      expect(record).toMatchObject({
        threadId: `${CHANNEL}:${q}`,
        userId: 'U20',
        question: 'How do I change my password?',
      });
      // The follow-up was generated with the first question and answer as history.
      expect(histories.length).toBe(generations + 1);
      const history = histories.at(-1) as Turn[];
      expect(history.map((t) => t.role)).toEqual(['user', 'assistant']);
      expect(history[0]?.text).toBe(QUESTION);

      // The same in a private channel (message.groups: channel_type group).
      const privateQ = newTs();
      await bot.deliver.event(bot.deliver.envelope(mention('U21', privateQ, QUESTION, 'G0PRIVATE')));
      await waitFor(() => fake.thread('G0PRIVATE', privateQ).length === 1, 15_000, 'the private reply');
      await bot.handler.drain();
      await bot.deliver.event(
        bot.deliver.envelope(
          channelMessage('U21', newTs(), 'How do I change my password?', privateQ, 'group', 'G0PRIVATE'),
        ),
      );
      await waitFor(() => fake.thread('G0PRIVATE', privateQ).length === 2, 15_000, 'the private follow-up');
    });

    it('another person’s reply without a mention in the asker’s thread is not answered', async () => {
      await setup();
      const bot = await start();
      const q = await opened(bot, 'U22');
      await bot.deliver.event(
        bot.deliver.envelope(channelMessage('U23', newTs(), 'How do I change my password?', q)),
      );
      await settle(bot);
      expect(fake.thread(CHANNEL, q)).toHaveLength(1);
      // Someone else mentioning the bot there is answered, and does not take the thread over.
      await bot.deliver.event(bot.deliver.envelope(mention('U23', newTs(), QUESTION, CHANNEL, q)));
      await waitFor(() => fake.thread(CHANNEL, q).length === 2, 15_000, 'the mentioned reply');
      await bot.handler.drain();
      expect(await state.answerForMessage('slack', `thread-owner:${CHANNEL}:${q}`)).toBe('U22');
      await bot.deliver.event(bot.deliver.envelope(channelMessage('U23', newTs(), 'And my email?', q)));
      await settle(bot);
      expect(fake.thread(CHANNEL, q)).toHaveLength(2);
      // The owner still needs no mention.
      await bot.deliver.event(
        bot.deliver.envelope(channelMessage('U22', newTs(), 'How do I change my password?', q)),
      );
      await waitFor(() => fake.thread(CHANNEL, q).length === 3, 15_000, 'the owner’s follow-up reply');
    });

    it('after an escalation the asker’s unmentioned replies are not answered, a mention still is', async () => {
      await setup();
      const bot = await start();
      const q = await opened(bot, 'U24', 'I want to talk to a human please');
      await waitFor(() => fake.messages.some((m) => m.channel === 'CESCALATE'), 5_000, 'the escalation');
      const escalatedBy = await state.answerForMessage('slack', `escalated:${CHANNEL}:${q}`);
      expect(escalatedBy).toBe(await state.answerForMessage('slack', `thread:${CHANNEL}:${q}`));
      expect(escalatedBy).not.toBeNull();

      // The asker and the support person who joined talk in the thread: the bot stays out.
      await bot.deliver.event(
        bot.deliver.envelope(channelMessage('U24', newTs(), 'How do I change my password?', q)),
      );
      await bot.deliver.event(
        bot.deliver.envelope(channelMessage('USTAFF', newTs(), 'Hi, I can help with the password.', q)),
      );
      await settle(bot);
      expect(fake.thread(CHANNEL, q)).toHaveLength(1);

      await bot.deliver.event(bot.deliver.envelope(mention('U24', newTs(), QUESTION, CHANNEL, q)));
      await waitFor(() => fake.thread(CHANNEL, q).length === 2, 15_000, 'the mentioned reply');
    });

    it('a channel message without a mention is not a question: top-level, or in a thread the bot did not answer', async () => {
      await setup();
      const bot = await start();
      await opened(bot, 'U25');
      // The owner of a thread writing at the top level of the channel.
      await bot.deliver.event(bot.deliver.envelope(channelMessage('U25', newTs(), QUESTION)));
      // A thread the bot never answered (its root is someone else's post).
      const root = newTs();
      await bot.deliver.event(bot.deliver.envelope(channelMessage('U26', root, 'Lunch anyone?')));
      await bot.deliver.event(bot.deliver.envelope(channelMessage('U26', newTs(), QUESTION, root)));
      await settle(bot);
      expect(fake.callsTo('chat.postMessage')).toHaveLength(1);
      expect(fake.thread(CHANNEL, root)).toHaveLength(0);
    });

    it('a mention arriving as both app_mention and message (message.channels) is answered once', async () => {
      await setup();
      const bot = await start();
      const ts = newTs();
      const twin = { ...channelMessage('U27', ts, `<@UBOT> ${QUESTION}`) };
      await Promise.all([
        bot.deliver.event(bot.deliver.envelope(mention('U27', ts))),
        bot.deliver.event(bot.deliver.envelope(twin)),
      ]);
      await waitFor(() => fake.thread(CHANNEL, ts).length > 0, 15_000, 'the reply');
      await settle(bot);
      expect(fake.thread(CHANNEL, ts)).toHaveLength(1);

      // The same for the owner's mention inside the thread: both paths accept it, one reply.
      const again = newTs();
      await Promise.all([
        bot.deliver.event(bot.deliver.envelope(channelMessage('U27', again, `<@UBOT> ${QUESTION}`, ts))),
        bot.deliver.event(bot.deliver.envelope(mention('U27', again, QUESTION, CHANNEL, ts))),
      ]);
      await waitFor(() => fake.thread(CHANNEL, ts).length === 2, 15_000, 'the second reply');
      await settle(bot);
      expect(fake.thread(CHANNEL, ts)).toHaveLength(2);
      expect(fake.callsTo('chat.postMessage')).toHaveLength(2);
    });
  });

  describe('/support slash command', () => {
    const command = (bot: RunningSlackBot, user: string, text: string) => {
      const responseUrl = fake.responseUrl();
      return bot.deliver
        .command({
          token: 'deprecated',
          team_id: 'T0FAKE',
          team_domain: 'fake',
          channel_id: CHANNEL,
          channel_name: 'questions',
          user_id: user,
          user_name: user.toLowerCase(),
          command: '/support',
          text,
          api_app_id: 'A0FAKE',
          response_url: responseUrl,
          trigger_id: '13345224609.738474920.8088930838d88f008e0',
        })
        .then((d) => {
          expect(d.status).toBe(200);
          expect(d.ms).toBeLessThan(3000);
          return { ack: JSON.parse(d.body) as { response_type: string; text: string }, responseUrl };
        });
    };
    const followUps = (url: string) => fake.responses.filter((r) => r.url === url).map((r) => r.body);

    it('help, unknown, status and ask answer at once; ask follows up on the response_url', async () => {
      await setup();
      const bot = await start();
      expect((await command(bot, 'U1', 'help')).ack).toEqual({ response_type: 'ephemeral', text: HELP_TEXT });
      expect((await command(bot, 'U1', '')).ack.text).toBe(HELP_TEXT);
      const unknown = await command(bot, 'U1', 'frobnicate now');
      expect(unknown.ack.text).toMatch(/^Unknown subcommand `frobnicate`/);
      expect((await command(bot, 'U1', 'status')).ack.text).toMatch(/\d+ chunks/);
      const ask = await command(bot, 'U1', `ask ${QUESTION}`);
      expect(ask.ack.text).toContain('Looking that up');
      await waitFor(() => followUps(ask.responseUrl).length > 0, 15_000, 'the ask follow-up');
      const body = followUps(ask.responseUrl)[0] as { text: string; response_type: string };
      expect(body.text).toMatch(/password/i);
      expect(body.text).toContain('Sources:');
      // The one visibility rule (the same on Discord): the ask answer is for the channel, saying
      // who asked what (a delayed in_channel response does not show the command) ...
      expect(body.response_type).toBe('in_channel');
      expect(body.text.startsWith(`<@U1> asked: _${QUESTION}_\n\n`)).toBe(true);
      // ... and everything else only for the invoker.
      expect(ask.ack.response_type).toBe('ephemeral');
      // No admin lookup was needed for any of these.
      expect(fake.callsTo('usergroups.users.list')).toHaveLength(0);
    });

    it('admin subcommands: refused for others, allowed by user id and by user group; sync reports on the response_url', async () => {
      await setup();
      const bot = await start();
      const refused = await command(bot, 'U1', 'sync');
      expect(refused.ack.text).toMatch(/for admins only/);
      expect((await command(bot, 'U1', 'retrain')).ack.text).toMatch(/for admins only/);
      expect(fake.callsTo('usergroups.users.list')[0]?.body.usergroup).toBe('SADMINS');
      expect(await state.listJobs()).toEqual([]);

      const sync = await command(bot, 'UADMIN', 'sync examples');
      expect(sync.ack.text).toMatch(/^Sync started for examples/);
      await waitFor(() => followUps(sync.responseUrl).length > 0, 15_000, 'the sync report');
      expect((followUps(sync.responseUrl)[0] as { text: string }).text).toMatch(/^Sync done/);
      expect((followUps(sync.responseUrl)[0] as { response_type: string }).response_type).toBe('ephemeral');
      expect((await state.listJobs({ kind: 'sync' }))[0]).toMatchObject({
        state: 'succeeded',
        requestedBy: 'UADMIN',
      });
      expect((await command(bot, 'UADMIN', 'sync nosuchsource')).ack.text).toMatch(
        /Unknown source nosuchsource/,
      );

      const retrain = await command(bot, 'UGROUPADMIN', 'retrain');
      expect(retrain.ack.text).toMatch(/^Retrain request recorded/);
      expect((await state.listJobs({ kind: 'retrain' }))[0]).toMatchObject({
        state: 'queued',
        requestedBy: 'UGROUPADMIN',
      });
    });

    it('acks within 3 s with a placeholder when the reply is slow, then sends it to the response_url', async () => {
      await setup();
      const bot = await start({
        commands: { status: () => new Promise((r) => setTimeout(() => r('all good, slowly'), 2_600)) },
      });
      const slow = await command(bot, 'U1', 'status');
      expect(slow.ack.text).toBe(COMMAND_WORKING_TEXT);
      await waitFor(() => followUps(slow.responseUrl).length > 0, 10_000, 'the slow status');
      expect(followUps(slow.responseUrl)[0]).toMatchObject({
        response_type: 'ephemeral',
        text: 'all good, slowly',
      });
    });
  });

  describe('/support within the response_url’s limits (5 posts, 30 minutes)', () => {
    const commandBody = (user: string, text: string, responseUrl: string) => ({
      token: 'deprecated',
      team_id: 'T0FAKE',
      team_domain: 'fake',
      channel_id: CHANNEL,
      channel_name: 'questions',
      user_id: user,
      user_name: user.toLowerCase(),
      command: '/support',
      text,
      api_app_id: 'A0FAKE',
      response_url: responseUrl,
      trigger_id: '13345224609.738474920.8088930838d88f008e0',
    });
    /** A long Markdown answer: 13 paragraphs of ~1,500 characters (7 messages), bold and a link in each. */
    const longMarkdown = Array.from(
      { length: 13 },
      (_, i) =>
        `**Step ${i + 1}.** Open [the settings page](https://help.example/settings/${i}) and ${'check the value there, '.repeat(60).trim()} (end of step ${i + 1}).`,
    ).join('\n\n');
    const stepsIn = (texts: string[]) => texts.join('\n').match(/\(end of step \d+\)/g) ?? [];

    it('a long ask answer is rendered as mrkdwn and never posted to the response_url more than 5 times', async () => {
      await setup();
      const bot = await start({ commands: { ask: async () => longMarkdown } });
      const url = fake.responseUrl();
      const res = await bot.deliver.command(commandBody('U1', 'ask how do I change settings?', url));
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body).text).toContain('Looking that up');
      const shownNow = () => [
        ...fake.responses.filter((r) => r.url === url).map((r) => String(r.body.text)),
        ...fake.messages.filter((m) => m.channel === CHANNEL).map((m) => m.text ?? ''),
      ];
      await waitFor(
        () => stepsIn(shownNow()).length >= 13 || fake.refusedResponses.length > 0,
        10_000,
        'the answer',
      );
      await sleep(300);
      // Slack refused nothing, and at most 5 posts went to the url.
      expect(fake.refusedResponses).toEqual([]);
      const onUrl = fake.responses.filter((r) => r.url === url).map((r) => r.body);
      expect(onUrl.length).toBeLessThanOrEqual(RESPONSE_URL_MAX_POSTS);
      // The whole answer arrived once, in order (on the url or, past its limit, in the channel).
      const shown = [
        ...onUrl.map((b) => String(b.text)),
        ...fake.messages.filter((m) => m.channel === CHANNEL).map((m) => m.text ?? ''),
      ];
      expect(stepsIn(shown)).toEqual(Array.from({ length: 13 }, (_, i) => `(end of step ${i + 1})`));
      // mrkdwn, not Markdown: *bold* and <url|text> links.
      const all = shown.join('\n');
      expect(all).toContain('*Step 1.*');
      expect(all).not.toContain('**Step');
      expect(all).toContain('<https://help.example/settings/0|the settings page>');
      // Posted for the channel, as the ask answer is on both platforms.
      for (const b of onUrl) expect(b.response_type).toBe('in_channel');
      expect(fake.callsTo('chat.postEphemeral')).toEqual([]);
    });

    it('the fake refuses a sixth post to one response_url with used_url, as Slack does', async () => {
      const url = fake.responseUrl();
      const post = (i: number) =>
        fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ text: `${i}` }),
        });
      for (let i = 0; i < FAKE_RESPONSE_URL_LIMITS.posts; i++) expect((await post(i)).status).toBe(200);
      const sixth = await post(5);
      expect(sixth.status).toBe(404);
      expect(await sixth.text()).toBe('used_url');
      fake.expireResponseUrl(url);
      expect(await (await post(6)).text()).toBe('expired_url');
    });

    it('a slow, long ephemeral reply past the posts left goes to the invoker with chat.postEphemeral', async () => {
      await setup();
      const long = Array.from(
        { length: 7 },
        (_, i) => `Source ${i + 1}: ${'fine, '.repeat(450)}(end of step ${i + 1})`,
      ).join('\n\n');
      const bot = await start({
        commands: { status: () => new Promise((r) => setTimeout(() => r(long), 2_300)) },
      });
      const url = fake.responseUrl();
      const res = await bot.deliver.command(commandBody('U1', 'status', url));
      expect(JSON.parse(res.body).text).toBe(COMMAND_WORKING_TEXT);
      await waitFor(
        () => stepsIn(fake.callsTo('chat.postEphemeral').map((c) => String(c.body.text))).length === 7,
        10_000,
        'the status',
      );
      expect(fake.refusedResponses).toEqual([]);
      expect(fake.responses.filter((r) => r.url === url)).toEqual([]);
      expect(
        fake.callsTo('chat.postEphemeral').every((c) => c.body.user === 'U1' && c.body.channel === CHANNEL),
      ).toBe(true);
      expect(fake.callsTo('chat.postMessage')).toEqual([]);
    });

    it('a response_url that expired is not retried: the ask answer goes out through chat.postMessage', async () => {
      await setup();
      let release: () => void = () => {};
      const gate = new Promise<void>((r) => {
        release = r;
      });
      const bot = await start({
        commands: {
          ask: async () => {
            await gate;
            return 'Use **Settings → Security** to reset it.';
          },
        },
      });
      const url = fake.responseUrl();
      await bot.deliver.command(commandBody('U1', 'ask how do I reset my password?', url));
      fake.expireResponseUrl(url);
      release();
      await waitFor(() => fake.callsTo('chat.postMessage').length > 0, 10_000, 'the answer via the Web API');
      expect(fake.callsTo('chat.postMessage')[0]?.body).toMatchObject({
        channel: CHANNEL,
        text: `${askedBy('U1', 'how do I reset my password?')}\n\nUse *Settings → Security* to reset it.`,
      });
      expect(fake.refusedResponses.map((r) => r.error)).toEqual(['expired_url']);
    });

    it('after 30 minutes the url is not tried at all: the answer goes through the Web API', async () => {
      await setup();
      let release: () => void = () => {};
      const gate = new Promise<void>((r) => {
        release = r;
      });
      const bot = await start({
        commands: {
          ask: async () => {
            await gate;
            return 'Use **Settings → Security** to reset it.';
          },
        },
      });
      const url = fake.responseUrl();
      await bot.deliver.command(commandBody('U1', 'ask how do I reset my password?', url));
      // Everything in this process (the bot and the fake Slack) now lives 30 minutes later.
      const realNow = Date.now.bind(Date);
      const clock = vi.spyOn(Date, 'now').mockImplementation(() => realNow() + RESPONSE_URL_TTL_MS);
      try {
        release();
        await waitFor(
          () => fake.callsTo('chat.postMessage').length > 0,
          10_000,
          'the answer via the Web API',
        );
      } finally {
        clock.mockRestore();
      }
      expect(fake.callsTo('chat.postMessage')[0]?.body.text).toBe(
        `${askedBy('U1', 'how do I reset my password?')}\n\nUse *Settings → Security* to reset it.`,
      );
      expect(fake.responses.filter((r) => r.url === url)).toEqual([]);
      expect(fake.refusedResponses).toEqual([]);
    });
  });

  it('long-answer case through Slack: every message within limits, fences balanced, whole text in order, buttons once', async () => {
    await setup();
    const body = longAnswerCaseText();
    // As a generator would return it: the long text citing the first two contexts.
    const text = body.replace('not the audit log.', 'not the audit log. [1]').replace(/\n*$/, ' [2]\n');
    const long: Generator = { id: 'fixed-long', generate: async () => ({ text, cited: [1, 2] }) };
    const bot = await start({ generator: long });
    const q = newTs();
    await bot.deliver.event(bot.deliver.envelope(mention('U1', q, 'How do I export my workspace data?')));
    await waitFor(
      async () => (await state.listAnswers()).some((a) => (a.messageKeys ?? []).length > 0),
      20_000,
      'the long answer',
    );
    await bot.handler.drain();

    const posts = fake.callsTo('chat.postMessage');
    expect(posts.every((c) => c.response.ok === true)).toBe(true);
    const thread = fake.thread(CHANNEL, q);
    // ~11,400 characters: several sections (≤ 3,000 each), packed into messages within the block limits.
    expect(thread.flatMap(sectionTexts).length).toBeGreaterThan(3);
    expect(thread).toHaveLength(posts.length);
    const record = (await state.listAnswers())[0];
    expect(record?.messageKeys).toEqual(thread.map((m) => `${CHANNEL}:${m.ts}`));
    for (const m of thread) {
      const blocks = m.blocks as Block[];
      expect(blocks.length).toBeLessThanOrEqual(FAKE_SLACK_LIMITS.blocks);
      expect((m.text ?? '').length).toBeLessThan(4000);
      for (const t of sectionTexts(m)) {
        expect(t.length).toBeLessThanOrEqual(3000);
        expect(t.split('\n').filter((l) => /^\s*```/.test(l)).length % 2).toBe(0);
      }
      expect(await state.answerForMessage('slack', `${CHANNEL}:${m.ts}`)).toBe(record?.id);
    }
    // Buttons once, on the last message; Sources only there too.
    const withButtons = thread.filter((m) => actionsBlocks(m).length > 0);
    expect(withButtons).toHaveLength(1);
    expect(withButtons[0]).toBe(thread.at(-1));
    const withSources = thread.filter((m) => JSON.stringify(m.blocks).includes('*Sources*'));
    expect(withSources).toEqual([thread.at(-1)]);
    // The whole text, in order: every code line once and in sequence, and the prose unchanged.
    const all = thread.flatMap(sectionTexts).join('\n');
    const codeLines = all.split('\n').filter((l) => l.startsWith('./manage.py export'));
    // Both code blocks of the case hold the same 39 lines.
    const block = Array.from(
      { length: 39 },
      (_, i) => `./manage.py export --realm acme --part ${i + 1} --output /tmp/export-${i + 1}.tar.gz`,
    );
    expect(codeLines).toEqual([...block, ...block]);
    const squash = (s: string) => s.replace(/^\s*```.*$/gm, '').replace(/\s+/g, '');
    const { markdownToMrkdwn } = await import('../bot/render/markdown-to-mrkdwn.ts');
    expect(squash(all)).toBe(squash(markdownToMrkdwn(record?.result.text ?? '')));
    expect(record?.result.citations.length).toBeGreaterThan(0);
  });

  it('start() rejects a token Slack refuses (auth.test invalid_auth) instead of starting a broken bot', async () => {
    await setup();
    const app = createSlackBot(
      {
        botToken: 'xoxb-revoked',
        signingSecret: 'x',
        apiUrl: fake.apiUrl,
        upReactions: [],
        downReactions: [],
        adminUsers: [],
        adminGroups: [],
      },
      { handler: {} as never, commands: {} as never, log: pino({ level: 'silent' }) },
    );
    await expect(app.start({ port: 0, host: '127.0.0.1' })).rejects.toMatchObject({
      code: 'slack-auth',
      message: expect.stringContaining('invalid_auth'),
    });
    expect(fake.callsTo('auth.test')).toHaveLength(1);
  });

  it('the fake Web API rejects what Slack rejects (so the limits above are really checked)', async () => {
    await setup();
    const { WebClient } = await import('@slack/web-api');
    const client = new WebClient(BOT_TOKEN, { slackApiUrl: fake.apiUrl, retryConfig: { retries: 0 } });
    const section = (chars: number) => ({
      type: 'section',
      text: { type: 'mrkdwn', text: 'x'.repeat(chars) },
    });
    const post = (args: Record<string, unknown>) =>
      client.chat.postMessage({ channel: CHANNEL, ...args } as never).then(
        () => 'ok',
        (err: { data?: { error?: string } }) => err.data?.error,
      );
    expect(await post({ text: 'x'.repeat(4000) })).toBe('ok');
    expect(await post({ text: 'x'.repeat(4001) })).toBe('msg_too_long');
    expect(await post({ text: 'x', blocks: [section(3000)] })).toBe('ok');
    expect(await post({ text: 'x', blocks: [section(3001)] })).toBe('invalid_blocks');
    expect(await post({ text: 'x', blocks: Array.from({ length: 51 }, () => section(10)) })).toBe(
      'invalid_blocks',
    );
    expect(await post({ text: 'x', blocks: Array.from({ length: 5 }, () => section(2700)) })).toBe(
      'msg_blocks_too_long',
    );
    expect(await post({})).toBe('no_text');
    const wrong = new WebClient('xoxb-wrong', { slackApiUrl: fake.apiUrl, retryConfig: { retries: 0 } });
    await expect(wrong.auth.test()).rejects.toMatchObject({ data: { error: 'invalid_auth' } });
    expect(fake.messages).toHaveLength(2);
  });

  it('turns Slack text back into the question', () => {
    expect(
      slackTextToQuestion(
        '<@U123ABC> what is A &amp; B &lt;1&gt;? see <https://x.example/a|the doc> in <#C1|general> <!here>',
      ),
    ).toBe('what is A & B <1>? see the doc (https://x.example/a) in #general @here');
  });
});
