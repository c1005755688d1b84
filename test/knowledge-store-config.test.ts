import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeWeaviate, startFakeWeaviate } from './fakes/weaviate/server.ts';
import { runCli } from './helpers/cli.ts';

/**
 * KNOWLEDGE_STORE=weaviate through the CLI, against the local server that speaks Weaviate's REST
 * and gRPC APIs (test/fakes/weaviate): sync, ask and status use Weaviate; `migrate` copies an
 * embedded store into it and back without re-embedding.
 */
describe('the CLI on Weaviate', () => {
  let fake: FakeWeaviate;
  let dir: string;
  let env: Record<string, string>;
  beforeAll(async () => {
    fake = await startFakeWeaviate();
    dir = mkdtempSync(path.join(tmpdir(), 'supportbot-weaviate-cli-'));
    env = { WEAVIATE_URL: fake.url, WEAVIATE_GRPC_URL: fake.grpcUrl, DATA_DIR: path.join(dir, 'data') };
  });
  afterAll(async () => {
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sync, ask and status run on Weaviate when KNOWLEDGE_STORE=weaviate', async () => {
    const weaviate = { ...env, KNOWLEDGE_STORE: 'weaviate' };
    const sync = await runCli(['sync', '--json'], dir, weaviate);
    expect(sync.code, sync.stderr).toBe(0);
    expect(JSON.parse(sync.stdout)[0]).toMatchObject({ source: 'examples', added: 22, failed: 0 });
    const ask = await runCli(['ask', '--json', 'How do I reset my password?'], dir, weaviate);
    expect(ask.code, ask.stderr).toBe(0);
    expect(JSON.parse(ask.stdout).citations[0].articleId).toMatch(/reset-password/);
    const status = await runCli(['status'], dir, weaviate);
    expect(status.stdout).toMatch(/store: +weaviate/);
    expect(fake.unhandled).toEqual([]);
  }, 120_000);

  it('migrate copies the embedded store into Weaviate and back, and refuses nonsense', async () => {
    const embedded = await runCli(['sync'], dir, env);
    expect(embedded.code, embedded.stderr).toBe(0);
    const to = await runCli(
      ['migrate', '--from', 'sqlite', '--to', 'weaviate', '--tenant', 'migrated'],
      dir,
      env,
    );
    expect(to.code, to.stderr).toBe(0);
    expect(to.stdout).toMatch(/^copied 22 articles \(\d+ chunks, 0 vectors\) from sqlite:.* to weaviate/);
    const back = await runCli(
      [
        'migrate',
        '--from',
        'weaviate',
        '--to',
        'sqlite',
        '--tenant',
        'migrated',
        '--sqlite-file',
        path.join(dir, 'back.sqlite'),
      ],
      dir,
      env,
    );
    expect(back.code, back.stderr).toBe(0);
    expect(back.stdout).toMatch(/^copied 22 articles/);
    const same = await runCli(['migrate', '--from', 'sqlite', '--to', 'sqlite'], dir, env);
    expect(same.code).toBe(1);
    expect(same.stderr).toBe('error: --from and --to must differ\n');
    const noUrl = await runCli(['migrate', '--from', 'sqlite', '--to', 'weaviate'], dir, {
      DATA_DIR: env.DATA_DIR as string,
    });
    expect(noUrl.code).toBe(1);
    expect(noUrl.stderr).toMatch(/WEAVIATE_URL/);
  }, 120_000);
});
