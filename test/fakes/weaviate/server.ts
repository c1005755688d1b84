/**
 * A small local Weaviate for tests: the REST endpoints `weaviate-client` 3.12 calls at connect
 * and for schema and tenants, and a gRPC server (grpc-js, with the client's own protobuf codecs)
 * for Search, BatchObjects, BatchDelete, Aggregate, TenantsGet and the standard health check.
 * Data lives in memory in an `Engine` (see `engine.ts` for the search semantics and sources).
 *
 * REST (https://docs.weaviate.io/weaviate/api/rest): `GET /v1/meta`, `GET /v1/.well-known/ready`
 * and `/live`, `GET|POST /v1/schema`, `GET|DELETE /v1/schema/{class}`,
 * `GET|POST|DELETE /v1/schema/{class}/tenants`, `GET /v1/schema/{class}/tenants/{name}`. Errors use
 * Weaviate's `{"error":[{"message":…}]}` body. With `apiKey`, every request needs
 * `Authorization: Bearer <key>` (REST 401, gRPC UNAUTHENTICATED otherwise).
 *
 * Test hooks: `failNext` makes the next n calls of one gRPC method fail with a status code, and
 * `failNextHttp` the next n REST calls with an HTTP status; `calls` counts calls per method and
 * `unhandled` lists REST routes the fake does not implement (a test can assert it is empty).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import {
  type ClassDef,
  Engine,
  FakeError,
  type Hit,
  type ModuleVectorizer,
  type PropertyDef,
  pickVector,
  type StoredObject,
} from './engine.ts';
import {
  type AggregateRequest,
  type BatchDeleteRequest,
  type BatchObject,
  Fusion,
  HealthDefinition,
  type SearchRequest,
  type ServiceDefinition,
  WeaviateDefinition,
} from './proto.ts';

export interface FakeWeaviateOptions {
  /** Reported by `/v1/meta` (the client checks it; gRPC needs >= 1.27, gRPC aggregate >= 1.29). */
  version?: string;
  apiKey?: string;
  /**
   * Enabled vectorizer modules (listed in `/v1/meta`): a class naming another module is refused,
   * objects of a class with a module are embedded on write, and nearText / hybrid without a
   * vector embed the query text with it.
   */
  modules?: Record<string, ModuleVectorizer>;
  /** QUERY_MAXIMUM_RESULTS: the most objects one BatchDelete deletes, and the largest offset + limit of a search (default 10,000). */
  maxResults?: number;
}

export interface FakeWeaviate {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  /** `http://127.0.0.1:<grpc port>`. */
  grpcUrl: string;
  engine: Engine;
  calls: Map<string, number>;
  unhandled: string[];
  /** The next `times` calls of gRPC method `method` (`Search`, `BatchObjects`, …) fail with `code`. */
  failNext(method: string, code: grpc.status, times?: number): void;
  /** The next `times` REST requests fail with `status`. */
  failNextHttp(status: number, times?: number): void;
  /**
   * Until reset with `null`, BatchObjects reports a per-object error (as Weaviate does for an
   * object it cannot store, e.g. a vector of another length) for each object where `reject`
   * returns a message; the other objects of the batch are stored.
   */
  rejectObjects(
    reject:
      | ((obj: { collection: string; uuid: string; properties: Record<string, unknown> }) => string | null)
      | null,
  ): void;
  close(): Promise<void>;
}

/** Starts the fake on two ephemeral ports of 127.0.0.1. */
export async function startFakeWeaviate(options: FakeWeaviateOptions = {}): Promise<FakeWeaviate> {
  const engine = new Engine(options.modules);
  const version = options.version ?? '1.30.0';
  const calls = new Map<string, number>();
  const unhandled: string[] = [];
  const grpcFailures = new Map<string, { code: grpc.status; times: number }>();
  let httpFailure: { status: number; times: number } | null = null;
  const faults: { reject: Parameters<FakeWeaviate['rejectObjects']>[0] } = { reject: null };
  const count = (name: string) => calls.set(name, (calls.get(name) ?? 0) + 1);

  // --- REST ---------------------------------------------------------------------------------
  const server = http.createServer(async (req, res) => {
    const send = (status: number, body?: unknown) => {
      const text = body === undefined ? '' : JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json' }).end(text);
    };
    const fail = (status: number, message: string) => send(status, { error: [{ message }] });
    try {
      const url = new URL(req.url ?? '/', 'http://fake');
      const route = `${req.method} ${url.pathname}`;
      count(
        `REST ${route.replace(/\/schema\/[^/]+/, '/schema/{class}').replace(/\/tenants\/[^/]+$/, '/tenants/{name}')}`,
      );
      if (httpFailure && httpFailure.times > 0) {
        httpFailure.times--;
        return fail(httpFailure.status, 'injected failure');
      }
      if (options.apiKey && req.headers.authorization !== `Bearer ${options.apiKey}`) {
        return fail(
          401,
          'anonymous access not enabled, please provide an auth scheme such as OIDC or API key',
        );
      }
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const raw = Buffer.concat(chunks).toString('utf8');
      const body = raw ? (JSON.parse(raw) as unknown) : undefined;
      const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
      if (parts[0] !== 'v1') return fail(404, `no route ${route}`);
      const [, a, b, c, d] = parts;
      if (req.method === 'GET' && a === 'meta' && !b) {
        return send(200, {
          hostname: 'http://[::]:8080',
          version,
          modules: Object.fromEntries(Object.keys(options.modules ?? {}).map((name) => [name, {}])),
          grpcMaxMessageSize: 104858000,
        });
      }
      if (req.method === 'GET' && a === '.well-known' && (b === 'ready' || b === 'live')) return send(200);
      if (a === 'schema') {
        if (!b) {
          if (req.method === 'GET')
            return send(200, { classes: [...engine.collections.values()].map((x) => x.def) });
          if (req.method === 'POST') return send(200, engine.createClass(body as ClassDef));
        } else if (!c) {
          const cls = engine.getClass(b);
          if (req.method === 'GET') return cls ? send(200, cls.def) : send(404);
          if (req.method === 'DELETE') {
            engine.deleteClass(b);
            return send(200);
          }
        } else if (c === 'tenants') {
          const cls = engine.getClass(b);
          if (!cls) return fail(404, `class ${b} not found`);
          const tenant = (name: string) => ({ name, activityStatus: 'ACTIVE' });
          if (d && req.method === 'GET') {
            return engine.tenants(b).includes(d) ? send(200, tenant(d)) : send(404);
          }
          if (!d && req.method === 'GET') return send(200, engine.tenants(b).map(tenant));
          if (!d && req.method === 'POST') {
            const names = (body as { name: string }[]).map((t) => t.name);
            engine.addTenants(b, names);
            return send(200, names.map(tenant));
          }
          if (!d && req.method === 'DELETE') {
            engine.removeTenants(b, body as string[]);
            return send(200);
          }
        }
      }
      unhandled.push(route);
      return fail(404, `the fake does not implement ${route}`);
    } catch (err) {
      if (err instanceof FakeError) return fail(err.httpStatus, err.message);
      return fail(500, (err as Error).message);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));

  // --- gRPC ---------------------------------------------------------------------------------
  const grpcServer = new grpc.Server();
  const authorized = (call: grpc.ServerUnaryCall<unknown, unknown>) =>
    !options.apiKey || call.metadata.get('authorization')[0] === `Bearer ${options.apiKey}`;

  const unary =
    (method: string, handle: (req: never) => unknown) =>
    (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      count(method);
      const failure = grpcFailures.get(method);
      if (failure && failure.times > 0) {
        failure.times--;
        return callback({ code: failure.code, details: `injected ${grpc.status[failure.code]}` });
      }
      // The standard health service answers without credentials, as Weaviate's does.
      if (method !== 'Health/Check' && !authorized(call))
        return callback({ code: grpc.status.UNAUTHENTICATED, details: 'unauthenticated' });
      try {
        callback(null, handle(call.request as never));
      } catch (err) {
        const code = err instanceof FakeError ? err.grpcCode : grpc.status.INTERNAL;
        callback({ code, details: (err as Error).message });
      }
    };

  const weaviateHandlers: Record<string, (req: never) => unknown> = {
    search: (req: SearchRequest) => search(engine, req, options.maxResults ?? 10_000),
    batchObjects: (req: { objects: BatchObject[] }) => batchObjects(engine, req.objects, faults.reject),
    batchDelete: (req: BatchDeleteRequest) => batchDelete(engine, req, options.maxResults ?? 10_000),
    aggregate: (req: AggregateRequest) => aggregate(engine, req),
    tenantsGet: (req: { collection: string; names?: { values: string[] } }) => {
      const names = engine.tenants(req.collection);
      const wanted = req.names?.values;
      return {
        took: 0,
        tenants: names
          .filter((n) => !wanted || wanted.includes(n))
          .map((name) => ({ name, activityStatus: 1 })),
      };
    },
  };
  grpcServer.addService(toGrpcService(WeaviateDefinition), {
    ...Object.fromEntries(
      Object.entries(weaviateHandlers).map(([key, handle]) => [
        key,
        unary(WeaviateDefinition.methods[key]?.name ?? key, handle),
      ]),
    ),
    batchReferences: unary('BatchReferences', () => {
      throw new FakeError(grpc.status.UNIMPLEMENTED, 'the fake does not implement BatchReferences');
    }),
    batchStream: (call: grpc.ServerDuplexStream<unknown, unknown>) => {
      count('BatchStream');
      call.emit('error', {
        code: grpc.status.UNIMPLEMENTED,
        details: 'the fake does not implement BatchStream',
      });
    },
  });
  grpcServer.addService(toGrpcService(HealthDefinition), {
    check: unary('Health/Check', () => ({ status: 1 })),
    watch: (call: grpc.ServerWritableStream<unknown, unknown>) => call.end(),
  });
  const grpcPort = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) =>
      err ? reject(err) : resolve(port),
    ),
  );

  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    grpcUrl: `http://127.0.0.1:${grpcPort}`,
    engine,
    calls,
    unhandled,
    failNext(method, code, times = 1) {
      grpcFailures.set(method, { code, times });
    },
    failNextHttp(status, times = 1) {
      httpFailure = { status, times };
    },
    rejectObjects(reject) {
      faults.reject = reject;
    },
    async close() {
      grpcServer.forceShutdown();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A grpc-js service definition from a ts-proto one, using its codecs for the wire format. */
function toGrpcService(def: ServiceDefinition): grpc.ServiceDefinition {
  const service: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [key, m] of Object.entries(def.methods)) {
    service[key] = {
      path: `/${def.fullName}/${m.name}`,
      requestStream: m.requestStream,
      responseStream: m.responseStream,
      requestSerialize: (v: unknown) =>
        Buffer.from(m.requestType.encode(m.requestType.fromPartial(v)).finish()),
      requestDeserialize: (b: Buffer) => m.requestType.decode(b),
      responseSerialize: (v: unknown) =>
        Buffer.from(m.responseType.encode(m.responseType.fromPartial(v)).finish()),
      responseDeserialize: (b: Buffer) => m.responseType.decode(b),
      originalName: key,
    };
  }
  return service;
}

// --- gRPC method implementations --------------------------------------------------------------

function search(engine: Engine, req: SearchRequest, maxResults: number) {
  const started = performance.now();
  if (req.offset + (req.limit || 10) > maxResults) {
    throw new FakeError(
      grpc.status.INVALID_ARGUMENT,
      `query maximum results exceeded: offset + limit must be at most ${maxResults} (QUERY_MAXIMUM_RESULTS)`,
    );
  }
  const { c, shard } = engine.shard(req.collection, req.tenant);
  const searching = req.bm25Search || req.nearVector || req.hybridSearch || req.nearText;
  if (req.nearObject || req.groupBy || req.generative || req.rerank) {
    throw new FakeError(
      grpc.status.UNIMPLEMENTED,
      'the fake implements bm25, nearVector, nearText (with a module), hybrid and plain fetches only',
    );
  }
  const module = engine.moduleOf(c);
  const embedText = (text: string) => {
    if (!module) {
      throw new FakeError(
        grpc.status.INVALID_ARGUMENT,
        `class ${c.def.class} has no vectorizer module to vectorize the query`,
      );
    }
    return module.vectorize(text);
  };
  if (req.after && (req.filters || searching || req.sortBy.length > 0)) {
    throw new FakeError(
      grpc.status.INVALID_ARGUMENT,
      "explorer: list class: search: invalid pagination params: other params cannot be set along with 'after': where, sort, and search params",
    );
  }
  let candidates = engine.filtered(c, shard, req.filters);
  let hits: Hit[];
  if (req.bm25Search) {
    hits = engine.bm25(c, shard, candidates, req.bm25Search.query, req.bm25Search.properties);
  } else if (req.nearVector) {
    const vector = pickVector(req.nearVector);
    if (!vector) throw new FakeError(grpc.status.INVALID_ARGUMENT, 'nearVector: no vector given');
    hits = engine.nearVector(shard, candidates, vector, req.nearVector.distance);
  } else if (req.nearText) {
    const nearText = req.nearText as { query: string[]; distance?: number };
    hits = engine.nearVector(shard, candidates, embedText(nearText.query.join(' ')), nearText.distance);
  } else if (req.hybridSearch) {
    const h = req.hybridSearch;
    const nearText = h.nearText as { query: string[] } | undefined;
    const given = pickVector(h) ?? (h.nearVector ? pickVector(h.nearVector) : null);
    // Without a vector, the module embeds the nearText sub-search's text, else the query.
    const embedded =
      given === null && h.alpha > 0 && (nearText || module)
        ? embedText(nearText ? nearText.query.join(' ') : h.query)
        : null;
    hits = engine.hybrid(c, shard, candidates, {
      query: h.query,
      properties: h.properties,
      vector: given ?? embedded,
      alpha: h.alpha,
      fusionType: h.fusionType === Fusion.UNSPECIFIED ? Fusion.RELATIVE_SCORE : h.fusionType,
      limit: req.limit || 10,
    });
  } else {
    if (req.after) candidates = candidates.filter((o) => o.uuid > req.after.toLowerCase());
    if (req.sortBy.length > 0) candidates = sortObjects(candidates, req.sortBy, c.def.properties);
    hits = candidates.map((obj) => ({ obj }));
  }
  // Weaviate's QUERY_DEFAULTS_LIMIT is 10 when a request gives none.
  const limit = req.limit || 10;
  const page = hits.slice(req.offset, req.offset + limit);
  const wantAll = !req.properties || req.properties.returnAllNonrefProperties;
  const names = wantAll ? null : new Set(req.properties?.nonRefProperties ?? []);
  const wantVector = req.metadata?.vector === true || (req.metadata?.vectors.length ?? 0) > 0;
  return {
    took: (performance.now() - started) / 1000,
    results: page.map((hit) => ({
      metadata: {
        id: hit.obj.uuid,
        ...(hit.score !== undefined ? { score: hit.score, scorePresent: true } : {}),
        ...(hit.distance !== undefined
          ? {
              distance: hit.distance,
              distancePresent: true,
              certainty: 1 - hit.distance / 2,
              certaintyPresent: true,
            }
          : {}),
        ...(wantVector && hit.obj.vector ? vectorMetadata(hit.obj.vector, c.def) : {}),
        creationTimeUnix: hit.obj.createdAt,
        creationTimeUnixPresent: true,
        lastUpdateTimeUnix: hit.obj.updatedAt,
        lastUpdateTimeUnixPresent: true,
      },
      properties: {
        nonRefProps: { fields: encodeProperties(hit.obj, c.def.properties, names) },
        refProps: [],
        targetCollection: c.def.class,
        refPropsRequested: false,
      },
    })),
    groupByResults: [],
  };
}

function sortObjects(
  objects: StoredObject[],
  sortBy: { ascending: boolean; path: string[] }[],
  props: PropertyDef[],
): StoredObject[] {
  const known = new Set(props.map((p) => p.name));
  for (const s of sortBy) {
    const name = s.path[0] ?? '';
    if (!known.has(name) && name !== '_id')
      throw new FakeError(grpc.status.INVALID_ARGUMENT, `sort: no such prop '${name}'`);
  }
  const value = (o: StoredObject, name: string) => (name === '_id' ? o.uuid : o.properties[name]);
  return [...objects].sort((a, b) => {
    for (const s of sortBy) {
      const name = s.path[0] ?? '';
      const x = value(a, name) as string | number | undefined;
      const y = value(b, name) as string | number | undefined;
      if (x === y) continue;
      // Missing values sort first ascending, as nulls do in Weaviate.
      const cmp = x === undefined ? -1 : y === undefined ? 1 : x < y ? -1 : 1;
      return s.ascending ? cmp : -cmp;
    }
    return 0;
  });
}

/**
 * A returned vector: a collection with named vectors (`vectorConfig`) answers in `vectors`
 * (name, bytes, type SINGLE_FP32), one with a class-level vector in `vectorBytes`.
 */
function vectorMetadata(v: Float32Array, def: ClassDef) {
  const name = Object.keys(def.vectorConfig ?? {})[0];
  return name
    ? { vectors: [{ name, vectorBytes: vectorBytes(v), type: 1 }] }
    : { vectorBytes: vectorBytes(v) };
}

function vectorBytes(v: Float32Array): Uint8Array {
  return new Uint8Array(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength));
}

function int64Bytes(values: number[]): Uint8Array {
  const out = new BigInt64Array(values.map((v) => BigInt(v)));
  return new Uint8Array(out.buffer);
}

/** Properties as gRPC `Value`s by their schema data type (properties.proto). */
function encodeProperties(obj: StoredObject, props: PropertyDef[], names: Set<string> | null) {
  const fields: Record<string, unknown> = {};
  for (const prop of props) {
    if (names && !names.has(prop.name)) continue;
    const v = obj.properties[prop.name];
    if (v === undefined || v === null) continue;
    switch (prop.dataType[0]) {
      case 'text':
        fields[prop.name] = { textValue: v };
        break;
      case 'text[]':
        fields[prop.name] = { listValue: { textValues: { values: v } } };
        break;
      case 'int':
        fields[prop.name] = { intValue: v };
        break;
      case 'int[]':
        fields[prop.name] = { listValue: { intValues: { values: int64Bytes(v as number[]) } } };
        break;
      case 'boolean':
        fields[prop.name] = { boolValue: v };
        break;
      case 'boolean[]':
        fields[prop.name] = { listValue: { boolValues: { values: v } } };
        break;
      case 'number':
        fields[prop.name] = { numberValue: v };
        break;
      case 'number[]':
        fields[prop.name] = {
          listValue: { numberValues: { values: new Uint8Array(Float64Array.from(v as number[]).buffer) } },
        };
        break;
      default:
        fields[prop.name] = { textValue: String(v) };
    }
  }
  return fields;
}

/** A batch object's properties as plain values (nonRefProperties is a protobuf Struct; arrays come typed). */
function decodeProperties(obj: BatchObject): Record<string, unknown> {
  const p = obj.properties;
  const out: Record<string, unknown> = { ...(p?.nonRefProperties ?? {}) };
  for (const a of p?.textArrayProperties ?? []) out[a.propName] = a.values;
  for (const a of p?.intArrayProperties ?? []) out[a.propName] = a.values.map(Number);
  for (const a of p?.booleanArrayProperties ?? []) out[a.propName] = a.values;
  for (const a of p?.numberArrayProperties ?? []) {
    out[a.propName] =
      a.valuesBytes.length > 0 ? Array.from(new Float64Array(a.valuesBytes.slice().buffer)) : a.values;
  }
  for (const name of p?.emptyListProps ?? []) out[name] = [];
  if ((p?.singleTargetRefProps.length ?? 0) + (p?.multiTargetRefProps.length ?? 0) > 0) {
    throw new FakeError(grpc.status.UNIMPLEMENTED, 'the fake does not implement references');
  }
  return out;
}

function batchObjects(
  engine: Engine,
  objects: BatchObject[],
  reject: Parameters<FakeWeaviate['rejectObjects']>[0],
) {
  const started = performance.now();
  const errors: { index: number; error: string }[] = [];
  objects.forEach((obj, index) => {
    try {
      const properties = decodeProperties(obj);
      const injected = reject?.({ collection: obj.collection, uuid: obj.uuid, properties });
      if (injected) throw new FakeError(grpc.status.INVALID_ARGUMENT, injected);
      engine.put(obj.collection, obj.tenant, obj.uuid, properties, pickVector(obj));
    } catch (err) {
      errors.push({ index, error: (err as Error).message });
    }
  });
  return { took: (performance.now() - started) / 1000, errors };
}

function uuidBytes(uuid: string): Uint8Array {
  return Uint8Array.from(Buffer.from(uuid.replaceAll('-', ''), 'hex'));
}

function batchDelete(engine: Engine, req: BatchDeleteRequest, maxResults: number) {
  const started = performance.now();
  if (!req.filters) throw new FakeError(grpc.status.INVALID_ARGUMENT, 'batch delete: filters are required');
  const { c, shard } = engine.shard(req.collection, req.tenant);
  // One request deletes at most QUERY_MAXIMUM_RESULTS objects; `matches` counts those it took.
  const matched = engine.filtered(c, shard, req.filters).slice(0, maxResults);
  if (!req.dryRun) for (const o of matched) shard.objects.delete(o.uuid);
  return {
    took: (performance.now() - started) / 1000,
    failed: 0,
    matches: matched.length,
    successful: req.dryRun ? 0 : matched.length,
    objects: req.verbose ? matched.map((o) => ({ uuid: uuidBytes(o.uuid), successful: !req.dryRun })) : [],
  };
}

function aggregate(engine: Engine, req: AggregateRequest) {
  const started = performance.now();
  if (req.groupBy || req.hybrid || req.nearVector || req.nearText || req.aggregations.length > 0) {
    throw new FakeError(grpc.status.UNIMPLEMENTED, 'the fake aggregates objects counts (with filters) only');
  }
  const { c, shard } = engine.shard(req.collection, req.tenant);
  const n = engine.filtered(c, shard, req.filters).length;
  return {
    took: (performance.now() - started) / 1000,
    singleResult: { objectsCount: n, aggregations: { aggregations: [] } },
  };
}
