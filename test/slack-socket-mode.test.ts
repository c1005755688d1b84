import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExtractiveGenerator } from '../core/generators/extractive.ts';
import type { SqliteKnowledgeStore } from '../core/knowledge-store/sqlite.ts';
import { SqliteStateStore } from '../core/state-store/sqlite.ts';
import { FakeSlackApi } from './fakes/slack-api.ts';
import {
  BOT_TOKEN,
  delayed,
  exampleKnowledge,
  type RunningSlackBot,
  sleep,
  startSlackBot,
  waitFor,
} from './fakes/slack-bot-harness.ts';

const APP_TOKEN = 'xapp-1-A0FAKE-1-test';
const CHANNEL = 'C0SOCKET';

describe('Slack over Socket Mode (SLACK_APP_TOKEN set): the real Bolt SocketModeReceiver against a local WebSocket', () => {
  let tmp: string;
  let knowledge: SqliteKnowledgeStore;
  let state: SqliteStateStore;
  let fake: FakeSlackApi;
  let bot: RunningSlackBot;

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'supportbot-slack-socket-'));
    ({ knowledge } = await exampleKnowledge(path.join(tmp, 'kb.sqlite')));
    state = SqliteStateStore.open(path.join(tmp, 'state.sqlite'));
    fake = await FakeSlackApi.start({ botToken: BOT_TOKEN, appToken: APP_TOKEN });
    bot = await startSlackBot({
      fake,
      knowledge,
      state,
      // Slower than Slack's 3 s window: the envelope must still be acked at once.
      generator: delayed(new ExtractiveGenerator(), 3_500),
      settings: { appToken: APP_TOKEN },
    });
    await fake.socketConnected();
  });
  afterAll(async () => {
    await bot?.stop();
    await state?.close();
    await fake?.close();
    await knowledge?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('opens the connection with the app token, acks each envelope at once, answers once in the thread', async () => {
    expect(fake.callsTo('apps.connections.open')[0]?.token).toBe(APP_TOKEN);
    const ts = '1760200000.000100';
    const payload = {
      token: 'deprecated',
      team_id: fake.teamId,
      api_app_id: 'A0FAKE',
      type: 'event_callback',
      event_id: 'Ev0SOCKET1',
      event_time: 1760200000,
      authorizations: [{ team_id: fake.teamId, user_id: 'UBOT', is_bot: true, is_enterprise_install: false }],
      event: {
        type: 'app_mention',
        user: 'U1',
        text: '<@UBOT> How do I reset my password?',
        ts,
        channel: CHANNEL,
        event_ts: ts,
      },
    };
    const first = await fake.socketEvent(payload);
    // Slack re-sends an unacknowledged envelope with retry_attempt > 0; answered once all the same.
    const retry = await fake.socketEvent(payload, 1);
    for (const r of [first, retry]) {
      expect(r.ack.envelope_id).toBeTruthy();
      expect(r.ms).toBeLessThan(3000);
    }
    await waitFor(() => fake.thread(CHANNEL, ts).length > 0, 15_000, 'the Socket Mode reply');
    await bot.handler.drain();
    await sleep(200);
    const thread = fake.thread(CHANNEL, ts);
    expect(thread).toHaveLength(1);
    expect(JSON.stringify(thread[0]?.blocks)).toContain('feedback_up');
    expect(await state.answerForMessage('slack', `${CHANNEL}:${thread[0]?.ts}`)).toBeTruthy();
  });
});
