import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { z } from 'zod';
import { sourceNameSchema } from '../sync/source.ts';
import { websiteSourceSchema } from '../sync/sources/website.ts';
import { zendeskSourceSchema } from '../sync/sources/zendesk.ts';
import { adapterConfigSchema } from './adapters.ts';
import { SupportbotError } from './errors.ts';

/** The project root (where package.json lives), so defaults work from any working directory. */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Markdown dialects a folder source understands; see `sync/dialects/`. */
export const DIALECTS = ['markdown', 'zendesk', 'zulip', 'docusaurus'] as const;

/** A `type: folder` entry of `sources` (see README, "Point it at your own help center"). */
export const folderSourceSchema = z
  .object({
    type: z.literal('folder'),
    name: sourceNameSchema,
    path: z.string().min(1),
    dialect: z.enum(DIALECTS).default('markdown'),
    /**
     * Citation URL; `{id}` is the article id, `{slug}` the file path without extension,
     * `{path}` the file path. No template: citations carry the source path only.
     */
    urlTemplate: z.string().optional(),
    locale: z.string().default('en'),
    include: z.array(z.string()).default(['**/*.md', '**/*.mdx', '**/*.html', '**/*.htm']),
    exclude: z.array(z.string()).default([]),
    /** Cron expression for scheduled sync (used by `serve`); none means manual only. */
    schedule: z.string().optional(),
    /** IANA time zone of `schedule` (`Europe/Berlin`); default `TZ`. */
    timezone: z.string().optional(),
  })
  .strict();

/** Where escalations go: a channel id and who to mention there (platform mention syntax). */
const escalationTargetSchema = z
  .object({
    channel: z.string().min(1),
    /** Slack `<!subteam^S123>` / `<@U123>`, Discord `<@&role>` / `<@user>`. */
    mention: z.string().optional(),
  })
  .strict();

/**
 * Escalation routing for one platform: `default` for every workspace/guild, overridden per
 * workspace (Slack team id / Discord guild id) and per channel (most specific wins: a channel
 * inside its workspace, then the workspace, then a channel anywhere, then `default`). With no
 * target the asker is still told that a person is needed; nobody is notified.
 */
const escalationRoutingSchema = z
  .object({
    default: escalationTargetSchema.optional(),
    workspaces: z
      .record(
        z.string(),
        escalationTargetSchema
          .partial({ channel: true })
          .extend({ channels: z.record(z.string(), escalationTargetSchema).default({}) })
          .strict(),
      )
      .default({}),
    channels: z.record(z.string(), escalationTargetSchema).default({}),
  })
  .strict()
  .default({ workspaces: {}, channels: {} });

const adminsSchema = z
  .object({
    /** Platform user ids allowed admin subcommands (`/support sync`, `retrain`). */
    users: z.array(z.string()).default([]),
    /** Slack user-group ids (`S…`) or Discord role ids whose members are admins. */
    groups: z.array(z.string()).default([]),
  })
  .strict()
  .default({ users: [], groups: [] });

/** Settings shared by both chat platforms; tokens normally come from the environment. */
const platformBase = {
  admins: adminsSchema,
  escalation: escalationRoutingSchema,
};

export const slackSchema = z
  .object({
    ...platformBase,
    /** `SLACK_BOT_TOKEN` (`xoxb-…`). Slack starts in `serve` when this is set. */
    botToken: z.string().optional(),
    /** `SLACK_SIGNING_SECRET`: required for the HTTP receiver. */
    signingSecret: z.string().optional(),
    /** `SLACK_APP_TOKEN` (`xapp-…`): Socket Mode instead of the HTTP receiver. */
    appToken: z.string().optional(),
    /** `SLACK_API_URL`: Web API base (proxies, tests). */
    apiUrl: z.string().url().optional(),
    /** Reaction names (without colons) counted as ratings; skin tones are ignored. */
    reactions: z
      .object({
        up: z.array(z.string().min(1)).default(['+1', 'thumbsup']),
        down: z.array(z.string().min(1)).default(['-1', 'thumbsdown']),
      })
      .strict()
      .default({ up: ['+1', 'thumbsup'], down: ['-1', 'thumbsdown'] }),
  })
  .strict()
  .superRefine((slack, ctx) => {
    if (slack.botToken && !slack.appToken && !slack.signingSecret) {
      ctx.addIssue({
        code: 'custom',
        path: ['signingSecret'],
        message:
          'SLACK_SIGNING_SECRET is required with SLACK_BOT_TOKEN for the HTTP receiver (or set SLACK_APP_TOKEN for Socket Mode)',
      });
    }
  });

export const discordSchema = z
  .object({
    ...platformBase,
    /** `DISCORD_TOKEN`: Discord starts in `serve` when this is set. */
    token: z.string().optional(),
    /** `DISCORD_API_URL`: REST base (tests, proxies). */
    apiUrl: z.string().url().optional(),
    /** Application id for command registration; read from the token's application when unset. */
    applicationId: z.string().optional(),
    /** Unicode emoji (or custom emoji names) counted as ratings. */
    reactions: z
      .object({
        up: z.array(z.string().min(1)).default(['👍']),
        down: z.array(z.string().min(1)).default(['👎']),
      })
      .strict()
      .default({ up: ['👍'], down: ['👎'] }),
  })
  .strict();

/** Conversation limits (see `bot/conversation/handler.ts`); times in seconds. */
const limitsSchema = z
  .object({
    perUser: z.number().int().min(1).default(10),
    rateWindowSeconds: z.number().min(1).default(60),
    maxConcurrent: z.number().int().min(1).max(256).default(4),
    answerTimeoutSeconds: z.number().min(1).max(600).default(30),
    maxQuestionChars: z.number().int().min(100).max(40_000).default(4000),
    historyTurns: z.number().int().min(0).max(100).default(10),
  })
  .strict();

/** Generator backends (`LLM_BACKEND`); see `core/generators/`. */
export const LLM_BACKENDS = ['extractive', 'llama-cpp', 'openai'] as const;

/** The `llm` section: which generator answers, and the LoRA adapter map (`core/adapters.ts`). */
export const llmSchema = z
  .object({
    backend: z.enum(LLM_BACKENDS).default('extractive'),
    /** `LLM_MODEL_PATH`: GGUF base model for `llama-cpp`. */
    modelPath: z.string().min(1).optional(),
    /** `LLM_BASE_URL`: OpenAI-compatible server (vLLM, llama.cpp server, Ollama), including `/v1`. */
    baseUrl: z.string().url().optional(),
    /** `LLM_API_KEY`: Bearer token for the server. */
    apiKey: z.string().optional(),
    /** `LLM_MODEL`: the served base model name for `openai`. */
    model: z.string().min(1).optional(),
    /** Context window in tokens; llama-cpp defaults to min(training context, 4096), openai to 8192. */
    contextSize: z.number().int().min(256).optional(),
    /** Longest reply in tokens. */
    maxTokens: z.number().int().min(16).max(8192).default(512),
    /** Generation timeout; then the extractive answer is posted with a note. */
    timeoutSeconds: z.number().min(1).max(600).default(20),
    /** llama-cpp CPU threads (default: node-llama-cpp's choice). */
    threads: z.number().int().min(1).max(256).optional(),
    /** System-prompt tone, e.g. "friendly and brief". */
    tone: z.string().optional(),
    adapters: adapterConfigSchema.prefault({}),
  })
  .strict()
  .superRefine((llm, ctx) => {
    if (llm.backend === 'llama-cpp' && !llm.modelPath) {
      ctx.addIssue({
        code: 'custom',
        path: ['modelPath'],
        message: 'LLM_BACKEND=llama-cpp needs LLM_MODEL_PATH (a GGUF file)',
      });
    }
    if (llm.backend === 'openai' && (!llm.baseUrl || !llm.model)) {
      ctx.addIssue({
        code: 'custom',
        path: [llm.baseUrl ? 'model' : 'baseUrl'],
        message: 'LLM_BACKEND=openai needs LLM_BASE_URL and LLM_MODEL',
      });
    }
  });

/** The `embedding` section: vectors for hybrid search (`core/embedder.ts`). No model: BM25 only. */
const embeddingSchema = z
  .object({
    /** `EMBEDDING_MODEL`: local ONNX folder or hub id in the local cache, or the server's model name. */
    model: z.string().min(1).optional(),
    /** `EMBEDDING_BASE_URL`: OpenAI-compatible `/v1/embeddings` server (TEI, vLLM, Ollama). */
    baseUrl: z.string().url().optional(),
    /** `EMBEDDING_API_KEY`. */
    apiKey: z.string().optional(),
    batchSize: z.number().int().min(1).max(1024).optional(),
    /** Extra folders holding downloaded models (Hugging Face hub cache layout or `<org>/<name>`). */
    cacheDirs: z.array(z.string()).default([]),
  })
  .strict()
  .superRefine((e, ctx) => {
    if (e.baseUrl && !e.model) {
      ctx.addIssue({
        code: 'custom',
        path: ['model'],
        message: 'EMBEDDING_BASE_URL needs EMBEDDING_MODEL (the served model name)',
      });
    }
  });

/** The `reranker` section: an ONNX cross-encoder (`core/reranker.ts`) over the fused candidates. */
const rerankerSchema = z
  .object({
    /** `RERANKER_MODEL`: local ONNX cross-encoder folder or hub id in the local cache. */
    model: z.string().min(1).optional(),
    /** Candidates fetched before reranking down to `retrieval.topK`. */
    candidates: z.number().int().min(1).max(200).default(20),
  })
  .strict();

export const configSchema = z
  .object({
    dataDir: z.string().default('./data'),
    sources: z
      .array(z.discriminatedUnion('type', [folderSourceSchema, zendeskSourceSchema, websiteSourceSchema]))
      .default([]),
    chunking: z
      .object({
        maxTokens: z.number().int().min(32).max(8192).default(300),
        /** Must be less than `maxTokens` (the chunker rejects anything else). */
        overlapTokens: z.number().int().min(0).max(1024).default(30),
      })
      .strict()
      .superRefine((chunking, ctx) => {
        if (chunking.overlapTokens >= chunking.maxTokens) {
          ctx.addIssue({
            code: 'custom',
            path: ['overlapTokens'],
            message: `must be less than chunking.maxTokens (${chunking.maxTokens}), got ${chunking.overlapTokens}`,
          });
        }
      })
      .default({ maxTokens: 300, overlapTokens: 30 }),
    retrieval: z
      .object({
        /** Chunks handed to the generator. */
        topK: z.number().int().min(1).max(50).default(5),
        /** `RETRIEVAL_MODE`; default `hybrid` when an embedding model is configured, else `bm25`. */
        mode: z.enum(['bm25', 'vector', 'hybrid']).optional(),
        /** `RETRIEVAL_ALPHA`: hybrid weight, 1 = vector only, 0 = BM25 only (as Weaviate's `alpha`). */
        alpha: z.number().min(0).max(1).default(0.5),
        /** Hybrid fusion: reciprocal rank fusion or relative score fusion (Weaviate's default). */
        fusion: z.enum(['rrf', 'relative']).default('relative'),
      })
      .strict()
      .prefault({}),
    knowledgeStore: z
      .object({
        /** `KNOWLEDGE_STORE`: the embedded SQLite file, or Weaviate for production. */
        type: z.enum(['sqlite', 'weaviate']).default('sqlite'),
        weaviate: z
          .object({
            /** `WEAVIATE_URL` (HTTP, e.g. http://weaviate:8080). */
            url: z.string().url().optional(),
            /** `WEAVIATE_GRPC_URL`; default the HTTP host on port 50051. */
            grpcUrl: z.string().url().optional(),
            /** `WEAVIATE_API_KEY`. */
            apiKey: z.string().optional(),
            /** `WEAVIATE_COLLECTION` (default `SupportbotChunk`). */
            collection: z
              .string()
              .regex(/^[A-Z][A-Za-z0-9_]*$/, 'an upper-case letter, then letters, digits, _')
              .optional(),
            /** `WEAVIATE_TENANT` (default `default`; one tenant per workspace/guild when set so). */
            tenant: z.string().optional(),
            /** `WEAVIATE_VECTORIZER`: `none` (our embedder) or a Weaviate module name. */
            vectorizer: z.string().optional(),
            /** `WEAVIATE_TOKENIZATION` (default `whitespace` over our own analysed terms). */
            tokenization: z.enum(['whitespace', 'word', 'trigram', 'gse']).optional(),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .superRefine((k, ctx) => {
        if (k.type === 'weaviate' && !k.weaviate.url) {
          ctx.addIssue({
            code: 'custom',
            path: ['weaviate', 'url'],
            message: 'KNOWLEDGE_STORE=weaviate needs WEAVIATE_URL',
          });
        }
      })
      .prefault({}),
    embedding: embeddingSchema.prefault({}),
    reranker: rerankerSchema.prefault({}),
    llm: llmSchema.prefault({}),
    training: z
      .object({
        /** `TRAIN_BASE_MODEL`: Hugging Face folder (safetensors + config.json + tokenizer.json) adapters are trained on; `/support retrain` needs it. */
        baseModelDir: z.string().min(1).optional(),
        /** Promote a retrained adapter when the eval gate passes. */
        autoPromote: z.boolean().default(true),
        /** Rated examples needed before training starts. */
        minExamples: z.number().int().min(1).default(32),
      })
      .strict()
      .prefault({}),
    answer: z
      .object({
        /** Abstain below this confidence (0..1); chosen from `npm run calibrate` (evals/calibrate.ts). */
        abstainThreshold: z.number().min(0).max(1).default(0.4),
        /** Longest extractive answer, in characters. */
        maxAnswerChars: z.number().int().min(200).max(4000).default(900),
      })
      .strict()
      .default({ abstainThreshold: 0.4, maxAnswerChars: 900 }),
    slack: slackSchema.prefault({}),
    discord: discordSchema.prefault({}),
    bot: z
      .object({ limits: limitsSchema.prefault({}) })
      .strict()
      .prefault({}),
    state: z
      .object({
        /** `REDIS_URL`: shared state for several replicas; the embedded SQLite file otherwise. */
        redisUrl: z.string().optional(),
        /** Key prefix in Redis, so several bots can share one server. */
        redisKeyPrefix: z.string().default('supportbot:'),
      })
      .strict()
      .prefault({}),
    server: z
      .object({
        /** `PORT`: the Slack HTTP receiver and `/healthz`. */
        port: z.number().int().min(0).max(65535).default(3000),
      })
      .strict()
      .prefault({}),
    log: z
      .object({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'silent']).default('warn') })
      .strict()
      .default({ level: 'warn' }),
  })
  .strict()
  .superRefine((config, ctx) => {
    // The handler's answer timeout must leave room for the extractive fallback after an LLM timeout.
    if (
      config.llm.backend !== 'extractive' &&
      config.llm.timeoutSeconds + 2 > config.bot.limits.answerTimeoutSeconds
    ) {
      ctx.addIssue({
        code: 'custom',
        path: ['llm', 'timeoutSeconds'],
        message: `must be at least 2 s below bot.limits.answerTimeoutSeconds (${config.bot.limits.answerTimeoutSeconds}) so a timed-out LLM still gets the extractive fallback posted`,
      });
    }
    // Source names key the store: two sources with one name would delete each other's articles.
    const first = new Map<string, number>();
    config.sources.forEach((source, i) => {
      const earlier = first.get(source.name);
      if (earlier === undefined) {
        first.set(source.name, i);
        return;
      }
      ctx.addIssue({
        code: 'custom',
        path: ['sources', i, 'name'],
        message: `duplicate source name "${source.name}" (already used by sources.${earlier}.name); names must be unique`,
      });
    });
  });

export type Config = z.infer<typeof configSchema>;
export type SourceConfig = Config['sources'][number];
/** A `type: folder` source. */
export type FolderSourceConfig = z.infer<typeof folderSourceSchema>;

/** The example help center shipped in `examples/`, used when no source is configured. */
export const DEFAULT_SOURCE: z.input<typeof folderSourceSchema> = {
  type: 'folder',
  name: 'examples',
  path: path.join(PACKAGE_ROOT, 'examples', 'helpcenter'),
  dialect: 'markdown',
  urlTemplate: 'https://help.ledgerly.example/articles/{slug}',
  locale: 'en',
};

/**
 * Environment variables, the config key each one sets and its type: values of `number` keys are
 * parsed as numbers (a value that is not a number is passed on and rejected by the schema);
 * `string` keys take the value as it is, so `DATA_DIR=2024` is a folder named `2024`.
 */
const ENV_KEYS: Record<string, { key: string[]; type: 'string' | 'number' }> = {
  DATA_DIR: { key: ['dataDir'], type: 'string' },
  LOG_LEVEL: { key: ['log', 'level'], type: 'string' },
  CHUNK_MAX_TOKENS: { key: ['chunking', 'maxTokens'], type: 'number' },
  CHUNK_OVERLAP_TOKENS: { key: ['chunking', 'overlapTokens'], type: 'number' },
  RETRIEVAL_TOP_K: { key: ['retrieval', 'topK'], type: 'number' },
  ABSTAIN_THRESHOLD: { key: ['answer', 'abstainThreshold'], type: 'number' },
  RETRIEVAL_MODE: { key: ['retrieval', 'mode'], type: 'string' },
  RETRIEVAL_ALPHA: { key: ['retrieval', 'alpha'], type: 'number' },
  EMBEDDING_MODEL: { key: ['embedding', 'model'], type: 'string' },
  EMBEDDING_BASE_URL: { key: ['embedding', 'baseUrl'], type: 'string' },
  EMBEDDING_API_KEY: { key: ['embedding', 'apiKey'], type: 'string' },
  RERANKER_MODEL: { key: ['reranker', 'model'], type: 'string' },
  LLM_BACKEND: { key: ['llm', 'backend'], type: 'string' },
  LLM_MODEL_PATH: { key: ['llm', 'modelPath'], type: 'string' },
  LLM_BASE_URL: { key: ['llm', 'baseUrl'], type: 'string' },
  LLM_API_KEY: { key: ['llm', 'apiKey'], type: 'string' },
  LLM_MODEL: { key: ['llm', 'model'], type: 'string' },
  LLM_CONTEXT_SIZE: { key: ['llm', 'contextSize'], type: 'number' },
  LLM_MAX_TOKENS: { key: ['llm', 'maxTokens'], type: 'number' },
  LLM_TIMEOUT_SECONDS: { key: ['llm', 'timeoutSeconds'], type: 'number' },
  LLM_THREADS: { key: ['llm', 'threads'], type: 'number' },
  KNOWLEDGE_STORE: { key: ['knowledgeStore', 'type'], type: 'string' },
  WEAVIATE_URL: { key: ['knowledgeStore', 'weaviate', 'url'], type: 'string' },
  WEAVIATE_GRPC_URL: { key: ['knowledgeStore', 'weaviate', 'grpcUrl'], type: 'string' },
  WEAVIATE_API_KEY: { key: ['knowledgeStore', 'weaviate', 'apiKey'], type: 'string' },
  WEAVIATE_COLLECTION: { key: ['knowledgeStore', 'weaviate', 'collection'], type: 'string' },
  WEAVIATE_TENANT: { key: ['knowledgeStore', 'weaviate', 'tenant'], type: 'string' },
  WEAVIATE_VECTORIZER: { key: ['knowledgeStore', 'weaviate', 'vectorizer'], type: 'string' },
  WEAVIATE_TOKENIZATION: { key: ['knowledgeStore', 'weaviate', 'tokenization'], type: 'string' },
  TRAIN_BASE_MODEL: { key: ['training', 'baseModelDir'], type: 'string' },
  SLACK_BOT_TOKEN: { key: ['slack', 'botToken'], type: 'string' },
  SLACK_SIGNING_SECRET: { key: ['slack', 'signingSecret'], type: 'string' },
  SLACK_APP_TOKEN: { key: ['slack', 'appToken'], type: 'string' },
  SLACK_API_URL: { key: ['slack', 'apiUrl'], type: 'string' },
  DISCORD_TOKEN: { key: ['discord', 'token'], type: 'string' },
  DISCORD_API_URL: { key: ['discord', 'apiUrl'], type: 'string' },
  DISCORD_APPLICATION_ID: { key: ['discord', 'applicationId'], type: 'string' },
  REDIS_URL: { key: ['state', 'redisUrl'], type: 'string' },
  PORT: { key: ['server', 'port'], type: 'number' },
};

const NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?$/i;

const CONFIG_FILES = ['supportbot.config.yaml', 'supportbot.config.yml', 'supportbot.config.json'];

export interface LoadConfigOptions {
  /** Explicit config file; else `SUPPORTBOT_CONFIG`, else the first of `supportbot.config.{yaml,yml,json}` in `cwd`. */
  file?: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * Loads the configuration: defaults < config file < environment variables, validated by
 * `configSchema`. Relative paths in the file are resolved against the file's folder; `dataDir`
 * from the environment against `cwd`.
 *
 * @throws SupportbotError `config-invalid` with a one-line message naming the key, or
 *   `config-unreadable` when the file cannot be read or parsed.
 */
export function loadConfig(options: LoadConfigOptions = {}): Config & { configFile: string | null } {
  const cwd = options.cwd ?? process.cwd();
  const env = options.env ?? process.env;
  const explicit = options.file ?? env.SUPPORTBOT_CONFIG;
  const file = explicit
    ? path.resolve(cwd, explicit)
    : (CONFIG_FILES.map((f) => path.join(cwd, f)).find((f) => existsSync(f)) ?? null);

  let raw: Record<string, unknown> = {};
  const baseDir = file ? path.dirname(file) : cwd;
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new SupportbotError(
        'config-unreadable',
        `cannot read config file ${file}: ${(err as Error).message}`,
      );
    }
    try {
      const parsed = file.endsWith('.json') ? JSON.parse(text) : YAML.parse(text);
      raw = parsed && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : {};
    } catch (err) {
      throw new SupportbotError(
        'config-unreadable',
        `cannot parse ${file}: ${(err as Error).message.split('\n')[0]}`,
      );
    }
  }

  /** Config key (dotted) → the environment variable that set it. */
  const fromEnv = new Map<string, string>();
  for (const [name, { key, type }] of Object.entries(ENV_KEYS)) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    setPath(raw, key, type === 'number' && NUMBER.test(value.trim()) ? Number(value.trim()) : value);
    fromEnv.set(key.join('.'), name);
  }

  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0];
    const key = issue?.path.length ? issue.path.join('.') : '(root)';
    const message = issue?.message ?? 'invalid';
    const variable = fromEnv.get(key);
    throw new SupportbotError(
      'config-invalid',
      variable
        ? `invalid value for ${variable} (${key}): ${message}`
        : `invalid config at ${key}: ${message}${file ? ` (in ${file})` : ''}`,
    );
  }
  const config = result.data;
  if (config.sources.length === 0) config.sources = [folderSourceSchema.parse(DEFAULT_SOURCE)];
  config.dataDir = path.resolve(env.DATA_DIR ? cwd : baseDir, config.dataDir);
  for (const source of config.sources) {
    if (source.type === 'folder') source.path = path.resolve(baseDir, source.path);
  }
  if (config.training.baseModelDir) {
    config.training.baseModelDir = path.resolve(
      env.TRAIN_BASE_MODEL ? cwd : baseDir,
      config.training.baseModelDir,
    );
  }
  if (config.llm.modelPath)
    config.llm.modelPath = path.resolve(env.LLM_MODEL_PATH ? cwd : baseDir, config.llm.modelPath);
  for (const spec of Object.values(config.llm.adapters.map)) {
    if (spec.path) spec.path = path.resolve(baseDir, spec.path);
  }
  config.embedding.cacheDirs = config.embedding.cacheDirs.map((d) => path.resolve(baseDir, d));
  return { ...config, configFile: file };
}

function setPath(target: Record<string, unknown>, keyPath: string[], value: unknown): void {
  let node = target;
  for (const key of keyPath.slice(0, -1)) {
    const next = node[key];
    if (!next || typeof next !== 'object') node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[keyPath[keyPath.length - 1] as string] = value;
}
