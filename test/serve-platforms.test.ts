import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Runtime } from '../bot/runtime.ts';
import { startBot } from '../bot/serve.ts';
import { loadConfig } from '../core/config.ts';
import {
  type DiscordWorld,
  FakeDiscordGateway,
  guildChannel,
  messageCreate,
  role,
  user,
} from './fakes/discord-gateway.ts';
import { FakeDiscordRest } from './fakes/discord-rest.ts';
import { FakeSlackApi, SlackDeliverer } from './fakes/slack-api.ts';
import { runCli } from './helpers/cli.ts';

const GUILD = '100000000000000001';
const SUPPORT = '400000000000000001';
const bot = user('200000000000000001', 'supportbot', true);
const asker = user('500000000000000001', 'asker');
const world: DiscordWorld = {
  token: 'discord-serve-token',
  applicationId: '300000000000000001',
  bot,
  guild: { id: GUILD, name: 'Ledgerly', ownerId: asker.id },
  roles: [role('600000000000000001', 'support-admins')],
  channels: [guildChannel(SUPPORT, GUILD, 'support')],
};
const SIGNING_SECRET = 'serve-signing-secret';

/**
 * `serve` as a deployment runs it: one runtime over the example help center, Slack (HTTP
 * receiver) and Discord started together from the standard environment variables, talking to
 * local fakes of both platforms.
 */
describe('serve with Slack and Discord', () => {
  let tmp: string;
  let slackApi: FakeSlackApi;
  let gateway: FakeDiscordGateway;
  let rest: FakeDiscordRest;
  beforeEach(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'supportbot-serve-both-'));
    slackApi = await FakeSlackApi.start({ botToken: 'xoxb-serve' });
    gateway = await FakeDiscordGateway.start(world, { heartbeatIntervalMs: 1_000 });
    rest = await FakeDiscordRest.start(world, gateway);
  });
  afterEach(async () => {
    await rest.close();
    await gateway.close();
    await slackApi.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  const env = () => ({
    SLACK_BOT_TOKEN: 'xoxb-serve',
    SLACK_SIGNING_SECRET: SIGNING_SECRET,
    SLACK_API_URL: slackApi.apiUrl,
    DISCORD_TOKEN: world.token,
    DISCORD_API_URL: rest.apiUrl,
    PORT: '0',
  });

  it('answers on both platforms from one runtime, reports both in /healthz, and drains on stop', async () => {
    const rt = await Runtime.open(loadConfig({ cwd: tmp, env: env() }));
    await rt.sync();
    const running = await startBot(rt);
    try {
      const health = await (await fetch(`http://127.0.0.1:${running.port}/healthz`)).json();
      expect(health).toMatchObject({ ok: true, platforms: { slack: 'running', discord: 'running' } });

      // Slack: a signed app_mention to the receiver → an answer in the thread.
      const slack = new SlackDeliverer(
        `http://127.0.0.1:${running.port}/slack/events`,
        SIGNING_SECRET,
        slackApi.teamId,
      );
      const ack = await slack.event(
        slack.envelope({
          type: 'app_mention',
          user: 'U-ASKER',
          text: `<@${slackApi.botUserId}> How do I reset my password?`,
          ts: '1700000000.000100',
          channel: 'C-SUPPORT',
          event_ts: '1700000000.000100',
        }),
      );
      expect(ack.status).toBe(200);
      // Discord: a mention → an answer in a thread started from the question.
      gateway.dispatch(
        'MESSAGE_CREATE',
        messageCreate({
          channelId: SUPPORT,
          guildId: GUILD,
          author: asker,
          content: `<@${bot.id}> How do I reset my password?`,
          mentions: [bot],
        }),
      );
      const slackReply = await waitFor(() =>
        slackApi.messages.find((m) => m.channel === 'C-SUPPORT' && m.threadTs === '1700000000.000100'),
      );
      expect(JSON.stringify(slackReply.blocks)).toMatch(/reset/i);
      const discordReply = await rest.waitFor(() => rest.messages.find((m) => m.author?.id === bot.id));
      expect(discordReply.content).toMatch(/reset/i);
      const answers = await rt.state.listAnswers();
      expect(answers.map((a) => a.platform).sort()).toEqual(['discord', 'slack']);

      // Operations: Prometheus metrics and per-dependency readiness on the same port.
      await waitFor(async () => {
        const text = await (await fetch(`http://127.0.0.1:${running.port}/metrics`)).text();
        return /supportbot_messages_total\{platform="discord",outcome="answered"\} 1/.test(text) || undefined;
      });
      const metrics = await (await fetch(`http://127.0.0.1:${running.port}/metrics`)).text();
      expect(metrics).toContain('supportbot_messages_total{platform="slack",outcome="answered"} 1');
      expect(metrics).toMatch(/supportbot_answer_duration_seconds_count\{stage="retrieve"\} 2/);
      expect(metrics).toContain('process_cpu_seconds_total');
      const ready = await fetch(`http://127.0.0.1:${running.port}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toMatchObject({
        ok: true,
        dependencies: {
          knowledgeStore: { ok: true },
          stateStore: { ok: true },
          slack: { ok: true },
          discord: { ok: true },
        },
      });
    } finally {
      await running.stop(5_000);
      await rt.close();
    }
    await expect(fetch(`http://127.0.0.1:${running.port}/healthz`)).rejects.toThrow();
  }, 60_000);

  it('a wrong Discord token or an unreachable Discord stops start-up with one clear error', async () => {
    const wrong = await Runtime.open(
      loadConfig({
        cwd: tmp,
        env: { DISCORD_TOKEN: 'not-the-token', DISCORD_API_URL: rest.apiUrl, PORT: '0' },
      }),
    );
    await expect(startBot(wrong)).rejects.toMatchObject({ code: 'discord-auth' });
    await wrong.close();
    const down = await Runtime.open(
      loadConfig({
        cwd: tmp,
        env: { DISCORD_TOKEN: world.token, DISCORD_API_URL: 'http://127.0.0.1:9/api', PORT: '0' },
      }),
    );
    await expect(startBot(down)).rejects.toMatchObject({ code: 'discord-unreachable' });
    await down.close();
  }, 60_000);

  it('`supportbot discord register --guild` registers /support in that guild', async () => {
    // Asynchronous: the fake REST server runs in this process.
    const r = await runCli(['discord', 'register', '--guild', GUILD], tmp, {
      DISCORD_TOKEN: world.token,
      DISCORD_API_URL: rest.apiUrl,
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`Registered /support for application ${world.applicationId} in guild ${GUILD}.\n`);
    const missing = await runCli(['discord', 'register'], tmp, { DISCORD_TOKEN: '' });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe('error: set DISCORD_TOKEN (the bot token) to register commands\n');
  }, 60_000);
});

async function waitFor<T>(
  predicate: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 10_000,
): Promise<T> {
  const start = Date.now();
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() - start > timeoutMs) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}
