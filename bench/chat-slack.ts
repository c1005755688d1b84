/**
 * Slack HTTP path under load: `npx tsx bench/chat-slack.ts [events] [concurrency] [maxConcurrent]`.
 *
 * N `app_mention` events (default 300), each delivered 3 times (the original and two re-deliveries
 * with `X-Slack-Retry-Num`, same `event_id`, a few ms apart), signed, POSTed to the real Bolt app's
 * HTTP receiver; `concurrency` events in flight at once (default 8, so 24 requests). The Web API is
 * the local fake (test/fakes/slack-api.ts), answers come from the extractive generator over the
 * example help center in SQLite. Two set-ups: one replica on the SQLite state store, and two
 * replicas sharing Redis (127.0.0.1:6379, skipped when unreachable), deliveries alternating between
 * them.
 *
 * `maxConcurrent` is the handler's generation limit per replica (default: the handler's default, 4);
 * a question arriving while that many answers are being generated gets the polite "busy" reply.
 *
 * Prints a table: events/s sustained (N / time from the first delivery to the last reply posted),
 * p50/p95/max ack time (ms, per HTTP request), events answered, "busy" replies, events with no
 * reply at all (must be 0), duplicate replies (posts beyond one per event; must be 0), and the machine.
 * Exits 1 when an event got no reply or more than one.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { BUSY_TEXT } from '../bot/conversation/handler.ts';
import { RedisStateStore } from '../core/state-store/redis.ts';
import { SqliteStateStore } from '../core/state-store/sqlite.ts';
import type { StateStore } from '../core/state-store.ts';
import { percentile } from '../evals/hit-rate.ts';
import { type Delivery, FakeSlackApi } from '../test/fakes/slack-api.ts';
import {
  BOT_TOKEN,
  exampleKnowledge,
  type RunningSlackBot,
  startSlackBot,
} from '../test/fakes/slack-bot-harness.ts';

const N = Number(process.argv[2] ?? 300);
const CONCURRENCY = Number(process.argv[3] ?? 8);
const MAX_CONCURRENT = process.argv[4] === undefined ? undefined : Number(process.argv[4]);
const DELIVERIES = 3;
const REDIS_URL = process.env.SUPPORTBOT_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const CHANNEL = 'C0BENCH';
const QUESTIONS = [
  'How do I reset my password?',
  'How do I turn on two-factor authentication?',
  'How do I connect Stripe card payments?',
  'Why did my card payment fail?',
  'How do I export my data and delete my account?',
  'How do I import contacts from a CSV file?',
  'What are the API rate limits?',
  'How do I send payment reminders for overdue invoices?',
  'How do I change my plan?',
  'My bank feed stopped syncing, what can I do?',
];

interface Row {
  setup: string;
  answered: number;
  busy: number;
  unanswered: number;
  eventsPerSecond: number;
  ackP50: number;
  ackP95: number;
  ackMax: number;
  duplicates: number;
}

async function run(setup: string, stores: StateStore[], tmp: string): Promise<Row> {
  const { knowledge } = await exampleKnowledge(path.join(tmp, `kb-${setup.replace(/\W+/g, '-')}.sqlite`));
  const fake = await FakeSlackApi.start({ botToken: BOT_TOKEN });
  const log = pino({ level: 'silent' });
  // Every event has its own user, so the per-user rate limit does not apply.
  const limits = MAX_CONCURRENT === undefined ? {} : { maxConcurrent: MAX_CONCURRENT };
  const bots: RunningSlackBot[] = [];
  for (const state of stores) bots.push(await startSlackBot({ fake, knowledge, state, limits, log }));
  const acks: number[] = [];
  const deliver = async (i: number) => {
    const ts = `1760100000.${String(i).padStart(6, '0')}`;
    const event = {
      type: 'app_mention',
      user: `U${String(i).padStart(6, '0')}`,
      text: `<@UBOT> ${QUESTIONS[i % QUESTIONS.length]}`,
      ts,
      channel: CHANNEL,
      event_ts: ts,
    };
    const first = bots[i % bots.length] as RunningSlackBot;
    const envelope = first.deliver.envelope(event);
    const sends: Promise<Delivery>[] = [];
    for (let k = 0; k < DELIVERIES; k++) {
      const bot = bots[(i + k) % bots.length] as RunningSlackBot;
      sends.push(
        new Promise((r) => setTimeout(r, k * 5)).then(() =>
          bot.deliver.event(envelope, k === 0 ? undefined : { num: k, reason: 'http_timeout' }),
        ),
      );
    }
    for (const d of await Promise.all(sends)) {
      if (d.status !== 200) throw new Error(`delivery got HTTP ${d.status}`);
      acks.push(d.ms);
    }
  };

  // Warm-up (JIT, SQLite page cache, auth.test), not counted.
  const warm = N + 1_000;
  await deliver(warm);
  while (fake.messages.length === 0) await new Promise((r) => setTimeout(r, 10));
  fake.messages.length = 0;
  acks.length = 0;

  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < N) await deliver(next++);
    }),
  );
  const replied = () => new Set(fake.messages.map((m) => m.threadTs)).size;
  const deadline = Date.now() + 120_000;
  while (replied() < N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  const seconds = (performance.now() - started) / 1000;
  await Promise.all(bots.map((b) => b.handler.drain()));
  await new Promise((r) => setTimeout(r, 300));

  // Extractive answers here are one message each; any other message is a busy or error text.
  const perThread = new Map<string, number>();
  for (const m of fake.messages) {
    perThread.set(m.threadTs as string, (perThread.get(m.threadTs as string) ?? 0) + 1);
  }
  const row: Row = {
    setup,
    answered: fake.messages.filter((m) => m.blocks?.some((b) => b.type === 'actions')).length,
    busy: fake.messages.filter((m) => m.text === BUSY_TEXT).length,
    unanswered: N - perThread.size,
    eventsPerSecond: perThread.size / seconds,
    ackP50: percentile(acks, 50),
    ackP95: percentile(acks, 95),
    ackMax: Math.max(...acks),
    duplicates: [...perThread.values()].reduce((sum, c) => sum + c - 1, 0),
  };
  for (const bot of bots) await bot.stop();
  await fake.close();
  await knowledge.close();
  return row;
}

async function redisReachable(): Promise<boolean> {
  const r = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 1_000 });
  try {
    await r.connect();
    await r.ping();
    return true;
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

async function deleteKeys(pattern: string): Promise<void> {
  const admin = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await admin.connect();
  let cursor = '0';
  do {
    const [nextCursor, keys] = await admin.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
    if (keys.length > 0) await admin.del(...keys);
    cursor = nextCursor;
  } while (cursor !== '0');
  admin.disconnect();
}

const tmp = mkdtempSync(path.join(tmpdir(), 'supportbot-bench-slack-'));
const rows: Row[] = [];
try {
  const sqlite = SqliteStateStore.open(path.join(tmp, 'state.sqlite'));
  rows.push(await run('1 replica, SQLite state', [sqlite], tmp));
  await sqlite.close();
  if (await redisReachable()) {
    const prefix = `supportbot-bench:slack:${process.pid}:`;
    const a = await RedisStateStore.connect(REDIS_URL, { keyPrefix: prefix });
    const b = await RedisStateStore.connect(REDIS_URL, { keyPrefix: prefix });
    rows.push(await run('2 replicas, Redis state', [a, b], tmp));
    await a.close();
    await b.close();
    await deleteKeys(`${prefix}*`);
  } else {
    console.log(`(Redis at ${REDIS_URL} unreachable: the two-replica row is skipped)`);
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

const cpus = os.cpus();
console.log(
  `machine: ${cpus[0]?.model ?? 'unknown cpu'}, ${cpus.length} cores, node ${process.version}, ${os.platform()} ${os.release()}`,
);
console.log(
  `load: ${N} app_mention events × ${DELIVERIES} deliveries, ${CONCURRENCY} events in flight; maxConcurrent ${MAX_CONCURRENT ?? 'default (4)'} per replica; extractive generator; local fake Web API; load average ${os.loadavg()[0]?.toFixed(1)}\n`,
);
const cols: [string, (r: Row) => string][] = [
  ['setup', (r) => r.setup],
  ['events/s', (r) => r.eventsPerSecond.toFixed(1)],
  ['ack p50 ms', (r) => r.ackP50.toFixed(1)],
  ['ack p95 ms', (r) => r.ackP95.toFixed(1)],
  ['ack max ms', (r) => r.ackMax.toFixed(1)],
  ['answered', (r) => String(r.answered)],
  ['busy', (r) => String(r.busy)],
  ['no reply', (r) => String(r.unanswered)],
  ['duplicate replies', (r) => String(r.duplicates)],
];
const widths = cols.map(([h, f]) => Math.max(h.length, ...rows.map((r) => f(r).length)));
const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`;
console.log(line(cols.map(([h]) => h)));
console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
for (const r of rows) console.log(line(cols.map(([, f]) => f(r))));
if (rows.some((r) => r.duplicates > 0 || r.unanswered > 0)) process.exitCode = 1;
