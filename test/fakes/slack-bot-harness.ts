import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { App } from '@slack/bolt';
import { type Logger, pino } from 'pino';
import type { SupportCommandDeps } from '../../bot/commands/support-command.ts';
import { formatAnswer } from '../../bot/console/format.ts';
import { ConversationHandler, type ConversationLimits } from '../../bot/conversation/handler.ts';
import { createSlackBot, type SlackSettings } from '../../bot/slack/app.ts';
import { answer } from '../../core/answer.ts';
import { DEFAULT_SOURCE, folderSourceSchema } from '../../core/config.ts';
import type { Generator } from '../../core/generator.ts';
import { ExtractiveGenerator } from '../../core/generators/extractive.ts';
import { SqliteKnowledgeStore } from '../../core/knowledge-store/sqlite.ts';
import type { StateStore } from '../../core/state-store.ts';
import { cl100kTokenizer } from '../../core/tokenizer.ts';
import { createFolderSource } from '../../sync/sources/folder.ts';
import { syncSource } from '../../sync/sync.ts';
import { type FakeSlackApi, SlackDeliverer } from './slack-api.ts';

export const BOT_TOKEN = 'xoxb-test-token';

/** Log lines of the bots started without their own logger (debug level), shown when `waitFor` times out. */
export const logLines: string[] = [];
const memoryLog = () => pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) });
export const SIGNING_SECRET = 'test-signing-secret-0123456789abcdef';

/** The example help center synced into a fresh SQLite knowledge store, as `supportbot sync` does. */
export async function exampleKnowledge(file: string): Promise<{
  knowledge: SqliteKnowledgeStore;
  sync: () => Promise<Awaited<ReturnType<typeof syncSource>>>;
}> {
  const knowledge = SqliteKnowledgeStore.open(file);
  const source = createFolderSource(folderSourceSchema.parse(DEFAULT_SOURCE));
  const chunking = { maxTokens: 300, overlapTokens: 30, tokenizer: cl100kTokenizer };
  const sync = () => syncSource(source, knowledge, { chunking });
  const summary = await sync();
  if (summary.sourceError || summary.added === 0)
    throw new Error(`example sync failed: ${JSON.stringify(summary)}`);
  return { knowledge, sync };
}

/** A generator that waits `ms` before delegating (a slow LLM), honouring the abort signal. */
export function delayed(inner: Generator, ms: number): Generator {
  return {
    id: `${inner.id}+delay${ms}`,
    async generate(request) {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(resolve, ms);
        request.signal?.addEventListener('abort', () => {
          clearTimeout(t);
          reject(request.signal?.reason);
        });
      });
      return inner.generate(request);
    },
  };
}

export interface BotOptions {
  fake: FakeSlackApi;
  knowledge: SqliteKnowledgeStore;
  state: StateStore;
  generator?: Generator;
  limits?: Partial<ConversationLimits>;
  settings?: Partial<SlackSettings>;
  sync?: () => Promise<Awaited<ReturnType<typeof syncSource>>>;
  /** Replaces some `/support` dependencies (e.g. a slow `status`). */
  commands?: Partial<SupportCommandDeps>;
  log?: Logger;
}

/** One running replica: the real Bolt app on its HTTP receiver, with its own conversation handler. */
export interface RunningSlackBot {
  app: App;
  handler: ConversationHandler;
  endpoint: string;
  deliver: SlackDeliverer;
  stop(): Promise<void>;
}

/**
 * Builds a replica the way `supportbot serve` does (handler over `answer()` with the given store
 * and generator, `/support` deps, `createSlackBot`) and starts its HTTP receiver on 127.0.0.1 at
 * a free port, with the Web API pointed at the fake.
 */
export async function startSlackBot(o: BotOptions): Promise<RunningSlackBot> {
  const log = o.log ?? memoryLog();
  const generator = o.generator ?? new ExtractiveGenerator();
  const ask = (question: string, history: Parameters<typeof answer>[1]['history'], signal?: AbortSignal) =>
    answer(question, {
      store: o.knowledge,
      generator,
      topK: 5,
      abstainThreshold: 0.4,
      maxAnswerChars: 900,
      history,
      signal,
    });
  const handler = new ConversationHandler({
    answer: (q, history, signal) => ask(q, history, signal),
    state: o.state,
    log,
    limits: o.limits,
    escalationFor: () => ({ channelId: 'CESCALATE', mention: '<!subteam^SSUPPORT>' }),
  });
  const commands: SupportCommandDeps = {
    state: o.state,
    sync: async () => (o.sync ? [await o.sync()] : []),
    sourceNames: () => ['examples'],
    status: async () => {
      const stats = await o.knowledge.stats();
      return `Knowledge store ${o.knowledge.id}: ${stats.chunks} chunks. State store ${o.state.id}.`;
    },
    ask: async (question) => formatAnswer(await ask(question, [])),
    ...o.commands,
  };
  const settings: SlackSettings = {
    botToken: BOT_TOKEN,
    signingSecret: SIGNING_SECRET,
    apiUrl: o.fake.apiUrl,
    upReactions: ['+1', 'thumbsup'],
    downReactions: ['-1', 'thumbsdown'],
    adminUsers: ['UADMIN'],
    adminGroups: ['SADMINS'],
    ...o.settings,
  };
  const app = createSlackBot(settings, { handler, commands, log });
  if (settings.appToken) {
    // Socket Mode: no HTTP receiver; events arrive over the fake's WebSocket.
    await app.start();
    return {
      app,
      handler,
      endpoint: '',
      deliver: new SlackDeliverer('http://127.0.0.1:9/unused', SIGNING_SECRET, o.fake.teamId),
      async stop() {
        handler.close();
        await handler.drain();
        await app.stop();
      },
    };
  }
  const server = (await app.start({ port: 0, host: '127.0.0.1' })) as Server;
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}/slack/events`;
  return {
    app,
    handler,
    endpoint,
    deliver: new SlackDeliverer(endpoint, SIGNING_SECRET, o.fake.teamId),
    async stop() {
      handler.close();
      await handler.drain();
      server.closeAllConnections();
      await app.stop();
    },
  };
}

/** Polls `check` every 20 ms until it returns true; throws after `timeoutMs`. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 15_000,
  what = 'condition',
) {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}; last bot log lines:\n${logLines.slice(-20).join('')}`,
      );
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
