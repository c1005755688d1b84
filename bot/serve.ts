import {
  createServer,
  type IncomingMessage as HttpRequest,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import type { App } from '@slack/bolt';
import type { Config } from '../core/config.ts';
import type { SupportCommandDeps } from './commands/support-command.ts';
import { formatAnswer } from './console/format.ts';
import { createDiscordBot, type DiscordSettings } from './discord/app.ts';
import { resolveEscalationTarget } from './conversation/escalation-routing.ts';
import { ConversationHandler, type ConversationLimits } from './conversation/handler.ts';
import type { Runtime } from './runtime.ts';
import { createSlackBot, type SlackSettings } from './slack/app.ts';

/** Which platforms `serve` runs for a config: Slack when its bot token is set, Discord when its token is. */
export function configuredPlatforms(config: Config): { slack: boolean; discord: boolean } {
  return { slack: Boolean(config.slack.botToken), discord: Boolean(config.discord.token) };
}

/** The handler limits from `bot.limits` (seconds in the config, milliseconds in the handler). */
export function handlerLimits(config: Config): Partial<ConversationLimits> {
  const l = config.bot.limits;
  return {
    perUser: l.perUser,
    rateWindowMs: l.rateWindowSeconds * 1000,
    maxConcurrent: l.maxConcurrent,
    answerTimeoutMs: l.answerTimeoutSeconds * 1000,
    maxQuestionChars: l.maxQuestionChars,
    historyTurns: l.historyTurns,
  };
}

/**
 * The platform-neutral parts every transport shares: one conversation handler (so limits and
 * concurrency are per process, not per platform) and the `/support` command dependencies.
 */
export function createBotServices(rt: Runtime): {
  handler: ConversationHandler;
  commands: SupportCommandDeps;
} {
  const { config } = rt;
  const handler = new ConversationHandler({
    answer: (question, history, signal) => rt.ask(question, { history, signal }),
    state: rt.state,
    log: rt.log,
    limits: handlerLimits(config),
    escalationFor: (message) =>
      resolveEscalationTarget(
        message.platform === 'discord' ? config.discord.escalation : config.slack.escalation,
        message,
      ),
  });
  const commands: SupportCommandDeps = {
    state: rt.state,
    sync: (names) => rt.sync(names),
    sourceNames: () => rt.sources.map((s) => s.name),
    status: async () => formatStatusText(await rt.status()),
    ask: async (question) => formatAnswer(await rt.ask(question)),
  };
  return { handler, commands };
}

/** `/support status` text: one line per fact, as `supportbot status` prints them. */
export function formatStatusText(status: Awaited<ReturnType<Runtime['status']>>): string {
  return status.lines.join('\n');
}

export interface HealthReport {
  ok: boolean;
  platforms: Record<string, 'running' | 'stopped'>;
  knowledgeStore: { ok: boolean; id: string; chunks?: number; error?: string };
  stateStore: { ok: boolean; error?: string };
}

/**
 * Answers `GET /healthz` with a `HealthReport` as JSON: 200 when both stores answer, 503
 * otherwise (so an orchestrator restarts or drains a replica whose store is down).
 */
export function healthzHandler(rt: Runtime, platforms: () => HealthReport['platforms']) {
  return async (_req: HttpRequest, res: ServerResponse): Promise<void> => {
    const report: HealthReport = {
      ok: true,
      platforms: platforms(),
      knowledgeStore: { ok: true, id: rt.knowledge.id },
      stateStore: { ok: true },
    };
    try {
      report.knowledgeStore.chunks = (await rt.knowledge.stats()).chunks;
    } catch (err) {
      report.ok = false;
      report.knowledgeStore = { ok: false, id: rt.knowledge.id, error: (err as Error).message };
    }
    try {
      await rt.state.listJobs({ limit: 1 });
    } catch (err) {
      report.ok = false;
      report.stateStore = { ok: false, error: (err as Error).message };
    }
    res.writeHead(report.ok ? 200 : 503, { 'content-type': 'application/json' });
    res.end(JSON.stringify(report));
  };
}

/** Slack transport settings from the config (tokens from `SLACK_*`). */
export function slackSettings(config: Config): SlackSettings {
  const s = config.slack;
  return {
    botToken: s.botToken ?? '',
    signingSecret: s.signingSecret ?? '',
    appToken: s.appToken,
    apiUrl: s.apiUrl,
    upReactions: s.reactions.up,
    downReactions: s.reactions.down,
    adminUsers: s.admins.users,
    adminGroups: s.admins.groups,
    escalationFor: (message) => resolveEscalationTarget(s.escalation, message),
  };
}

/** Discord transport settings from the config (token from `DISCORD_TOKEN`). */
export function discordSettings(config: Config): DiscordSettings {
  const d = config.discord;
  return {
    token: d.token ?? '',
    apiUrl: d.apiUrl,
    upReactions: d.reactions.up,
    downReactions: d.reactions.down,
    adminUsers: d.admins.users,
    adminRoles: d.admins.groups,
    escalationFor: (message) => resolveEscalationTarget(d.escalation, message),
  };
}

/** A running `serve`: the HTTP port in use (receiver and `/healthz`) and a graceful stop. */
export interface RunningBot {
  port: number;
  platforms: { slack: boolean; discord: boolean };
  /**
   * Stops taking new events, waits for in-flight answers (at most `graceMs`, default the answer
   * timeout plus 5 s), then stops the transports. The runtime's stores are left to the caller.
   */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts the configured chat platforms on one runtime: Slack (HTTP receiver on `server.port`
 * with `/healthz` beside it, or Socket Mode with a separate health server on that port), and
 * Discord when configured. Call only when `configuredPlatforms(config)` has one set; the CLI
 * serves the console chat otherwise.
 * @throws when a transport fails to start (bad token, port in use); nothing is left running.
 */
export async function startBot(rt: Runtime): Promise<RunningBot> {
  const { config, log } = rt;
  const platforms = configuredPlatforms(config);
  const { handler, commands } = createBotServices(rt);
  const running: Record<string, 'running' | 'stopped'> = {};
  const healthz = healthzHandler(rt, () => ({ ...running }));
  let slack: App | null = null;
  let healthServer: Server | null = null;
  let port = config.server.port;
  const stops: ((graceMs: number) => Promise<void>)[] = [];
  try {
    if (platforms.slack) {
      const settings = slackSettings(config);
      slack = createSlackBot(settings, {
        handler,
        commands,
        log,
        routes: [{ path: '/healthz', handler: (req, res) => void healthz(req, res) }],
      });
      const started = (await slack.start(port)) as unknown;
      if (!settings.appToken && started && typeof (started as Server).address === 'function') {
        port = ((started as Server).address() as AddressInfo).port;
      }
      running.slack = 'running';
      const app = slack;
      stops.push(async () => {
        await app.stop();
        running.slack = 'stopped';
      });
      log.info({ mode: settings.appToken ? 'socket' : 'http', port }, 'slack started');
    }
    if (platforms.discord) {
      const discord = createDiscordBot(discordSettings(config), { handler, commands, log });
      await discord.start();
      running.discord = 'running';
      // discord.js forgets its token when the gateway closes, so the Discord transport finishes its
      // own in-flight replies before it closes.
      stops.push(async (graceMs) => {
        await discord.stop({ drainTimeoutMs: graceMs });
        running.discord = 'stopped';
      });
      log.info('discord started');
    }
    if (!platforms.slack || config.slack.appToken) {
      healthServer = createServer((req, res) => {
        if (req.method === 'GET' && req.url?.split('?')[0] === '/healthz') void healthz(req, res);
        else {
          res.writeHead(404, { 'content-type': 'text/plain' });
          res.end('not found\n');
        }
      });
      const server = healthServer;
      // Socket Mode's own HTTP server (Bolt) may hold the port; health then moves to the next free one.
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(platforms.slack ? 0 : port, '0.0.0.0', () => resolve());
      });
      port = (server.address() as AddressInfo).port;
      stops.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    }
  } catch (err) {
    for (const stop of stops.reverse()) await stop(0).catch(() => {});
    throw err;
  }
  return {
    port,
    platforms,
    async stop(graceMs = handler.limits.answerTimeoutMs + 5000) {
      // Stop taking questions first (new events are left for another replica or the platform's
      // re-delivery), close the receivers, then let the answers being generated finish and post
      // (replies go out through the Web API / REST, not the receivers).
      handler.close();
      // In start order: Slack's receiver closes first, so an event is never acked by a replica that will
      // not answer it (Slack re-delivers to another); health goes last.
      for (const stop of stops) await stop(graceMs).catch((err) => log.warn({ err }, 'stop failed'));
      await Promise.race([handler.drain(), new Promise((r) => setTimeout(r, graceMs).unref())]);
    },
  };
}
