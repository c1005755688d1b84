import { mkdtempSync, rmSync } from 'node:fs';
import { utimes } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  ChatMLChatWrapper,
  GeneralChatWrapper,
  getLlama,
  type Llama,
  LlamaLogLevel,
  type LlamaModel,
} from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAdapterConfig, routeAdapter } from '../core/adapters.ts';
import { answer } from '../core/answer.ts';
import { type GenerateRequest, GeneratorError } from '../core/generator.ts';
import { LlamaCppGenerator } from '../core/generators/llama-cpp.ts';
import { OpenAIGenerator, sseData } from '../core/generators/openai.ts';
import { SqliteKnowledgeStore } from '../core/knowledge-store/sqlite.ts';
import { assemblePrompt } from '../core/prompt.ts';
import { cl100kTokenizer } from '../core/tokenizer.ts';
import type { Article, SearchHit } from '../core/types.ts';
import { chunkArticle } from '../sync/chunker.ts';
import { articleHash } from '../sync/sync.ts';
import {
  CHATML_TEMPLATE,
  randomLoraPairs,
  TINY,
  writeTinyLlama,
  writeTinyLora,
} from './fixtures/gguf/tiny-llama.ts';

function hit(n: number, text: string): SearchHit {
  return {
    chunk: {
      id: `kb:a${n}#0`,
      articleId: `a${n}`,
      source: 'kb',
      index: 0,
      headingPath: [],
      text,
      tokenCount: 0,
      span: { start: 0, end: text.length },
      title: `Article ${n}`,
      url: null,
      sourcePath: `a${n}.md`,
      tags: [],
      accessGroups: [],
      locale: 'en',
      updatedAt: '2026-01-01T00:00:00.000Z',
    },
    score: 1,
    rank: n,
  };
}

const request = (over: Partial<GenerateRequest> = {}): GenerateRequest => ({
  question: 'how do i reset it',
  history: [],
  contexts: [hit(1, 'open the settings and press reset.'), hit(2, 'the link expires in an hour.')],
  maxChars: 2000,
  ...over,
});

const tmp = mkdtempSync(path.join(tmpdir(), 'supportbot-gen-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const Q_V = ['blk.0.attn_q.weight', 'blk.0.attn_v.weight', 'blk.1.attn_q.weight', 'blk.1.attn_v.weight'];

describe('llama-cpp generator (real node-llama-cpp, tiny random GGUF + LoRA written by the fixture)', () => {
  let llama: Llama;
  let gen: LlamaCppGenerator;
  let modelPath: string;
  const adapter: Record<string, string> = {};
  const nativeLog: string[] = [];

  beforeAll(async () => {
    modelPath = await writeTinyLlama(tmp);
    adapter.a = await writeTinyLora(tmp, 'a.gguf', { pairs: randomLoraPairs(1, [...Q_V, 'output.weight']) });
    adapter.b = await writeTinyLora(tmp, 'b.gguf', { pairs: randomLoraPairs(2, [...Q_V, 'output.weight']) });
    llama = await getLlama({
      gpu: false,
      logLevel: LlamaLogLevel.warn,
      logger: (_l, m) => nativeLog.push(m),
    });
    const started = performance.now();
    gen = await LlamaCppGenerator.load({
      modelPath,
      llama,
      threads: 1,
      maxTokens: 12,
      contextSize: 2048,
      adapters: { a: { path: adapter.a, scale: 1 }, b: { path: adapter.b, scale: 1 } },
    });
    console.log(`tiny GGUF load: ${(performance.now() - started).toFixed(0)} ms`);
  });
  afterAll(async () => {
    await gen?.dispose();
    await llama?.dispose();
  });

  it('generates a streamed reply with the model id, token counts and the fallback chat wrapper', async () => {
    const pieces: string[] = [];
    const started = performance.now();
    const r = await gen.generate(request({ onToken: (t) => pieces.push(t) }));
    const ms = performance.now() - started;
    expect(r.usage?.completionTokens).toBeGreaterThan(0);
    expect(r.usage?.completionTokens).toBeLessThanOrEqual(12);
    expect(pieces.length).toBeGreaterThan(0);
    expect(pieces.join('').trim()).toBe(r.text);
    expect(r.model).toBe('tiny-llama.gguf');
    expect(r.adapter).toBeUndefined();
    expect(r.contextsUsed).toBe(2);
    expect(gen.id).toBe('llama-cpp:tiny-llama.gguf');
    // No chat template in this GGUF: node-llama-cpp's generic wrapper, not a guess from the name.
    expect(gen.chatWrapper).toBeInstanceOf(GeneralChatWrapper);
    console.log(
      `tiny GGUF: ${r.usage?.promptTokens} prompt tokens, ${r.usage?.completionTokens} tokens in ${ms.toFixed(0)} ms, first token ${r.firstTokenMs?.toFixed(0)} ms`,
    );
    // Greedy decoding is deterministic, and stream() yields the same text.
    let streamed = '';
    for await (const piece of gen.stream(request())) streamed += piece;
    expect(streamed.trim()).toBe(r.text);
  });

  it('uses the chat template stored in the GGUF when there is one', async () => {
    const chatml = await LlamaCppGenerator.load({
      modelPath: await writeTinyLlama(tmp, { file: 'chatml.gguf', chatTemplate: CHATML_TEMPLATE }),
      llama,
      threads: 1,
      maxTokens: 4,
    });
    try {
      expect(chatml.chatWrapper).toBeInstanceOf(ChatMLChatWrapper);
      const r = await chatml.generate(request());
      expect(r.usage?.completionTokens).toBeGreaterThan(0);
    } finally {
      await chatml.dispose();
    }
  });

  describe('LoRA adapters change the next-token distribution as their weights imply', () => {
    let model: LlamaModel;
    const prompt = 'hello the world';

    async function distribution(
      m: LlamaModel,
      lora?: { filePath: string; scale: number },
    ): Promise<Float64Array> {
      const ctx = await m.createContext({
        contextSize: 256,
        threads: 1,
        ...(lora ? { lora: { adapters: [lora] } } : {}),
      });
      try {
        const tokens = m.tokenize(prompt);
        const seq = ctx.getSequence();
        const last = tokens[tokens.length - 1] as (typeof tokens)[number];
        const res = await seq.controlledEvaluate([
          ...tokens.slice(0, -1),
          [last, { generateNext: { probabilities: true } }],
        ]);
        const probs = res[tokens.length - 1]?.next?.probabilities as Map<number, number>;
        const out = new Float64Array(TINY.vocab);
        for (const [t, p] of probs) out[t] = p;
        return out;
      } finally {
        await ctx.dispose();
      }
    }
    const l1 = (x: Float64Array, y: Float64Array) =>
      x.reduce((s, v, i) => s + Math.abs(v - (y[i] as number)), 0);
    const maxDiff = (x: Float64Array, y: Float64Array) =>
      x.reduce((s, v, i) => Math.max(s, Math.abs(v - (y[i] as number))), 0);

    beforeAll(() => {
      model = gen.model;
    });

    it('equals the base model with (alpha/r)·B·A merged into its weights (scale 1), and differs from the base', async () => {
      const pairs = randomLoraPairs(3, [...Q_V, 'output.weight']);
      const lora = await writeTinyLora(tmp, 'merge-check.gguf', { alpha: 8, pairs });
      const merged = await llama.loadModel({
        modelPath: await writeTinyLlama(tmp, { file: 'merged.gguf', merged: { alpha: 8, pairs } }),
      });
      try {
        const base = await distribution(model);
        const withLora = await distribution(model, { filePath: lora, scale: 1 });
        const bakedIn = await distribution(merged);
        expect(l1(base, withLora)).toBeGreaterThan(0.1);
        // F16 KV cache: equal within 1e-3 per probability, not bit-exact.
        expect(maxDiff(withLora, bakedIn)).toBeLessThan(1e-3);
        // Scale 2 is a different (stronger) change than scale 1.
        const doubled = await distribution(model, { filePath: lora, scale: 2 });
        expect(maxDiff(doubled, withLora)).toBeGreaterThan(1e-3);
        // Scale 0 restores the base model exactly.
        expect(l1(await distribution(model, { filePath: lora, scale: 0 }), base)).toBe(0);
      } finally {
        await merged.dispose();
      }
    });
  });

  it('chooses the adapter per request, and scale 0 gives the base model’s reply', async () => {
    const base = await gen.generate(request({ adapter: null }));
    const a = await gen.generate(request({ adapter: 'a' }));
    const b = await gen.generate(request({ adapter: 'b' }));
    expect(a.adapter).toBe('a');
    expect(b.adapter).toBe('b');
    expect(new Set([base.text, a.text, b.text]).size).toBe(3);
    expect((await gen.generate(request({ adapter: 'a' }))).text).toBe(a.text);
    gen.registerAdapter('a-off', adapter.a as string, 0);
    expect((await gen.generate(request({ adapter: 'a-off' }))).text).toBe(base.text);
    await expect(gen.generate(request({ adapter: 'nope' }))).rejects.toMatchObject({ code: 'llm_rejected' });
  });

  it('serves concurrent requests with different adapters, each with its own', async () => {
    const serial = [];
    for (const name of ['a', 'b', null, 'a'] as const)
      serial.push((await gen.generate(request({ adapter: name }))).text);
    const concurrent = await Promise.all(
      (['a', 'b', null, 'a'] as const).map((name) => gen.generate(request({ adapter: name }))),
    );
    expect(new Set(serial).size).toBe(3);
    expect(concurrent.map((r) => r.text)).toEqual(serial);
    expect(concurrent.map((r) => r.adapter)).toEqual(['a', 'b', undefined, 'a']);
  });

  it('queues requests beyond the sequences of a context and frees least recently used adapter contexts', async () => {
    const tight = await LlamaCppGenerator.load({
      modelPath,
      llama,
      threads: 1,
      maxTokens: 12,
      sequencesPerAdapter: 1,
      maxAdapterContexts: 1,
      adapters: { a: { path: adapter.a as string, scale: 1 }, b: { path: adapter.b as string, scale: 1 } },
    });
    try {
      const expected = (
        await Promise.all([gen.generate(request({ adapter: 'a' })), gen.generate(request({ adapter: 'b' }))])
      ).map((r) => r.text);
      // Three requests on one sequence: they wait their turn and all get the adapter's reply.
      const queued = await Promise.all([1, 2, 3].map(() => tight.generate(request({ adapter: 'a' }))));
      expect(queued.map((r) => r.text)).toEqual([expected[0], expected[0], expected[0]]);
      for (const name of ['b', null, 'a', 'b'] as const) {
        const r = await tight.generate(request({ adapter: name }));
        if (name === 'a') expect(r.text).toBe(expected[0]);
        if (name === 'b') expect(r.text).toBe(expected[1]);
        expect((await tight.poolStats()).length).toBe(1);
      }
    } finally {
      await tight.dispose();
    }
  });

  it('picks up an adapter registered at runtime, and a file replaced in place, without a restart', async () => {
    const before = (await gen.generate(request({ adapter: 'a' }))).text;
    const cPath = await writeTinyLora(tmp, 'c.gguf', {
      pairs: randomLoraPairs(4, [...Q_V, 'output.weight']),
    });
    gen.registerAdapter('c', cPath);
    const c = await gen.generate(request({ adapter: 'c' }));
    expect(c.adapter).toBe('c');
    expect(c.text).not.toBe(before);
    // Promote: write b's weights over a's file. The next 'a' request answers like 'b'.
    const b = (await gen.generate(request({ adapter: 'b' }))).text;
    await writeTinyLora(tmp, 'a.gguf', { pairs: randomLoraPairs(2, [...Q_V, 'output.weight']) });
    const future = new Date(Date.now() + 5_000);
    await utimes(adapter.a as string, future, future);
    expect((await gen.generate(request({ adapter: 'a' }))).text).toBe(b);
    const pools = await gen.poolStats();
    expect(pools.filter((p) => p.key.startsWith(`${adapter.a}\u0000`))).toHaveLength(1);
    // Put a's own weights back for the other tests.
    await writeTinyLora(tmp, 'a.gguf', { pairs: randomLoraPairs(1, [...Q_V, 'output.weight']) });
    await utimes(adapter.a as string, new Date(), new Date(Date.now() + 10_000));
    expect((await gen.generate(request({ adapter: 'a' }))).text).toBe(before);
  });

  it('fits the prompt into a small window with the model’s own tokenizer, dropping the lowest-ranked chunks', async () => {
    const small = await LlamaCppGenerator.load({
      modelPath,
      llama,
      threads: 1,
      maxTokens: 8,
      contextSize: 1400,
    });
    try {
      const contexts = [1, 2, 3, 4, 5].map((n) =>
        hit(n, `chunk ${n}: ${'press the reset button in the settings page. '.repeat(4)}`),
      );
      const r = await small.generate(request({ contexts }));
      expect(r.contextsUsed).toBeGreaterThan(0);
      expect(r.contextsUsed).toBeLessThan(5);
      // The kept prefix is the largest that fits, counted on the rendered chat template.
      const promptSize = (n: number) =>
        assemblePrompt({
          question: 'how do i reset it',
          history: [],
          contexts: contexts.slice(0, n),
          contextWindow: 1_000_000,
          reserveForReply: 8,
          tokenizer: small.tokenizer,
          maxChars: 2000,
          countMessages: (m) => small.countMessages(m),
        }).promptTokens;
      const used = r.contextsUsed as number;
      expect(promptSize(used)).toBeLessThanOrEqual(1400 - 8);
      expect(promptSize(used + 1)).toBeGreaterThan(1400 - 8);
      // The model's tokenizer, not cl100k: the tiny vocabulary spends about a token per character.
      expect(small.tokenizer.count('press the reset button')).toBeGreaterThan(
        cl100kTokenizer.count('press the reset button') * 2,
      );
    } finally {
      await small.dispose();
    }
  });

  it('cancels: an aborted request rejects with the abort reason and frees its sequence', async () => {
    const long = await LlamaCppGenerator.load({
      modelPath,
      llama,
      threads: 1,
      maxTokens: 400,
      sequencesPerAdapter: 1,
    });
    try {
      const full = performance.now();
      await long.generate(request());
      const fullMs = performance.now() - full;
      const controller = new AbortController();
      const reason = new Error('user went away');
      let pieces = 0;
      const started = performance.now();
      const run = long.generate(
        request({
          signal: controller.signal,
          onToken: () => {
            if (++pieces === 2) controller.abort(reason);
          },
        }),
      );
      await expect(run).rejects.toBe(reason);
      expect(performance.now() - started).toBeLessThan(fullMs);
      // Leaving a stream early aborts the generation too.
      for await (const _ of long.stream(request())) break;
      // The single sequence was released both times: the next request runs.
      expect((await long.generate(request({ maxChars: 5 }))).text.length).toBeLessThanOrEqual(5);
      await expect(long.generate(request({ signal: AbortSignal.abort(reason) }))).rejects.toBe(reason);
    } finally {
      await long.dispose();
    }
  });

  it('times out with llm_timeout', async () => {
    const slow = await LlamaCppGenerator.load({ modelPath, llama, threads: 1, maxTokens: 600 });
    try {
      const started = performance.now();
      const full = await slow.generate(request());
      const fullMs = performance.now() - started;
      expect(full.usage?.completionTokens).toBeGreaterThan(100);
      console.log(`tiny GGUF: ${full.usage?.completionTokens} tokens in ${fullMs.toFixed(0)} ms`);
      const err = await slow
        .generate(request({ timeoutMs: Math.max(5, fullMs / 10) }))
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GeneratorError);
      expect(err).toMatchObject({ code: 'llm_timeout' });
    } finally {
      await slow.dispose();
    }
  });

  it('reports a missing or broken adapter file as llm_unavailable', async () => {
    gen.registerAdapter('gone', path.join(tmp, 'gone.gguf'));
    await expect(gen.generate(request({ adapter: 'gone' }))).rejects.toMatchObject({
      code: 'llm_unavailable',
    });
    // A LoRA for another shape of model: llama.cpp refuses it.
    const broken = await writeTinyLora(tmp, 'broken.gguf', {
      pairs: [
        {
          target: 'blk.0.attn_q.weight',
          nIn: 32,
          nOut: 64,
          rank: 2,
          a: new Float32Array(64),
          b: new Float32Array(128),
        },
      ],
    });
    gen.registerAdapter('broken', broken);
    const err = await gen.generate(request({ adapter: 'broken' })).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'llm_unavailable' });
    expect((err as Error).message).toMatch(/cannot create LoRA adapter/);
    // The generator still serves other requests.
    expect((await gen.generate(request({ adapter: 'a' }))).adapter).toBe('a');
  });

  it('fails to load a missing model with llm_unavailable', async () => {
    await expect(
      LlamaCppGenerator.load({ modelPath: path.join(tmp, 'missing.gguf'), llama }),
    ).rejects.toMatchObject({
      code: 'llm_unavailable',
    });
  });
});

/** One recorded request to the local chat-completions server. */
interface Seen {
  auth: string | undefined;
  body: {
    model: string;
    messages: Array<{ role: string; content: string }>;
    stream: boolean;
    max_tokens: number;
    temperature: number;
  };
}
type Handler = (req: IncomingMessage, res: ServerResponse, seen: Seen, n: number) => void;

/**
 * A local OpenAI-compatible server: `POST /v1/chat/completions` answering with the documented
 * streaming format (`text/event-stream`, `data: {chat.completion.chunk}` events, `data: [DONE]`).
 */
async function chatServer(
  handler: Handler,
): Promise<{ url: string; seen: Seen[]; close: () => Promise<void> }> {
  const seen: Seen[] = [];
  const server: Server = createServer((req, res) => {
    let raw = '';
    req.on('data', (d) => {
      raw += d;
    });
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
        res.writeHead(404).end();
        return;
      }
      const s: Seen = { auth: req.headers.authorization, body: JSON.parse(raw) };
      seen.push(s);
      handler(req, res, s, seen.length);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    seen,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const chunk = (model: string, content: string | null, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    id: 'chatcmpl-1',
    object: 'chat.completion.chunk',
    created: 1_700_000_000,
    model,
    choices: [
      { index: 0, delta: content === null ? { role: 'assistant' } : { content }, finish_reason: null },
    ],
    ...extra,
  });

/** Streams `pieces` as SSE, splitting the bytes at awkward places (mid-line, mid-UTF-8) on purpose. */
function streamReply(res: ServerResponse, model: string, pieces: string[]): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const events = [
    ': keep-alive comment\n\n',
    `data: ${chunk(model, null)}\n\n`,
    ...pieces.map((p) => `data: ${chunk(model, p)}\r\n\r\n`),
    `data: ${JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', model, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n`,
    'data: [DONE]\n\n',
  ];
  const bytes = Buffer.from(events.join(''), 'utf8');
  let i = 0;
  const step = 37;
  const tick = () => {
    if (i >= bytes.length) return void res.end();
    res.write(bytes.subarray(i, i + step));
    i += step;
    setImmediate(tick);
  };
  tick();
}

describe('openai generator (local server speaking the chat-completions SSE protocol)', () => {
  it('streams the reply, sends the prompt as chat messages with the API key, and checks citations', async () => {
    const server = await chatServer((_req, res, seen) =>
      streamReply(res, seen.body.model, [
        'Open the settings ',
        'and press **reset** [1]. ',
        'Ünïcødé ✓ and a bad one [9].',
      ]),
    );
    try {
      const gen = new OpenAIGenerator({
        baseUrl: server.url,
        apiKey: 'sk-test',
        model: 'base-model',
        maxTokens: 64,
      });
      const pieces: string[] = [];
      const r = await gen.generate(request({ onToken: (t) => pieces.push(t) }));
      expect(pieces).toEqual([
        'Open the settings ',
        'and press **reset** [1]. ',
        'Ünïcødé ✓ and a bad one [9].',
      ]);
      expect(r.text).toBe('Open the settings and press **reset** [1]. Ünïcødé ✓ and a bad one .');
      expect(r.cited).toEqual([1]);
      expect(r.invalidCitations).toBe(1);
      expect(r.model).toBe('base-model');
      expect(gen.id).toBe('openai:base-model');
      const s = server.seen[0] as Seen;
      expect(s.auth).toBe('Bearer sk-test');
      expect(s.body).toMatchObject({ model: 'base-model', stream: true, max_tokens: 64, temperature: 0 });
      expect(s.body.messages.map((m) => m.role)).toEqual(['system', 'user']);
      expect(s.body.messages[1]?.content).toContain('<source id="2"');
      let streamed = '';
      for await (const p of gen.stream(request())) streamed += p;
      expect(streamed).toBe(pieces.join(''));
    } finally {
      await server.close();
    }
  });

  it('selects the adapter by the model name (vLLM multi-LoRA), per request and after runtime registration', async () => {
    const server = await chatServer((_req, res, seen) =>
      streamReply(res, seen.body.model, [`model=${seen.body.model}`]),
    );
    try {
      const gen = new OpenAIGenerator({
        baseUrl: `${server.url}/`,
        model: 'base',
        adapters: { tone: { model: 'tone-lora', scale: 1 } },
        defaultAdapter: 'tone',
      });
      expect((await gen.generate(request())).text).toBe('model=tone-lora');
      expect((await gen.generate(request({ adapter: null }))).text).toBe('model=base');
      gen.registerAdapter('billing', 'billing-lora-v2');
      const r = await gen.generate(request({ adapter: 'billing' }));
      expect([r.text, r.adapter, r.model]).toEqual(['model=billing-lora-v2', 'billing', 'billing-lora-v2']);
      expect(server.seen.map((s) => s.body.model)).toEqual(['tone-lora', 'base', 'billing-lora-v2']);
      await expect(gen.generate(request({ adapter: 'missing' }))).rejects.toMatchObject({
        code: 'llm_rejected',
      });
    } finally {
      await server.close();
    }
  });

  it('retries a 500 that comes before the first token, and not a 401', async () => {
    const server = await chatServer((_req, res, seen, n) => {
      if (seen.auth !== 'Bearer good')
        return void res
          .writeHead(401, { 'content-type': 'application/json' })
          .end(JSON.stringify({ error: { message: 'Invalid API key' } }));
      if (n === 1) return void res.writeHead(500).end('upstream crashed');
      streamReply(res, seen.body.model, ['second time lucky']);
    });
    try {
      const ok = new OpenAIGenerator({ baseUrl: server.url, apiKey: 'good', model: 'm', retryDelayMs: 10 });
      expect((await ok.generate(request())).text).toBe('second time lucky');
      expect(server.seen).toHaveLength(2);
      const bad = new OpenAIGenerator({ baseUrl: server.url, apiKey: 'bad', model: 'm', retryDelayMs: 10 });
      const err = await bad.generate(request()).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'llm_rejected' });
      expect((err as Error).message).toMatch(/401: Invalid API key/);
      expect(server.seen).toHaveLength(3);
    } finally {
      await server.close();
    }
    const down = await chatServer(
      (_req, res) => void res.writeHead(503, { 'retry-after': '0' }).end('overloaded'),
    );
    try {
      const gen = new OpenAIGenerator({ baseUrl: down.url, model: 'm', retries: 2, retryDelayMs: 5 });
      const err = await gen.generate(request()).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'llm_unavailable' });
      expect((err as Error).message).toBe('the language model server answered 503: overloaded');
      expect(down.seen).toHaveLength(3);
    } finally {
      await down.close();
    }
  });

  it('does not retry once tokens have streamed: a broken stream is an error, not a spliced reply', async () => {
    const server = await chatServer((_req, res, seen) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: ${chunk(seen.body.model, 'partial ')}\n\n`);
      setTimeout(() => res.destroy(), 20);
    });
    try {
      const gen = new OpenAIGenerator({ baseUrl: server.url, model: 'm', retryDelayMs: 10 });
      await expect(gen.generate(request())).rejects.toMatchObject({ code: 'llm_unavailable' });
      expect(server.seen).toHaveLength(1);
    } finally {
      await server.close();
    }
  });

  it('cancels mid-stream with the abort reason, and times out with llm_timeout', async () => {
    let closed = 0;
    const server = await chatServer((req, res, seen) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const timer = setInterval(() => res.write(`data: ${chunk(seen.body.model, 'tick ')}\n\n`), 10);
      req.socket.on('close', () => {
        clearInterval(timer);
        closed++;
      });
    });
    try {
      const gen = new OpenAIGenerator({ baseUrl: server.url, model: 'm' });
      const controller = new AbortController();
      const reason = new Error('user left');
      let ticks = 0;
      const run = gen.generate(
        request({ signal: controller.signal, onToken: () => ++ticks === 3 && controller.abort(reason) }),
      );
      await expect(run).rejects.toBe(reason);
      expect(ticks).toBe(3);
      await expect(gen.generate(request({ timeoutMs: 80 }))).rejects.toMatchObject({ code: 'llm_timeout' });
      await new Promise((r) => setTimeout(r, 50));
      expect(closed).toBe(2);
    } finally {
      await server.close();
    }
  });

  it('parses SSE as the spec says: CRLF/CR/LF, multi-line data, comments, an unterminated last event dropped', async () => {
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        for (const part of [
          'data: a\r',
          '\ndata:b\n',
          'data:  c\n\n: note\r\r',
          'event: x\ndata: d\r\n\r\n',
          'data: lost',
        ])
          c.enqueue(new TextEncoder().encode(part));
        c.close();
      },
    });
    const events: string[] = [];
    for await (const e of sseData(body)) events.push(e);
    expect(events).toEqual(['a\nb\n c', 'd']);
  });
});

describe('answer() falls back to extractive and says so when the LLM is down or slow', () => {
  let store: SqliteKnowledgeStore;
  const article: Article = {
    id: 'reset-password',
    source: 'kb',
    title: 'Reset your password',
    url: 'https://help.example/reset-password',
    sourcePath: 'reset-password.md',
    body: 'Open the sign-in page and choose **Forgot password**. The reset link expires after 30 minutes.',
    updatedAt: '2026-01-01T00:00:00.000Z',
    tags: [],
    accessGroups: [],
    locale: 'en',
  };
  const opts = () => ({ store, topK: 5, abstainThreshold: 0.4, maxAnswerChars: 900 });

  beforeAll(async () => {
    store = SqliteKnowledgeStore.open(path.join(tmp, 'kb.sqlite'));
    const chunking = { maxTokens: 200, overlapTokens: 0, tokenizer: cl100kTokenizer };
    await store.upsertArticle(article, chunkArticle(article, chunking), articleHash(article, chunking));
  });
  afterAll(async () => {
    await store.close();
  });

  it('server down (connection refused): the extractive reply with a note and the fallback recorded', async () => {
    const server = await chatServer(() => {});
    const url = server.url;
    await server.close();
    const gen = new OpenAIGenerator({ baseUrl: url, model: 'm', retries: 1, retryDelayMs: 5 });
    const r = await answer('how do I reset my password', { ...opts(), generator: gen });
    expect(r.fallback).toMatchObject({ from: 'openai:m', code: 'llm_unavailable' });
    expect(r.fallback?.reason).toMatch(/ECONNREFUSED/);
    expect(r.text).toMatch(
      /^_The language model is unavailable, so here are the most relevant passages instead._/,
    );
    expect(r.text).toContain('Forgot password');
    expect(r.citations[0]?.articleId).toBe('reset-password');
  });

  it('server too slow: the timeout note; a caller who cancels gets no fallback', async () => {
    const server = await chatServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
    });
    try {
      const gen = new OpenAIGenerator({ baseUrl: server.url, model: 'm', timeoutMs: 100 });
      const r = await answer('how do I reset my password', { ...opts(), generator: gen });
      expect(r.fallback?.code).toBe('llm_timeout');
      expect(r.text).toMatch(/^_The language model took too long to answer/);
      expect(r.citations).toHaveLength(1);
      await expect(
        answer('how do I reset my password', { ...opts(), generator: gen, signal: AbortSignal.timeout(30) }),
      ).rejects.toMatchObject({ name: 'TimeoutError' });
    } finally {
      await server.close();
    }
  });

  it('a real llama-cpp generator that times out falls back the same way; one that answers is recorded with its adapter', async () => {
    const modelPath = await writeTinyLlama(tmp, { file: 'answer-model.gguf' });
    const lora = await writeTinyLora(tmp, 'answer-lora.gguf', { pairs: randomLoraPairs(5, Q_V) });
    const gen = await LlamaCppGenerator.load({
      modelPath,
      threads: 1,
      maxTokens: 600,
      adapters: { tone: { path: lora, scale: 1 } },
    });
    try {
      const r = await answer('how do I reset my password', { ...opts(), generator: gen, adapter: 'tone' });
      expect(r.fallback).toBeUndefined();
      expect([r.generator, r.adapter, r.model]).toEqual([
        'llama-cpp:answer-model.gguf',
        'tone',
        'answer-model.gguf',
      ]);
      const slow = await answer('how do I reset my password', {
        ...opts(),
        generator: { id: gen.id, generate: (req) => gen.generate({ ...req, timeoutMs: 1 }) },
      });
      expect(slow.fallback).toMatchObject({ from: 'llama-cpp:answer-model.gguf', code: 'llm_timeout' });
      expect(slow.text).toMatch(/^_The language model took too long to answer/);
      expect(slow.text).toContain('Forgot password');
    } finally {
      await gen.dispose();
    }
  });
});

describe('adapter map', () => {
  it('parses the config section, resolves paths, and routes channel > workspace > platform > default', () => {
    const config = parseAdapterConfig(
      {
        default: 'tone',
        map: { tone: { path: 'adapters/tone.gguf' }, billing: { model: 'billing-lora', scale: 0.5 } },
        routes: [
          { platform: 'slack', adapter: 'billing' },
          { workspace: 'T1', adapter: null },
          { workspace: 'T1', channel: 'C9', adapter: 'billing' },
        ],
      },
      '/etc/supportbot',
    );
    expect(config.map.tone).toEqual({ path: '/etc/supportbot/adapters/tone.gguf', scale: 1 });
    expect(routeAdapter(config, { platform: 'discord', workspace: 'G1', channel: 'X' })).toBe('tone');
    expect(routeAdapter(config, { platform: 'slack', workspace: 'T2', channel: 'C1' })).toBe('billing');
    expect(routeAdapter(config, { platform: 'slack', workspace: 'T1', channel: 'C1' })).toBeNull();
    expect(routeAdapter(config, { platform: 'slack', workspace: 'T1', channel: 'C9' })).toBe('billing');
    expect(() => parseAdapterConfig({ routes: [{ adapter: 'ghost' }] }, '/')).toThrow(
      /routes\.0\.adapter: adapter "ghost" is not in map/,
    );
    expect(() => parseAdapterConfig({ map: { x: {} } }, '/')).toThrow(/needs a path or a model/);
  });
});
