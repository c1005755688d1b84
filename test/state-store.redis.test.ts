import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { RedisStateStore } from '../core/state-store/redis.ts';
import type { StateStore } from '../core/state-store.ts';
import { describeStateStoreContract, makeAnswer, makeJob } from './contract/state-store.contract.ts';
import { deleteRedisKeys, SKIP_REDIS, TEST_REDIS_URL } from './helpers/redis.ts';

// CI runs a real Redis on 127.0.0.1:6379. Without one these tests fail, on purpose, unless
// SUPPORTBOT_SKIP_REDIS=1 says to skip them (a laptop without Redis).
const REDIS_URL = TEST_REDIS_URL;
const SKIP = SKIP_REDIS;

/** Every test gets its own key prefix; all keys under the run's prefix are deleted afterwards. */
const runPrefix = `supportbot-test:${process.pid}:${Date.now()}:`;
let counter = 0;
const newPrefix = () => `${runPrefix}${++counter}:`;

async function probe(): Promise<string | null> {
  try {
    const store = await RedisStateStore.connect(REDIS_URL, { keyPrefix: runPrefix, connectTimeoutMs: 1_000 });
    await store.close();
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

const unreachable = await probe();

if (unreachable !== null && SKIP) {
  describe.skip(`RedisStateStore (skipped: SUPPORTBOT_SKIP_REDIS=1 and ${unreachable})`, () => {
    it('needs Redis', () => {});
  });
} else if (unreachable !== null) {
  describe('RedisStateStore', () => {
    it(`needs a Redis at ${REDIS_URL}`, () => {
      throw new Error(
        `${unreachable}. The Redis state store tests need a Redis server (CI provides one on 127.0.0.1:6379; ` +
          'locally e.g. `redis-server --port 6379`, or point SUPPORTBOT_TEST_REDIS_URL at one). ' +
          'Set SUPPORTBOT_SKIP_REDIS=1 to skip them.',
      );
    });
  });
} else {
  const prefixes = new WeakMap<StateStore, string>();
  async function connectTracked(keyPrefix: string): Promise<RedisStateStore> {
    const store = await RedisStateStore.connect(REDIS_URL, { keyPrefix });
    prefixes.set(store, keyPrefix);
    return store;
  }

  afterAll(async () => {
    await deleteRedisKeys(`${runPrefix}*`);
  });

  let current = '';
  describeStateStoreContract(
    'RedisStateStore',
    async () => {
      current = newPrefix();
      return connectTracked(current);
    },
    {
      async reopen(store) {
        const keyPrefix = prefixes.get(store);
        if (keyPrefix === undefined) throw new Error('not a store this suite opened');
        return connectTracked(keyPrefix);
      },
      async cleanup() {
        await deleteRedisKeys(`${current}*`);
      },
    },
  );

  describe('RedisStateStore', () => {
    const stores: StateStore[] = [];
    const admins: Redis[] = [];
    const track = <T extends StateStore>(store: T): T => {
      stores.push(store);
      return store;
    };
    /** A plain client on the same Redis, to look at keys directly. */
    const admin = async (): Promise<Redis> => {
      const client = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
      admins.push(client);
      await client.connect();
      return client;
    };
    afterEach(async () => {
      for (const store of stores.splice(0)) await store.close();
      for (const client of admins.splice(0)) client.disconnect();
    });

    it('has an id naming host and port, never credentials', async () => {
      const store = track(await RedisStateStore.connect(REDIS_URL, { keyPrefix: newPrefix() }));
      const url = new URL(REDIS_URL);
      expect(store.id).toBe(`redis:${url.hostname}:${url.port || '6379'}`);
      await expect(RedisStateStore.connect('redis://user:s3cret@127.0.0.1:1')).rejects.toSatisfy(
        (err: Error) => !err.message.includes('s3cret'),
      );
    });

    it('keeps every key under its prefix; another prefix sees nothing', async () => {
      const prefix = newPrefix();
      const store = track(await RedisStateStore.connect(REDIS_URL, { keyPrefix: prefix }));
      await store.saveAnswer(makeAnswer('a1'));
      await store.setRating('a1', 'u1', 1);
      await store.mapMessage('slack', 'C1:1.1', 'a1');
      await store.appendTurn('k', { role: 'user', text: 'hi' }, 5);
      await store.claimEvent('Ev1', 60_000);
      await store.acquireLock('L', 60_000);
      await store.setJobStatus(makeJob('j1'));
      await store.takeRateToken('u', 5, 60_000);

      const redis = await admin();
      const keys = (await redis.keys(`${prefix}*`)).map((k) => k.slice(prefix.length)).sort();
      expect(keys).toEqual([
        'answer:a1',
        'answers',
        'answers:member',
        'event:Ev1',
        'job:j1',
        'jobs',
        'jobs:member',
        'lock:L',
        'message:slack:C1:1.1',
        'rate:u',
        'ratings:a1',
        'turns:k',
      ]);
      // Only claims, locks and rate windows expire (PX); the rest stays.
      const ttl = async (k: string) => redis.pttl(`${prefix}${k}`);
      expect(await ttl('event:Ev1')).toBeGreaterThan(0);
      expect(await ttl('lock:L')).toBeGreaterThan(0);
      expect(await ttl('rate:u')).toBeGreaterThan(0);
      expect(await ttl('answer:a1')).toBe(-1);
      expect(await ttl('message:slack:C1:1.1')).toBe(-1);

      const other = track(await RedisStateStore.connect(REDIS_URL, { keyPrefix: newPrefix() }));
      expect(await other.getAnswer('a1')).toBeNull();
      expect(await other.answerForMessage('slack', 'C1:1.1')).toBeNull();
      expect(await other.claimEvent('Ev1', 60_000)).toBe(true);
      expect(await other.acquireLock('L', 60_000)).not.toBeNull();
    });

    it('still works after the server forgot its scripts (EVALSHA falls back to EVAL)', async () => {
      const store = track(await RedisStateStore.connect(REDIS_URL, { keyPrefix: newPrefix() }));
      await store.saveAnswer(makeAnswer('a1'));
      const redis = await admin();
      await redis.script('FLUSH');
      expect(await store.setRating('a1', 'u1', 1)).toBeNull();
      await redis.script('FLUSH');
      expect(await store.takeRateToken('u', 1, 1000)).toEqual({ allowed: true, retryAfterMs: 0 });
    });

    describe('when Redis is not there', () => {
      let servers: Server[] = [];
      let sockets: Socket[] = [];
      afterEach(async () => {
        for (const s of sockets) s.destroy();
        await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
        servers = [];
        sockets = [];
      });

      /** A TCP server on a free port; `onSocket` decides what it does with connections. */
      async function listen(onSocket: (socket: Socket) => void): Promise<number> {
        const server = createServer((socket) => {
          sockets.push(socket);
          onSocket(socket);
        });
        servers.push(server);
        await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
        const address = server.address();
        if (address === null || typeof address === 'string') throw new Error('no port');
        return address.port;
      }

      it('connect fails fast with store-unavailable when nothing listens', async () => {
        const port = await listen(() => {});
        await new Promise((r) => servers[0]?.close(r));
        servers = [];
        const started = Date.now();
        await expect(RedisStateStore.connect(`redis://127.0.0.1:${port}`)).rejects.toMatchObject({
          code: 'store-unavailable',
          message: expect.stringContaining(`cannot reach Redis at 127.0.0.1:${port}`),
        });
        expect(Date.now() - started).toBeLessThan(1_000);
      });

      it('connect gives up after connectTimeoutMs when the server never answers', async () => {
        const port = await listen(() => {}); // accepts, never replies
        const started = Date.now();
        await expect(
          RedisStateStore.connect(`redis://127.0.0.1:${port}`, { connectTimeoutMs: 300 }),
        ).rejects.toMatchObject({ code: 'store-unavailable' });
        const took = Date.now() - started;
        expect(took).toBeGreaterThanOrEqual(250);
        expect(took).toBeLessThan(2_000);
      });

      it('calls fail fast with store-unavailable when Redis goes away, and work again when it is back', async () => {
        const target = new URL(REDIS_URL);
        // A TCP proxy in front of the real Redis that the test can cut.
        let cut = false;
        const port = await listen((client) => {
          if (cut) {
            client.destroy();
            return;
          }
          const upstream = createConnection({ host: target.hostname, port: Number(target.port || 6379) });
          sockets.push(upstream);
          client.pipe(upstream).pipe(client);
          client.on('error', () => upstream.destroy());
          upstream.on('error', () => client.destroy());
          client.on('close', () => upstream.destroy());
          upstream.on('close', () => client.destroy());
        });
        const store = track(
          await RedisStateStore.connect(`redis://127.0.0.1:${port}`, {
            keyPrefix: newPrefix(),
            commandTimeoutMs: 1_000,
          }),
        );
        expect(await store.claimEvent('Ev1', 60_000)).toBe(true);

        cut = true;
        for (const s of sockets) s.destroy();
        await new Promise((r) => setTimeout(r, 50));
        const started = Date.now();
        await expect(store.claimEvent('Ev2', 60_000)).rejects.toMatchObject({ code: 'store-unavailable' });
        await expect(store.getAnswer('a1')).rejects.toMatchObject({ code: 'store-unavailable' });
        expect(Date.now() - started).toBeLessThan(2_500);

        cut = false;
        await waitFor(async () => (await store.claimEvent('Ev3', 60_000).catch(() => null)) === true);
        expect(await store.claimEvent('Ev1', 60_000)).toBe(false);
      });

      it('rejects a URL that is not redis://', async () => {
        await expect(RedisStateStore.connect('http://127.0.0.1:6379')).rejects.toMatchObject({
          code: 'store-unopenable',
        });
        await expect(RedisStateStore.connect('not a url')).rejects.toMatchObject({
          code: 'store-unopenable',
        });
      });
    });
  });
}

async function waitFor(check: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}
