import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { configSchema, DEFAULT_SOURCE, loadConfig, PACKAGE_ROOT } from '../core/config.ts';
import { SupportbotError } from '../core/errors.ts';

/** The error `loadConfig` throws with these options (fails the test when it does not throw). */
function loadError(options: Parameters<typeof loadConfig>[0]): SupportbotError {
  try {
    loadConfig(options);
  } catch (err) {
    expect(err).toBeInstanceOf(SupportbotError);
    expect((err as Error).message).not.toContain('\n');
    return err as SupportbotError;
  }
  throw new Error('loadConfig did not throw');
}

describe('loadConfig', () => {
  let cwd: string;
  beforeEach(() => {
    cwd = mkdtempSync(path.join(tmpdir(), 'supportbot-config-'));
  });
  afterEach(() => rmSync(cwd, { recursive: true, force: true }));

  it('without a file: defaults, the example source, dataDir under cwd', () => {
    const config = loadConfig({ cwd, env: {} });
    expect(config.configFile).toBeNull();
    expect(config.dataDir).toBe(path.join(cwd, 'data'));
    expect(config.chunking).toEqual({ maxTokens: 300, overlapTokens: 30 });
    expect(config.retrieval).toEqual({ topK: 5, alpha: 0.5, fusion: 'relative' });
    expect(config.llm).toMatchObject({ backend: 'extractive', maxTokens: 512, timeoutSeconds: 20 });
    expect(config.llm.adapters).toEqual({ default: null, map: {}, routes: [] });
    expect(config.embedding.model).toBeUndefined();
    expect(config.reranker).toEqual({ candidates: 20 });
    expect(config.answer).toEqual({ abstainThreshold: 0.4, maxAnswerChars: 900 });
    expect(config.log).toEqual({ level: 'warn' });
    expect(config.sources).toHaveLength(1);
    expect(config.sources[0]).toMatchObject({
      name: 'examples',
      path: path.join(PACKAGE_ROOT, 'examples', 'helpcenter'),
      urlTemplate: DEFAULT_SOURCE.urlTemplate,
      dialect: 'markdown',
      locale: 'en',
    });
  });

  it('precedence is defaults < file < environment', () => {
    writeFileSync(
      path.join(cwd, 'supportbot.config.yaml'),
      'retrieval:\n  topK: 3\nanswer:\n  abstainThreshold: 0.5\nchunking:\n  maxTokens: 400\n',
    );
    const config = loadConfig({ cwd, env: { RETRIEVAL_TOP_K: '7', LOG_LEVEL: 'debug' } });
    expect(config.configFile).toBe(path.join(cwd, 'supportbot.config.yaml'));
    expect(config.retrieval.topK).toBe(7); // env over file
    expect(config.answer.abstainThreshold).toBe(0.5); // file over default
    expect(config.answer.maxAnswerChars).toBe(900); // default
    expect(config.chunking).toEqual({ maxTokens: 400, overlapTokens: 30 });
    expect(config.log.level).toBe('debug');
  });

  it('reads JSON files, and SUPPORTBOT_CONFIG over the files in cwd', () => {
    writeFileSync(path.join(cwd, 'supportbot.config.yaml'), 'retrieval:\n  topK: 3\n');
    mkdirSync(path.join(cwd, 'conf'));
    const json = path.join(cwd, 'conf', 'bot.json');
    writeFileSync(json, JSON.stringify({ retrieval: { topK: 9 }, answer: { maxAnswerChars: 1200 } }));
    const config = loadConfig({ cwd, env: { SUPPORTBOT_CONFIG: 'conf/bot.json' } });
    expect(config.configFile).toBe(json);
    expect(config.retrieval.topK).toBe(9);
    expect(config.answer.maxAnswerChars).toBe(1200);
    // An explicit file wins over SUPPORTBOT_CONFIG.
    const yaml = path.join(cwd, 'supportbot.config.yaml');
    expect(loadConfig({ cwd, file: yaml, env: { SUPPORTBOT_CONFIG: 'conf/bot.json' } }).retrieval.topK).toBe(
      3,
    );
  });

  it('finds supportbot.config.json in cwd', () => {
    writeFileSync(path.join(cwd, 'supportbot.config.json'), '{"log": {"level": "info"}}');
    const config = loadConfig({ cwd, env: {} });
    expect(config.configFile).toBe(path.join(cwd, 'supportbot.config.json'));
    expect(config.log.level).toBe('info');
  });

  it("resolves relative paths in the file against the file's folder, DATA_DIR against cwd", () => {
    mkdirSync(path.join(cwd, 'etc'));
    const file = path.join(cwd, 'etc', 'supportbot.yaml');
    writeFileSync(
      file,
      [
        'dataDir: ../var/data',
        'sources:',
        '  - { type: folder, name: docs, path: ./help }',
        `  - { type: folder, name: abs, path: ${JSON.stringify(path.join(cwd, 'elsewhere'))} }`,
        '',
      ].join('\n'),
    );
    const config = loadConfig({ cwd, file: 'etc/supportbot.yaml', env: {} });
    expect(config.configFile).toBe(file);
    expect(config.dataDir).toBe(path.join(cwd, 'var', 'data'));
    expect(config.sources.map((s) => [s.name, s.type === 'folder' ? s.path : null])).toEqual([
      ['docs', path.join(cwd, 'etc', 'help')],
      ['abs', path.join(cwd, 'elsewhere')],
    ]);
    const fromEnv = loadConfig({ cwd, file: 'etc/supportbot.yaml', env: { DATA_DIR: 'state' } });
    expect(fromEnv.dataDir).toBe(path.join(cwd, 'state'));
  });

  it('a numeric-looking value of a string key stays a string', () => {
    expect(loadConfig({ cwd, env: { DATA_DIR: '2024' } }).dataDir).toBe(path.join(cwd, '2024'));
  });

  it('parses numeric environment values, including decimals', () => {
    const config = loadConfig({
      cwd,
      env: { ABSTAIN_THRESHOLD: '.25', CHUNK_MAX_TOKENS: '512', CHUNK_OVERLAP_TOKENS: '0' },
    });
    expect(config.answer.abstainThreshold).toBe(0.25);
    expect(config.chunking).toEqual({ maxTokens: 512, overlapTokens: 0 });
  });

  it('an invalid environment value is a one-line error naming the variable, not the file', () => {
    writeFileSync(path.join(cwd, 'supportbot.config.yaml'), 'retrieval:\n  topK: 3\n');
    const notNumber = loadError({ cwd, env: { ABSTAIN_THRESHOLD: 'high' } });
    expect(notNumber.code).toBe('config-invalid');
    expect(notNumber.message).toMatch(/^invalid value for ABSTAIN_THRESHOLD \(answer\.abstainThreshold\): /);
    expect(notNumber.message).not.toContain('supportbot.config.yaml');
    expect(loadError({ cwd, env: { RETRIEVAL_TOP_K: '500' } }).message).toMatch(
      /^invalid value for RETRIEVAL_TOP_K \(retrieval\.topK\): /,
    );
    expect(loadError({ cwd, env: { LOG_LEVEL: 'loud' } }).message).toMatch(
      /^invalid value for LOG_LEVEL \(log\.level\): /,
    );
  });

  it('an invalid file value is a one-line error naming the key and the file', () => {
    const file = path.join(cwd, 'supportbot.config.yaml');
    writeFileSync(file, 'chunking:\n  maxTokens: 5\n');
    const err = loadError({ cwd, env: {} });
    expect(err.code).toBe('config-invalid');
    expect(err.message).toMatch(
      /^invalid config at chunking\.maxTokens: .* \(in .*supportbot\.config\.yaml\)$/,
    );
  });

  it('an unknown key is an error naming it', () => {
    writeFileSync(path.join(cwd, 'supportbot.config.yaml'), 'retreival:\n  topK: 3\n');
    const err = loadError({ cwd, env: {} });
    expect(err.code).toBe('config-invalid');
    expect(err.message).toMatch(/retreival/);
  });

  it('an unreadable or unparsable file is config-unreadable', () => {
    expect(loadError({ cwd, file: 'missing.yaml', env: {} }).code).toBe('config-unreadable');
    writeFileSync(path.join(cwd, 'broken.json'), '{"retrieval": ');
    expect(loadError({ cwd, file: 'broken.json', env: {} }).code).toBe('config-unreadable');
  });

  it('rejects two sources with the same name, naming the second', () => {
    writeFileSync(
      path.join(cwd, 'supportbot.config.yaml'),
      [
        'sources:',
        '  - { type: folder, name: docs, path: ./a }',
        '  - { type: folder, name: faq, path: ./b }',
        '  - { type: folder, name: docs, path: ./c }',
        '',
      ].join('\n'),
    );
    const err = loadError({ cwd, env: {} });
    expect(err.code).toBe('config-invalid');
    expect(err.message).toMatch(/^invalid config at sources\.2\.name: .*docs.*sources\.0\.name/);
  });

  it('rejects chunking.overlapTokens >= chunking.maxTokens, from the file or the environment', () => {
    writeFileSync(
      path.join(cwd, 'supportbot.config.yaml'),
      'chunking:\n  maxTokens: 64\n  overlapTokens: 64\n',
    );
    expect(loadError({ cwd, env: {} }).message).toMatch(
      /^invalid config at chunking\.overlapTokens: .*less than chunking\.maxTokens \(64\)/,
    );
    rmSync(path.join(cwd, 'supportbot.config.yaml'));
    expect(loadError({ cwd, env: { CHUNK_OVERLAP_TOKENS: '300' } }).message).toMatch(
      /^invalid value for CHUNK_OVERLAP_TOKENS \(chunking\.overlapTokens\): /,
    );
    expect(loadConfig({ cwd, env: { CHUNK_OVERLAP_TOKENS: '299' } }).chunking.overlapTokens).toBe(299);
  });

  it('configSchema defaults stay valid', () => {
    expect(configSchema.parse({}).chunking).toEqual({ maxTokens: 300, overlapTokens: 30 });
  });
});

describe('chat platform settings', () => {
  it('take tokens, Redis and the port from the standard environment names', () => {
    const config = loadConfig({
      cwd: tmpdir(),
      env: {
        SLACK_BOT_TOKEN: 'xoxb-1',
        SLACK_APP_TOKEN: 'xapp-1',
        SLACK_API_URL: 'http://127.0.0.1:9/api/',
        DISCORD_TOKEN: 'd-1',
        DISCORD_API_URL: 'http://127.0.0.1:9/api',
        REDIS_URL: 'redis://127.0.0.1:6379/2',
        PORT: '8080',
      },
    });
    expect(config.slack).toMatchObject({
      botToken: 'xoxb-1',
      appToken: 'xapp-1',
      apiUrl: 'http://127.0.0.1:9/api/',
    });
    expect(config.slack.reactions).toEqual({ up: ['+1', 'thumbsup'], down: ['-1', 'thumbsdown'] });
    expect(config.discord).toMatchObject({ token: 'd-1', apiUrl: 'http://127.0.0.1:9/api' });
    expect(config.discord.reactions).toEqual({ up: ['👍'], down: ['👎'] });
    expect(config.state.redisUrl).toBe('redis://127.0.0.1:6379/2');
    expect(config.server.port).toBe(8080);
    expect(config.bot.limits).toMatchObject({ perUser: 10, maxConcurrent: 4, answerTimeoutSeconds: 30 });
  });

  it('a Slack bot token without a signing secret or app token is an error naming what to set', () => {
    const err = loadError({ cwd: tmpdir(), env: { SLACK_BOT_TOKEN: 'xoxb-1' } });
    expect(err.message).toContain('SLACK_SIGNING_SECRET is required');
    expect(loadError({ cwd: tmpdir(), env: { PORT: 'eighty' } }).message).toMatch(/^invalid value for PORT/);
  });
});

describe('model settings', () => {
  it('LLM backends name what they are missing; paths resolve against the config file', () => {
    expect(loadError({ cwd: tmpdir(), env: { LLM_BACKEND: 'llama-cpp' } }).message).toContain(
      'LLM_BACKEND=llama-cpp needs LLM_MODEL_PATH',
    );
    expect(loadError({ cwd: tmpdir(), env: { LLM_BACKEND: 'openai', LLM_MODEL: 'm' } }).message).toContain(
      'LLM_BACKEND=openai needs LLM_BASE_URL and LLM_MODEL',
    );
    expect(loadError({ cwd: tmpdir(), env: { LLM_BACKEND: 'gpt' } }).message).toMatch(
      /^invalid value for LLM_BACKEND/,
    );
    expect(
      loadError({
        cwd: tmpdir(),
        env: { LLM_BACKEND: 'llama-cpp', LLM_MODEL_PATH: 'm.gguf', LLM_TIMEOUT_SECONDS: '30' },
      }).message,
    ).toContain('at least 2 s below bot.limits.answerTimeoutSeconds');
    const dir = mkdtempSync(path.join(tmpdir(), 'supportbot-config-'));
    try {
      writeFileSync(
        path.join(dir, 'supportbot.config.yaml'),
        [
          'llm:',
          '  backend: llama-cpp',
          '  modelPath: models/base.gguf',
          '  adapters:',
          '    default: tone',
          '    map:',
          '      tone: { path: adapters/tone.gguf }',
          '    routes:',
          '      - { workspace: T1, adapter: null }',
          'embedding: { model: intfloat/e5-small-v2 }',
        ].join('\n'),
      );
      const config = loadConfig({ cwd: dir, env: {} });
      expect(config.llm.modelPath).toBe(path.join(dir, 'models', 'base.gguf'));
      expect(config.llm.adapters.map.tone).toEqual({
        path: path.join(dir, 'adapters', 'tone.gguf'),
        scale: 1,
      });
      expect(config.llm.adapters.routes).toEqual([{ workspace: 'T1', adapter: null }]);
      expect(config.embedding.model).toBe('intfloat/e5-small-v2');
      const bad = loadError({ cwd: dir, env: { SUPPORTBOT_CONFIG: 'x.yaml' } });
      expect(bad.code).toBe('config-unreadable');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
