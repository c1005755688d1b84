/**
 * Domain types every module speaks. Nothing here knows about SQLite, Slack or a model runtime.
 *
 * Ids are strings, times are ISO-8601 strings in UTC, sizes are in tokens unless a name says
 * otherwise (`...Chars`, `...Bytes`, `...Ms`).
 */

/** One help-center article, normalized from whatever the source produced. */
export interface Article {
  /**
   * Stable id, unique within its source. Taken from the source when it has one (a Zendesk
   * article id in front matter), else derived from the file's path relative to the source root
   * without its extension (`billing/refunds`).
   */
  id: string;
  /** Name of the configured source this article came from (`examples`, `arduino`, …). */
  source: string;
  title: string;
  /** Citation URL, built by the source's `urlTemplate`; `null` when there is none. */
  url: string | null;
  /** Path of the file relative to the source root (POSIX separators), for citations and errors. */
  sourcePath: string;
  /** Body as CommonMark + GFM Markdown, dialect syntax already resolved, title heading removed. */
  body: string;
  /** Last update as ISO-8601, from front matter or the file's mtime. */
  updatedAt: string;
  tags: string[];
  /** Groups allowed to see the article; empty means public. */
  accessGroups: string[];
  /** BCP 47 language tag (`en`, `pt-BR`); the source's default when the article does not say. */
  locale: string;
}

/** A retrievable piece of one article. */
export interface Chunk {
  /** Deterministic: `${source}:${articleId}#${index}`, so a re-sync upserts the same ids. */
  id: string;
  articleId: string;
  source: string;
  /** 0-based position within the article. */
  index: number;
  /** Headings above this chunk, outermost first, without `#` marks (the title is not included). */
  headingPath: string[];
  /**
   * The chunk's Markdown. Valid Markdown on its own: split code fences are re-fenced and split
   * tables repeat their header and alignment rows.
   */
  text: string;
  /** Size of `text` in tokens, as counted by the chunker's tokenizer. */
  tokenCount: number;
  /**
   * UTF-16 offsets `[start, end)` of the part of `Article.body` this chunk covers. Consecutive
   * chunks may overlap; `text` may add repeated table headers or re-fence lines not in the span.
   */
  span: { start: number; end: number };
}

/** A chunk with the article fields search results and citations need. */
export interface StoredChunk extends Chunk {
  title: string;
  url: string | null;
  sourcePath: string;
  tags: string[];
  accessGroups: string[];
  locale: string;
  updatedAt: string;
}

/** Metadata filters, applied before ranking. Every given field must match. */
export interface SearchFilter {
  sources?: string[];
  /** The chunk's article must carry at least one of these tags. */
  tags?: string[];
  locales?: string[];
  /**
   * Groups the asker belongs to. Public articles always match; an article with access groups
   * matches only when it shares one with this list. `undefined` means "public articles only".
   */
  accessGroups?: string[];
}

export interface SearchOptions {
  /** Number of hits to return (top-k). */
  k: number;
  filter?: SearchFilter;
  /** Query embedding for vector or hybrid search; stores without vectors ignore it. */
  vector?: Float32Array;
}

export interface SearchHit {
  chunk: StoredChunk;
  /**
   * Higher is better. For BM25 this is the negated SQLite FTS5 `bm25()` value, so > 0; scores
   * are comparable within one result list only.
   */
  score: number;
  /** 1-based rank in this result list. */
  rank: number;
}

/** One article cited by an answer; `n` is the number used in the answer text as `[n]`. */
export interface Citation {
  n: number;
  articleId: string;
  source: string;
  title: string;
  url: string | null;
  sourcePath: string;
  /** Chunk ids behind this citation. */
  chunkIds: string[];
}

/** One earlier turn of the conversation, oldest first. */
export interface Turn {
  role: 'user' | 'assistant';
  text: string;
}

/**
 * What `answer()` returns: the answer contract of DESIGN.md, the same for every generator.
 * Exactly one of three outcomes: an answer with citations, an abstention (nothing good enough was
 * found; `text` says so and offers a human), or an escalation (`escalated`, with a reason).
 */
export interface AnswerResult {
  /** Reply text (Markdown), with `[n]` markers that refer to `citations`. */
  text: string;
  citations: Citation[];
  abstained: boolean;
  escalated: boolean;
  /** Why a human is needed, when `escalated`. */
  escalationReason?: string;
  /** 0..1; the calibrated retrieval confidence the abstention threshold is compared with. */
  confidence: number;
  /** Chunks retrieved and offered to the generator, best first. */
  retrieved: SearchHit[];
  /** Which generator produced the text (`extractive`, `llama-cpp:…`) and which adapter, if any. */
  generator: string;
  adapter?: string;
  /** Model that ran (GGUF file name or server model name), when an LLM did. */
  model?: string;
  /**
   * Set when the configured LLM failed and the extractive generator answered instead: which
   * generator failed, its error code (`llm_timeout`, `llm_unavailable`, …) and message. The
   * reply text starts with a note saying so.
   */
  fallback?: { from: string; code: string; reason: string };
  /** Citation markers the model wrote that referred to no supplied chunk and were removed. */
  invalidCitations?: number;
  latencyMs: number;
  /**
   * How chunks were retrieved: `bm25`, `hybrid`, `vector`, with ` + rerank` when a cross-encoder
   * reordered them, or `bm25 (embedder unavailable: …)` after a failed query embedding.
   */
  retrievalMode?: string;
  /** Milliseconds per stage: retrieval (embedding, search, rerank, confidence) and generation (absent when none ran). */
  timings?: { retrieveMs: number; generateMs?: number };
}

/** A person's rating of one answer; one value per (answer, user), changeable and retractable. */
export interface Rating {
  answerId: string;
  userId: string;
  /** +1 for 👍, -1 for 👎. A retracted rating is deleted, not stored as 0. */
  value: 1 | -1;
  updatedAt: string;
}

/** An answer the bot gave, as recorded in the state store. */
export interface AnswerRecord {
  id: string;
  /** `console`, `slack`, `discord`, `cli`. */
  platform: string;
  /** Conversation key: a Slack thread ts, a Discord thread id, a console session id. */
  threadId: string;
  userId: string;
  question: string;
  result: Omit<AnswerResult, 'retrieved'> & { retrievedChunkIds: string[] };
  createdAt: string;
  /** Platform keys of every message posted for this answer (Slack `channel:ts`, Discord message id). */
  messageKeys?: string[];
}
