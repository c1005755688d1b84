import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type WebSocket, WebSocketServer } from 'ws';

/** One Web API call as the fake received it. */
export interface SlackApiCall {
  /** Web API method, e.g. `chat.postMessage`. */
  method: string;
  /** Parsed form or JSON body; form fields holding JSON (`blocks`) are parsed. */
  body: Record<string, unknown>;
  /** Bearer token of the call, or null. */
  token: string | null;
  /** What the fake answered. */
  response: Record<string, unknown>;
}

/** A message chat.postMessage accepted. */
export interface PostedMessage {
  channel: string;
  ts: string;
  threadTs?: string;
  text?: string;
  blocks?: Record<string, unknown>[];
}

/** A POST to a `response_url` the fake handed out. */
export interface ResponseUrlPost {
  url: string;
  body: Record<string, unknown>;
  /** Set when the fake refused the post (`used_url`, `expired_url`); such posts show nothing. */
  error?: string;
}

/**
 * How often and how long one `response_url` may be used: "up to 5 times within 30 minutes"
 * (https://api.slack.com/interactivity/handling#message_responses).
 */
export const FAKE_RESPONSE_URL_LIMITS = { posts: 5, ttlMs: 30 * 60_000 } as const;

export interface FakeSlackApiOptions {
  /** The bot token the fake accepts; other tokens get `invalid_auth`. */
  botToken: string;
  /** The app-level token (`xapp-…`) `apps.connections.open` accepts, for Socket Mode. */
  appToken?: string;
  teamId?: string;
  botUserId?: string;
  botId?: string;
  /** User group id → member user ids, for usergroups.users.list. */
  userGroups?: Record<string, string[]>;
  /** Delay before every Web API answer, in ms (models the network and Slack's own latency). */
  latencyMs?: number;
}

/**
 * Slack's documented message limits the fake enforces on chat.postMessage
 * (https://api.slack.com/methods/chat.postMessage, https://api.slack.com/reference/block-kit/blocks):
 * ≤ 50 blocks, section/context text ≤ 3,000, button text ≤ 75 and value ≤ 2,000, action_id and block_id
 * ≤ 255, ≤ 25 elements per actions block, ≤ 10 per context block. Observed: the blocks of one message
 * together fail with `msg_blocks_too_long` beyond about 13,200 characters of text; `text` beyond 4,000
 * characters fails with `msg_too_long` (the docs say it is truncated at 40,000; clients hit the
 * lower bound in practice — see /work/shared/notes/dependencies.md).
 */
export const FAKE_SLACK_LIMITS = {
  textChars: 4_000,
  blocks: 50,
  sectionTextChars: 3_000,
  blocksTextChars: 13_200,
  buttonTextChars: 75,
  buttonValueChars: 2_000,
  idChars: 255,
  actionsElements: 25,
  contextElements: 10,
} as const;

class ApiError extends Error {
  constructor(
    readonly code: string,
    readonly messages: string[] = [],
  ) {
    super(code);
  }
}

/**
 * A small local Slack Web API (https://api.slack.com/web) that Bolt's WebClient reaches through
 * `clientOptions.slackApiUrl = fake.apiUrl`. Speaks the documented wire format: POST
 * `/api/<method>` with `application/x-www-form-urlencoded` (the WebClient's default; object fields
 * such as `blocks` are JSON strings) or `application/json`, token in `Authorization: Bearer`, and
 * every answer HTTP 200 with `{ok: true, …}` or `{ok: false, error}` (plus
 * `response_metadata.messages` for block errors, as Slack sends them).
 *
 * Methods: `auth.test`, `chat.postMessage` (fresh unique `ts`; rejects like Slack with `no_text`,
 * `msg_too_long`, `invalid_blocks`, `msg_blocks_too_long`, `channel_not_found`), `chat.postEphemeral`,
 * `chat.getPermalink`, `chat.delete`, `usergroups.users.list` (`no_such_subteam` for unknown
 * groups); anything else is `unknown_method`. Socket Mode: `apps.connections.open` (app token
 * only) hands out a `ws://` URL on the same port, where the fake says `hello` and sends
 * `events_api` envelopes that the client acks by `envelope_id`. It also accepts JSON POSTs to the `response_url`s it
 * hands out (`responseUrl()`), as `hooks.slack.com/commands/…` does for slash commands: at most 5
 * per url within 30 minutes (`FAKE_RESPONSE_URL_LIMITS`); beyond that, HTTP 404 with `used_url` or
 * `expired_url` (recorded in `refusedResponses`).
 */
export class FakeSlackApi {
  readonly calls: SlackApiCall[] = [];
  readonly messages: PostedMessage[] = [];
  /** Accepted `response_url` posts, in order. */
  readonly responses: ResponseUrlPost[] = [];
  /** Refused `response_url` posts (over the limit, expired, or an url the fake never handed out). */
  readonly refusedResponses: ResponseUrlPost[] = [];
  /** `response_url` path → when it was handed out (`Date.now()`). */
  readonly #responseUrls = new Map<string, number>();
  readonly teamId: string;
  readonly botUserId: string;
  readonly botId: string;
  #seq = 0;
  #base = '';
  readonly #userGroups: Record<string, string[]>;
  readonly #rateLimited = new Map<string, number>();
  #wss: WebSocketServer | null = null;
  #socket: WebSocket | null = null;
  readonly #pendingAcks = new Map<string, (ack: Record<string, unknown>) => void>();

  private constructor(
    private readonly server: Server,
    private readonly options: FakeSlackApiOptions,
  ) {
    this.teamId = options.teamId ?? 'T0FAKE';
    this.botUserId = options.botUserId ?? 'UBOT';
    this.botId = options.botId ?? 'BBOT';
    this.#userGroups = options.userGroups ?? {};
  }

  /** Starts the server on 127.0.0.1 at a free port. */
  static async start(options: FakeSlackApiOptions): Promise<FakeSlackApi> {
    let fake: FakeSlackApi | undefined;
    const server = createServer((req, res) => {
      fake?.handle(req, res).catch((err) => {
        res.statusCode = 500;
        res.end(String(err));
      });
    });
    fake = new FakeSlackApi(server, options);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    fake.#base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return fake;
  }

  /** Web API base URL for `clientOptions.slackApiUrl`, with the trailing slash the WebClient expects. */
  get apiUrl(): string {
    return `${this.#base}/api/`;
  }

  /** A fresh `response_url`, shaped like Slack's (`…/commands/<team>/<id>/<secret>`). */
  responseUrl(): string {
    const path = `/commands/${this.teamId}/${++this.#seq}/${randomBytes(8).toString('hex')}`;
    this.#responseUrls.set(path, Date.now());
    return `${this.#base}${path}`;
  }

  /** Makes a `response_url` expire now, as 30 minutes after its command (later posts get `expired_url`). */
  expireResponseUrl(url: string): void {
    const path = new URL(url).pathname;
    if (this.#responseUrls.has(path))
      this.#responseUrls.set(path, Date.now() - FAKE_RESPONSE_URL_LIMITS.ttlMs);
  }

  /**
   * Answers the next call of `method` with HTTP 429 and `Retry-After: retryAfterSeconds`, as Slack's
   * rate limiting does (https://api.slack.com/apis/rate-limits); the call is recorded with error
   * `ratelimited` and has no effect.
   */
  rateLimitNext(method: string, retryAfterSeconds = 1): void {
    this.#rateLimited.set(method, retryAfterSeconds);
  }

  /** Forgets every recorded call, message and response_url post (between tests sharing one fake). */
  reset(): void {
    this.calls.length = 0;
    this.messages.length = 0;
    this.responses.length = 0;
    this.refusedResponses.length = 0;
  }

  /** Calls of one method, in arrival order. */
  callsTo(method: string): SlackApiCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  /** Accepted messages in one thread (by the parent ts), in order. */
  thread(channel: string, threadTs: string): PostedMessage[] {
    return this.messages.filter((m) => m.channel === channel && m.threadTs === threadTs);
  }

  /** Resolves once a Socket Mode client has connected and been sent `hello`. */
  async socketConnected(timeoutMs = 10_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (this.#socket === null) {
      if (Date.now() > until) throw new Error('no Socket Mode client connected');
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /**
   * Sends an Events API payload over Socket Mode as an `events_api` envelope
   * (https://api.slack.com/apis/connections/socket#events) and resolves with the client's ack
   * (`{envelope_id, payload?}`) and how long it took, in ms.
   */
  async socketEvent(
    payload: Record<string, unknown>,
    retryAttempt = 0,
  ): Promise<{ ack: Record<string, unknown>; ms: number }> {
    const socket = this.#socket;
    if (socket === null) throw new Error('no Socket Mode client connected');
    const envelopeId = `env-${++this.#seq}-${randomBytes(4).toString('hex')}`;
    const started = performance.now();
    const ack = new Promise<Record<string, unknown>>((resolve) => this.#pendingAcks.set(envelopeId, resolve));
    socket.send(
      JSON.stringify({
        envelope_id: envelopeId,
        payload,
        type: 'events_api',
        accepts_response_payload: false,
        retry_attempt: retryAttempt,
        retry_reason: retryAttempt > 0 ? 'timeout' : '',
      }),
    );
    const body = await ack;
    return { ack: body, ms: performance.now() - started };
  }

  private openSocketServer(): string {
    if (this.#wss === null) {
      const wss = new WebSocketServer({ server: this.server, path: '/link/' });
      wss.on('connection', (ws) => {
        this.#socket = ws;
        ws.on('message', (data) => {
          const msg = JSON.parse(String(data)) as { envelope_id?: string };
          const resolve = msg.envelope_id ? this.#pendingAcks.get(msg.envelope_id) : undefined;
          if (msg.envelope_id && resolve) {
            this.#pendingAcks.delete(msg.envelope_id);
            resolve(msg as Record<string, unknown>);
          }
        });
        ws.on('close', () => {
          if (this.#socket === ws) this.#socket = null;
        });
        ws.send(
          JSON.stringify({
            type: 'hello',
            num_connections: 1,
            debug_info: { host: 'fake', approximate_connection_time: 18060 },
            connection_info: { app_id: 'A0FAKE' },
          }),
        );
      });
      this.#wss = wss;
    }
    return `${this.#base.replace(/^http/, 'ws')}/link/?ticket=${randomBytes(8).toString('hex')}&app_id=A0FAKE`;
  }

  async close(): Promise<void> {
    for (const client of this.#wss?.clients ?? []) client.terminate();
    this.#wss?.close();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = await readBody(req);
    const url = new URL(req.url ?? '/', this.#base);
    if (req.method === 'POST' && url.pathname.startsWith('/commands/')) {
      const post = { url: `${this.#base}${url.pathname}`, body: parseBody(req, raw) };
      const issued = this.#responseUrls.get(url.pathname);
      const used = this.responses.filter((r) => r.url === post.url).length;
      // Slack refuses a sixth post, or any post after 30 minutes. The docs name the limit but not
      // the refusal's shape; the fake answers HTTP 404 with the error code as plain text, and the
      // bot relies only on the non-2xx status (Bolt's `respond` rejects with a RespondError).
      const error =
        issued === undefined || Date.now() - issued >= FAKE_RESPONSE_URL_LIMITS.ttlMs
          ? 'expired_url'
          : used >= FAKE_RESPONSE_URL_LIMITS.posts
            ? 'used_url'
            : null;
      if (error) {
        this.refusedResponses.push({ ...post, error });
        res.writeHead(404, { 'content-type': 'text/plain' }).end(error);
        return;
      }
      this.responses.push(post);
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      return;
    }
    const method = url.pathname.startsWith('/api/') ? url.pathname.slice('/api/'.length) : null;
    if (req.method !== 'POST' || method === null) {
      res.writeHead(404).end();
      return;
    }
    const body = parseBody(req, raw);
    const retryAfter = this.#rateLimited.get(method);
    if (retryAfter !== undefined) {
      this.#rateLimited.delete(method);
      const response = { ok: false, error: 'ratelimited' };
      this.calls.push({ method, body, token: null, response });
      res
        .writeHead(429, { 'content-type': 'application/json', 'retry-after': String(retryAfter) })
        .end(JSON.stringify(response));
      return;
    }
    const header = req.headers.authorization;
    const token = header?.startsWith('Bearer ')
      ? header.slice(7)
      : typeof body.token === 'string'
        ? body.token
        : null;
    let response: Record<string, unknown>;
    try {
      if (token === null) throw new ApiError('not_authed');
      if (method === 'apps.connections.open') {
        // Only an app-level token may open a Socket Mode connection.
        if (!this.options.appToken || token !== this.options.appToken) throw new ApiError('invalid_auth');
        response = { ok: true, url: this.openSocketServer() };
      } else {
        if (token !== this.options.botToken) throw new ApiError('invalid_auth');
        response = { ok: true, ...this.dispatch(method, body) };
      }
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      response = { ok: false, error: err.code };
      if (err.messages.length > 0) response.response_metadata = { messages: err.messages };
    }
    this.calls.push({ method, body, token, response });
    if (this.options.latencyMs) await new Promise((r) => setTimeout(r, this.options.latencyMs));
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(response));
  }

  private dispatch(method: string, body: Record<string, unknown>): Record<string, unknown> {
    switch (method) {
      case 'auth.test':
        return {
          url: 'https://fake.slack.com/',
          team: 'Fake',
          user: 'supportbot',
          team_id: this.teamId,
          user_id: this.botUserId,
          bot_id: this.botId,
          is_enterprise_install: false,
        };
      case 'chat.postMessage': {
        const channel = str(body.channel);
        if (!channel) throw new ApiError('channel_not_found');
        const text = str(body.text);
        const blocks = checkBlocks(body.blocks);
        if (!text && !blocks) throw new ApiError('no_text');
        if (text && text.length > FAKE_SLACK_LIMITS.textChars) throw new ApiError('msg_too_long');
        const ts = this.nextTs();
        const threadTs = str(body.thread_ts) || undefined;
        this.messages.push({ channel, ts, threadTs, text, blocks });
        return {
          channel,
          ts,
          message: {
            type: 'message',
            user: this.botUserId,
            bot_id: this.botId,
            text,
            blocks,
            ts,
            thread_ts: threadTs,
          },
        };
      }
      case 'chat.postEphemeral': {
        if (!str(body.channel)) throw new ApiError('channel_not_found');
        if (!str(body.user)) throw new ApiError('user_not_in_channel');
        const text = str(body.text);
        if (!text && !checkBlocks(body.blocks)) throw new ApiError('no_text');
        if (text && text.length > FAKE_SLACK_LIMITS.textChars) throw new ApiError('msg_too_long');
        return { message_ts: this.nextTs() };
      }
      case 'chat.getPermalink': {
        const channel = str(body.channel);
        const ts = str(body.message_ts);
        if (!channel) throw new ApiError('channel_not_found');
        if (!/^\d+\.\d+$/.test(ts)) throw new ApiError('message_not_found');
        return { channel, permalink: `https://fake.slack.com/archives/${channel}/p${ts.replace('.', '')}` };
      }
      case 'chat.delete': {
        const channel = str(body.channel);
        const ts = str(body.ts);
        const i = this.messages.findIndex((m) => m.channel === channel && m.ts === ts);
        if (i < 0) throw new ApiError('message_not_found');
        this.messages.splice(i, 1);
        return { channel, ts };
      }
      case 'usergroups.users.list': {
        const users = this.#userGroups[str(body.usergroup)];
        if (!users) throw new ApiError('no_such_subteam');
        return { users };
      }
      default:
        throw new ApiError('unknown_method');
    }
  }

  /** `ts` values are `<unix seconds>.<6 digits>`, unique and increasing, like Slack's. */
  private nextTs(): string {
    const n = ++this.#seq;
    return `${Math.floor(Date.now() / 1000)}.${String(n % 1_000_000).padStart(6, '0')}`;
  }
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '';
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Form bodies become objects whose JSON-valued fields (`blocks`, `attachments`) are parsed. */
function parseBody(req: IncomingMessage, raw: string): Record<string, unknown> {
  if (raw === '') return {};
  if ((req.headers['content-type'] ?? '').includes('application/json')) return JSON.parse(raw);
  const out: Record<string, unknown> = {};
  for (const [k, v] of new URLSearchParams(raw)) {
    out[k] = (k === 'blocks' || k === 'attachments' || k === 'metadata') && v.trim() !== '' ? tryJson(v) : v;
  }
  return out;
}

function tryJson(v: string): unknown {
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
}

/**
 * Validates a `blocks` argument the way chat.postMessage does; returns the blocks, or undefined
 * when there are none.
 */
function checkBlocks(value: unknown): Record<string, unknown>[] | undefined {
  if (value === undefined || value === '') return undefined;
  if (!Array.isArray(value)) throw new ApiError('invalid_blocks_format');
  const L = FAKE_SLACK_LIMITS;
  const problems: string[] = [];
  const fail = (pointer: string, why: string) => problems.push(`[ERROR] ${why} [json-pointer:${pointer}]`);
  if (value.length > L.blocks) fail('/blocks', `no more than ${L.blocks} items allowed`);
  const blockIds = new Set<string>();
  let textChars = 0;
  const textObject = (t: unknown, at: string, max: number, types = ['mrkdwn', 'plain_text']) => {
    const o = t as { type?: unknown; text?: unknown } | null;
    if (!o || typeof o !== 'object' || typeof o.text !== 'string' || !types.includes(String(o.type))) {
      fail(at, 'must be a valid text object');
      return;
    }
    textChars += o.text.length;
    if (o.text.length === 0) fail(`${at}/text`, 'must be more than 0 characters');
    if (o.text.length > max) fail(`${at}/text`, `must be less than ${max + 1} characters`);
  };
  for (const [i, b] of (value as Record<string, unknown>[]).entries()) {
    const at = `/blocks/${i}`;
    if (typeof b !== 'object' || b === null) {
      fail(at, 'must be an object');
      continue;
    }
    if (b.block_id !== undefined) {
      const id = str(b.block_id);
      if (id.length > L.idChars) fail(`${at}/block_id`, `must be less than ${L.idChars + 1} characters`);
      if (blockIds.has(id)) fail(`${at}/block_id`, 'must be unique');
      blockIds.add(id);
    }
    switch (b.type) {
      case 'section':
        if (b.text === undefined && b.fields === undefined) fail(at, 'must provide text or fields');
        if (b.text !== undefined) textObject(b.text, `${at}/text`, L.sectionTextChars);
        break;
      case 'context': {
        const els = Array.isArray(b.elements) ? b.elements : [];
        if (els.length === 0 || els.length > L.contextElements)
          fail(`${at}/elements`, `must have 1..${L.contextElements} items`);
        els.forEach((e, j) => {
          if ((e as { type?: string }).type !== 'image')
            textObject(e, `${at}/elements/${j}`, L.sectionTextChars);
        });
        break;
      }
      case 'actions': {
        const els = Array.isArray(b.elements) ? b.elements : [];
        if (els.length === 0 || els.length > L.actionsElements)
          fail(`${at}/elements`, `must have 1..${L.actionsElements} items`);
        const actionIds = new Set<string>();
        els.forEach((e: Record<string, unknown>, j) => {
          const ep = `${at}/elements/${j}`;
          if (e.type !== 'button') return;
          textObject(e.text, `${ep}/text`, L.buttonTextChars, ['plain_text']);
          const actionId = str(e.action_id);
          if (actionId.length > L.idChars) fail(`${ep}/action_id`, 'too long');
          if (actionIds.has(actionId)) fail(`${ep}/action_id`, 'must be unique');
          actionIds.add(actionId);
          if (str(e.value).length > L.buttonValueChars)
            fail(`${ep}/value`, `must be less than ${L.buttonValueChars + 1} characters`);
        });
        break;
      }
      case 'divider':
        break;
      case 'header':
        textObject(b.text, `${at}/text`, 150, ['plain_text']);
        break;
      default:
        fail(`${at}/type`, `unsupported block type in this fake: ${String(b.type)}`);
    }
  }
  if (problems.length > 0) throw new ApiError('invalid_blocks', problems);
  if (textChars > L.blocksTextChars) throw new ApiError('msg_blocks_too_long');
  return value;
}

// ── The other direction: Slack delivering events to the app ──────────────────────────────────

/**
 * Signs a request body the way Slack does (https://api.slack.com/authentication/verifying-requests-from-slack):
 * `X-Slack-Signature: v0=<hex HMAC-SHA256(signingSecret, "v0:" + timestamp + ":" + body)>` with
 * `X-Slack-Request-Timestamp: <unix seconds>`.
 */
export function slackSignatureHeaders(
  signingSecret: string,
  body: string,
  timestamp = Math.floor(Date.now() / 1000),
): Record<string, string> {
  const hmac = createHmac('sha256', signingSecret).update(`v0:${timestamp}:${body}`).digest('hex');
  return { 'x-slack-signature': `v0=${hmac}`, 'x-slack-request-timestamp': String(timestamp) };
}

export interface Delivery {
  status: number;
  /** Time from sending to the full response, in ms (the app's ack time). */
  ms: number;
  body: string;
}

/**
 * Delivers HTTP requests to a Bolt app's receiver as Slack does: Events API envelopes and
 * `block_actions` / slash-command forms, signed with the signing secret.
 */
export class SlackDeliverer {
  #eventSeq = 0;

  constructor(
    /** e.g. `http://127.0.0.1:3000/slack/events`. */
    readonly endpoint: string,
    readonly signingSecret: string,
    readonly teamId: string,
    readonly apiAppId = 'A0FAKE',
  ) {}

  /** A fresh `event_id` (`Ev…`). */
  eventId(): string {
    return `Ev${Date.now().toString(36).toUpperCase()}${(++this.#eventSeq).toString(36).toUpperCase()}`;
  }

  /**
   * An `event_callback` envelope (https://api.slack.com/apis/events-api#callback-field) around `event`.
   */
  envelope(event: Record<string, unknown>, eventId = this.eventId()): Record<string, unknown> {
    return {
      token: 'deprecated-verification-token',
      team_id: this.teamId,
      api_app_id: this.apiAppId,
      event,
      type: 'event_callback',
      event_id: eventId,
      event_time: Math.floor(Date.now() / 1000),
      authorizations: [{ team_id: this.teamId, user_id: 'UBOT', is_bot: true, is_enterprise_install: false }],
      is_ext_shared_channel: false,
    };
  }

  /** POSTs a raw body with valid (or, with `badSignature`, wrong) signature headers. */
  async post(
    body: string,
    contentType: string,
    extraHeaders: Record<string, string> = {},
    badSignature = false,
  ): Promise<Delivery> {
    const headers = slackSignatureHeaders(badSignature ? `${this.signingSecret}x` : this.signingSecret, body);
    const started = performance.now();
    const res = await fetch(this.endpoint, {
      method: 'POST',
      headers: { 'content-type': contentType, ...headers, ...extraHeaders },
      body,
    });
    const text = await res.text();
    return { status: res.status, ms: performance.now() - started, body: text };
  }

  /** Delivers an Events API envelope; `retryNum` adds `X-Slack-Retry-Num`/`-Reason` like a re-delivery. */
  event(
    envelope: Record<string, unknown>,
    retry?: { num: number; reason?: string },
    badSignature = false,
  ): Promise<Delivery> {
    const extra: Record<string, string> = retry
      ? { 'x-slack-retry-num': String(retry.num), 'x-slack-retry-reason': retry.reason ?? 'http_timeout' }
      : {};
    return this.post(JSON.stringify(envelope), 'application/json', extra, badSignature);
  }

  /** Delivers an interactivity payload (form field `payload` holding JSON). */
  interaction(payload: Record<string, unknown>): Promise<Delivery> {
    return this.post(
      new URLSearchParams({ payload: JSON.stringify(payload) }).toString(),
      'application/x-www-form-urlencoded',
    );
  }

  /** Delivers a slash command (https://api.slack.com/interactivity/slash-commands#app_command_handling). */
  command(fields: Record<string, string>): Promise<Delivery> {
    return this.post(new URLSearchParams(fields).toString(), 'application/x-www-form-urlencoded');
  }
}
