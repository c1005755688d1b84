import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type APIChannel,
  type APIMessage,
  ChannelType,
  GatewayDispatchEvents,
  type InteractionResponseType,
  MessageType,
} from 'discord-api-types/v10';
import { type DiscordWorld, type FakeDiscordGateway, snowflake } from './discord-gateway.ts';

export interface RecordedRequest {
  method: string;
  /** Path after `/api/v10`, e.g. `/channels/1/messages`. */
  path: string;
  query: URLSearchParams;
  body: unknown;
  /** `Date.now()` when it arrived. */
  at: number;
}

export interface InteractionCallback {
  interactionId: string;
  token: string;
  type: InteractionResponseType;
  data?: { content?: string; flags?: number };
  at: number;
}

interface MessageBody {
  content?: string;
  flags?: number;
  components?: unknown[];
  allowed_mentions?: unknown;
  message_reference?: { message_id: string; channel_id?: string; fail_if_not_exists?: boolean };
}

/**
 * A small Discord REST API for tests, reached by discord.js through `rest: { api: url }` (requests
 * arrive as `/api/v10/...`). It answers, with Discord's documented shapes
 * (https://discord.com/developers/docs/reference, resources/channel, resources/message,
 * interactions/receiving-and-responding, interactions/application-commands):
 *
 * - `GET /gateway/bot` (the fake gateway's URL, 1 shard, a session start limit), `GET /users/@me`,
 *   `GET /applications/@me`, `GET /channels/{id}`;
 * - `POST /channels/{id}/messages`: records the message and also dispatches it as MESSAGE_CREATE
 *   through the gateway, as Discord does; content over 2,000 characters gets 400 with code 50035
 *   (Invalid Form Body, `BASE_TYPE_MAX_LENGTH`), an unknown channel 404 with code 10003;
 * - `POST /channels/{c}/messages/{m}/threads`: a public thread whose id is the message id, owned by
 *   the bot, dispatched as THREAD_CREATE; 160004 when the message already has one; 403 with 50013
 *   (Missing Permissions) in `noThreadChannels`; 400 with 50024 in channels that cannot have threads;
 * - `POST /interactions/{id}/{token}/callback`: records the callback; a second one for the same
 *   interaction gets 400 with 40060 (already acknowledged);
 * - `PATCH /webhooks/{app}/{token}/messages/@original` and `POST /webhooks/{app}/{token}`: edits and
 *   follow-ups, only after a callback (else 404 with 10015 Unknown Webhook);
 * - `PUT /applications/{app}/commands` and `/applications/{app}/guilds/{g}/commands`: bulk overwrite,
 *   answering the commands with ids.
 *
 * Requests without `Authorization: Bot <token>` get 401 (0, `401: Unauthorized`), except interaction
 * callbacks and webhooks, which are authorized by their token.
 */
export class FakeDiscordRest {
  readonly requests: RecordedRequest[] = [];
  /** Messages posted to channels, in order. */
  readonly messages: (APIMessage & { body: MessageBody })[] = [];
  readonly callbacks: InteractionCallback[] = [];
  /** Webhook edits of `@original` and follow-ups, in order. */
  readonly webhookMessages: {
    kind: 'edit' | 'followup';
    token: string;
    content: string;
    flags: number;
    at: number;
  }[] = [];
  readonly commandPuts: { path: string; body: unknown[] }[] = [];
  /** Channels where starting a thread is refused with 403 / 50013. */
  readonly noThreadChannels = new Set<string>();
  /** DM channels the bot may post in. */
  readonly dmChannels = new Set<string>();
  /** Delay before answering every request, in ms (to see that acks do not wait for work). */
  delayMs = 0;
  readonly #threads = new Map<string, APIChannel>();

  private constructor(
    private readonly server: Server,
    readonly world: DiscordWorld,
    readonly gateway: FakeDiscordGateway,
  ) {
    server.on('request', (req, res) => {
      this.#handle(req, res).catch((err) => {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ message: String(err), code: 0 }));
      });
    });
  }

  static async start(world: DiscordWorld, gateway: FakeDiscordGateway): Promise<FakeDiscordRest> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    return new FakeDiscordRest(server, world, gateway);
  }

  /** The base to give discord.js (`rest.api`) and `registerDiscordCommands` (`apiUrl`). */
  get apiUrl(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/api`;
  }

  /** Messages posted in one channel. */
  postedIn(channelId: string) {
    return this.messages.filter((m) => m.channel_id === channelId);
  }

  /** Resolves when `predicate` holds, polling every 10 ms; rejects after `timeoutMs`. */
  async waitFor<T>(predicate: () => T | undefined | false | null, timeoutMs = 10_000): Promise<T> {
    const start = Date.now();
    for (;;) {
      const value = predicate();
      if (value) return value;
      if (Date.now() - start > timeoutMs) throw new Error('FakeDiscordRest.waitFor timed out');
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://x');
    const method = req.method ?? 'GET';
    const prefix = '/api/v10';
    const send = (status: number, body?: unknown) => {
      if (body === undefined) {
        res.writeHead(status);
        res.end();
      } else {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      }
    };
    if (!url.pathname.startsWith(prefix)) return send(404, { message: '404: Not Found', code: 0 });
    // Clients percent-encode path segments (`@original` arrives as `%40original`).
    const path = decodeURIComponent(url.pathname.slice(prefix.length));
    let body: unknown = null;
    if (raw) {
      try {
        body = JSON.parse(raw);
      } catch {
        return send(400, { message: '400: Bad Request', code: 0 });
      }
    }
    this.requests.push({ method, path, query: url.searchParams, body, at: Date.now() });
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));

    const isWebhook = path.startsWith('/interactions/') || path.startsWith('/webhooks/');
    if (!isWebhook && req.headers.authorization !== `Bot ${this.world.token}`) {
      return send(401, { message: '401: Unauthorized', code: 0 });
    }
    const { bot, applicationId } = this.world;
    const route = (verb: string | null, pattern: RegExp) =>
      verb === null || method === verb ? pattern.exec(path) : null;
    let m: RegExpExecArray | null;

    if (method === 'GET' && path === '/gateway/bot') {
      return send(200, {
        url: this.gateway.url,
        shards: 1,
        session_start_limit: { total: 1000, remaining: 999, reset_after: 14_400_000, max_concurrency: 1 },
      });
    }
    if (method === 'GET' && path === '/users/@me') return send(200, bot);
    if (method === 'GET' && path === '/applications/@me') {
      return send(200, {
        id: applicationId,
        name: 'supportbot',
        description: '',
        bot_public: true,
        flags: 0,
        bot,
      });
    }
    m = route('GET', /^\/channels\/(\d+)$/);
    if (m) {
      const channel = this.#channel(m[1] as string);
      return channel ? send(200, channel) : send(404, { message: 'Unknown Channel', code: 10003 });
    }
    m = route('POST', /^\/channels\/(\d+)\/messages$/);
    if (m) {
      const channelId = m[1] as string;
      if (!this.#channel(channelId)) return send(404, { message: 'Unknown Channel', code: 10003 });
      const b = (body ?? {}) as MessageBody;
      const invalid = invalidContent(b.content);
      if (invalid) return send(400, invalid);
      const message = this.#message(channelId, b);
      this.messages.push({ ...message, body: b });
      const channel = this.#channel(channelId);
      const guildId = channel && 'guild_id' in channel ? channel.guild_id : undefined;
      this.gateway.dispatch(GatewayDispatchEvents.MessageCreate, {
        ...message,
        ...(guildId ? { guild_id: guildId } : { channel_type: ChannelType.DM }),
      });
      return send(200, message);
    }
    m = route('POST', /^\/channels\/(\d+)\/messages\/(\d+)\/threads$/);
    if (m) {
      const [, channelId, messageId] = m as unknown as [string, string, string];
      const parent = this.world.channels.find((c) => c.id === channelId);
      if (!parent) return send(404, { message: 'Unknown Channel', code: 10003 });
      if (parent.type !== ChannelType.GuildText && parent.type !== ChannelType.GuildAnnouncement) {
        return send(400, { message: 'Cannot execute action on this channel type', code: 50024 });
      }
      if (this.noThreadChannels.has(channelId))
        return send(403, { message: 'Missing Permissions', code: 50013 });
      if (this.#threads.has(messageId)) {
        return send(400, { message: 'A thread has already been created for this message', code: 160004 });
      }
      const b = (body ?? {}) as { name?: string; auto_archive_duration?: number };
      if (!b.name || b.name.length > 100) {
        return send(400, {
          message: 'Invalid Form Body',
          code: 50035,
          errors: {
            name: {
              _errors: [{ code: 'BASE_TYPE_BAD_LENGTH', message: 'Must be between 1 and 100 in length.' }],
            },
          },
        });
      }
      const thread = {
        id: messageId,
        type: ChannelType.PublicThread,
        guild_id: this.world.guild.id,
        parent_id: channelId,
        owner_id: bot.id,
        name: b.name,
        last_message_id: null,
        rate_limit_per_user: 0,
        message_count: 0,
        member_count: 1,
        total_message_sent: 0,
        flags: 0,
        thread_metadata: {
          archived: false,
          auto_archive_duration: b.auto_archive_duration ?? 4320,
          archive_timestamp: new Date().toISOString(),
          locked: false,
        },
      } as unknown as APIChannel;
      this.#threads.set(messageId, thread);
      this.gateway.threads.push(thread);
      this.gateway.dispatch(GatewayDispatchEvents.ThreadCreate, { ...thread, newly_created: true });
      return send(201, thread);
    }
    m = route('POST', /^\/interactions\/(\d+)\/([^/]+)\/callback$/);
    if (m) {
      const [, interactionId, token] = m as unknown as [string, string, string];
      if (this.callbacks.some((c) => c.interactionId === interactionId)) {
        return send(400, { message: 'Interaction has already been acknowledged.', code: 40060 });
      }
      const b = body as { type: InteractionResponseType; data?: { content?: string; flags?: number } };
      const invalid = invalidContent(b.data?.content);
      if (invalid) return send(400, invalid);
      this.callbacks.push({ interactionId, token, type: b.type, data: b.data, at: Date.now() });
      return send(204);
    }
    m = route(null, /^\/webhooks\/(\d+)\/([^/]+)(\/messages\/@original)?$/);
    if (m) {
      const [, app, token, original] = m as unknown as [string, string, string, string | undefined];
      const acked = this.callbacks.some((c) => c.token === token);
      if (app !== applicationId || !acked) return send(404, { message: 'Unknown Webhook', code: 10015 });
      const b = (body ?? {}) as MessageBody;
      const invalid = invalidContent(b.content);
      if (invalid) return send(400, invalid);
      if (method === 'PATCH' && original) {
        this.webhookMessages.push({
          kind: 'edit',
          token,
          content: b.content ?? '',
          flags: b.flags ?? 0,
          at: Date.now(),
        });
        return send(200, this.#message('0', b));
      }
      if (method === 'POST' && !original) {
        this.webhookMessages.push({
          kind: 'followup',
          token,
          content: b.content ?? '',
          flags: b.flags ?? 0,
          at: Date.now(),
        });
        return url.searchParams.get('wait') === 'false' ? send(204) : send(200, this.#message('0', b));
      }
    }
    m = route('PUT', /^\/applications\/(\d+)(\/guilds\/(\d+))?\/commands$/);
    if (m) {
      if (m[1] !== applicationId) return send(403, { message: 'Missing Access', code: 50001 });
      const commands = body as { name: string; description: string }[];
      for (const c of commands) {
        if (
          !/^[-_'\p{L}\p{N}]{1,32}$/u.test(c.name) ||
          c.name !== c.name.toLowerCase() ||
          c.description.length > 100
        ) {
          return send(400, { message: 'Invalid Form Body', code: 50035 });
        }
      }
      this.commandPuts.push({ path, body: commands });
      return send(
        200,
        commands.map((c) => ({
          ...c,
          id: snowflake(),
          application_id: applicationId,
          version: snowflake(),
          ...(m?.[3] ? { guild_id: m[3] } : {}),
        })),
      );
    }
    return send(404, { message: '404: Not Found', code: 0 });
  }

  #channel(id: string): APIChannel | undefined {
    return (
      this.world.channels.find((c) => c.id === id) ??
      this.#threads.get(id) ??
      (this.dmChannels.has(id)
        ? ({ id, type: ChannelType.DM, recipients: [] } as unknown as APIChannel)
        : undefined)
    );
  }

  #message(channelId: string, b: MessageBody): APIMessage {
    const ref = b.message_reference;
    return {
      id: snowflake(),
      channel_id: channelId,
      author: this.world.bot,
      content: b.content ?? '',
      timestamp: new Date().toISOString(),
      edited_timestamp: null,
      tts: false,
      mention_everyone: false,
      mentions: [],
      mention_roles: [],
      attachments: [],
      embeds: [],
      pinned: false,
      type: ref ? MessageType.Reply : MessageType.Default,
      flags: b.flags ?? 0,
      ...(b.components ? { components: b.components as APIMessage['components'] } : {}),
      ...(ref
        ? {
            message_reference: {
              type: 0,
              message_id: ref.message_id,
              channel_id: ref.channel_id ?? channelId,
            },
          }
        : {}),
    };
  }
}

/** Discord's answer to content over 2,000 characters (Invalid Form Body, code 50035). */
function invalidContent(content: string | undefined) {
  if (content === undefined || content.length <= 2000) return null;
  return {
    message: 'Invalid Form Body',
    code: 50035,
    errors: {
      content: { _errors: [{ code: 'BASE_TYPE_MAX_LENGTH', message: 'Must be 2000 or fewer in length.' }] },
    },
  };
}
