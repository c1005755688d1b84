import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { checkEmbeddingInfo, createEmbedder, prefixesForModelName } from '../core/embedder.ts';
import { OnnxEmbedder, resolveModelFolder } from '../core/embedders/onnx.ts';
import { embeddingsUrl, OpenAIEmbedder, retryAfterMs } from '../core/embedders/openai.ts';
import { createReranker, rerankHits } from '../core/reranker.ts';
import type { SearchHit } from '../core/types.ts';
import { BIAS, writeTinyCrossEncoder } from './fixtures/models/tiny-cross-encoder.ts';
import { DIM, VOCAB, writeTinyEmbedder } from './fixtures/models/tiny-embedder.ts';

const root = mkdtempSync(path.join(tmpdir(), 'supportbot-embed-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A DIM-long vector with the given entries (index → value), for hand-computed expectations. */
function vec(entries: Record<number, number>): number[] {
  const v = new Array<number>(DIM).fill(0);
  for (const [i, x] of Object.entries(entries)) v[Number(i)] = x;
  return v;
}

function expectClose(actual: Float32Array | undefined, expected: number[]): void {
  expect(actual).toBeDefined();
  expect(Array.from(actual ?? []).length).toBe(expected.length);
  expected.forEach((x, i) => {
    expect(actual?.[i], `component ${i}`).toBeCloseTo(x, 5);
  });
}

// Axes of the tiny model (test/fixtures/models/tiny-embedder.ts): 0 refund, 1 password,
// 2 invoice, 3 cancel, 4 bank, 5 two-factor, 6 plan, 7 special ([CLS] and [SEP] are 0.5 each),
// 8 "query", 9 "passage". Stop words and unknown words are [UNK], a zero row.
const S3 = 1 / Math.sqrt(3);
const S2 = 1 / Math.sqrt(2);

describe('OnnxEmbedder (tiny WordPiece + ONNX model through transformers.js and onnxruntime)', () => {
  let mean: OnnxEmbedder;
  let modelDir: string;

  beforeAll(async () => {
    modelDir = writeTinyEmbedder(path.join(root, 'tiny-embed'));
    mean = await OnnxEmbedder.load({ model: modelDir, batchSize: 3 });
  });
  afterAll(async () => {
    await mean.close();
  });

  it('tokenizes with the real WordPiece tokenizer: [CLS], ## continuations, [UNK], [SEP]', () => {
    const id = (t: string) => VOCAB.get(t);
    expect(mean.tokenize('Refunded invoices E1042')).toEqual([
      id('[CLS]'),
      id('refund'),
      id('##ed'),
      id('invoice'),
      id('##s'),
      id('[UNK]'),
      id('[SEP]'),
    ]);
  });

  it('mean-pools the unmasked tokens and L2-normalizes (values computed by hand)', async () => {
    expect(mean.dimensions).toBe(DIM);
    expect(mean.pooling).toBe('mean');
    const [refundInvoice, resetPassword, unknownOnly] = await mean.embedPassages([
      'refund invoice',
      'Reset your password',
      'E1042',
    ]);
    // [CLS] refund invoice [SEP]: sum = e0 + e2 + e7 (0.5 + 0.5), mean /4, normalized → 1/√3 each.
    expectClose(refundInvoice, vec({ 0: S3, 2: S3, 7: S3 }));
    // reset = 0.5·e1, password = e1, "your" = [UNK] = 0: sum = 1.5·e1 + e7, |sum| = √3.25.
    expectClose(resetPassword, vec({ 1: 1.5 / Math.sqrt(3.25), 7: 1 / Math.sqrt(3.25) }));
    // Only [CLS] [UNK] [SEP]: the special axis alone.
    expectClose(unknownOnly, vec({ 7: 1 }));
  });

  it('batches with padding give the same vectors as one text at a time (padding is masked)', async () => {
    // The [PAD] row is large: a pooling that averaged padded positions would move every short text.
    const texts = ['refund', 'cancel subscription plan upgrade bank feed', 'bill', '2fa authenticator', 'x'];
    const together = await mean.embedPassages(texts);
    const single = await OnnxEmbedder.load({ model: modelDir, batchSize: 1 });
    try {
      const apart = await single.embedPassages(texts);
      expect(together).toHaveLength(5);
      together.forEach((v, i) => {
        expectClose(v, Array.from(apart[i] ?? []));
      });
      expectClose(together[0], vec({ 0: S2, 7: S2 }));
    } finally {
      await single.close();
    }
  });

  it('puts synonyms on the same vector (what BM25 cannot do)', async () => {
    const [a, b] = await mean.embedQueries(['reimbursement', 'refund']);
    expectClose(a, Array.from(b ?? []));
  });

  it('truncates to maxLength tokens, special tokens included', async () => {
    const short = await OnnxEmbedder.load({ model: modelDir, maxLength: 3 });
    try {
      expect(short.tokenize('refund invoice')).toEqual([
        VOCAB.get('[CLS]'),
        VOCAB.get('refund'),
        VOCAB.get('[SEP]'),
      ]);
      const [v] = await short.embedPassages(['refund invoice']);
      expectClose(v, vec({ 0: S2, 7: S2 }));
    } finally {
      await short.close();
    }
    // sentence_bert_config.json's max_seq_length is the model's own limit.
    const configured = await OnnxEmbedder.load({
      model: writeTinyEmbedder(path.join(root, 'tiny-maxlen'), { maxSeqLength: 4 }),
    });
    try {
      expect(configured.maxLength).toBe(4);
      expect(configured.tokenize('refund invoice bank')).toHaveLength(4);
    } finally {
      await configured.close();
    }
  });

  it('uses CLS pooling when 1_Pooling/config.json says so', async () => {
    const cls = await OnnxEmbedder.load({
      model: writeTinyEmbedder(path.join(root, 'tiny-cls'), { pooling: 'cls' }),
    });
    try {
      expect(cls.pooling).toBe('cls');
      const [v] = await cls.embedPassages(['refund invoice']);
      expectClose(v, vec({ 7: 1 }));
    } finally {
      await cls.close();
    }
  });

  it('adds e5 prefixes recognised by name, prompts from the model config, or explicit ones', async () => {
    expect(prefixesForModelName('intfloat/multilingual-e5-small')).toEqual({
      query: 'query: ',
      passage: 'passage: ',
    });
    expect(prefixesForModelName('intfloat/e5-base-v2')).toEqual({ query: 'query: ', passage: 'passage: ' });
    expect(prefixesForModelName('Xenova/all-MiniLM-L6-v2')).toEqual({ query: '', passage: '' });

    const e5 = await OnnxEmbedder.load({ model: writeTinyEmbedder(path.join(root, 'tiny-e5-small')) });
    try {
      expect(e5.prefixes).toEqual({ query: 'query: ', passage: 'passage: ' });
      const [q] = await e5.embedQueries(['refund']);
      const [p] = await e5.embedPassages(['refund']);
      // "query: refund" → [CLS] query : refund [SEP] → e8 + e0 + e7 (":" is a zero row).
      expectClose(q, vec({ 0: S3, 7: S3, 8: S3 }));
      expectClose(p, vec({ 0: S3, 7: S3, 9: S3 }));
    } finally {
      await e5.close();
    }

    const prompted = await OnnxEmbedder.load({
      model: writeTinyEmbedder(path.join(root, 'tiny-prompted'), {
        prompts: { query: 'query: ', passage: '' },
      }),
    });
    const explicit = await OnnxEmbedder.load({
      model: path.join(root, 'tiny-prompted'),
      prefixes: { query: 'passage: ' },
    });
    try {
      expect(prompted.prefixes).toEqual({ query: 'query: ', passage: '' });
      expect(explicit.prefixes).toEqual({ query: 'passage: ', passage: '' });
      const [q] = await explicit.embedQueries(['refund']);
      expectClose(q, vec({ 0: S3, 7: S3, 9: S3 }));
    } finally {
      await prompted.close();
      await explicit.close();
    }
  });

  it('resolves a hub id from the local Hugging Face cache only, and says so when it is missing', async () => {
    const cache = path.join(root, 'hf-cache');
    const repo = path.join(cache, 'models--acme--tiny-embed');
    writeTinyEmbedder(path.join(repo, 'snapshots', '0123abcd'));
    mkdirSync(path.join(repo, 'refs'), { recursive: true });
    writeFileSync(path.join(repo, 'refs', 'main'), '0123abcd');
    expect(resolveModelFolder('acme/tiny-embed', [cache])).toEqual({
      dir: path.join(repo, 'snapshots', '0123abcd'),
      subfolder: 'onnx',
    });
    const embedder = await createEmbedder({ model: 'acme/tiny-embed', cacheDirs: [cache] });
    try {
      expect(embedder).toBeInstanceOf(OnnxEmbedder);
      expect(embedder.id).toBe('onnx:acme/tiny-embed');
      expect(embedder.dimensions).toBe(DIM);
    } finally {
      await embedder.close();
    }
    const missing = await createEmbedder({ model: 'acme/not-downloaded', cacheDirs: [cache] }).catch(
      (e) => e,
    );
    expect(missing).toMatchObject({ code: 'model-not-found' });
    expect(missing.message).toContain('never downloads');
    await expect(createEmbedder({ model: path.join(root, 'no-such-folder') })).rejects.toMatchObject({
      code: 'model-not-found',
    });
  });

  it('stops between batches when aborted', async () => {
    const controller = new AbortController();
    controller.abort(new Error('stop'));
    await expect(mean.embedPassages(['refund'], { signal: controller.signal })).rejects.toThrow('stop');
  });
});

describe('checkEmbeddingInfo (start-up check of stored vectors)', () => {
  it('is ready for the same model, empty without vectors, and a mismatch otherwise', () => {
    const embedder = { id: 'onnx:a', dimensions: 4 };
    expect(checkEmbeddingInfo({ model: 'onnx:a', dimensions: 4 }, embedder)).toBe('ready');
    expect(checkEmbeddingInfo(null, embedder)).toBe('empty');
    expect(() => checkEmbeddingInfo({ model: 'onnx:b', dimensions: 4 }, embedder)).toThrow(
      expect.objectContaining({
        code: 'embedding-mismatch',
        message: expect.stringContaining('sync --reembed'),
      }),
    );
  });
});

describe('OnnxReranker (tiny cross-encoder through transformers.js and onnxruntime)', () => {
  const hit = (id: string, text: string, title = ''): SearchHit => ({
    chunk: {
      id,
      articleId: id,
      source: 'docs',
      index: 0,
      headingPath: [],
      text,
      tokenCount: 1,
      span: { start: 0, end: text.length },
      title,
      url: null,
      sourcePath: `${id}.md`,
      tags: [],
      accessGroups: [],
      locale: 'en',
      updatedAt: '2024-01-01T00:00:00Z',
    },
    score: 0,
    rank: 0,
  });

  it('scores (query, passage) pairs read as one text pair: the logit of the head, by hand', async () => {
    const reranker = await createReranker({
      model: writeTinyCrossEncoder(path.join(root, 'tiny-ce')),
      batchSize: 2,
    });
    try {
      expect(reranker.id).toBe(`onnx:${path.join(root, 'tiny-ce')}`);
      const scores = await reranker.rerank('refund my bill', [
        'Refunds and reimbursement of an invoice', // q = e0 + e2; p = 2·e0 + e2 → 3
        'Reset your password', // no overlap → 0
        'refund', // 1
        'bill bill bill', // 3
        'bank feed', // 0
      ]);
      expect(scores).toHaveLength(5);
      [3, 0, 1, 3, 0].forEach((dot, i) => {
        expect(scores[i]).toBeCloseTo(dot + BIAS, 5);
      });
      expect(await reranker.rerank('refund', [])).toEqual([]);
    } finally {
      await reranker.close();
    }
  });

  it('truncates a long pair from the end of the passage, keeping the query and the closing [SEP]', async () => {
    const short = await createReranker({ model: path.join(root, 'tiny-ce'), maxLength: 6 });
    try {
      // [CLS] refund [SEP] bill refund refund [SEP] is 7 tokens; at 6 the last "refund" goes:
      // q = e0, p = e2 + e0 → 1 (the untruncated pair would score 2).
      const [truncated] = await short.rerank('refund', ['bill refund refund']);
      expect(truncated).toBeCloseTo(1 + BIAS, 5);
    } finally {
      await short.close();
    }
  });

  it('reorders hits by the cross-encoder and keeps k, renumbering ranks', async () => {
    const reranker = await createReranker({ model: path.join(root, 'tiny-ce') });
    try {
      const hits = [
        hit('a', 'Bank feed connection'),
        hit('b', 'Cancel anytime', 'Cancel your subscription'),
        hit('c', 'Refund policy for annual plans'),
      ];
      const reranked = await rerankHits(reranker, 'how to cancel my plan', hits, 2);
      // q = cancel (e3) + plan (e6). b reads "Cancel your subscription\nCancel anytime": cancel ×2,
      // subscription (= plan axis) ×1 → 2 + 1 = 3; c: "plans" = plan ##s → 1; a: 0.
      expect(reranked.map((h) => h.chunk.id)).toEqual(['b', 'c']);
      expect(reranked.map((h) => h.rank)).toEqual([1, 2]);
      expect(reranked[0]?.score).toBeCloseTo(3 + BIAS, 5);
      expect(reranked[1]?.score).toBeCloseTo(1 + BIAS, 5);
    } finally {
      await reranker.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// OpenAI-compatible /v1/embeddings against a local server speaking the documented shape
// ---------------------------------------------------------------------------------------------

interface Recorded {
  method: string;
  url: string;
  authorization: string | undefined;
  body: { model?: string; input?: string[]; encoding_format?: string };
}

/** Embeds a text as a hand-checkable 3-vector: [length, count of "a", 1], not normalized (the client must). */
const serverVector = (text: string) => [text.length, (text.match(/a/g) ?? []).length, 1];

describe('OpenAIEmbedder (local HTTP server with the /v1/embeddings wire shape)', () => {
  let server: Server;
  let base: string;
  const requests: Recorded[] = [];
  /** Per-request behaviour, consumed in order; default: answer normally. */
  let script: ((res: ServerResponse) => boolean)[] = [];

  beforeAll(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      let raw = '';
      req.on('data', (c) => {
        raw += c;
      });
      req.on('end', () => {
        const body = JSON.parse(raw || '{}') as Recorded['body'];
        requests.push({
          method: req.method ?? '',
          url: req.url ?? '',
          authorization: req.headers.authorization,
          body,
        });
        const step = script.shift();
        if (step?.(res)) return;
        if (req.url !== '/v1/embeddings' || req.method !== 'POST') {
          res.writeHead(404).end();
          return;
        }
        const input = body.input ?? [];
        // Reversed on purpose: clients must order by `index`, not by position.
        const data = input
          .map((text, index) => ({ object: 'embedding', index, embedding: serverVector(text) }))
          .reverse();
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            object: 'list',
            data,
            model: body.model,
            usage: { prompt_tokens: 1, total_tokens: 1 },
          }),
        );
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });
  afterEach(() => {
    requests.length = 0;
    script = [];
  });

  it('posts {model, input, encoding_format} in batches, orders by index, normalizes, sends the key', async () => {
    const embedder = await createEmbedder({
      model: 'nomic-embed-text',
      baseUrl: base,
      apiKey: 'sk-test',
      batchSize: 2,
    });
    expect(embedder).toBeInstanceOf(OpenAIEmbedder);
    expect(embedder.id).toBe('openai:nomic-embed-text');
    expect(embedder.dimensions).toBe(3); // learned from one probe request
    requests.length = 0;
    const texts = ['aa', 'banana', 'c', 'data', 'e'];
    const vectors = await embedder.embedPassages(texts);
    expect(requests.map((r) => r.body.input)).toEqual([
      ['search_document: aa', 'search_document: banana'],
      ['search_document: c', 'search_document: data'],
      ['search_document: e'],
    ]);
    for (const r of requests) {
      expect(r).toMatchObject({ method: 'POST', url: '/v1/embeddings', authorization: 'Bearer sk-test' });
      expect(r.body).toMatchObject({ model: 'nomic-embed-text', encoding_format: 'float' });
    }
    texts.forEach((t, i) => {
      const raw = serverVector(`search_document: ${t}`);
      const norm = Math.hypot(...raw);
      expectClose(
        vectors[i],
        raw.map((x) => x / norm),
      );
    });
    const [q] = await embedder.embedQueries(['a']);
    expect(requests.at(-1)?.body.input).toEqual(['search_query: a']);
    expect(q).toHaveLength(3);
  });

  it('accepts a base URL that already ends in /v1', () => {
    expect(embeddingsUrl('http://h:8080/v1')).toBe('http://h:8080/v1/embeddings');
    expect(embeddingsUrl('http://h:8080/')).toBe('http://h:8080/v1/embeddings');
    expect(embeddingsUrl('http://h/ollama/v1/')).toBe('http://h/ollama/v1/embeddings');
  });

  it('waits for Retry-After on 429 and then succeeds', async () => {
    const embedder = await OpenAIEmbedder.create({
      model: 'm',
      baseUrl: base,
      dimensions: 3,
      retryBaseMs: 10,
    });
    script = [
      (res) => {
        res.writeHead(429, { 'retry-after': '1', 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: 'rate limited' } }));
        return true;
      },
    ];
    const started = performance.now();
    const [v] = await embedder.embedPassages(['aa']);
    const waited = performance.now() - started;
    expect(waited).toBeGreaterThanOrEqual(950);
    expect(requests).toHaveLength(2);
    expect(v).toHaveLength(3);
  });

  it('retries 5xx with backoff, then reports the server as unavailable', async () => {
    const embedder = await OpenAIEmbedder.create({
      model: 'm',
      baseUrl: base,
      dimensions: 3,
      retryBaseMs: 5,
      maxRetries: 2,
    });
    const fail = (res: ServerResponse) => {
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end('model loading');
      return true;
    };
    script = [fail];
    expect(await embedder.embedPassages(['x'])).toHaveLength(1); // one 503, then fine
    expect(requests).toHaveLength(2);
    requests.length = 0;
    script = [fail, fail, fail];
    const err = await embedder.embedPassages(['x']).catch((e) => e);
    expect(err).toMatchObject({ code: 'embedding-unavailable' });
    expect(err.message).toContain('HTTP 503: model loading');
    expect(requests).toHaveLength(3);
  });

  it('fails at once on other 4xx, with the server message', async () => {
    const embedder = await OpenAIEmbedder.create({ model: 'missing-model', baseUrl: base, dimensions: 3 });
    script = [
      (res) => {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: 'model "missing-model" not found' } }));
        return true;
      },
    ];
    const err = await embedder.embedPassages(['x']).catch((e) => e);
    expect(err).toMatchObject({ code: 'embedding-failed' });
    expect(err.message).toContain('model "missing-model" not found');
    expect(requests).toHaveLength(1);
  });

  it('a wrong number of embeddings or a changed dimension is an error, not a silent misalignment', async () => {
    const embedder = await OpenAIEmbedder.create({ model: 'm', baseUrl: base, dimensions: 4 });
    await expect(embedder.embedPassages(['x'])).rejects.toMatchObject({ code: 'embedding-failed' });
    script = [
      (res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ data: [{ index: 0, embedding: [1, 2, 3] }] }));
        return true;
      },
    ];
    const three = await OpenAIEmbedder.create({ model: 'm', baseUrl: base, dimensions: 3 });
    await expect(three.embedPassages(['x', 'y'])).rejects.toMatchObject({ code: 'embedding-failed' });
  });

  it('a server that is down is a clear error at start-up', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const err = await createEmbedder({
      model: 'm',
      baseUrl: `http://127.0.0.1:${port}`,
      maxRetries: 1,
    }).catch((e) => e);
    expect(err).toMatchObject({ code: 'embedding-unavailable' });
    expect(err.message).toMatch(/not reachable \(ECONNREFUSED\) after 2 attempts; is it running\?/);
  });

  it('parses Retry-After as seconds or an HTTP date, capped at 60 s', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(retryAfterMs('3', now)).toBe(3000);
    expect(retryAfterMs('Thu, 01 Jan 2026 00:00:05 GMT', now)).toBe(5000);
    expect(retryAfterMs('86400', now)).toBe(60_000);
    expect(retryAfterMs(null, now)).toBeNull();
    expect(retryAfterMs('soon', now)).toBeNull();
  });
});
