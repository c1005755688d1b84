import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTinyCrossEncoder } from './fixtures/models/tiny-cross-encoder.ts';
import { writeTinyEmbedder } from './fixtures/models/tiny-embedder.ts';
import { runCli } from './helpers/cli.ts';

/** Articles whose words the tiny embedder knows (test/fixtures/models/tiny-embedder.ts). */
const ARTICLES: Record<string, string> = {
  'refund-policy.md':
    '---\ntitle: Refund policy\n---\n\nAnnual plans are refunded in full within 14 days. Monthly payments are not refunded.\n',
  'reset-password.md':
    '---\ntitle: Reset your password\n---\n\nOpen the sign-in page and choose Forgot password.\n',
  'bank-feed-errors.md':
    '---\ntitle: Bank feed errors\n---\n\nError E1042 means your bank consent expired: select Reconnect and approve again.\n',
  'send-invoices.md': '---\ntitle: Send an invoice\n---\n\nCreate an invoice and send the bill by email.\n',
};

/**
 * The CLI with EMBEDDING_MODEL / RERANKER_MODEL pointing at tiny ONNX models the test writes
 * (real transformers.js + onnxruntime): sync embeds, search and ask go hybrid, a changed model
 * is a clear error until `sync --reembed`.
 */
describe('CLI with an embedding model and a reranker', () => {
  let dir: string;
  let env: Record<string, string>;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'supportbot-vectors-'));
    mkdirSync(path.join(dir, 'docs'));
    for (const [file, text] of Object.entries(ARTICLES)) writeFileSync(path.join(dir, 'docs', file), text);
    writeFileSync(
      path.join(dir, 'supportbot.config.yaml'),
      'sources:\n  - { name: kb, type: folder, path: ./docs }\n',
    );
    env = { EMBEDDING_MODEL: writeTinyEmbedder(path.join(dir, 'tiny-embed')) };
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('sync embeds; search finds a synonym BM25 misses; status says hybrid', async () => {
    const sync = await runCli(['sync', '--json'], dir, env);
    expect(sync.code, sync.stderr).toBe(0);
    expect(JSON.parse(sync.stdout)[0]).toMatchObject({ added: 4, embedded: 4 });

    const bm25 = JSON.parse(
      (await runCli(['search', '--json', '--mode', 'bm25', 'reimbursement'], dir, env)).stdout,
    );
    expect(bm25.hits).toEqual([]);
    const hybrid = await runCli(['search', '--json', 'How do I get a reimbursement?'], dir, env);
    expect(hybrid.code, hybrid.stderr).toBe(0);
    const out = JSON.parse(hybrid.stdout);
    expect(out.mode).toBe('hybrid');
    expect(out.hits[0].articleId).toBe('refund-policy');

    const status = await runCli(['status'], dir, env);
    expect(status.stdout).toMatch(/retrieval: +hybrid \(relative, alpha 0\.5\) with onnx:.*vectors ready/);
  }, 120_000);

  it('with a reranker, ask reports hybrid + rerank', async () => {
    const withRerank = { ...env, RERANKER_MODEL: writeTinyCrossEncoder(path.join(dir, 'tiny-ce')) };
    const ask = await runCli(['ask', '--json', 'bank invoice'], dir, withRerank);
    expect(ask.code, ask.stderr).toBe(0);
    expect(JSON.parse(ask.stdout).retrievalMode).toBe('hybrid + rerank');
  }, 120_000);

  it('another embedding model is a clear error until sync --reembed', async () => {
    const other = { EMBEDDING_MODEL: writeTinyEmbedder(path.join(dir, 'other-embed'), { pooling: 'cls' }) };
    const ask = await runCli(['ask', 'reset password'], dir, other);
    expect(ask.code).toBe(1);
    expect(ask.stderr).toMatch(
      /^error: the knowledge store holds vectors of .* run `supportbot sync --reembed`/,
    );
    const reembed = await runCli(['sync', '--reembed', '--json'], dir, other);
    expect(reembed.code, reembed.stderr).toBe(0);
    expect(JSON.parse(reembed.stdout)[0]).toMatchObject({ unchanged: 4, embedded: 4 });
    expect((await runCli(['ask', 'reset password'], dir, other)).code).toBe(0);
  }, 120_000);
});
