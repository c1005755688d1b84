import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../core/config.ts';
import { SqliteStateStore } from '../core/state-store/sqlite.ts';

const BIN = path.join(PACKAGE_ROOT, 'bin', 'supportbot.mjs');

/** Runs the real CLI in a child process, as a user would through `npx supportbot`. */
function cli(args: string[], options: { cwd: string; input?: string; env?: Record<string, string> }) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd: options.cwd,
    input: options.input ?? '',
    encoding: 'utf8',
    env: { ...process.env, LOG_LEVEL: 'warn', ...options.env },
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('supportbot CLI on embedded defaults', () => {
  let cwd: string;
  beforeAll(() => {
    cwd = mkdtempSync(path.join(tmpdir(), 'supportbot-cli-'));
  });
  afterAll(() => rmSync(cwd, { recursive: true, force: true }));

  it('an empty or over-long question is a one-line error, not an answer', () => {
    for (const args of [
      ['ask', '   '],
      ['search', ''],
    ]) {
      const r = cli(args, { cwd });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^error: the (question|query) is empty\n$/);
    }
    const long = cli(['ask', 'why '.repeat(1500)], { cwd, env: { SUPPORTBOT_CONFIG: '' } });
    expect(long.code).toBe(1);
    expect(long.stderr).toBe(
      'error: the question is 5999 characters; the limit is 4000 (bot.limits.maxQuestionChars)\n',
    );
  });

  it('ask --json syncs the example help center on first use and answers with citations', () => {
    const r = cli(['ask', '--json', 'How do I reset my password?'], { cwd });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/syncing the configured sources first/);
    expect(r.stderr).toMatch(/examples: 2\d added, 0 updated, 0 unchanged, 0 deleted, 0 failed/);
    const out = JSON.parse(r.stdout);
    expect(Object.keys(out).sort()).toEqual(
      [
        'question',
        'answer',
        'citations',
        'abstained',
        'escalated',
        'escalationReason',
        'confidence',
        'generator',
        'adapter',
        'fallback',
        'retrievalMode',
        'latencyMs',
        'retrieved',
      ].sort(),
    );
    expect(out).toMatchObject({
      question: 'How do I reset my password?',
      adapter: null,
      fallback: null,
      retrievalMode: 'bm25',
      abstained: false,
      escalated: false,
      generator: 'extractive',
    });
    expect(out.confidence).toBeGreaterThan(0);
    expect(out.confidence).toBeLessThanOrEqual(1);
    expect(out.citations[0]).toMatchObject({
      n: 1,
      articleId: 'reset-password',
      source: 'examples',
      title: 'Reset your password',
      url: 'https://help.ledgerly.example/articles/account/reset-password',
      sourcePath: 'account/reset-password.md',
    });
    expect(out.answer).toContain('[1]');
    expect(out.retrieved[0]).toHaveProperty('chunkId');
    expect(out.retrieved[0]).toHaveProperty('headingPath');
  });

  it('ask --json abstains on a question the help center does not cover', () => {
    const out = JSON.parse(
      cli(['ask', '--json', 'Which football team won the 1998 world cup?'], { cwd }).stdout,
    );
    expect(out).toMatchObject({ abstained: true, escalated: false, citations: [] });
  });

  it('search --json returns ranked hits; the data dir is reused, not re-synced', () => {
    const r = cli(['search', '--json', '-k', '3', 'stripe card payments fees'], { cwd });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/syncing/);
    const out = JSON.parse(r.stdout);
    expect(out.query).toBe('stripe card payments fees');
    expect(out.hits).toHaveLength(3);
    expect(out.hits.map((h: { rank: number }) => h.rank)).toEqual([1, 2, 3]);
    expect(out.hits[0].sourcePath).toBe('payments/stripe-card-payments.md');
  });

  it('sync is incremental: a second run changes nothing', () => {
    const r = cli(['sync', '--json'], { cwd });
    expect(r.code, r.stderr).toBe(0);
    const [summary] = JSON.parse(r.stdout);
    expect(summary).toMatchObject({
      source: 'examples',
      added: 0,
      updated: 0,
      deleted: 0,
      failed: 0,
      swept: true,
    });
    expect(summary.unchanged).toBeGreaterThanOrEqual(20);
  });

  it('status --json says what is active', () => {
    const out = JSON.parse(cli(['status', '--json'], { cwd }).stdout);
    expect(out.dataDir).toBe(path.join(cwd, 'data'));
    expect(out.generator).toMatch(/extractive/);
    expect(out.sources[0]).toMatchObject({ name: 'examples', dialect: 'markdown' });
    expect(out.sources[0].articles).toBeGreaterThanOrEqual(20);
  });

  it('chat reads piped questions, rates the last answer, and records both', () => {
    const r = cli(['chat'], { cwd, input: 'how do I turn on two-factor authentication?\n+1\n-1\n/bogus\n' });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Sources:\n\s+\[1\] /);
    expect(r.stdout).toContain('rated 👍');
    expect(r.stdout).toContain('rated 👎');
    expect(r.stdout).toMatch(/Unknown command \/bogus/);
    const state = SqliteStateStore.open(path.join(cwd, 'data', 'supportbot.sqlite'));
    return (async () => {
      const [answer] = await state.listAnswers({ limit: 10 });
      expect(answer?.platform).toBe('console');
      expect(answer?.question).toBe('how do I turn on two-factor authentication?');
      // +1 then -1 by the same user is one rating, changed: never two.
      expect(await state.ratingSummary(answer?.id as string)).toEqual({ up: 0, down: 1 });
      await state.close();
    })();
  });

  it('an invalid config value is a one-line error naming the key', () => {
    writeFileSync(path.join(cwd, 'bad.yaml'), 'chunking:\n  maxTokens: 5\n');
    const r = cli(['--config', 'bad.yaml', 'status'], { cwd });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^error: invalid config at chunking\.maxTokens: /);
  });

  it('an unknown key in the config file is an error, not silently ignored', () => {
    writeFileSync(path.join(cwd, 'typo.yaml'), 'retreival:\n  topK: 3\n');
    const r = cli(['--config', 'typo.yaml', 'status'], { cwd });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/retreival/);
  });

  it('environment variables override the file', () => {
    writeFileSync(path.join(cwd, 'ok.yaml'), 'retrieval:\n  topK: 3\n');
    const r = cli(['--config', 'ok.yaml', 'ask', '--json', 'reset password'], {
      cwd,
      env: { RETRIEVAL_TOP_K: '2' },
    });
    expect(JSON.parse(r.stdout).retrieved).toHaveLength(2);
  });

  it('search --source takes one name per flag and rejects unknown sources', () => {
    const ok = cli(['search', '--source', 'examples', '--json', 'refund policy'], { cwd });
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout).hits.length).toBeGreaterThan(0);
    const bad = cli(['search', '--source', 'nosuch', 'timeout'], { cwd });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: unknown source nosuch; configured: examples/);
  });

  it('a bad option value is a usage error (exit 2) with the usage text', () => {
    const r = cli(['search', '-k', '0', 'x'], { cwd });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/expected a whole number from 1 to 100, got 0/);
    expect(r.stderr).toMatch(/Usage: supportbot search/);
  });

  it('unknown commands and sources fail clearly', () => {
    const unknown = cli(['frobnicate'], { cwd });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command 'frobnicate'/);
    const source = cli(['sync', 'nope'], { cwd });
    expect(source.code).toBe(1);
    expect(source.stderr).toMatch(/^error: unknown source nope; configured: examples/);
  });
});
