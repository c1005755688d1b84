/**
 * The deploy files, checked without a Docker engine: the compose file against a schema of the
 * Compose spec parts it uses, cross-references (volumes, depends_on, env names), the env example
 * against every variable the project reads, and the Dockerfile's `npm ci --omit=dev` against the
 * packages the runtime code imports.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { z } from 'zod';
import { websiteSourceSchema } from '../sync/sources/website.ts';
import { zendeskSourceSchema } from '../sync/sources/zendesk.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const DEPLOY = path.join(ROOT, 'deploy');
const read = (p: string) => readFileSync(path.join(ROOT, p), 'utf8');

// The subset of the Compose specification (https://github.com/compose-spec/compose-spec) used here.
const healthcheck = z
  .object({
    test: z.array(z.string()).min(2),
    interval: z.string().regex(/^\d+[smh]$/),
    timeout: z.string().regex(/^\d+[smh]$/),
    retries: z.number().int().min(1),
    start_period: z
      .string()
      .regex(/^\d+[smh]$/)
      .optional(),
  })
  .strict();
const service = z
  .object({
    image: z.string().min(1).optional(),
    build: z.object({ context: z.string(), dockerfile: z.string() }).strict().optional(),
    profiles: z.array(z.string()).optional(),
    command: z.array(z.string()).optional(),
    env_file: z.array(z.object({ path: z.string(), required: z.boolean() }).strict()).optional(),
    environment: z.record(z.string(), z.string()).optional(),
    volumes: z.array(z.string().regex(/^[^:]+:[^:]+(:ro)?$/)).optional(),
    ports: z.array(z.string().regex(/^(\$\{[A-Z_]+:-\d+\}|\d+):\d+$/)).optional(),
    depends_on: z
      .record(z.string(), z.object({ condition: z.literal('service_healthy') }).strict())
      .optional(),
    healthcheck,
    restart: z.enum(['no', 'always', 'on-failure', 'unless-stopped']),
    stop_grace_period: z.string().optional(),
    deploy: z.unknown().optional(),
  })
  .strict()
  .refine((s) => s.image || s.build, 'a service needs an image or a build');
const composeSchema = z
  .object({
    name: z.string(),
    'x-bot-env': z.record(z.string(), z.string()),
    services: z.record(z.string(), service),
    volumes: z.record(z.string(), z.null()),
  })
  .strict();

describe('deploy/docker-compose.yml', () => {
  const text = read('deploy/docker-compose.yml');
  const compose = composeSchema.parse(YAML.parse(text, { merge: true }));

  it('has the bot, Redis with AOF and Weaviate, each with a healthcheck; the bot checks /healthz', () => {
    const { bot, redis, weaviate, vllm, tei } = compose.services;
    expect(bot?.healthcheck.test.join(' ')).toContain('/healthz');
    expect(bot?.depends_on).toEqual({
      redis: { condition: 'service_healthy' },
      weaviate: { condition: 'service_healthy' },
    });
    expect(bot?.environment).toMatchObject({ REDIS_URL: 'redis://redis:6379', KNOWLEDGE_STORE: 'weaviate' });
    expect(redis?.command?.join(' ')).toMatch(/--appendonly yes/);
    expect(weaviate?.healthcheck.test.join(' ')).toContain('/v1/.well-known/ready');
    expect(vllm?.profiles).toEqual(['llm']);
    expect(vllm?.command).toContain('--enable-lora');
    expect(vllm?.volumes).toContain('adapters:/adapters');
    expect(tei?.profiles).toEqual(['embeddings']);
  });

  it('declares every named volume it mounts, and mounts files that exist', () => {
    for (const [name, s] of Object.entries(compose.services)) {
      for (const v of s.volumes ?? []) {
        const source = v.split(':')[0] as string;
        if (source.startsWith('.'))
          expect(statSync(path.join(DEPLOY, source)).isFile(), `${name}: ${v}`).toBe(true);
        else expect(Object.keys(compose.volumes), `${name}: ${v}`).toContain(source);
      }
    }
  });

  it('every variable without a default is in .env.example', () => {
    const example = envExampleNames();
    const required = [...text.matchAll(/\$\{([A-Z_][A-Z0-9_]*)(:\?[^}]*)?\}/g)].map((m) => m[1] as string);
    expect(required.length).toBeGreaterThan(0);
    for (const name of required) expect(example, name).toContain(name);
  });
});

function envExampleNames(): string[] {
  return read('deploy/.env.example')
    .split('\n')
    .flatMap((line) => /^([A-Z_][A-Z0-9_]*)=/.exec(line)?.[1] ?? []);
}

describe('deploy/.env.example', () => {
  it('lists every environment variable the project reads', () => {
    const names = new Set(envExampleNames());
    const configKeys = [...read('core/config.ts').matchAll(/^ {2}([A-Z_][A-Z0-9_]*): \{ key: \[/gm)].map(
      (m) => m[1] as string,
    );
    expect(configKeys.length).toBeGreaterThan(20);
    const sources = ['core', 'bot', 'sync', 'training', 'evals'].flatMap((dir) =>
      tsFiles(path.join(ROOT, dir)),
    );
    const direct = new Set<string>();
    for (const file of sources) {
      for (const m of readFileSync(file, 'utf8').matchAll(/\benv\.([A-Z_][A-Z0-9_]*)/g))
        direct.add(m[1] as string);
    }
    // references in values, not in comments
    const config = JSON.stringify(YAML.parse(read('deploy/supportbot.config.yaml')));
    const referenced = [...config.matchAll(/\$\{([A-Z_][A-Z0-9_]*)\}/g)].map((m) => m[1] as string);
    for (const name of [...configKeys, ...direct, ...referenced, 'SUPPORTBOT_CONFIG']) {
      expect(names.has(name), `${name} missing from deploy/.env.example`).toBe(true);
    }
  });
});

describe('deploy/supportbot.config.yaml', () => {
  it('its sources are valid zendesk and website sources with cron schedules', () => {
    const config = YAML.parse(read('deploy/supportbot.config.yaml')) as {
      sources: Record<string, unknown>[];
    };
    const schema = z.discriminatedUnion('type', [zendeskSourceSchema, websiteSourceSchema]);
    const sources = config.sources.map((s) => schema.parse(s));
    expect(sources.map((s) => s.type)).toEqual(['zendesk', 'website']);
    expect(sources.every((s) => s.schedule)).toBe(true);
  });
});

describe('deploy/Dockerfile', () => {
  const dockerfile = read('deploy/Dockerfile');
  const pkg = JSON.parse(read('package.json')) as {
    dependencies: Record<string, string>;
    engines: { node: string };
  };

  it('builds on Node 20 with production dependencies and runs the CLI', () => {
    expect(dockerfile).toMatch(/^FROM node:20-/m);
    expect(dockerfile).toContain('npm ci --omit=dev');
    expect(dockerfile).toMatch(/ENTRYPOINT \["node", "bin\/supportbot\.mjs"\]/);
    expect(dockerfile).toContain('/healthz');
  });

  it('copies every folder the CLI imports from, and those import only production dependencies', () => {
    const copied = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \.\/?(\S*)$/gm)].flatMap((m) =>
      (m[1] as string).split(/\s+/),
    );
    const runtimeDirs = ['bin', 'core', 'bot', 'sync', 'training', 'evals'];
    for (const dir of runtimeDirs) expect(copied, dir).toContain(dir);
    const builtins = new Set(builtinModules);
    const missing = new Set<string>();
    for (const file of runtimeDirs.flatMap((d) => tsFiles(path.join(ROOT, d)))) {
      if (file.endsWith('.test.ts')) continue;
      const text = readFileSync(file, 'utf8');
      const specifiers = [
        ...text.matchAll(/^\s*(?:import|export)[^'"]*from\s+'([^']+)'/gm),
        ...text.matchAll(/import\('([^']+)'\)/g),
        ...text.matchAll(/require\('([^']+)'\)/g),
      ].map((m) => m[1] as string);
      for (const spec of specifiers) {
        if (spec.startsWith('.') || spec.startsWith('node:') || builtins.has(spec)) continue;
        const name = spec.startsWith('@')
          ? spec.split('/').slice(0, 2).join('/')
          : (spec.split('/')[0] as string);
        // Type-only packages (@types/*, mdast/hast types) vanish when tsx strips types.
        if (/^import type /m.test(text) && new RegExp(`import type [^;]*'${spec}'`).test(text)) continue;
        if (['mdast', 'hast', 'unist'].includes(name)) continue;
        if (!pkg.dependencies[name]) missing.add(`${name} (${path.relative(ROOT, file)})`);
      }
    }
    expect([...missing]).toEqual([]);
  });
});

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' ? [] : tsFiles(p);
    return /\.(ts|mjs)$/.test(e.name) ? [p] : [];
  });
}
