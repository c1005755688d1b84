import {
  createServer,
  type IncomingMessage as HttpRequest,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import type { App } from '@slack/bolt';
import type { Config } from '../core/config.ts';
import { SupportbotError } from '../core/errors.ts';
import { startScheduler } from '../sync/scheduler.ts';
import { adapterLoaderOf, PromotedAdapterWatcher } from '../training/registry.ts';
import { registryOf, retrainDependency } from '../training/service.ts';
import type { SupportCommandDeps } from './commands/support-command.ts';
import { formatAnswer } from './console/format.ts';
import { resolveEscalationTarget } from './conversation/escalation-routing.ts';
import { ConversationHandler, type ConversationLimits, RATE_LIMITED_TEXT } from './conversation/handler.ts';
import { createDiscordBot, type DiscordSettings } from './discord/app.ts';
import { BotMetrics } from './metrics.ts';
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
    answer: (question, history, signal, message) =>
      rt.ask(question, {
        history,
        signal,
        scope: { platform: message.platform, workspace: message.workspaceId, channel: message.channelId },
      }),
    state: rt.state,
    log: rt.log,
    limits: handlerLimits(config),
    observe: {
      outcome: (message, outcome) => rt.metrics?.observeOutcome(message.platform, outcome),
      rating: (event, recorded) =>
        rt.metrics?.observeRating(event.platform, recorded ? event.value : 'ignored'),
    },
    escalationFor: (message) =>
      resolveEscalationTarget(
        message.platform === 'discord' ? config.discord.escalation : config.slack.escalation,
        message,
      ),
  });
  const commands: SupportCommandDeps = {
    state: rt.state,
    sync: (names) => rt.syncJobs(names),
    sourceNames: () => rt.sources.map((s) => s.name),
    status: async () => formatStatusText(await rt.status()),
    // `/support retrain` trains for real when a base model is configured (else it records the request).
    ...(config.training.baseModelDir
      ? {
          retrain: retrainDependency(rt, {
            baseModelDir: config.training.baseModelDir,
            autoPromote: config.training.autoPromote,
            minExamples: config.training.minExamples,
          }),
        }
      : {}),
    // The same per-user rate limit and answer timeout as mentions.
    ask: async (question, userId) => {
      const limits = handler.limits;
      const token = await rt.state.takeRateToken(
        `rate:command:${userId}`,
        limits.perUser,
        limits.rateWindowMs,
      );
      if (!token.allowed) return RATE_LIMITED_TEXT(Math.max(1, Math.ceil(token.retryAfterMs / 1000)));
      return formatAnswer(await rt.ask(question, { signal: AbortSignal.timeout(limits.answerTimeoutMs) }));
    },
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

/** One dependency's readiness in `/readyz`. */
export interface DependencyStatus {
  ok: boolean;
  id: string;
  ms: number;
  error?: string;
}

/**
 * Answers `GET /readyz` with each dependency's state, checked now: the knowledge store, the state
 * store, the generator (an OpenAI-compatible server is asked for `/models`; a loaded GGUF is
 * ready), the embedder (a server is asked to embed one word) and the chat platforms. 200 when all
 * are ready, 503 otherwise, so a load balancer sends no traffic to a replica that cannot answer.
 */
export function readyzHandler(rt: Runtime, platforms: () => HealthReport['platforms']) {
  const check = async (id: string, probe: () => Promise<unknown>): Promise<DependencyStatus> => {
    const started = performance.now();
    try {
      await Promise.race([
        probe(),
        new Promise((_, reject) => setTimeout(() => reject(new Error('timed out after 3 s')), 3000).unref()),
      ]);
      return { ok: true, id, ms: Math.round(performance.now() - started) };
    } catch (err) {
      return { ok: false, id, ms: Math.round(performance.now() - started), error: (err as Error).message };
    }
  };
  return async (_req: HttpRequest, res: ServerResponse): Promise<void> => {
    const llm = rt.config.llm;
    const dependencies: Record<string, DependencyStatus> = {
      knowledgeStore: await check(rt.knowledge.id, () => rt.knowledge.stats()),
      stateStore: await check(rt.state.id, () => rt.state.listJobs({ limit: 1 })),
    };
    if (rt.generator) {
      dependencies.generator = await check(rt.generator.id, async () => {
        if (llm.backend !== 'openai' || !llm.baseUrl) return;
        const r = await fetch(`${llm.baseUrl.replace(/\/+$/, '')}/models`, {
          headers: llm.apiKey ? { authorization: `Bearer ${llm.apiKey}` } : {},
        });
        if (!r.ok) throw new Error(`GET /models answered ${r.status}`);
      });
    }
    if (rt.embedder) {
      const embedder = rt.embedder;
      dependencies.embedder = await check(embedder.id, () => embedder.embedQueries(['ready']));
    }
    const running = platforms();
    for (const [name, state] of Object.entries(running)) {
      dependencies[name] = {
        ok: state === 'running',
        id: name,
        ms: 0,
        ...(state === 'running' ? {} : { error: state }),
      };
    }
    const ok = Object.values(dependencies).every((d) => d.ok);
    res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ok, dependencies }));
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
  rt.metrics ??= new BotMetrics();
  const metrics = rt.metrics;
  const { handler, commands } = createBotServices(rt);
  const running: Record<string, 'running' | 'stopped'> = {};
  const healthz = healthzHandler(rt, () => ({ ...running }));
  const readyz = readyzHandler(rt, () => ({ ...running }));
  const metricsRoute = async (_req: HttpRequest, res: ServerResponse) => {
    const { contentType, body } = await metrics.exposition();
    res.writeHead(200, { 'content-type': contentType });
    res.end(body);
  };
  const routes = [
    { path: '/healthz', handler: healthz },
    { path: '/readyz', handler: readyz },
    { path: '/metrics', handler: metricsRoute },
  ];
  let slack: App | null = null;
  let healthServer: Server | null = null;
  let port = config.server.port;
  let stopSlack: (() => Promise<void>) | null = null;
  let stopDiscord: ((graceMs: number) => Promise<void>) | null = null;
  let stopHealth: (() => Promise<void>) | null = null;
  // Serving follows the adapter registry's promoted version on every replica, without a restart.
  const registry = rt.generator ? await registryOf(rt) : null;
  const watcher = registry
    ? new PromotedAdapterWatcher(registry, adapterLoaderOf(rt.generator), {
        onChange: (name) => {
          rt.promotedAdapter = name;
          log.info({ adapter: name }, 'serving the promoted adapter');
        },
        onError: (err) => log.warn({ err }, 'could not read the promoted adapter'),
      })
    : null;
  if (watcher) {
    await watcher.check().catch((err) => log.warn({ err }, 'could not read the promoted adapter'));
    watcher.start();
  }
  const stopWatcher = async () => {
    watcher?.stop();
    await registry?.close();
  };
  // Scheduled syncs (per-source cron in the config); each run takes the source's lock in the
  // state store, so with several replicas every tick syncs once.
  const scheduler = startScheduler({
    sources: config.sources.map((s) => ({ name: s.name, schedule: s.schedule, timezone: s.timezone })),
    state: rt.state,
    runSync: (name, context) => rt.syncOne(name, { signal: context.signal }),
    log,
  });
  try {
    if (platforms.slack) {
      const settings = slackSettings(config);
      slack = createSlackBot(settings, {
        handler,
        commands,
        log,
        routes: routes.map((r) => ({ path: r.path, handler: (req, res) => void r.handler(req, res) })),
      });
      const started = (await slack.start(port)) as unknown;
      if (!settings.appToken && started && typeof (started as Server).address === 'function') {
        port = ((started as Server).address() as AddressInfo).port;
      }
      running.slack = 'running';
      const app = slack;
      stopSlack = async () => {
        await app.stop();
        running.slack = 'stopped';
      };
      log.info({ mode: settings.appToken ? 'socket' : 'http', port }, 'slack started');
    }
    if (platforms.discord) {
      const discord = createDiscordBot(discordSettings(config), { handler, commands, log });
      try {
        await discord.start();
      } catch (err) {
        await discord.stop({ drainTimeoutMs: 0 }).catch(() => {});
        throw discordStartError(err, config.discord.apiUrl);
      }
      running.discord = 'running';
      // discord.js forgets its token when the gateway closes, so the Discord transport finishes its
      // own in-flight replies before it closes.
      stopDiscord = async (graceMs) => {
        await discord.stop({ drainTimeoutMs: graceMs });
        running.discord = 'stopped';
      };
      log.info('discord started');
    }
    if (!platforms.slack || config.slack.appToken) {
      healthServer = createServer((req, res) => {
        const route = routes.find((r) => req.method === 'GET' && req.url?.split('?')[0] === r.path);
        if (route) void route.handler(req, res);
        else {
          res.writeHead(404, { 'content-type': 'text/plain' });
          res.end('not found\n');
        }
      });
      const server = healthServer;
      // Socket Mode opens no HTTP server of Bolt's (no custom routes are passed), so PORT is free.
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '0.0.0.0', () => resolve());
      });
      port = (server.address() as AddressInfo).port;
      stopHealth = () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
    }
  } catch (err) {
    const discordStop = stopDiscord as ((graceMs: number) => Promise<void>) | null;
    const undo: ((() => Promise<void>) | null)[] = [
      stopHealth,
      discordStop && (() => discordStop(0)),
      stopSlack,
    ];
    for (const stop of undo) await stop?.().catch(() => {});
    await scheduler.stop();
    await stopWatcher();
    throw err;
  }
  return {
    port,
    platforms,
    async stop(graceMs = handler.limits.answerTimeoutMs + 5000) {
      const deadline = Date.now() + graceMs;
      const left = () => Math.max(0, deadline - Date.now());
      const warn = (err: unknown) => log.warn({ err }, 'stop failed');
      // 0. No new scheduled syncs; a running one finishes (or is aborted) and releases its lock.
      await scheduler.stop();
      // 1. Slack's receiver closes first: Bolt acks an event before any listener runs, so an
      //    event acked now must still be answered; once closed, Slack re-delivers elsewhere.
      await stopSlack?.().catch(warn);
      // 2. No new questions from the gateway (another replica's session gets the same events).
      handler.close();
      // 3. Discord finishes its own replies before its gateway closes (discord.js drops its token then).
      await stopDiscord?.(left()).catch(warn);
      // 4. Answers still being generated finish and post (replies go out through the Web API).
      await Promise.race([handler.drain(), new Promise((r) => setTimeout(r, left()).unref())]);
      await stopHealth?.().catch(warn);
      await stopWatcher().catch(warn);
    },
  };
}

/**
 * A one-line error for a Discord login that failed: `discord-auth` when Discord refused the token
 * (HTTP 401, or gateway close code 4004 "Authentication failed"), `discord-unreachable` when the
 * REST API or gateway could not be reached.
 */
export function discordStartError(err: unknown, apiUrl?: string): SupportbotError {
  const e = err as { status?: number; code?: number | string; message?: string };
  const message = e.message ?? String(err);
  if (
    e.status === 401 ||
    e.code === 4004 ||
    e.code === 'TokenInvalid' ||
    /invalid token|401/i.test(message)
  ) {
    return new SupportbotError(
      'discord-auth',
      `Discord did not accept the bot token (DISCORD_TOKEN): ${message}`,
    );
  }
  return new SupportbotError(
    'discord-unreachable',
    `cannot reach the Discord API (${apiUrl ?? 'https://discord.com/api'}): ${message}`,
  );
}
