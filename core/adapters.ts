/**
 * LoRA adapter map: which adapters exist (name → GGUF file for `llama-cpp`, or the server's
 * `model` name for `openai`, e.g. a vLLM `--lora-modules name=path` entry) and which
 * workspace/channel uses which, with a default.
 *
 * Config-file shape (the `llm.adapters` section; paths relative to the config file):
 * ```yaml
 * llm:
 *   adapters:
 *     default: support-tone          # or null / omitted: the base model
 *     map:
 *       support-tone: { path: adapters/support-tone.gguf, scale: 1 }   # llama-cpp
 *       billing:      { model: billing-lora }                           # openai (vLLM multi-LoRA)
 *       both:         { path: adapters/both.gguf, model: both-lora }   # either backend
 *     routes:                        # most specific match wins: channel > workspace > platform
 *       - { platform: slack, workspace: T0123, channel: C0456, adapter: billing }
 *       - { workspace: T0999, adapter: null }                          # base model there
 * ```
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { SupportbotError } from './errors.ts';

const adapterNameSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'letters, digits, ., - and _ only');

/** One adapter: a GGUF LoRA file (llama-cpp) and/or a served model name (openai). */
export const adapterSpecSchema = z
  .object({
    /** GGUF LoRA adapter file (`general.type = adapter`), for the llama-cpp backend. */
    path: z.string().min(1).optional(),
    /** Model name the OpenAI-compatible server serves the adapter under, for the openai backend. */
    model: z.string().min(1).optional(),
    /** LoRA scale applied by llama.cpp: ΔW·scale·alpha/r. Default 1; 0 is the base model. */
    scale: z.number().min(0).max(4).default(1),
  })
  .strict()
  .refine((a) => a.path !== undefined || a.model !== undefined, 'an adapter needs a path or a model');

/** A routing rule: requests from the given platform/workspace/channel use `adapter`. */
export const adapterRouteSchema = z
  .object({
    platform: z.string().min(1).optional(),
    workspace: z.string().min(1).optional(),
    channel: z.string().min(1).optional(),
    /** Adapter name, or `null` for the base model. */
    adapter: adapterNameSchema.nullable(),
  })
  .strict();

/** The `llm.adapters` section of the config file. */
export const adapterConfigSchema = z
  .object({
    default: adapterNameSchema.nullable().default(null),
    map: z.record(adapterNameSchema, adapterSpecSchema).default({}),
    routes: z.array(adapterRouteSchema).default([]),
  })
  .strict()
  .superRefine((c, ctx) => {
    const known = (name: string | null) => name === null || name in c.map;
    if (!known(c.default))
      ctx.addIssue({ code: 'custom', message: `default adapter "${c.default}" is not in map` });
    c.routes.forEach((r, i) => {
      if (!known(r.adapter))
        ctx.addIssue({
          code: 'custom',
          path: ['routes', i, 'adapter'],
          message: `adapter "${r.adapter}" is not in map`,
        });
    });
  });

export type AdapterSpec = z.output<typeof adapterSpecSchema>;
export type AdapterRoute = z.output<typeof adapterRouteSchema>;
export type AdapterConfig = z.output<typeof adapterConfigSchema>;

/** Where a request comes from, for routing. */
export interface RequestScope {
  platform?: string;
  /** Slack team id, Discord guild id. */
  workspace?: string;
  /** Slack channel id, Discord channel id. */
  channel?: string;
}

/**
 * Parses and validates an `llm.adapters` section, resolving relative `path`s against `baseDir`
 * (the config file's folder).
 * @throws SupportbotError `config-invalid` with the first problem's path and message.
 */
export function parseAdapterConfig(raw: unknown, baseDir: string): AdapterConfig {
  const parsed = adapterConfigSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new SupportbotError(
      'config-invalid',
      `llm.adapters${issue?.path.length ? `.${issue.path.join('.')}` : ''}: ${issue?.message}`,
    );
  }
  const map: Record<string, AdapterSpec> = {};
  for (const [name, spec] of Object.entries(parsed.data.map)) {
    map[name] = spec.path ? { ...spec, path: path.resolve(baseDir, spec.path) } : spec;
  }
  return { ...parsed.data, map };
}

/**
 * The adapter name for a request: the route matching the most specific field wins (channel
 * beats workspace beats platform; a route's every given field must match; among equally specific
 * routes the first listed wins); with no match, `config.default`. `null` means the base model.
 */
export function routeAdapter(config: AdapterConfig, scope: RequestScope): string | null {
  let best: { route: AdapterRoute; rank: number } | null = null;
  for (const route of config.routes) {
    if (route.platform !== undefined && route.platform !== scope.platform) continue;
    if (route.workspace !== undefined && route.workspace !== scope.workspace) continue;
    if (route.channel !== undefined && route.channel !== scope.channel) continue;
    const rank = (route.channel ? 4 : 0) + (route.workspace ? 2 : 0) + (route.platform ? 1 : 0);
    if (!best || rank > best.rank) best = { route, rank };
  }
  return best ? best.route.adapter : config.default;
}

/**
 * A mutable set of named adapters, seeded from the config and extended at runtime (the training
 * module's promote, `supportbot adapters register`). Generators resolve names through it on every
 * request, so a registration takes effect on the next request without a restart.
 */
export class AdapterRegistry {
  readonly #specs = new Map<string, AdapterSpec>();

  constructor(initial: Record<string, AdapterSpec> = {}) {
    for (const [name, spec] of Object.entries(initial)) this.register(name, spec);
  }

  /**
   * Adds or replaces an adapter.
   * @throws SupportbotError `adapter_invalid` for a bad name or a spec with neither path nor model.
   */
  register(name: string, spec: { path?: string; model?: string; scale?: number }): void {
    if (!adapterNameSchema.safeParse(name).success)
      throw new SupportbotError(
        'adapter_invalid',
        `adapter name "${name}": letters, digits, ., - and _ only`,
      );
    const parsed = adapterSpecSchema.safeParse(spec);
    if (!parsed.success)
      throw new SupportbotError('adapter_invalid', `adapter "${name}": ${parsed.error.issues[0]?.message}`);
    this.#specs.set(name, parsed.data);
  }

  unregister(name: string): boolean {
    return this.#specs.delete(name);
  }

  get(name: string): AdapterSpec | undefined {
    return this.#specs.get(name);
  }

  names(): string[] {
    return [...this.#specs.keys()];
  }
}

/**
 * Identity of an adapter file's current content, for caching: path, size and mtime. A file
 * replaced in place (a promoted adapter written over the old one) gets a new key.
 * @throws SupportbotError `adapter_missing` when the file cannot be read.
 */
export async function adapterFileKey(filePath: string): Promise<string> {
  try {
    const s = await stat(filePath);
    return `${filePath}\u0000${s.size}\u0000${s.mtimeMs}`;
  } catch (err) {
    throw new SupportbotError('adapter_missing', `adapter file ${filePath} cannot be read`, { cause: err });
  }
}
