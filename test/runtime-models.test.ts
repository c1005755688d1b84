import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Runtime } from '../bot/runtime.ts';
import { loadConfig, PACKAGE_ROOT } from '../core/config.ts';
import { randomLoraPairs, writeTinyLlama, writeTinyLora } from './fixtures/gguf/tiny-llama.ts';

const BIN = path.join(PACKAGE_ROOT, 'bin', 'supportbot.mjs');

describe('Runtime with an LLM backend from the config', () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'supportbot-models-'));
    await writeTinyLlama(path.join(dir), { file: 'base.gguf' });
    await writeTinyLora(dir, 'tone.gguf', {
      pairs: randomLoraPairs(3, ['blk.0.attn_q.weight', 'blk.0.attn_v.weight']),
    });
    writeFileSync(
      path.join(dir, 'supportbot.config.yaml'),
      [
        'llm:',
        '  backend: llama-cpp',
        '  modelPath: base.gguf',
        '  threads: 1',
        '  maxTokens: 16',
        '  adapters:',
        '    default: tone',
        '    map:',
        '      tone: { path: tone.gguf }',
        '    routes:',
        '      - { workspace: T-BASE, adapter: null }',
      ].join('\n'),
    );
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('loads the GGUF model, routes the adapter by workspace, and says so in status', async () => {
    const rt = await Runtime.open(loadConfig({ cwd: dir, env: {} }));
    try {
      await rt.sync();
      expect(rt.describeGenerator()).toMatch(/^llama-cpp:base\.gguf, default adapter tone/);
      const tuned = await rt.ask('How do I reset my password?', {
        scope: { platform: 'slack', workspace: 'T1' },
      });
      expect(tuned.generator).toMatch(/^llama-cpp/);
      expect(tuned.adapter).toBe('tone');
      const base = await rt.ask('How do I reset my password?', {
        scope: { platform: 'slack', workspace: 'T-BASE' },
      });
      expect(base.generator).toMatch(/^llama-cpp/);
      expect(base.adapter ?? null).toBeNull();
      expect((await rt.status()).lines.join('\n')).toMatch(/generator: +llama-cpp:base\.gguf/);
    } finally {
      await rt.close();
    }
  }, 60_000);

  it('`ask` with an OpenAI-compatible server that is down answers extractively and says so', () => {
    const r = spawnSync(process.execPath, [BIN, 'ask', '--json', 'How do I reset my password?'], {
      cwd: mkdtempSync(path.join(tmpdir(), 'supportbot-models-cli-')),
      env: {
        ...process.env,
        LLM_BACKEND: 'openai',
        LLM_BASE_URL: 'http://127.0.0.1:9/v1',
        LLM_MODEL: 'base',
        LLM_TIMEOUT_SECONDS: '5',
      },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.answer).toMatch(/^_The language model is unavailable/);
    expect(out.citations.length).toBeGreaterThan(0);
  }, 60_000);
});
