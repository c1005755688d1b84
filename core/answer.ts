import type { Embedder } from './embedder.ts';
import { wantsHuman } from './escalation.ts';
import type { GenerateRequest, GenerateResult, Generator } from './generator.ts';
import { ExtractiveGenerator } from './generators/extractive.ts';
import type { KnowledgeStore } from './knowledge-store.ts';
import { CITATION_MARKER, mapOutsideCode, parseEscalation } from './reply-contract.ts';
import type { Reranker } from './reranker.ts';
import { type RetrievalSettings, retrieve } from './retrieve.ts';
import { contentTerms, termsByCompound } from './text.ts';
import type { AnswerResult, Citation, SearchFilter, SearchHit, Turn } from './types.ts';

export interface AnswerOptions {
  store: KnowledgeStore;
  /** Defaults to the extractive generator. */
  generator?: Generator;
  /** Chunks retrieved and offered to the generator (top-k). */
  topK: number;
  /** Abstain when `confidence` is below this (0..1). */
  abstainThreshold: number;
  /** Longest reply, in characters. */
  maxAnswerChars: number;
  filter?: SearchFilter;
  /** Earlier turns of the thread, oldest first. */
  history?: Turn[];
  signal?: AbortSignal;
  /**
   * LoRA adapter for this request (resolved by the caller from workspace/channel, see
   * `core/adapters.ts#routeAdapter`); `undefined` is the generator's default, `null` the base model.
   */
  adapter?: string | null;
  /** Receives reply text as the LLM streams it (not called for extractive or fallback replies). */
  onToken?: (text: string) => void;
  /**
   * Query embedder for vector/hybrid retrieval (`core/embedder.ts`); without it retrieval is BM25.
   * When embedding the question fails (a model server down), retrieval falls back to BM25 and
   * `retrievalMode` says so.
   */
  embedder?: Embedder;
  /** Cross-encoder that reorders `retrieval.candidates` fused hits down to `topK`. */
  reranker?: Reranker;
  /** Hybrid settings (see `HybridSearchOptions`); `mode` defaults to `hybrid` with an embedder. */
  retrieval?: RetrievalSettings;
}

export const ABSTAIN_TEXT =
  "I couldn't find this in the help center, so I'd rather not guess. Would you like me to bring in someone from the support team?";
export const ESCALATE_TEXT = "I'll bring in someone from the support team to help you with this.";

/** The note in front of a fallback reply, by the failed generator's error code. */
export function fallbackNotice(code: string): string {
  const why =
    code === 'llm_timeout'
      ? 'The language model took too long to answer'
      : code === 'llm_rejected'
        ? 'The language model could not take this request'
        : 'The language model is unavailable';
  return `_${why}, so here are the most relevant passages instead._\n\n`;
}

/**
 * Retrieval confidence in 0..1: the IDF-weighted share of the question's topic terms that the
 * best of the top three hits contains (title, heading path and text), where IDF is
 * `ln(1 + N / df)` over the store's chunks when the store reports document frequencies, else 1
 * for every term. A question whose rare words appear nowhere in what was found scores low even
 * when its common words match, which is what separates "not in the help center" from "found".
 *
 * Two rules keep an off-topic question that merely shares a word with an article from scoring
 * high (measured with `npm run calibrate`, see `matchedTerms`):
 * - a hit that shares only one distinct topic term with a question of two or more counts half;
 *   one word in common is what "What is the capital of France?" has with a table of countries;
 * - a term found in a hit only inside a hyphenated compound does not count unless the question
 *   has all of that compound's topic terms ("life" vs "End-of-Life"; "two factor" still matches
 *   "two-factor").
 */
export async function retrievalConfidence(
  store: KnowledgeStore,
  question: string,
  hits: SearchHit[],
): Promise<number> {
  const terms = contentTerms(question);
  if (terms.length === 0 || hits.length === 0) return 0;
  const stats = store.documentFrequencies ? await store.documentFrequencies(terms) : null;
  const weight = (t: string) => (stats ? Math.log(1 + stats.documents / Math.max(stats.df[t] ?? 0, 0.5)) : 1);
  const total = terms.reduce((s, t) => s + weight(t), 0);
  let best = 0;
  for (const hit of hits.slice(0, 3)) {
    const matched = matchedTerms(
      terms,
      `${hit.chunk.title} ${hit.chunk.headingPath.join(' ')} ${hit.chunk.text}`,
    );
    const covered = matched.reduce((s, t) => s + weight(t), 0) / total;
    best = Math.max(best, terms.length >= 2 && matched.length < 2 ? covered / 2 : covered);
  }
  return best;
}

/**
 * The question `terms` (from `contentTerms`) that `text` contains as words of its own, or inside
 * a hyphenated compound whose topic terms are all among `terms`, in `terms` order.
 */
function matchedTerms(terms: string[], text: string): string[] {
  const { free, compounds } = termsByCompound(text);
  const asked = new Set(terms);
  const found = new Set(free);
  for (const parts of compounds) if (parts.every((p) => asked.has(p))) for (const p of parts) found.add(p);
  return terms.filter((t) => found.has(t));
}

/**
 * The search query for a follow-up in a thread: the question with the previous user question in
 * front, so "and on mobile?" keeps the topic. `answer()` uses it only when the question alone
 * retrieves too weakly, so a new topic in an old thread is searched on its own.
 */
export function retrievalQuery(question: string, history: Turn[] = []): string {
  const lastUser = [...history].reverse().find((t) => t.role === 'user');
  return lastUser ? `${lastUser.text}\n${question}` : question;
}

/**
 * Answers one question from the knowledge store: retrieve top-k → confidence → generate →
 * article-level citations. Abstains (with an offer of a human) below `abstainThreshold`;
 * escalates when the asker asks for a human or the generator ends with `ESCALATE:`.
 * Citation numbers in `text` are renumbered so `[n]` is `citations[n-1]`, one per article.
 *
 * @throws whatever the store throws (a down store is an error the caller reports); a failing
 *   generator falls back to the extractive one and the reply says so.
 */
export async function answer(question: string, options: AnswerOptions): Promise<AnswerResult> {
  const started = performance.now();
  const history = options.history ?? [];
  let retrievalMode = 'bm25';
  const search = async (query: string) => {
    const { hits, mode } = await retrieve(query, options);
    retrievalMode = mode;
    return { hits, confidence: await retrievalConfidence(options.store, query, hits) };
  };
  const retrieveStarted = performance.now();
  let { hits: retrieved, confidence } = await search(question);
  if (confidence < options.abstainThreshold && history.some((t) => t.role === 'user')) {
    // A weak question in a thread may be a follow-up ("and on mobile?"): try it with the topic.
    const followUp = await search(retrievalQuery(question, history));
    if (followUp.confidence > confidence) ({ hits: retrieved, confidence } = followUp);
  }
  const timings: NonNullable<AnswerResult['timings']> = { retrieveMs: performance.now() - retrieveStarted };
  const generator = options.generator ?? new ExtractiveGenerator();
  const base = { retrieved, confidence, generator: generator.id, retrievalMode, timings };
  const extra: Pick<AnswerResult, 'adapter' | 'model' | 'fallback' | 'invalidCitations'> = {};
  const done = (
    r: Omit<AnswerResult, 'latencyMs' | 'retrieved' | 'confidence' | 'generator'>,
  ): AnswerResult => ({
    ...base,
    ...extra,
    ...r,
    latencyMs: performance.now() - started,
  });

  if (wantsHuman(question)) {
    return done({
      text: ESCALATE_TEXT,
      citations: [],
      abstained: false,
      escalated: true,
      escalationReason: 'asker asked for a human',
    });
  }
  if (confidence < options.abstainThreshold || retrieved.length === 0) {
    return done({ text: ABSTAIN_TEXT, citations: [], abstained: true, escalated: false });
  }

  const request: GenerateRequest = {
    question,
    history,
    contexts: retrieved,
    maxChars: options.maxAnswerChars,
    signal: options.signal,
    ...(options.adapter !== undefined ? { adapter: options.adapter } : {}),
    ...(options.onToken ? { onToken: options.onToken } : {}),
  };
  let generated: GenerateResult;
  let notice = '';
  const generateStarted = performance.now();
  try {
    generated = await generator.generate(request);
    if (generated.adapter) extra.adapter = generated.adapter;
    if (generated.model) extra.model = generated.model;
    if (generated.invalidCitations) extra.invalidCitations = generated.invalidCitations;
  } catch (err) {
    // The caller cancelled (its own timeout, shutdown): it wants no answer, not a fallback.
    if (generator.id === 'extractive' || options.signal?.aborted) throw err;
    const code =
      typeof (err as { code?: unknown }).code === 'string' ? (err as { code: string }).code : 'llm_error';
    const reason = (err as Error).message;
    const { onToken: _streamed, ...plain } = request;
    generated = await new ExtractiveGenerator().generate(plain);
    base.generator = `extractive (fallback: ${generator.id} failed: ${reason})`;
    extra.fallback = { from: generator.id, code, reason };
    notice = fallbackNotice(code);
  }
  timings.generateMs = performance.now() - generateStarted;
  if (!generated.escalate) {
    const parsed = parseEscalation(generated.text);
    if (parsed.escalate) generated = { ...generated, text: parsed.text, escalate: parsed.escalate };
  }
  if (generated.escalate) {
    return done({
      text: notice + (generated.text || ESCALATE_TEXT),
      citations: [],
      abstained: false,
      escalated: true,
      escalationReason: generated.escalate.reason,
    });
  }
  if (generated.abstain || !generated.text.trim()) {
    return done({ text: ABSTAIN_TEXT, citations: [], abstained: true, escalated: false });
  }
  const { text, citations } = citeArticles(generated.text, retrieved);
  return done({ text: notice + text, citations, abstained: false, escalated: false });
}

/**
 * Rewrites context-number markers `[i]` (1-based into `contexts`) into article citations:
 * chunks of one article share one number, numbered by first appearance in the text. Markers
 * pointing at a context that was not supplied are removed, so an answer never cites what the
 * generator was not given. Only markers as `core/reply-contract.ts#CITATION_MARKER` defines them
 * count, and never inside code, so quoted `array[10]` or an escaped `\\[2\\]` stays as written.
 */
export function citeArticles(text: string, contexts: SearchHit[]): { text: string; citations: Citation[] } {
  const citations: Citation[] = [];
  const byArticle = new Map<string, Citation>();
  const rewritten = mapOutsideCode(text, (prose) =>
    prose.replace(CITATION_MARKER, (_m, digits: string) => {
      const hit = contexts[Number(digits) - 1];
      if (!hit) return '';
      const c = hit.chunk;
      const key = `${c.source}\u0000${c.articleId}`;
      let citation = byArticle.get(key);
      if (!citation) {
        citation = {
          n: citations.length + 1,
          articleId: c.articleId,
          source: c.source,
          title: c.title,
          url: c.url,
          sourcePath: c.sourcePath,
          chunkIds: [],
        };
        byArticle.set(key, citation);
        citations.push(citation);
      }
      if (!citation.chunkIds.includes(c.id)) citation.chunkIds.push(c.id);
      return `[${citation.n}]`;
    }),
  );
  return { text: rewritten, citations };
}
