import { createHash, randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { SupportbotError } from '../errors.ts';
import {
  checkJob,
  checkNonNegativeInt,
  checkPositiveInt,
  checkRating,
  checkTurn,
  type JobStatus,
  type ListAnswersOptions,
  type ListJobsOptions,
  type LockHandle,
  type RateTokenResult,
  type RatingSummary,
  type RatingValue,
  type StateStore,
} from '../state-store.ts';
import type { AnswerRecord, Turn } from '../types.ts';

export interface RedisStateStoreOptions {
  /**
   * Prepended to every key, so several bots (or test runs) can share one Redis. Default
   * `supportbot:`. Replicas of one bot must use the same prefix.
   */
  keyPrefix?: string;
  /** How long `connect` waits for the server to answer before `store-unavailable`. Default 2,000 ms. */
  connectTimeoutMs?: number;
  /** How long one call waits for its reply before `store-unavailable`. Default 5,000 ms. */
  commandTimeoutMs?: number;
}

/** A Lua script run with EVALSHA, falling back to EVAL once the server has forgotten it. */
interface Script {
  readonly source: string;
  readonly sha: string;
}

function script(source: string): Script {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

// Scripts get every key they touch in KEYS (never built inside Lua), as the EVAL docs require
// (https://redis.io/docs/latest/develop/interact/programmability/eval-intro/).
const SCRIPTS = {
  /**
   * Saves a record as a JSON string and indexes it in a sorted set whose members all have score 0
   * and sort by bytes (`sortKey \0 id`), so ZRANGE BYLEX gives SQLite's `ORDER BY sortKey, id`.
   * A changed sort key replaces the old member. KEYS: record, id → member hash, index.
   * ARGV: json, id, member.
   */
  saveIndexed: script(`
    local old = redis.call('HGET', KEYS[2], ARGV[2])
    if old and old ~= ARGV[3] then redis.call('ZREM', KEYS[3], old) end
    redis.call('SET', KEYS[1], ARGV[1])
    redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
    redis.call('ZADD', KEYS[3], 0, ARGV[3])
    return 1`),
  /**
   * KEYS: answer, ratings hash. ARGV: user id, '1' | '-1' | '0' (retract).
   * Returns the previous value (1, -1, 0 for none), or 2 when the answer does not exist.
   */
  setRating: script(`
    if redis.call('EXISTS', KEYS[1]) == 0 then return 2 end
    local previous = redis.call('HGET', KEYS[2], ARGV[1])
    if ARGV[2] == '0' then
      redis.call('HDEL', KEYS[2], ARGV[1])
    elseif previous ~= ARGV[2] then
      redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
    end
    if previous then return tonumber(previous) end
    return 0`),
  /** Compare-and-HDEL of one rating. KEYS: ratings hash. ARGV: user, expected value. Returns 1 when removed. */
  clearRatingIf: script(`
    if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
    return 0`),
  /** Compare-and-PEXPIRE. KEYS: lock. ARGV: token, ttl ms. Returns 1 when renewed. */
  renewLock: script(`
    if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
    return 0`),
  /** Compare-and-DEL, the release script of the distributed-lock pattern. KEYS: lock. ARGV: token. */
  releaseLock: script(`
    if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
    return 0`),
  /**
   * Fixed-window counter (INCR docs, "Pattern: Rate limiter 1"); INCR and PEXPIRE run together,
   * so a window can never lose its expiry. KEYS: counter. ARGV: limit, window ms.
   * Returns {1, 0} when allowed, {0, ms left in the window} when not.
   */
  takeRateToken: script(`
    local count = redis.call('INCR', KEYS[1])
    if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
    if count <= tonumber(ARGV[1]) then return {1, 0} end
    local left = redis.call('PTTL', KEYS[1])
    if left < 0 then
      redis.call('PEXPIRE', KEYS[1], ARGV[2])
      left = tonumber(ARGV[2])
    end
    return {0, left}`),
} as const;

/** How many job ids `listJobs` reads per round trip while filtering by kind. */
const JOB_PAGE = 100;

/**
 * The state store on Redis via ioredis, for several bot replicas sharing one state. Every method
 * is one command, one MULTI or one Lua script, so each is atomic across replicas.
 *
 * Keys (after `keyPrefix`): `answer:<id>` (JSON), `answers` and `answers:member` (index),
 * `ratings:<answer id>` (hash user → 1 | -1), `message:<platform>:<message key>` (answer id),
 * `turns:<conversation key>` (list of JSON turns), `event:<key>`, `lock:<name>` (token),
 * `job:<id>` (JSON), `jobs` and `jobs:member` (index), `rate:<key>` (counter). Only event claims,
 * locks and rate counters expire.
 *
 * Connection policy: no offline queue and at most one retry per command, so a Redis that is down
 * makes calls fail at once with `store-unavailable` instead of queueing; ioredis keeps reconnecting
 * in the background and calls work again once it is back.
 */
export class RedisStateStore implements StateStore {
  readonly id: string;
  #redis: Redis | null;
  readonly #prefix: string;

  private constructor(redis: Redis, id: string, prefix: string) {
    this.#redis = redis;
    this.id = id;
    this.#prefix = prefix;
  }

  /**
   * Connects to `url` (`redis://[user:password@]host[:port][/db]`, `rediss://` for TLS) and waits
   * until the server answers.
   *
   * @throws SupportbotError `store-unopenable` when `url` is not a Redis URL; `store-unavailable`
   *   when the server does not answer within `connectTimeoutMs`.
   */
  static async connect(url: string, options: RedisStateStoreOptions = {}): Promise<RedisStateStore> {
    const connectTimeoutMs = options.connectTimeoutMs ?? 2_000;
    const id = redisId(url);
    let connected = false;
    let lastError: Error | undefined;
    const redis = new Redis(url, {
      lazyConnect: true,
      connectTimeout: connectTimeoutMs,
      commandTimeout: options.commandTimeoutMs ?? 5_000,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      // Give up at once on the first connection; once connected, keep reconnecting with backoff.
      retryStrategy: (times) => (connected ? Math.min(times * 100, 2_000) : null),
    });
    // Without a listener ioredis prints every connection error; the calls report them instead.
    redis.on('error', (err: Error) => {
      lastError = err;
    });
    let timer: NodeJS.Timeout | undefined;
    try {
      // connectTimeout only covers the TCP handshake; this also bounds a server that accepts the
      // connection but never answers the ready check.
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${connectTimeoutMs} ms`)),
          connectTimeoutMs,
        );
      });
      await Promise.race([redis.connect(), timeout]);
    } catch (err) {
      redis.disconnect();
      const reason = lastError?.message ?? (err as Error).message;
      throw new SupportbotError('store-unavailable', `cannot reach Redis at ${id.slice(6)}: ${reason}`, {
        cause: lastError ?? err,
      });
    } finally {
      clearTimeout(timer);
    }
    connected = true;
    return new RedisStateStore(redis, id, options.keyPrefix ?? 'supportbot:');
  }

  async saveAnswer(record: AnswerRecord): Promise<void> {
    await this.#run(async () => {
      await this.#eval(
        SCRIPTS.saveIndexed,
        [this.#key('answer', record.id), this.#key('answers:member'), this.#key('answers')],
        [JSON.stringify(answerFields(record)), record.id, `${record.createdAt}\0${record.id}`],
      );
    });
  }

  async getAnswer(id: string): Promise<AnswerRecord | null> {
    return this.#run(async (redis) => {
      const json = await redis.get(this.#key('answer', id));
      return json === null ? null : (JSON.parse(json) as AnswerRecord);
    });
  }

  async clearRatingIf(answerId: string, userId: string, expected: RatingValue): Promise<boolean> {
    return this.#run(async () => {
      checkRating(expected);
      const removed = await this.#eval(
        SCRIPTS.clearRatingIf,
        [this.#key('ratings', answerId)],
        [userId, String(expected)],
      );
      return removed === 1;
    });
  }

  async setRating(answerId: string, userId: string, value: RatingValue | null): Promise<RatingValue | null> {
    return this.#run(async () => {
      checkRating(value);
      const previous = await this.#eval(
        SCRIPTS.setRating,
        [this.#key('answer', answerId), this.#key('ratings', answerId)],
        [userId, String(value ?? 0)],
      );
      if (previous === 2) throw new SupportbotError('unknown-answer', `no answer with id ${answerId}`);
      return previous === 1 || previous === -1 ? previous : null;
    });
  }

  async ratingSummary(answerId: string): Promise<RatingSummary> {
    return this.#run(async (redis) => {
      // One HVALS is one snapshot; a per-answer hash stays small (one field per rater).
      const values = await redis.hvals(this.#key('ratings', answerId));
      const summary = { up: 0, down: 0 };
      for (const v of values) {
        if (v === '1') summary.up++;
        else if (v === '-1') summary.down++;
      }
      return summary;
    });
  }

  async listAnswers(options: ListAnswersOptions = {}): Promise<AnswerRecord[]> {
    return this.#run(async (redis) => {
      const limit = options.limit === undefined ? undefined : Math.max(0, Math.floor(options.limit));
      if (limit === 0) return [];
      const low = options.since === undefined ? '-' : `[${options.since}`;
      const range = options.order === 'newest-first' ? ['+', low, 'BYLEX', 'REV'] : [low, '+', 'BYLEX'];
      const members = (await redis.call(
        'ZRANGE',
        this.#key('answers'),
        ...range,
        ...(limit === undefined ? [] : ['LIMIT', '0', String(limit)]),
      )) as string[];
      return this.#getJson<AnswerRecord>('answer', members.map(idOfMember));
    });
  }

  async mapMessage(platform: string, messageKey: string, answerId: string): Promise<void> {
    await this.#run((redis) => redis.set(this.#messageKey(platform, messageKey), answerId));
  }

  async answerForMessage(platform: string, messageKey: string): Promise<string | null> {
    return this.#run((redis) => redis.get(this.#messageKey(platform, messageKey)));
  }

  async appendTurn(conversationKey: string, turn: Turn, maxTurns: number): Promise<void> {
    await this.#run(async (redis) => {
      checkTurn(turn);
      checkPositiveInt('maxTurns', maxTurns);
      const key = this.#key('turns', conversationKey);
      const replies = await redis
        .multi()
        .rpush(key, JSON.stringify({ role: turn.role, text: turn.text }))
        .ltrim(key, -maxTurns, -1)
        .exec();
      const failed = replies?.find(([err]) => err !== null)?.[0];
      if (failed) throw failed;
    });
  }

  async threadHistory(conversationKey: string, limit: number): Promise<Turn[]> {
    return this.#run(async (redis) => {
      checkNonNegativeInt('limit', limit);
      // LRANGE -0 -1 would be the whole list.
      if (limit === 0) return [];
      const items = await redis.lrange(this.#key('turns', conversationKey), -limit, -1);
      return items.map((item) => JSON.parse(item) as Turn);
    });
  }

  async claimEvent(key: string, ttlMs: number): Promise<boolean> {
    return this.#run(async (redis) => {
      checkPositiveInt('ttlMs', ttlMs);
      return (await redis.set(this.#key('event', key), '1', 'PX', ttlMs, 'NX')) === 'OK';
    });
  }

  async acquireLock(name: string, ttlMs: number): Promise<LockHandle | null> {
    return this.#run(async (redis) => {
      checkPositiveInt('ttlMs', ttlMs);
      const token = randomBytes(16).toString('hex');
      const reply = await redis.set(this.#key('lock', name), token, 'PX', ttlMs, 'NX');
      return reply === 'OK' ? { name, token } : null;
    });
  }

  async renewLock(handle: LockHandle, ttlMs: number): Promise<boolean> {
    return this.#run(async () => {
      checkPositiveInt('ttlMs', ttlMs);
      const renewed = await this.#eval(
        SCRIPTS.renewLock,
        [this.#key('lock', handle.name)],
        [handle.token, ttlMs],
      );
      return renewed === 1;
    });
  }

  async releaseLock(handle: LockHandle): Promise<boolean> {
    return this.#run(async () => {
      const released = await this.#eval(
        SCRIPTS.releaseLock,
        [this.#key('lock', handle.name)],
        [handle.token],
      );
      return released === 1;
    });
  }

  async setJobStatus(job: JobStatus): Promise<void> {
    await this.#run(async () => {
      checkJob(job);
      await this.#eval(
        SCRIPTS.saveIndexed,
        [this.#key('job', job.id), this.#key('jobs:member'), this.#key('jobs')],
        [JSON.stringify(job), job.id, `${job.startedAt}\0${job.id}`],
      );
    });
  }

  async getJobStatus(id: string): Promise<JobStatus | null> {
    return this.#run(async (redis) => {
      const json = await redis.get(this.#key('job', id));
      return json === null ? null : (JSON.parse(json) as JobStatus);
    });
  }

  async listJobs(options: ListJobsOptions = {}): Promise<JobStatus[]> {
    return this.#run(async (redis) => {
      const limit =
        options.limit === undefined ? Number.POSITIVE_INFINITY : Math.max(0, Math.floor(options.limit));
      const jobs: JobStatus[] = [];
      // Without a kind, one page of exactly `limit`; with one, pages until enough match (jobs are
      // few: a sync or retrain now and then).
      const page = options.kind === undefined && Number.isFinite(limit) ? limit : JOB_PAGE;
      for (let offset = 0; jobs.length < limit; offset += page) {
        const members = (await redis.call(
          'ZRANGE',
          this.#key('jobs'),
          '+',
          '-',
          'BYLEX',
          'REV',
          'LIMIT',
          String(offset),
          String(page),
        )) as string[];
        const batch = await this.#getJson<JobStatus>('job', members.map(idOfMember));
        for (const job of batch) {
          if (jobs.length < limit && (options.kind === undefined || job.kind === options.kind))
            jobs.push(job);
        }
        if (members.length < page) break;
      }
      return jobs;
    });
  }

  async takeRateToken(key: string, limit: number, windowMs: number): Promise<RateTokenResult> {
    return this.#run(async () => {
      checkPositiveInt('limit', limit);
      checkPositiveInt('windowMs', windowMs);
      const [allowed, left] = (await this.#eval(
        SCRIPTS.takeRateToken,
        [this.#key('rate', key)],
        [limit, windowMs],
      )) as [number, number];
      return allowed === 1
        ? { allowed: true, retryAfterMs: 0 }
        : { allowed: false, retryAfterMs: Math.max(1, left) };
    });
  }

  async close(): Promise<void> {
    const redis = this.#redis;
    this.#redis = null;
    if (redis === null) return;
    try {
      await redis.quit();
    } catch {
      redis.disconnect();
    }
  }

  #key(kind: string, id?: string): string {
    return id === undefined ? `${this.#prefix}${kind}` : `${this.#prefix}${kind}:${id}`;
  }

  /** Platform names are escaped so `a:b` + `c` and `a` + `b:c` stay different keys. */
  #messageKey(platform: string, messageKey: string): string {
    return this.#key('message', `${encodeURIComponent(platform)}:${messageKey}`);
  }

  /** The JSON records of `ids` under `kind:<id>`, in order, skipping any that vanished. */
  async #getJson<T>(kind: string, ids: string[]): Promise<T[]> {
    if (ids.length === 0) return [];
    const values = await this.#open().mget(ids.map((id) => this.#key(kind, id)));
    return values.filter((v): v is string => v !== null).map((v) => JSON.parse(v) as T);
  }

  async #eval(s: Script, keys: string[], args: (string | number)[]): Promise<unknown> {
    const redis = this.#open();
    try {
      return await redis.evalsha(s.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return redis.eval(s.source, keys.length, ...keys, ...args);
    }
  }

  /** Runs one call: `store-closed` when closed; Redis and connection errors as `SupportbotError`s. */
  async #run<T>(call: (redis: Redis) => Promise<T>): Promise<T> {
    const redis = this.#open();
    try {
      return await call(redis);
    } catch (err) {
      if (err instanceof SupportbotError) throw err;
      const message = err instanceof Error ? err.message : String(err);
      if (err instanceof Error && err.name === 'ReplyError') {
        throw new SupportbotError('store-failed', `Redis ${this.id} refused a command: ${message}`, {
          cause: err,
        });
      }
      throw new SupportbotError('store-unavailable', `Redis ${this.id} is unavailable: ${message}`, {
        cause: err,
      });
    }
  }

  #open(): Redis {
    if (this.#redis === null) throw new SupportbotError('store-closed', `state store ${this.id} is closed`);
    return this.#redis;
  }
}

/** Exactly the fields SQLite keeps, so both stores return the same record. */
function answerFields(r: AnswerRecord): AnswerRecord {
  return {
    id: r.id,
    platform: r.platform,
    threadId: r.threadId,
    userId: r.userId,
    question: r.question,
    result: r.result,
    createdAt: r.createdAt,
    messageKeys: r.messageKeys ?? [],
  };
}

/** The id part after `sortKey \0` of an index member. */
function idOfMember(member: string): string {
  return member.slice(member.indexOf('\0') + 1);
}

/** `redis:host:port[/db]`, never the credentials. */
function redisId(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (err) {
    throw new SupportbotError('store-unopenable', 'the Redis URL is not a URL (expected redis://host:port)', {
      cause: err,
    });
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new SupportbotError(
      'store-unopenable',
      `the Redis URL has scheme ${parsed.protocol}, expected redis: or rediss:`,
    );
  }
  const db = parsed.pathname.replace(/^\//, '');
  return `redis:${parsed.hostname}:${parsed.port || '6379'}${db && db !== '0' ? `/${db}` : ''}`;
}
