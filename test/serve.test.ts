import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Runtime } from '../bot/runtime.ts';
import { configuredPlatforms, startBot } from '../bot/serve.ts';
import { loadConfig, PACKAGE_ROOT } from '../core/config.ts';
import { ExtractiveGenerator } from '../core/generators/extractive.ts';
import { FakeSlackApi, SlackDeliverer } from './fakes/slack-api.ts';

const BIN = path.join(PACKAGE_ROOT, 'bin', 'supportbot.mjs');
const SLACK_ENV = { SLACK_BOT_TOKEN: 'xoxb-test', SLACK_SIGNING_SECRET: 'test-secret' };
let slackApi: FakeSlackApi;
/** Slack settings pointing at the local Web API fake (`auth.test` runs at start). */
const slackEnv = () => ({ ...SLACK_ENV, SLACK_API_URL: slackApi.apiUrl });

describe('serve', () => {
  let tmp: string;
  beforeEach(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'supportbot-serve-'));
    slackApi = await FakeSlackApi.start({ botToken: SLACK_ENV.SLACK_BOT_TOKEN });
  });
  afterEach(async () => {
    await slackApi.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('chooses platforms from the tokens', () => {
    const at = (env: Record<string, string>) => configuredPlatforms(loadConfig({ cwd: tmp, env }));
    expect(at({})).toEqual({ slack: false, discord: false });
    expect(at(SLACK_ENV)).toEqual({ slack: true, discord: false });
    expect(at({ DISCORD_TOKEN: 'x' })).toEqual({ slack: false, discord: true });
    expect(at({ ...SLACK_ENV, DISCORD_TOKEN: 'x' })).toEqual({ slack: true, discord: true });
  });

  it('serves /healthz beside the Slack receiver: 200 while the stores answer, 503 when one is down', async () => {
    const rt = await Runtime.open(loadConfig({ cwd: tmp, env: { ...slackEnv(), PORT: '0' } }));
    await rt.sync();
    const bot = await startBot(rt);
    try {
      expect(bot.port).toBeGreaterThan(0);
      const ok = await fetch(`http://127.0.0.1:${bot.port}/healthz`);
      expect(ok.status).toBe(200);
      const report = (await ok.json()) as Record<string, unknown>;
      expect(report).toMatchObject({ ok: true, platforms: { slack: 'running' }, stateStore: { ok: true } });
      expect((report.knowledgeStore as { chunks: number }).chunks).toBeGreaterThan(0);
      await rt.state.close();
      const down = await fetch(`http://127.0.0.1:${bot.port}/healthz`);
      expect(down.status).toBe(503);
      expect(await down.json()).toMatchObject({ ok: false, stateStore: { ok: false } });
    } finally {
      await bot.stop(1000);
      await rt.knowledge.close();
    }
    await expect(fetch(`http://127.0.0.1:${bot.port}/healthz`)).rejects.toThrow();
  });

  it('stop() answers an event that was acked just before it, before returning', async () => {
    const rt = await Runtime.open(loadConfig({ cwd: tmp, env: { ...slackEnv(), PORT: '0' } }));
    await rt.sync();
    // A slow generator (1.5 s) so the answer is still being generated when stop() starts.
    const extractive = new ExtractiveGenerator();
    rt.generator = {
      id: 'slow-extractive',
      async generate(request) {
        await new Promise((r) => setTimeout(r, 1500));
        return extractive.generate(request);
      },
    };
    const bot = await startBot(rt);
    try {
      const slack = new SlackDeliverer(
        `http://127.0.0.1:${bot.port}/slack/events`,
        SLACK_ENV.SLACK_SIGNING_SECRET,
        slackApi.teamId,
      );
      const ack = await slack.event(
        slack.envelope({
          type: 'app_mention',
          user: 'U-ASKER',
          text: `<@${slackApi.botUserId}> How do I reset my password?`,
          ts: '1700000000.000200',
          channel: 'C-SUPPORT',
          event_ts: '1700000000.000200',
        }),
      );
      expect(ack.status).toBe(200);
      await new Promise((r) => setTimeout(r, 200));
      expect(slackApi.messages).toHaveLength(0);
    } finally {
      await bot.stop(10_000);
    }
    const replies = slackApi.messages.filter((m) => m.threadTs === '1700000000.000200');
    expect(replies.length).toBeGreaterThan(0);
    expect((await rt.state.listAnswers())[0]?.messageKeys?.length).toBeGreaterThan(0);
    await rt.close();
  }, 60_000);

  it('in Socket Mode, /healthz listens on PORT', async () => {
    const port = await freePort();
    await slackApi.close();
    slackApi = await FakeSlackApi.start({ botToken: SLACK_ENV.SLACK_BOT_TOKEN, appToken: 'xapp-test' });
    const rt = await Runtime.open(
      loadConfig({ cwd: tmp, env: { ...slackEnv(), SLACK_APP_TOKEN: 'xapp-test', PORT: String(port) } }),
    );
    await rt.sync();
    const bot = await startBot(rt);
    try {
      expect(bot.port).toBe(port);
      const health = await fetch(`http://127.0.0.1:${port}/healthz`);
      expect(health.status).toBe(200);
      expect(await health.json()).toMatchObject({ platforms: { slack: 'running' } });
    } finally {
      await bot.stop(1000);
      await rt.close();
    }
  }, 60_000);

  it('a wrong Slack token or an unreachable Slack stops start-up with one clear error, leaving nothing running', async () => {
    const wrong = await Runtime.open(
      loadConfig({ cwd: tmp, env: { ...slackEnv(), SLACK_BOT_TOKEN: 'xoxb-wrong', PORT: '0' } }),
    );
    await expect(startBot(wrong)).rejects.toMatchObject({ code: 'slack-auth' });
    await wrong.close();
    const down = await Runtime.open(
      loadConfig({ cwd: tmp, env: { ...SLACK_ENV, SLACK_API_URL: 'http://127.0.0.1:9/api/', PORT: '0' } }),
    );
    const started = Date.now();
    await expect(startBot(down)).rejects.toMatchObject({ code: 'slack-unreachable' });
    expect(Date.now() - started).toBeLessThan(30_000);
    await down.close();
  }, 60_000);

  it('`supportbot serve` stops cleanly on SIGTERM', async () => {
    const child = spawn(process.execPath, [BIN, 'serve'], {
      cwd: tmp,
      env: { ...process.env, ...slackEnv(), PORT: '0', DATA_DIR: path.join(tmp, 'data'), REDIS_URL: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    const port = await new Promise<number>((resolve, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        const m = /localhost:(\d+)\/healthz/.exec(stderr);
        if (m) resolve(Number(m[1]));
      });
      child.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
    });
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(200);
    const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exit).toBe(0);
    expect(stderr).toContain('Stopping');
  }, 60_000);
});

describe('Runtime.open', () => {
  it('uses Redis for state when REDIS_URL is set, SQLite otherwise', async () => {
    const tmp = mkdtempSync(path.join(tmpdir(), 'supportbot-serve-'));
    try {
      const embedded = await Runtime.open(loadConfig({ cwd: tmp, env: {} }));
      expect(embedded.state.id).toMatch(/^sqlite:/);
      await embedded.close();
      const shared = await Runtime.open(
        loadConfig({ cwd: tmp, env: { REDIS_URL: 'redis://127.0.0.1:6379', DATA_DIR: path.join(tmp, 'd') } }),
      );
      expect(shared.state.id).toMatch(/^redis:/);
      expect((await shared.status()).lines.join('\n')).toMatch(/state: +redis:/);
      await shared.close();
      await expect(
        Runtime.open(
          loadConfig({ cwd: tmp, env: { REDIS_URL: 'redis://127.0.0.1:1', DATA_DIR: path.join(tmp, 'e') } }),
        ),
      ).rejects.toMatchObject({ code: 'store-unavailable' });
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

/** A TCP port that was free a moment ago. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
