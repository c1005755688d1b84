/**
 * The adapter registry: trained LoRA adapter versions and which one serves, kept beside the state
 * store (the same SQLite file under `DATA_DIR`, or the same Redis with the same key prefix) so
 * every replica sees the same versions and the same promoted pointer.
 *
 * - A version records its files (GGUF LoRA for llama.cpp, PEFT folder for vLLM/PEFT), the dataset
 *   hash, base model, hyperparameters, training metrics, creation time, the last gate decision, and
 *   its state: `candidate` (trained, not serving), `promoted` (serving), `retired` (served before).
 * - `promote` evaluates the candidate against the promoted adapter with the promotion gate
 *   (`evals/gate.ts`) and refuses with the gate's reasons when it fails; `force` overrides, and the
 *   override is recorded on the version (who, when, and the reasons it overrode).
 * - `rollback` goes back to the adapter promoted before (or the base model when there was none).
 * - The promoted pointer is one record changed by compare-and-swap (SQLite: a conditional UPDATE
 *   in an IMMEDIATE transaction; Redis: a Lua script comparing the stored value), so two admins
 *   promoting at once cannot interleave: one wins, the other gets `registry-conflict`.
 *
 * Serving switches without a restart: `PromotedAdapterWatcher` (below) polls the pointer and hands
 * a changed adapter to the generator (`registerAdapter(name, ggufPath)`) and to the runtime as its
 * default adapter. Every replica runs one, so all replicas switch within one poll interval.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import { SupportbotError } from '../core/errors.ts';
import type { Generator } from '../core/generator.ts';
import { openSqliteDatabase, runMigrations } from '../core/sqlite.ts';
import type { AnswerEvalConfig, AnswerEvalOptions } from '../evals/answers.ts';
import type { EvalDataset } from '../evals/datasets.ts';
import { type GateDecision, type GateRule, gateConfigurations } from '../evals/gate.ts';

export type AdapterVersionState = 'candidate' | 'promoted' | 'retired';

/** The last promotion-gate decision about a version. */
export interface GateRecord {
  pass: boolean;
  /** One line per failed check (empty when it passed). */
  reasons: string[];
  /** What it was compared with: `support-v2`, or `base model`. */
  baseline: string;
  dataset: string;
  decidedAt: string;
  /** Set when the version was promoted despite a failed or missing gate (`--force`). */
  forced?: { by: string; at: string };
}

/** One trained adapter version. */
export interface AdapterVersion {
  /** 1, 2, 3, … assigned by the registry, never reused. */
  version: number;
  /** The adapter's name for the generator and in logs: `support-v3`. */
  name: string;
  /** GGUF LoRA adapter file (llama.cpp). */
  ggufPath: string;
  /** PEFT folder (`adapter_config.json` + `adapter_model.safetensors`), when exported. */
  peftDir?: string;
  /** Base model the adapter was trained on (folder or hub id). */
  baseModel: string;
  /** `BuiltDataset.hash` of the training data. */
  datasetHash: string;
  datasetSize?: { train: number; validation: number };
  hyperparameters: Record<string, unknown>;
  /** Training metrics (final train/validation loss, tokens/s, …). */
  metrics: Record<string, number | null>;
  /** ISO-8601 UTC. */
  createdAt: string;
  /** Derived from the promoted pointer and `retiredAt` on every read. */
  state: AdapterVersionState;
  promotedAt?: string;
  retiredAt?: string;
  /** Training job that produced it. */
  jobId?: string;
  gate?: GateRecord;
}

/** The promoted pointer: what serves now, and the versions promoted before it (newest first). */
export interface PromotedPointer {
  version: number;
  name: string;
  ggufPath: string;
  changedAt: string;
  changedBy?: string;
  previous: number[];
}

/** Storage the registry needs; atomic per call, shared across processes. */
export interface RegistryBackend {
  readonly id: string;
  /** The next version number (1, 2, …), atomically. */
  nextVersion(): Promise<number>;
  putVersion(v: AdapterVersion): Promise<void>;
  getVersion(version: number): Promise<AdapterVersion | null>;
  listVersions(): Promise<AdapterVersion[]>;
  getPointer(): Promise<PromotedPointer | null>;
  /** Replaces the pointer only if it still equals `expected` (null: unset); false when it changed. */
  swapPointer(expected: PromotedPointer | null, next: PromotedPointer | null): Promise<boolean>;
  close(): Promise<void>;
}

const REGISTRY_MIGRATIONS = [
  {
    version: 1,
    name: 'training_registry',
    up(db: Database.Database) {
      db.exec(`CREATE TABLE training_registry (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT`);
    },
  },
];

/** The registry in a SQLite file (the state store's `supportbot.sqlite`), table `training_registry`. */
export class SqliteRegistryBackend implements RegistryBackend {
  readonly id: string;
  readonly #db: Database.Database;

  /** @throws SupportbotError `store-unopenable`. */
  constructor(file: string) {
    this.id = `sqlite:${file}`;
    this.#db = openSqliteDatabase(file);
    runMigrations(this.#db, 'training-registry', REGISTRY_MIGRATIONS);
  }

  #get(key: string): string | null {
    const row = this.#db.prepare('SELECT value FROM training_registry WHERE key = ?').get(key) as
      | { value: string }
      | undefined;
    return row?.value ?? null;
  }

  #set(key: string, value: string): void {
    this.#db
      .prepare(
        'INSERT INTO training_registry (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      )
      .run(key, value);
  }

  async nextVersion(): Promise<number> {
    return this.#db
      .transaction(() => {
        const n = Number(this.#get('seq') ?? '0') + 1;
        this.#set('seq', String(n));
        return n;
      })
      .immediate();
  }

  async putVersion(v: AdapterVersion): Promise<void> {
    this.#set(`version:${v.version}`, JSON.stringify(v));
  }

  async getVersion(version: number): Promise<AdapterVersion | null> {
    const raw = this.#get(`version:${version}`);
    return raw ? (JSON.parse(raw) as AdapterVersion) : null;
  }

  async listVersions(): Promise<AdapterVersion[]> {
    const rows = this.#db.prepare("SELECT value FROM training_registry WHERE key LIKE 'version:%'").all() as {
      value: string;
    }[];
    return rows.map((r) => JSON.parse(r.value) as AdapterVersion).sort((a, b) => a.version - b.version);
  }

  async getPointer(): Promise<PromotedPointer | null> {
    const raw = this.#get('promoted');
    return raw ? (JSON.parse(raw) as PromotedPointer) : null;
  }

  async swapPointer(expected: PromotedPointer | null, next: PromotedPointer | null): Promise<boolean> {
    return this.#db
      .transaction(() => {
        const current = this.#get('promoted');
        if (current !== (expected ? JSON.stringify(expected) : null)) return false;
        if (next) this.#set('promoted', JSON.stringify(next));
        else this.#db.prepare("DELETE FROM training_registry WHERE key = 'promoted'").run();
        return true;
      })
      .immediate();
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }
}

/** Compare-and-set of one key: ARGV[1] expected ('' = absent), ARGV[2] new ('' = delete). */
const SWAP_SCRIPT = `
local cur = redis.call('GET', KEYS[1])
if (cur == false and ARGV[1] == '') or cur == ARGV[1] then
  if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2]) end
  return 1
end
return 0`;

/**
 * The registry in Redis, under the state store's key prefix: `adapters:seq` (INCR),
 * `adapters:versions` (hash version → JSON), `adapters:promoted` (JSON, swapped by a Lua script).
 */
export class RedisRegistryBackend implements RegistryBackend {
  readonly id: string;
  readonly #redis: Redis;
  readonly #prefix: string;

  private constructor(redis: Redis, id: string, prefix: string) {
    this.#redis = redis;
    this.id = id;
    this.#prefix = prefix;
  }

  /** @throws SupportbotError `store-unavailable` when Redis does not answer within `connectTimeoutMs`. */
  static async connect(
    url: string,
    options: { keyPrefix?: string; connectTimeoutMs?: number } = {},
  ): Promise<RedisRegistryBackend> {
    const timeoutMs = options.connectTimeoutMs ?? 2_000;
    const redis = new Redis(url, {
      lazyConnect: true,
      connectTimeout: timeoutMs,
      commandTimeout: 5_000,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
    });
    let lastError: Error | undefined;
    redis.on('error', (err: Error) => {
      lastError = err;
    });
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        redis.connect(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } catch (err) {
      redis.disconnect();
      throw new SupportbotError(
        'store-unavailable',
        `adapter registry: cannot reach Redis: ${(lastError ?? (err as Error)).message}`,
        { cause: err },
      );
    } finally {
      clearTimeout(timer);
    }
    const u = new URL(url);
    return new RedisRegistryBackend(redis, `redis:${u.host}`, options.keyPrefix ?? 'supportbot:');
  }

  #k(name: string): string {
    return `${this.#prefix}adapters:${name}`;
  }

  async nextVersion(): Promise<number> {
    return this.#redis.incr(this.#k('seq'));
  }

  async putVersion(v: AdapterVersion): Promise<void> {
    await this.#redis.hset(this.#k('versions'), String(v.version), JSON.stringify(v));
  }

  async getVersion(version: number): Promise<AdapterVersion | null> {
    const raw = await this.#redis.hget(this.#k('versions'), String(version));
    return raw ? (JSON.parse(raw) as AdapterVersion) : null;
  }

  async listVersions(): Promise<AdapterVersion[]> {
    const all = await this.#redis.hvals(this.#k('versions'));
    return all.map((r) => JSON.parse(r) as AdapterVersion).sort((a, b) => a.version - b.version);
  }

  async getPointer(): Promise<PromotedPointer | null> {
    const raw = await this.#redis.get(this.#k('promoted'));
    return raw ? (JSON.parse(raw) as PromotedPointer) : null;
  }

  async swapPointer(expected: PromotedPointer | null, next: PromotedPointer | null): Promise<boolean> {
    const ok = await this.#redis.eval(
      SWAP_SCRIPT,
      1,
      this.#k('promoted'),
      expected ? JSON.stringify(expected) : '',
      next ? JSON.stringify(next) : '',
    );
    return ok === 1;
  }

  async close(): Promise<void> {
    this.#redis.disconnect();
  }
}

/** Where the state store lives, as `Config` says it (`dataDir`, `state.redisUrl`, `state.redisKeyPrefix`). */
export interface RegistryLocation {
  dataDir: string;
  state: { redisUrl?: string; redisKeyPrefix?: string };
}

/** Opens the registry beside the configured state store: Redis when `state.redisUrl` is set, else SQLite. */
export async function openRegistryBackend(where: RegistryLocation): Promise<RegistryBackend> {
  if (where.state.redisUrl) {
    return RedisRegistryBackend.connect(where.state.redisUrl, { keyPrefix: where.state.redisKeyPrefix });
  }
  return new SqliteRegistryBackend(path.join(where.dataDir, 'supportbot.sqlite'));
}

/**
 * Evaluates a candidate against the baseline (null = the base model) with the promotion gate.
 * `gateEvaluator` builds one from an eval dataset and a generator.
 */
export type AdapterEvaluator = (
  candidate: AdapterVersion,
  baseline: AdapterVersion | null,
) => Promise<GateDecision>;

/** A generator that can load adapters by name at runtime (`LlamaCppGenerator`). */
export interface AdapterLoading {
  registerAdapter(name: string, filePath: string, scale?: number): void;
}

/**
 * The generator as an adapter loader, or null when it cannot load adapter files (extractive; an
 * OpenAI-compatible server, whose adapters are served model names).
 */
export function adapterLoaderOf(
  generator: Generator | null | undefined,
): (Generator & AdapterLoading) | null {
  return typeof (generator as Partial<AdapterLoading> | null | undefined)?.registerAdapter === 'function'
    ? (generator as Generator & AdapterLoading)
    : null;
}

/**
 * The evaluator `promote` uses in production: registers both adapters on `generator` and runs
 * `evals/gate.ts#gateConfigurations` on `dataset` — the candidate adapter against the promoted
 * one (or the base model, adapter `null`), with the same retrieval settings for both.
 */
export function gateEvaluator(options: {
  dataset: EvalDataset;
  generator: Generator & AdapterLoading;
  settings: Omit<AnswerEvalConfig, 'name' | 'generator' | 'adapter'>;
  rules?: readonly GateRule[];
  evalOptions?: AnswerEvalOptions;
}): AdapterEvaluator {
  return async (candidate, baseline) => {
    options.generator.registerAdapter(candidate.name, candidate.ggufPath);
    if (baseline) options.generator.registerAdapter(baseline.name, baseline.ggufPath);
    const { decision } = await gateConfigurations(
      options.dataset,
      { ...options.settings, name: candidate.name, generator: options.generator, adapter: candidate.name },
      {
        ...options.settings,
        name: baseline?.name ?? 'base model',
        generator: options.generator,
        adapter: baseline ? baseline.name : null,
      },
      { ...options.evalOptions, ...(options.rules ? { rules: options.rules } : {}) },
    );
    return decision;
  };
}

/** What `promote` did. */
export type PromoteOutcome =
  | { promoted: true; version: AdapterVersion; gate: GateRecord; previous: number | null }
  | { promoted: false; version: AdapterVersion; gate: GateRecord };

/** Input to `registerCandidate`. */
export type CandidateInput = Omit<AdapterVersion, 'version' | 'name' | 'createdAt' | 'state'> & {
  createdAt?: string;
};

/** Versions kept in the pointer's rollback history. */
const HISTORY = 20;

/** The registry's operations over a backend. See the file comment for the rules. */
export class AdapterVersionRegistry {
  constructor(
    readonly backend: RegistryBackend,
    /** Adapter names are `${namePrefix}-v<n>`. */
    readonly namePrefix = 'support',
  ) {}

  #withState(v: AdapterVersion, pointer: PromotedPointer | null): AdapterVersion {
    const state: AdapterVersionState =
      pointer?.version === v.version ? 'promoted' : v.retiredAt ? 'retired' : 'candidate';
    return { ...v, state };
  }

  /** Records a newly trained adapter as a candidate. */
  async registerCandidate(input: CandidateInput): Promise<AdapterVersion> {
    const version = await this.backend.nextVersion();
    const v: AdapterVersion = {
      ...input,
      version,
      name: `${this.namePrefix}-v${version}`,
      createdAt: input.createdAt ?? new Date().toISOString(),
      state: 'candidate',
    };
    await this.backend.putVersion(v);
    return v;
  }

  /** Every version, oldest first, with its current state. */
  async list(): Promise<AdapterVersion[]> {
    const pointer = await this.backend.getPointer();
    return (await this.backend.listVersions()).map((v) => this.#withState(v, pointer));
  }

  /** @throws SupportbotError `unknown-adapter-version`. */
  async get(version: number): Promise<AdapterVersion> {
    const v = await this.backend.getVersion(version);
    if (!v) throw new SupportbotError('unknown-adapter-version', `no adapter version ${version}`);
    return this.#withState(v, await this.backend.getPointer());
  }

  /** The promoted adapter, or null (the base model serves). */
  async promoted(): Promise<AdapterVersion | null> {
    const p = await this.backend.getPointer();
    return p ? this.get(p.version) : null;
  }

  /** Runs the gate on a version against the promoted adapter and records the decision (no promotion). */
  async evaluate(version: number, evaluator: AdapterEvaluator): Promise<GateRecord> {
    const v = await this.get(version);
    const baseline = await this.promoted();
    const decision = await evaluator(v, baseline?.version === v.version ? null : baseline);
    const gate = gateRecord(decision, baseline);
    await this.backend.putVersion({ ...v, gate });
    return gate;
  }

  /**
   * Promotes `version` if the gate passes against the promoted adapter (or the base model), or
   * unconditionally with `force` (recorded). Without an evaluator only `force` promotes.
   *
   * @throws SupportbotError `unknown-adapter-version`; `adapter-already-promoted`;
   *   `adapter_missing` when its GGUF file is gone; `gate-unavailable` without an evaluator and
   *   without `force`; `registry-conflict` when another promotion or rollback happened meanwhile.
   */
  async promote(
    version: number,
    options: { evaluator?: AdapterEvaluator; force?: boolean; by?: string } = {},
  ): Promise<PromoteOutcome> {
    const pointer = await this.backend.getPointer();
    const v = await this.get(version);
    if (v.state === 'promoted') {
      throw new SupportbotError('adapter-already-promoted', `${v.name} is already the promoted adapter`);
    }
    if (!existsSync(v.ggufPath)) {
      throw new SupportbotError('adapter_missing', `${v.name}: adapter file ${v.ggufPath} is missing`);
    }
    const baseline = pointer ? await this.get(pointer.version) : null;
    const now = new Date().toISOString();
    let gate: GateRecord;
    if (options.evaluator) {
      gate = gateRecord(await options.evaluator(v, baseline), baseline);
    } else if (options.force) {
      gate = {
        pass: false,
        reasons: ['not evaluated: no generator to run the gate with'],
        baseline: baseline?.name ?? 'base model',
        dataset: '(none)',
        decidedAt: now,
      };
    } else {
      throw new SupportbotError(
        'gate-unavailable',
        `cannot evaluate ${v.name}: the promotion gate needs an LLM generator that loads adapters (llama-cpp); use --force to promote without it`,
      );
    }
    if (!gate.pass && !options.force) {
      await this.backend.putVersion({ ...v, gate });
      return { promoted: false, version: { ...v, gate }, gate };
    }
    if (!gate.pass) gate = { ...gate, forced: { by: options.by ?? 'unknown', at: now } };
    const next: PromotedPointer = {
      version: v.version,
      name: v.name,
      ggufPath: v.ggufPath,
      changedAt: now,
      ...(options.by ? { changedBy: options.by } : {}),
      previous: pointer ? [pointer.version, ...pointer.previous].slice(0, HISTORY) : [],
    };
    if (!(await this.backend.swapPointer(pointer, next))) {
      throw new SupportbotError(
        'registry-conflict',
        'another promotion or rollback changed the promoted adapter meanwhile; list the adapters and try again',
      );
    }
    const { retiredAt: _r, ...rest } = v;
    await this.backend.putVersion({ ...rest, gate, promotedAt: now, state: 'promoted' });
    if (baseline) await this.backend.putVersion({ ...baseline, retiredAt: now, state: 'retired' });
    return { promoted: true, version: await this.get(v.version), gate, previous: baseline?.version ?? null };
  }

  /**
   * Goes back to the adapter promoted before the current one (or to the base model when none was).
   * The current one becomes `retired`. No gate: the restored adapter served before.
   * @returns the version now serving, or null for the base model.
   * @throws SupportbotError `nothing-promoted`; `registry-conflict`.
   */
  async rollback(
    options: { by?: string } = {},
  ): Promise<{ from: AdapterVersion; to: AdapterVersion | null }> {
    const pointer = await this.backend.getPointer();
    if (!pointer)
      throw new SupportbotError('nothing-promoted', 'no adapter is promoted; the base model serves');
    const from = await this.get(pointer.version);
    const [prev, ...older] = pointer.previous;
    const to = prev !== undefined ? await this.get(prev) : null;
    const now = new Date().toISOString();
    const next: PromotedPointer | null = to
      ? {
          version: to.version,
          name: to.name,
          ggufPath: to.ggufPath,
          changedAt: now,
          ...(options.by ? { changedBy: options.by } : {}),
          previous: older,
        }
      : null;
    if (!(await this.backend.swapPointer(pointer, next))) {
      throw new SupportbotError(
        'registry-conflict',
        'another promotion or rollback changed the promoted adapter meanwhile; list the adapters and try again',
      );
    }
    await this.backend.putVersion({ ...from, retiredAt: now, state: 'retired' });
    if (to) {
      const { retiredAt: _r, ...rest } = to;
      await this.backend.putVersion({ ...rest, promotedAt: now, state: 'promoted' });
    }
    return { from: await this.get(from.version), to: to ? await this.get(to.version) : null };
  }

  async close(): Promise<void> {
    await this.backend.close();
  }
}

function gateRecord(decision: GateDecision, baseline: AdapterVersion | null): GateRecord {
  return {
    pass: decision.pass,
    reasons: decision.reasons,
    baseline: baseline?.name ?? 'base model',
    dataset: decision.dataset,
    decidedAt: new Date().toISOString(),
  };
}

/**
 * Keeps one process's serving adapter in step with the registry's promoted pointer: `check()`
 * reads the pointer and, when it changed, registers the promoted adapter on the generator
 * (`registerAdapter(name, ggufPath)`; the llama-cpp generator loads it on its next request) and
 * calls `onChange(name)` (`null` after a rollback to the base model) so the runtime uses it as the
 * default adapter. `start()` polls every `intervalMs` (default 5 s; the timer is unref'd so it
 * never keeps the process alive); each replica runs its own watcher, so all replicas switch within
 * one interval of a promotion, without a restart. A failed poll (Redis down) keeps the current
 * adapter and is reported to `onError`; the next poll tries again.
 */
export class PromotedAdapterWatcher {
  #timer: NodeJS.Timeout | null = null;
  #lastKey: string | null | undefined = undefined;
  #name: string | null | undefined = undefined;
  #running: Promise<boolean> | null = null;

  constructor(
    private readonly registry: AdapterVersionRegistry,
    private readonly target: AdapterLoading | null,
    private readonly options: {
      intervalMs?: number;
      onChange?: (adapterName: string | null, pointer: PromotedPointer | null) => void;
      onError?: (err: unknown) => void;
    } = {},
  ) {}

  /** The adapter name now applied (`null`: base model; `undefined`: not checked yet). */
  get current(): string | null | undefined {
    return this.#name;
  }

  /** Reads the pointer once and applies a change. @returns whether the serving adapter changed. */
  async check(): Promise<boolean> {
    // One check at a time: a slow store must not let two polls apply out of order.
    this.#running ??= (async () => {
      try {
        const pointer = await this.registry.backend.getPointer();
        const key = pointer ? `${pointer.name}\u0000${pointer.ggufPath}\u0000${pointer.changedAt}` : null;
        if (key === this.#lastKey) return false;
        if (pointer) this.target?.registerAdapter(pointer.name, pointer.ggufPath);
        this.#lastKey = key;
        this.#name = pointer?.name ?? null;
        this.options.onChange?.(pointer?.name ?? null, pointer);
        return true;
      } finally {
        this.#running = null;
      }
    })();
    return this.#running;
  }

  /** Checks now, then every `intervalMs`. Idempotent. */
  start(): void {
    if (this.#timer) return;
    const tick = () => {
      this.check().catch((err) => this.options.onError?.(err));
    };
    tick();
    this.#timer = setInterval(tick, this.options.intervalMs ?? 5_000);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }
}
