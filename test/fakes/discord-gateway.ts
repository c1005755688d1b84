import type { AddressInfo } from 'node:net';
import {
  type APIChannel,
  type APIEmoji,
  type APIGuildMember,
  type APIMessage,
  type APIRole,
  type APIUser,
  type ApplicationFlags,
  ChannelType,
  GatewayDispatchEvents,
  type GatewayIdentifyData,
  type GatewayMessageReactionAddDispatchData,
  type GatewayMessageReactionRemoveDispatchData,
  GatewayOpcodes,
  type GatewayReadyDispatchData,
  type GuildMemberFlags,
  InteractionType,
  type MessageFlags,
  MessageType,
  ReactionType,
  type RoleFlags,
} from 'discord-api-types/v10';
import { type WebSocket, WebSocketServer } from 'ws';

/**
 * A small Discord gateway for tests, speaking the documented protocol
 * (https://discord.com/developers/docs/events/gateway, .../events/gateway-events) with JSON
 * encoding and no compression, gateway version 10:
 *
 * - on connect: Hello (op 10, `heartbeat_interval`);
 * - Heartbeat (op 1) → Heartbeat ACK (op 11);
 * - Identify (op 2): a wrong token closes with 4004 (Authentication failed); otherwise the session
 *   gets the READY dispatch (user, one unavailable guild, session_id, resume_gateway_url, shard,
 *   application) and then GUILD_CREATE for the guild (roles, channels, active threads);
 * - Resume (op 6) is not supported: Invalid Session (op 9, `d: false`) makes the client identify anew;
 * - `dispatch()` sends any event (op 0, `t`, increasing `s` per session) to the ready sessions.
 *
 * Snowflakes are real ones (ms since the Discord epoch << 22), so discord.js's timestamps hold.
 */
export class FakeDiscordGateway {
  readonly identifies: GatewayIdentifyData[] = [];
  readonly heartbeats: number[] = [];
  /** Sessions that identified and got READY, in order. */
  readonly sessions: Session[] = [];
  /** Active threads of the guild, sent in GUILD_CREATE to sessions that identify later. */
  readonly threads: APIChannel[] = [];
  readonly #waiters: { n: number; resolve: () => void }[] = [];

  private constructor(
    private readonly wss: WebSocketServer,
    readonly world: DiscordWorld,
    readonly heartbeatIntervalMs: number,
  ) {
    wss.on('connection', (ws, req) => this.#accept(ws, req.url ?? ''));
  }

  /** Starts listening on 127.0.0.1 at a free port. */
  static async start(world: DiscordWorld, options: { heartbeatIntervalMs?: number } = {}) {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
    return new FakeDiscordGateway(wss, world, options.heartbeatIntervalMs ?? 41_250);
  }

  /** `ws://127.0.0.1:P`, as `GET /gateway/bot` returns it. */
  get url(): string {
    return `ws://127.0.0.1:${(this.wss.address() as AddressInfo).port}`;
  }

  /** Resolves once `n` sessions in total have received READY and GUILD_CREATE. */
  waitForSessions(n: number): Promise<void> {
    if (this.sessions.length >= n) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ n, resolve }));
  }

  /** Sends a dispatch (op 0) to every open ready session, or to the given ones. */
  dispatch(t: string, d: unknown, to: Session[] = this.sessions): void {
    for (const s of to) if (s.open) s.send({ op: GatewayOpcodes.Dispatch, t, d, s: ++s.seq });
  }

  async close(): Promise<void> {
    for (const client of this.wss.clients) client.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  #accept(ws: WebSocket, url: string): void {
    const params = new URL(url, 'ws://x').searchParams;
    if (params.get('v') !== '10' || params.get('encoding') !== 'json') {
      ws.close(4012, 'Invalid API version'); // Gateway close event codes: 4012 Invalid API version.
      return;
    }
    const session = new Session(ws);
    session.send({
      op: GatewayOpcodes.Hello,
      d: { heartbeat_interval: this.heartbeatIntervalMs },
      s: null,
      t: null,
    });
    ws.on('message', (raw) => {
      let payload: { op: number; d: unknown };
      try {
        payload = JSON.parse(String(raw));
      } catch {
        ws.close(4002, 'Decode error');
        return;
      }
      switch (payload.op) {
        case GatewayOpcodes.Heartbeat:
          this.heartbeats.push(Date.now());
          session.send({ op: GatewayOpcodes.HeartbeatAck, d: null, s: null, t: null });
          break;
        case GatewayOpcodes.Identify:
          this.#identify(session, payload.d as GatewayIdentifyData);
          break;
        case GatewayOpcodes.Resume:
          session.send({ op: GatewayOpcodes.InvalidSession, d: false, s: null, t: null });
          break;
        default:
          // Presence, voice and request-members opcodes are accepted and ignored.
          break;
      }
    });
  }

  #identify(session: Session, d: GatewayIdentifyData): void {
    this.identifies.push(d);
    if (d.token !== this.world.token) {
      session.ws.close(4004, 'Authentication failed');
      return;
    }
    session.sessionId = `session-${this.identifies.length}`;
    const { bot, guild } = this.world;
    const ready: GatewayReadyDispatchData = {
      v: 10,
      user: bot,
      guilds: [{ id: guild.id, unavailable: true }],
      session_id: session.sessionId,
      resume_gateway_url: this.url,
      shard: d.shard,
      application: { id: this.world.applicationId, flags: 0 as ApplicationFlags, flags_new: '0' },
    };
    session.send({ op: GatewayOpcodes.Dispatch, t: GatewayDispatchEvents.Ready, d: ready, s: ++session.seq });
    session.send({
      op: GatewayOpcodes.Dispatch,
      t: GatewayDispatchEvents.GuildCreate,
      d: { ...guildCreate(this.world), threads: this.threads },
      s: ++session.seq,
    });
    this.sessions.push(session);
    for (const w of this.#waiters.filter((w) => this.sessions.length >= w.n)) {
      this.#waiters.splice(this.#waiters.indexOf(w), 1);
      w.resolve();
    }
  }
}

/** One gateway connection. */
export class Session {
  seq = 0;
  sessionId = '';
  constructor(readonly ws: WebSocket) {}
  get open(): boolean {
    return this.ws.readyState === this.ws.OPEN;
  }
  send(payload: unknown): void {
    this.ws.send(JSON.stringify(payload));
  }
}

// ── The test world: one bot, one guild, a few users ─────────────────────────────────────────────

const DISCORD_EPOCH = 1_420_070_400_000n;
let increment = 0n;

/** A fresh, increasing snowflake (https://discord.com/developers/docs/reference#snowflakes). */
export function snowflake(): string {
  increment = (increment + 1n) % 4096n;
  return String(((BigInt(Date.now()) - DISCORD_EPOCH) << 22n) | increment);
}

export interface DiscordWorld {
  token: string;
  applicationId: string;
  bot: APIUser;
  guild: { id: string; name: string; ownerId: string };
  /** Roles besides @everyone (whose id is the guild id). */
  roles: APIRole[];
  /** Guild channels (text, voice, …) by id. */
  channels: APIChannel[];
}

export function user(id: string, username: string, bot = false): APIUser {
  return { id, username, discriminator: '0', global_name: username, avatar: null, bot };
}

export function role(id: string, name: string, tags?: APIRole['tags']): APIRole {
  return {
    id,
    name,
    color: 0,
    colors: { primary_color: 0, secondary_color: null, tertiary_color: null },
    hoist: false,
    icon: null,
    unicode_emoji: null,
    position: 1,
    permissions: '0',
    managed: tags?.bot_id !== undefined,
    mentionable: true,
    flags: 0 as RoleFlags,
    ...(tags ? { tags } : {}),
  };
}

/** A guild text channel (type 0), or another guild channel type. */
export function guildChannel(
  id: string,
  guildId: string,
  name: string,
  type = ChannelType.GuildText,
): APIChannel {
  return {
    id,
    type,
    guild_id: guildId,
    name,
    position: 0,
    permission_overwrites: [],
    nsfw: false,
    parent_id: null,
    topic: null,
    last_message_id: null,
    rate_limit_per_user: 0,
  } as APIChannel;
}

function guildCreate(world: DiscordWorld) {
  const { guild } = world;
  return {
    id: guild.id,
    name: guild.name,
    icon: null,
    splash: null,
    discovery_splash: null,
    owner_id: guild.ownerId,
    afk_channel_id: null,
    afk_timeout: 300,
    verification_level: 0,
    default_message_notifications: 0,
    explicit_content_filter: 0,
    roles: [{ ...role(guild.id, '@everyone'), position: 0 }, ...world.roles],
    emojis: [],
    features: [],
    mfa_level: 0,
    application_id: null,
    system_channel_id: null,
    system_channel_flags: 0,
    rules_channel_id: null,
    vanity_url_code: null,
    description: null,
    banner: null,
    premium_tier: 0,
    preferred_locale: 'en-US',
    public_updates_channel_id: null,
    nsfw_level: 0,
    stickers: [],
    premium_progress_bar_enabled: false,
    safety_alerts_channel_id: null,
    joined_at: new Date().toISOString(),
    large: false,
    unavailable: false,
    member_count: 3,
    voice_states: [],
    members: [],
    // GUILD_CREATE's channels carry no guild_id.
    channels: world.channels.map((c) => ({ ...c, guild_id: undefined })),
    presences: [],
    stage_instances: [],
    guild_scheduled_events: [],
    soundboard_sounds: [],
  };
}

/** A guild member object for `user`, with role ids. */
export function member(u: APIUser, roles: string[] = []): APIGuildMember {
  return {
    user: u,
    nick: null,
    avatar: null,
    banner: null,
    roles,
    joined_at: '2024-01-01T00:00:00.000Z',
    premium_since: null,
    deaf: false,
    mute: false,
    flags: 0 as GuildMemberFlags,
    pending: false,
    communication_disabled_until: null,
  };
}

/**
 * A user's message as MESSAGE_CREATE carries it (message object + guild_id, member, mentions with
 * members). A reply (`replyTo`) is type 19 (REPLY) with a `message_reference` to the replied-to
 * message and that message as `referenced_message`; when the reply pings (`ping`, the client's
 * default), the replied-to author is also in `mentions`, though not in the content
 * (https://discord.com/developers/docs/resources/message#message-object,
 * #message-reference-structure, and the allowed-mentions `replied_user` rule).
 */
export function messageCreate(options: {
  channelId: string;
  author: APIUser;
  content: string;
  guildId?: string;
  /** Users mentioned (`<@id>` in content). */
  mentions?: APIUser[];
  mentionRoles?: string[];
  /** Set 1 for a DM (the event carries `channel_type` for DMs). */
  channelType?: ChannelType;
  /** Reply to this message (as posted, e.g. one of `FakeDiscordRest.messages`); `ping` defaults to true. */
  replyTo?: { message: APIMessage; ping?: boolean };
  id?: string;
}) {
  const reply = options.replyTo;
  const mentioned = [...(options.mentions ?? [])];
  if (reply && reply.ping !== false && !mentioned.some((u) => u.id === reply.message.author.id)) {
    mentioned.push(reply.message.author);
  }
  const message: APIMessage = {
    id: options.id ?? snowflake(),
    channel_id: options.channelId,
    author: options.author,
    content: options.content,
    timestamp: new Date().toISOString(),
    edited_timestamp: null,
    tts: false,
    mention_everyone: false,
    mentions: mentioned,
    mention_roles: options.mentionRoles ?? [],
    attachments: [],
    embeds: [],
    pinned: false,
    type: reply ? MessageType.Reply : MessageType.Default,
    flags: 0 as MessageFlags,
    ...(reply
      ? {
          message_reference: {
            type: 0,
            message_id: reply.message.id,
            channel_id: reply.message.channel_id,
            ...(options.guildId ? { guild_id: options.guildId } : {}),
          },
          referenced_message: stripRecorded(reply.message),
        }
      : {}),
  };
  return {
    ...message,
    ...(options.guildId
      ? {
          guild_id: options.guildId,
          member: { ...member(options.author), user: undefined },
          mentions: mentioned.map((u) => ({
            ...u,
            member: { ...member(u), user: undefined },
          })),
        }
      : {}),
    ...(options.channelType !== undefined ? { channel_type: options.channelType } : {}),
  };
}

/** The message object alone, without what a test fake recorded beside it (`body`). */
function stripRecorded(m: APIMessage): APIMessage {
  const { body: _body, ...rest } = m as APIMessage & { body?: unknown };
  return rest;
}

/** MESSAGE_REACTION_ADD data (guild: with the reacting member). */
export function reactionAdd(options: {
  userId: string;
  channelId: string;
  messageId: string;
  emoji: APIEmoji;
  guildId?: string;
  member?: APIGuildMember;
  messageAuthorId?: string;
}): GatewayMessageReactionAddDispatchData {
  return {
    user_id: options.userId,
    channel_id: options.channelId,
    message_id: options.messageId,
    emoji: options.emoji,
    burst: false,
    type: ReactionType.Normal,
    ...(options.guildId ? { guild_id: options.guildId } : {}),
    ...(options.member ? { member: options.member } : {}),
    ...(options.messageAuthorId ? { message_author_id: options.messageAuthorId } : {}),
  };
}

/** MESSAGE_REACTION_REMOVE data (no member). */
export function reactionRemove(options: {
  userId: string;
  channelId: string;
  messageId: string;
  emoji: APIEmoji;
  guildId?: string;
}): GatewayMessageReactionRemoveDispatchData {
  return {
    user_id: options.userId,
    channel_id: options.channelId,
    message_id: options.messageId,
    emoji: options.emoji,
    burst: false,
    type: ReactionType.Normal,
    ...(options.guildId ? { guild_id: options.guildId } : {}),
  };
}

interface InteractionBase {
  world: DiscordWorld;
  /** The invoking user; in a guild with `roles` as their member role ids. */
  user: APIUser;
  roles?: string[];
  channelId: string;
  /** Omit for a DM interaction. */
  guildId?: string;
}

function interactionBase(o: InteractionBase) {
  const where = o.guildId
    ? {
        guild_id: o.guildId,
        guild: { id: o.guildId, features: [], locale: 'en-US' },
        member: { ...member(o.user, o.roles ?? []), permissions: '2248473465835073' },
        guild_locale: 'en-US',
        context: 0,
        authorizing_integration_owners: { '0': o.guildId },
        channel: { id: o.channelId, type: ChannelType.GuildText, guild_id: o.guildId, name: 'support' },
      }
    : {
        user: o.user,
        context: 1,
        authorizing_integration_owners: { '0': o.user.id },
        channel: { id: o.channelId, type: ChannelType.DM, recipients: [o.user] },
      };
  return {
    id: snowflake(),
    application_id: o.world.applicationId,
    token: `itoken-${snowflake()}`,
    version: 1,
    channel_id: o.channelId,
    app_permissions: '2248473465835073',
    locale: 'en-US',
    entitlements: [],
    attachment_size_limit: 10_485_760,
    ...where,
  };
}

/** INTERACTION_CREATE for `/support <sub> [option]` (type 2 APPLICATION_COMMAND, chat input). */
export function supportCommandInteraction(
  o: InteractionBase & { subcommand: string; options?: Record<string, string> },
) {
  return {
    ...interactionBase(o),
    type: InteractionType.ApplicationCommand,
    data: {
      id: o.world.applicationId.replace(/.$/, '9'),
      name: 'support',
      type: 1,
      options: [
        {
          name: o.subcommand,
          type: 1,
          options: Object.entries(o.options ?? {}).map(([name, value]) => ({ name, type: 3, value })),
        },
      ],
    },
  };
}

/** INTERACTION_CREATE for a button press (type 3 MESSAGE_COMPONENT) on `message`. */
export function buttonInteraction(o: InteractionBase & { customId: string; message: APIMessage }) {
  return {
    ...interactionBase(o),
    type: InteractionType.MessageComponent,
    message: o.message,
    data: { custom_id: o.customId, component_type: 2 },
  };
}
