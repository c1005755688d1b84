import { WebClient } from '@slack/web-api';
import { describe, expect, it } from 'vitest';
import { answerToSlackMessages } from '../bot/slack/blocks.ts';
import { longAnswerCaseText, makeAnswerResult } from './helpers/answer-result.ts';

// Opt-in: runs against a real Slack workspace when a bot token and a test channel are given, e.g.
//   SLACK_TEST_BOT_TOKEN=xoxb-… SLACK_TEST_CHANNEL=C0123456789 npx vitest run test/slack-live.test.ts
// The bot needs chat:write and must be a member of the channel. Everything it posts is deleted again.
const TOKEN = process.env.SLACK_TEST_BOT_TOKEN;
const CHANNEL = process.env.SLACK_TEST_CHANNEL;
const REASON = 'live Slack API (skipped: set SLACK_TEST_BOT_TOKEN and SLACK_TEST_CHANNEL to run)';

describe.skipIf(!TOKEN || !CHANNEL)(REASON, () => {
  const client = new WebClient(TOKEN, { retryConfig: { retries: 1 } });

  it('auth.test accepts the bot token', async () => {
    const res = await client.auth.test();
    expect(res.ok).toBe(true);
    expect(res.user_id).toMatch(/^[UW]/);
  });

  it('real Slack accepts the long-answer case as rendered (limits, blocks, buttons), in a thread; then deletes it', async () => {
    const text = longAnswerCaseText();
    const result = makeAnswerResult(text, {
      citations: [
        {
          n: 1,
          title: 'Export your workspace',
          url: 'https://help.ledgerly.example/articles/export',
          sourcePath: 'export.md',
          articleId: 'export',
          source: 'examples',
          chunkIds: ['export#0'],
        },
      ],
    });
    const posted: string[] = [];
    try {
      const parent = await client.chat.postMessage({
        channel: CHANNEL as string,
        text: 'supportbot live test: parent message',
      });
      posted.push(parent.ts as string);
      for (const m of answerToSlackMessages(result, { answerId: 'live-test', feedbackButtons: true })) {
        const res = await client.chat.postMessage({
          channel: CHANNEL as string,
          thread_ts: parent.ts,
          text: m.text,
          blocks: m.blocks,
          unfurl_links: false,
        });
        expect(res.ok).toBe(true);
        posted.push(res.ts as string);
      }
      const link = await client.chat.getPermalink({
        channel: CHANNEL as string,
        message_ts: parent.ts as string,
      });
      expect(link.permalink).toMatch(/^https:\/\//);
    } finally {
      for (const ts of posted.reverse())
        await client.chat.delete({ channel: CHANNEL as string, ts }).catch(() => {});
    }
  });
});
