import { Redis } from 'ioredis';

/** The Redis the tests use: `SUPPORTBOT_TEST_REDIS_URL`, else the one on 127.0.0.1:6379. */
export const TEST_REDIS_URL = process.env.SUPPORTBOT_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** `SUPPORTBOT_SKIP_REDIS=1`: skip the tests that need Redis (a laptop without one). */
export const SKIP_REDIS = process.env.SUPPORTBOT_SKIP_REDIS === '1';

/**
 * Deletes the keys matching `pattern` (a test run's own prefix) with SCAN + DEL, so runs leave
 * nothing behind in a shared Redis.
 * @throws when Redis cannot be reached.
 */
export async function deleteRedisKeys(pattern: string): Promise<void> {
  const admin = new Redis(TEST_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await admin.connect();
    let cursor = '0';
    do {
      const [next, keys] = await admin.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
      if (keys.length > 0) await admin.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    admin.disconnect();
  }
}
