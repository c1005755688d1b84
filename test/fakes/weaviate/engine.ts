/**
 * The in-memory database behind the fake Weaviate: collections (classes) with multi-tenancy,
 * objects with properties and one vector, Weaviate's tokenizations, where-filters, BM25F,
 * nearVector by cosine distance, and hybrid search with Weaviate's two fusion algorithms.
 *
 * Behaviour follows Weaviate's documentation (docs.weaviate.io, v1.30):
 * - Tokenization (config-refs/collections#tokenization): `word` keeps runs of letters and digits,
 *   lower-cased; `lowercase` splits on whitespace and lower-cases; `whitespace` splits on
 *   whitespace, case kept; `field` is the whole value, trimmed; `trigram` lower-cases, drops
 *   non-alphanumerics and emits overlapping 3-character windows. `gse` (needs a server flag) is
 *   refused at class creation, as by a server without `ENABLE_TOKENIZER_GSE`.
 * - BM25 (concepts/search/keyword-search): BM25F with the class's k1/b (defaults 1.2/0.75) over
 *   the searched text properties, `prop^n` boosting a property n times; OR of the query tokens;
 *   stop words of the class's preset (`en` by default, `none`) are dropped from the query.
 *   The combination is Robertson & Zaragoza's BM25F ("The Probabilistic Relevance Framework:
 *   BM25 and Beyond", 2009, §3.5): per property length-normalized term frequencies, weighted by
 *   the boosts, summed, then saturated once with k1; idf = ln(1 + (N − n + 0.5) / (n + 0.5)).
 * - nearVector: cosine distance `1 − cos` (the `cosine` metric); objects without a vector are
 *   not candidates; `distance` caps it.
 * - Hybrid (concepts/search/hybrid-search): keyword and vector sub-searches, fused by
 *   `rankedFusion` (Σ weight / (60 + rank), rank 0-based, as the docs' worked example shows)
 *   or `relativeScoreFusion` (the default since 1.24: each list min-max normalized, weighted,
 *   summed); weights `1 − alpha` (keyword) and `alpha` (vector); alpha 0 or 1 skips the other
 *   sub-search. How many results each sub-search takes before fusion is not documented; the fake
 *   takes max(limit, 100), enough that fusion over a test's small collection is exact.
 * - Filters (search/filters): Equal/NotEqual/ContainsAny/ContainsAll/ContainsNone/Like/IsNull,
 *   comparisons, And/Or/Not; on text the value is tokenized like the property and all its tokens
 *   must be present; a filter on a property without a filterable index fails, as does the cursor
 *   (`after`) combined with a filter or a search.
 */
import { type Ranked, reciprocalRankFusion, relativeScoreFusion } from '../../../core/fusion.ts';
import { type Filters, Fusion, type NearVector, Op, type VectorsMessage } from './proto.ts';

/** A property of a class as the REST schema holds it (with Weaviate's defaults filled in). */
export interface PropertyDef {
  name: string;
  dataType: string[];
  tokenization?: string;
  indexFilterable?: boolean;
  indexSearchable?: boolean;
  indexRangeFilters?: boolean;
  description?: string;
  moduleConfig?: Record<string, unknown>;
}

/** A class as the REST schema holds it (the fields the fake uses; the rest is echoed). */
export interface ClassDef {
  class: string;
  properties: PropertyDef[];
  multiTenancyConfig?: { enabled?: boolean; autoTenantCreation?: boolean; autoTenantActivation?: boolean };
  invertedIndexConfig?: { bm25?: { k1?: number; b?: number }; stopwords?: { preset?: string } };
  vectorConfig?: Record<
    string,
    {
      vectorizer?: Record<string, unknown>;
      vectorIndexType?: string;
      vectorIndexConfig?: { distance?: string };
    }
  >;
  vectorizer?: string;
  [key: string]: unknown;
}

export interface StoredObject {
  uuid: string;
  properties: Record<string, unknown>;
  vector: Float32Array | null;
  createdAt: number;
  updatedAt: number;
}

/** One tenant's shard: its objects and its vector index dimension (fixed by the first vector). */
interface Shard {
  objects: Map<string, StoredObject>;
  dimensions: number | null;
}

export interface Collection {
  def: ClassDef;
  /** Tenant name → shard; a class without multi-tenancy has one shard under ''. */
  shards: Map<string, Shard>;
}

/** An error with a gRPC status code (3 INVALID_ARGUMENT, 5 NOT_FOUND, …) and Weaviate-like message. */
export class FakeError extends Error {
  constructor(
    readonly grpcCode: number,
    message: string,
    readonly httpStatus = 422,
  ) {
    super(message);
  }
}

/** Weaviate's `en` stop-word preset (entities/stopwords/presets.go). */
const EN_STOPWORDS = new Set(
  'a an and are as at be but by for if in into is it no not of on or such that the their then there these they this to was will with'.split(
    ' ',
  ),
);

/** Tokens of `text` under a Weaviate tokenization. */
export function tokenize(text: string, tokenization: string): string[] {
  switch (tokenization) {
    case 'field': {
      const t = text.trim();
      return t === '' ? [] : [t];
    }
    case 'whitespace':
      return text.split(/\s+/u).filter(Boolean);
    case 'lowercase':
      return text.toLowerCase().split(/\s+/u).filter(Boolean);
    case 'trigram': {
      const chars = Array.from(text.toLowerCase().replace(/[^\p{L}\p{N}]/gu, ''));
      if (chars.length < 3) return chars.length === 0 ? [] : [chars.join('')];
      const out: string[] = [];
      for (let i = 0; i + 3 <= chars.length; i++) out.push(chars.slice(i, i + 3).join(''));
      return out;
    }
    default: // word
      return text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
  }
}

export function vectorFromBytes(bytes: Uint8Array): Float32Array {
  const copy = new Uint8Array(bytes); // a copy at offset 0 (a Buffer view may be unaligned)
  return new Float32Array(copy.buffer, copy.byteOffset, copy.byteLength / 4);
}

/** The single vector of a batch object or search: bytes, plain list, or the `default`/only named vector. */
export function pickVector(source: {
  vector?: number[];
  vectorBytes?: Uint8Array;
  vectors?: VectorsMessage[];
}): Float32Array | null {
  if (source.vectorBytes && source.vectorBytes.length > 0) return vectorFromBytes(source.vectorBytes);
  if (source.vector && source.vector.length > 0) return Float32Array.from(source.vector);
  const named = source.vectors?.find((v) => v.name === 'default') ?? source.vectors?.[0];
  if (named && named.vectorBytes.length > 0) return vectorFromBytes(named.vectorBytes);
  return null;
}

function cosineDistance(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as number;
    const y = b[i] as number;
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  if (na === 0 || nb === 0) return 1;
  return 1 - dot / Math.sqrt(na * nb);
}

export interface Hit {
  obj: StoredObject;
  score?: number;
  distance?: number;
}

/** A stand-in for a Weaviate vectorizer module (the inference container behind e.g. text2vec-transformers). */
export type ModuleVectorizer = (text: string) => Float32Array;

export class Engine {
  readonly collections = new Map<string, Collection>();

  /** `modules`: the vectorizer modules this server has enabled, by name. */
  constructor(readonly modules: Record<string, ModuleVectorizer> = {}) {}

  /** The vectorizer module of a class's (first) vector and the properties it reads, or null for `none`. */
  moduleOf(c: Collection): { name: string; vectorize: ModuleVectorizer; properties: string[] | null } | null {
    const config = Object.values(c.def.vectorConfig ?? {})[0]?.vectorizer ?? {};
    const [name, settings] = Object.entries(config)[0] ?? [];
    if (!name || name === 'none') return null;
    const vectorize = this.modules[name];
    if (!vectorize) throw new FakeError(3, `no module with name "${name}" present`);
    const properties = (settings as { properties?: string[] } | undefined)?.properties ?? null;
    return { name, vectorize, properties };
  }

  // --- schema -------------------------------------------------------------------------------

  createClass(input: ClassDef): ClassDef {
    if (!input?.class || !/^[A-Z][_0-9A-Za-z]*$/.test(input.class)) {
      throw new FakeError(3, `'${input?.class}' is not a valid class name`);
    }
    if (this.#find(input.class)) throw new FakeError(6, `class name ${input.class} already exists`, 422);
    const properties = (input.properties ?? []).map((p) => {
      const text = p.dataType?.[0] === 'text' || p.dataType?.[0] === 'text[]';
      if (text && p.tokenization === 'gse') {
        throw new FakeError(3, `the GSE tokenizer is not enabled; set 'ENABLE_TOKENIZER_GSE=true' to enable`);
      }
      if (
        text &&
        p.tokenization &&
        !['word', 'lowercase', 'whitespace', 'field', 'trigram'].includes(p.tokenization)
      ) {
        throw new FakeError(
          3,
          `tokenization '${p.tokenization}' is not allowed for data type '${p.dataType[0]}'`,
        );
      }
      return {
        ...p,
        ...(text
          ? { tokenization: p.tokenization ?? 'word', indexSearchable: p.indexSearchable ?? true }
          : {}),
        indexFilterable: p.indexFilterable ?? true,
      };
    });
    const def: ClassDef = {
      ...input,
      properties,
      multiTenancyConfig: { enabled: false, autoTenantCreation: false, ...input.multiTenancyConfig },
      invertedIndexConfig: {
        ...input.invertedIndexConfig,
        bm25: { k1: 1.2, b: 0.75, ...input.invertedIndexConfig?.bm25 },
        stopwords: { preset: 'en', ...input.invertedIndexConfig?.stopwords },
      },
    };
    const collection: Collection = { def, shards: new Map() };
    this.moduleOf(collection); // a class naming a module the server lacks is refused
    if (!def.multiTenancyConfig?.enabled) collection.shards.set('', { objects: new Map(), dimensions: null });
    this.collections.set(def.class, collection);
    return def;
  }

  getClass(name: string): Collection | undefined {
    return this.#find(name);
  }

  deleteClass(name: string): void {
    const c = this.#find(name);
    if (c) this.collections.delete(c.def.class);
  }

  addTenants(className: string, names: string[]): void {
    const c = this.#required(className);
    if (!c.def.multiTenancyConfig?.enabled)
      throw new FakeError(3, `multi-tenancy is not enabled for class "${c.def.class}"`);
    for (const name of names) {
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) throw new FakeError(3, `tenant name "${name}" is invalid`);
    }
    for (const name of names)
      if (!c.shards.has(name)) c.shards.set(name, { objects: new Map(), dimensions: null });
  }

  removeTenants(className: string, names: string[]): void {
    const c = this.#required(className);
    for (const name of names) c.shards.delete(name);
  }

  tenants(className: string): string[] {
    const c = this.#required(className);
    return c.def.multiTenancyConfig?.enabled ? [...c.shards.keys()] : [];
  }

  // --- objects ------------------------------------------------------------------------------

  /** The shard a request addresses; errors as Weaviate words them for a missing or unexpected tenant. */
  shard(className: string, tenant: string | undefined): { c: Collection; shard: Shard } {
    const c = this.#required(className);
    const mt = c.def.multiTenancyConfig?.enabled === true;
    if (mt && !tenant) {
      throw new FakeError(
        3,
        `class ${c.def.class} has multi-tenancy enabled, but request was without tenant`,
      );
    }
    if (!mt && tenant) {
      throw new FakeError(3, `class ${c.def.class} has multi-tenancy disabled, but request was with tenant`);
    }
    const shard = c.shards.get(mt ? (tenant as string) : '');
    if (!shard) throw new FakeError(5, `tenant not found: "${tenant}"`);
    return { c, shard };
  }

  /** Inserts or replaces one object (batch semantics: the whole object, vector included, is replaced). */
  put(
    className: string,
    tenant: string,
    uuid: string,
    properties: Record<string, unknown>,
    vector: Float32Array | null,
  ): void {
    const { c, shard } = this.shard(className, tenant);
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(uuid)) {
      throw new FakeError(3, `invalid uuid "${uuid}"`);
    }
    const known = new Map(c.def.properties.map((p) => [p.name, p]));
    for (const [name, value] of Object.entries(properties)) {
      const prop = known.get(name);
      // The fake runs as with AUTOSCHEMA_ENABLED=false: unknown properties are refused.
      if (!prop)
        throw new FakeError(
          3,
          `no such prop with name '${name}' found in class '${c.def.class}' in the schema`,
        );
      checkType(prop, value);
    }
    const module = this.moduleOf(c);
    if (!vector && module) {
      // The module embeds the object's text properties (those it is configured for, else all).
      const names =
        module.properties ?? c.def.properties.filter((p) => p.dataType[0] === 'text').map((p) => p.name);
      vector = module.vectorize(names.map((n) => String(properties[n] ?? '')).join(' '));
    }
    if (vector) {
      if (shard.dimensions !== null && shard.dimensions !== vector.length) {
        throw new FakeError(
          3,
          `new node has a vector with length ${vector.length}. Existing nodes have vectors with length ${shard.dimensions}`,
        );
      }
      shard.dimensions = vector.length;
    }
    const now = Date.now();
    const old = shard.objects.get(uuid.toLowerCase());
    shard.objects.set(uuid.toLowerCase(), {
      uuid: uuid.toLowerCase(),
      properties,
      vector,
      createdAt: old?.createdAt ?? now,
      updatedAt: now,
    });
  }

  /** Objects of a shard that pass `filters`, in uuid order (Weaviate's doc-id order is stable too). */
  filtered(c: Collection, shard: Shard, filters: Filters | undefined): StoredObject[] {
    const props = new Map(c.def.properties.map((p) => [p.name, p]));
    const out = filters
      ? [...shard.objects.values()].filter((o) => matches(filters, o, props))
      : [...shard.objects.values()];
    return out.sort((a, b) => (a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0));
  }

  // --- search -------------------------------------------------------------------------------

  /** BM25F scores of the objects that contain at least one query token, best first. */
  bm25(c: Collection, shard: Shard, candidates: StoredObject[], query: string, properties: string[]): Hit[] {
    const props = new Map(c.def.properties.map((p) => [p.name, p]));
    const searchable = c.def.properties.filter(
      (p) => (p.dataType[0] === 'text' || p.dataType[0] === 'text[]') && p.indexSearchable !== false,
    );
    const targets = (properties.length > 0 ? properties : searchable.map((p) => p.name)).map((spec) => {
      const [name, boost] = spec.split('^');
      const prop = props.get(name as string);
      if (!prop) throw new FakeError(3, `property '${name}' not found in class '${c.def.class}'`);
      if (prop.indexSearchable === false || !prop.dataType[0]?.startsWith('text')) {
        throw new FakeError(3, `property '${name}' is not searchable (indexSearchable is false)`);
      }
      return { prop, boost: boost === undefined ? 1 : Number(boost) };
    });
    const stop = c.def.invertedIndexConfig?.stopwords?.preset === 'none' ? new Set<string>() : EN_STOPWORDS;
    const { k1 = 1.2, b = 0.75 } = c.def.invertedIndexConfig?.bm25 ?? {};
    // Query tokens per property (each property tokenizes the query its own way).
    const queryTokens = targets.map(
      (t) => new Set(tokenize(query, t.prop.tokenization ?? 'word').filter((w) => !stop.has(w))),
    );
    const terms = new Set(queryTokens.flatMap((s) => [...s]));
    if (terms.size === 0) return [];
    // Statistics over the whole shard (N, average lengths, document frequencies), as an inverted index keeps them.
    const all = [...shard.objects.values()];
    const avg = targets.map(({ prop }) => {
      let sum = 0;
      for (const o of all) sum += termCounts(o, prop).length;
      return all.length === 0 ? 0 : sum / all.length;
    });
    const df = new Map<string, number>();
    for (const o of all) {
      const seen = new Set<string>();
      targets.forEach(({ prop }, i) => {
        const counts = termCounts(o, prop).counts;
        for (const term of queryTokens[i] ?? []) if (counts.has(term)) seen.add(term);
      });
      for (const term of seen) df.set(term, (df.get(term) ?? 0) + 1);
    }
    const N = all.length;
    const hits: Hit[] = [];
    for (const o of candidates) {
      let score = 0;
      let matched = false;
      for (const term of terms) {
        let tf = 0;
        targets.forEach(({ prop, boost }, i) => {
          if (!queryTokens[i]?.has(term)) return;
          const { counts, length } = termCounts(o, prop);
          const count = counts.get(term) ?? 0;
          if (count === 0) return;
          const norm = 1 - b + b * (avg[i] ? length / (avg[i] as number) : 1);
          tf += (boost * count) / norm;
        });
        if (tf === 0) continue;
        matched = true;
        const n = df.get(term) ?? 0;
        const idf = Math.log(1 + (N - n + 0.5) / (n + 0.5));
        score += (idf * tf * (k1 + 1)) / (k1 + tf);
      }
      if (matched) hits.push({ obj: o, score });
    }
    // Ties keep the candidates' uuid order (the sort is stable).
    return hits.sort((x, y) => (y.score ?? 0) - (x.score ?? 0));
  }

  /** Objects with a vector, nearest first by cosine distance; `maxDistance` drops farther ones. */
  nearVector(shard: Shard, candidates: StoredObject[], vector: Float32Array, maxDistance?: number): Hit[] {
    if (shard.dimensions !== null && vector.length !== shard.dimensions) {
      throw new FakeError(
        3,
        `vector search: knn search: distance between entrypoint and query node: vector lengths don't match: ${shard.dimensions} vs ${vector.length}`,
      );
    }
    const hits: Hit[] = [];
    for (const o of candidates) {
      if (!o.vector) continue;
      const distance = cosineDistance(o.vector, vector);
      if (maxDistance !== undefined && distance > maxDistance) continue;
      hits.push({ obj: o, distance });
    }
    return hits.sort((x, y) => (x.distance ?? 0) - (y.distance ?? 0));
  }

  /** Hybrid search: the two sub-searches fused as Weaviate documents (see the file header). */
  hybrid(
    c: Collection,
    shard: Shard,
    candidates: StoredObject[],
    options: {
      query: string;
      properties: string[];
      vector: Float32Array | null;
      alpha: number;
      fusionType: number;
      limit: number;
    },
  ): Hit[] {
    const { alpha } = options;
    const n = Math.max(options.limit, 100);
    const keyword =
      alpha < 1 ? this.bm25(c, shard, candidates, options.query, options.properties).slice(0, n) : [];
    let vector: Hit[] = [];
    if (alpha > 0) {
      if (!options.vector) {
        throw new FakeError(
          3,
          'hybrid: no vector given and the class has no vectorizer module to vectorize the query',
        );
      }
      vector = this.nearVector(shard, candidates, options.vector).slice(0, n);
    }
    const byUuid = new Map<string, StoredObject>();
    for (const h of [...keyword, ...vector]) byUuid.set(h.obj.uuid, h.obj);
    const lists = [
      {
        items: keyword.map((h): Ranked<string> => ({ key: h.obj.uuid, score: h.score ?? 0 })),
        weight: 1 - alpha,
      },
      {
        items: vector.map((h): Ranked<string> => ({ key: h.obj.uuid, score: 1 - (h.distance ?? 1) })),
        weight: alpha,
      },
    ];
    const fused =
      options.fusionType === Fusion.RANKED
        ? // Weaviate's ranked fusion adds weight / (60 + rank) with a 0-based rank, i.e. k = 59 for 1-based ranks.
          reciprocalRankFusion(lists, { k: 59 })
        : relativeScoreFusion(lists);
    return fused.map((f) => ({ obj: byUuid.get(f.key) as StoredObject, score: f.score }));
  }

  #find(name: string): Collection | undefined {
    // Weaviate capitalizes the first letter of class names in requests.
    const wanted = name.charAt(0).toUpperCase() + name.slice(1);
    return this.collections.get(wanted);
  }

  #required(name: string): Collection {
    const c = this.#find(name);
    if (!c) throw new FakeError(5, `class ${name} not found`, 404);
    return c;
  }
}

function checkType(prop: PropertyDef, value: unknown): void {
  const type = prop.dataType[0];
  const ok = (() => {
    switch (type) {
      case 'text':
        return typeof value === 'string';
      case 'text[]':
        return Array.isArray(value) && value.every((v) => typeof v === 'string');
      case 'int':
        return Number.isInteger(value);
      case 'int[]':
        return Array.isArray(value) && value.every((v) => Number.isInteger(v));
      case 'number':
        return typeof value === 'number';
      case 'boolean':
        return typeof value === 'boolean';
      case 'boolean[]':
        return Array.isArray(value) && value.every((v) => typeof v === 'boolean');
      default:
        return true;
    }
  })();
  if (!ok) {
    throw new FakeError(
      3,
      `invalid ${type} property '${prop.name}' on class: value ${JSON.stringify(value)}`,
    );
  }
}

const tokenCache = new WeakMap<StoredObject, Map<string, string[]>>();
const countCache = new WeakMap<StoredObject, Map<string, { counts: Map<string, number>; length: number }>>();

/** Term → occurrences and the token count of a text property's value, cached per object. */
function termCounts(o: StoredObject, prop: PropertyDef): { counts: Map<string, number>; length: number } {
  let perObject = countCache.get(o);
  if (!perObject) {
    perObject = new Map();
    countCache.set(o, perObject);
  }
  let entry = perObject.get(prop.name);
  if (!entry) {
    const tokens = tokenizedValue(o, prop);
    const counts = new Map<string, number>();
    for (const t of tokens) counts.set(t, (counts.get(t) ?? 0) + 1);
    entry = { counts, length: tokens.length };
    perObject.set(prop.name, entry);
  }
  return entry;
}

/** The tokens a text property's value indexes (arrays: all elements), cached per object. */
function tokenizedValue(o: StoredObject, prop: PropertyDef): string[] {
  let perObject = tokenCache.get(o);
  if (!perObject) {
    perObject = new Map();
    tokenCache.set(o, perObject);
  }
  const cached = perObject.get(prop.name);
  if (cached) return cached;
  const value = o.properties[prop.name];
  const values = Array.isArray(value) ? value : value === undefined || value === null ? [] : [value];
  const tokens = values.flatMap((v) => tokenize(String(v), prop.tokenization ?? 'word'));
  perObject.set(prop.name, tokens);
  return tokens;
}

function filterValues(f: Filters): unknown[] {
  if (f.valueText !== undefined) return [f.valueText];
  if (f.valueInt !== undefined) return [Number(f.valueInt)];
  if (f.valueBoolean !== undefined) return [f.valueBoolean];
  if (f.valueNumber !== undefined) return [f.valueNumber];
  if (f.valueTextArray) return f.valueTextArray.values;
  if (f.valueIntArray) return f.valueIntArray.values.map(Number);
  if (f.valueBooleanArray) return f.valueBooleanArray.values;
  if (f.valueNumberArray) return f.valueNumberArray.values;
  return [];
}

/** Whether object `o` passes filter `f` (see the file header for the text semantics). */
function matches(f: Filters, o: StoredObject, props: Map<string, PropertyDef>): boolean {
  switch (f.operator) {
    case Op.AND:
      return f.filters.every((g) => matches(g, o, props));
    case Op.OR:
      return f.filters.some((g) => matches(g, o, props));
    case Op.NOT:
      return !f.filters.every((g) => matches(g, o, props));
  }
  const name = f.target?.property ?? f.on[0];
  if (!name) throw new FakeError(3, 'filter without a property');
  const values = filterValues(f);
  if (name === '_id' || name === 'id') {
    const ids = values.map((v) => String(v).toLowerCase());
    if (f.operator === Op.EQUAL || f.operator === Op.CONTAINS_ANY) return ids.includes(o.uuid);
    if (f.operator === Op.NOT_EQUAL || f.operator === Op.CONTAINS_NONE) return !ids.includes(o.uuid);
    throw new FakeError(3, `operator ${f.operator} is not supported on the id`);
  }
  const prop = props.get(name);
  if (!prop) throw new FakeError(3, `no such prop with name '${name}' found in class in the schema`);
  if (prop.indexFilterable === false && f.operator !== Op.IS_NULL) {
    throw new FakeError(
      3,
      `Filtering by property '${name}' requires inverted index. Is \`indexFilterable\` option of property '${name}' enabled?`,
    );
  }
  const raw = o.properties[name];
  if (f.operator === Op.IS_NULL) {
    const isNull = raw === undefined || raw === null || (Array.isArray(raw) && raw.length === 0);
    return isNull === values[0];
  }
  const type = prop.dataType[0] ?? 'text';
  if (type === 'text' || type === 'text[]') {
    const have = new Set(tokenizedValue(o, prop));
    const tokenization = prop.tokenization ?? 'word';
    const hasAll = (v: unknown) => {
      const tokens = tokenize(String(v), tokenization);
      return tokens.length > 0 && tokens.every((t) => have.has(t));
    };
    switch (f.operator) {
      case Op.EQUAL:
        return hasAll(values[0]);
      case Op.NOT_EQUAL:
        return !hasAll(values[0]);
      case Op.CONTAINS_ANY:
        return values.some(hasAll);
      case Op.CONTAINS_ALL:
        return values.every(hasAll);
      case Op.CONTAINS_NONE:
        return !values.some(hasAll);
      case Op.LIKE: {
        const pattern = new RegExp(
          `^${String(values[0])
            .replace(/[.+^${}()|[\]\\]/g, '\\$&')
            .replaceAll('*', '.*')
            .replaceAll('?', '.')}$`,
          'u',
        );
        return [...have].some((t) => pattern.test(t));
      }
      default:
        throw new FakeError(3, `operator ${f.operator} is not supported on text`);
    }
  }
  const list = Array.isArray(raw) ? raw : raw === undefined ? [] : [raw];
  const v = values[0];
  switch (f.operator) {
    case Op.EQUAL:
      return list.some((x) => x === v);
    case Op.NOT_EQUAL:
      return !list.some((x) => x === v);
    case Op.CONTAINS_ANY:
      return values.some((w) => list.includes(w));
    case Op.CONTAINS_ALL:
      return values.every((w) => list.includes(w));
    case Op.CONTAINS_NONE:
      return !values.some((w) => list.includes(w));
    case Op.GREATER_THAN:
      return list.some((x) => (x as number) > (v as number));
    case Op.GREATER_THAN_EQUAL:
      return list.some((x) => (x as number) >= (v as number));
    case Op.LESS_THAN:
      return list.some((x) => (x as number) < (v as number));
    case Op.LESS_THAN_EQUAL:
      return list.some((x) => (x as number) <= (v as number));
    default:
      throw new FakeError(3, `operator ${f.operator} is not supported on ${type}`);
  }
}

export type { NearVector };
