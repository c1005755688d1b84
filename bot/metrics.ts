import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';
import type { AnswerResult } from '../core/types.ts';
import type { HandleOutcome, Platform } from './conversation/types.ts';

/** Latency buckets in seconds, from a cached BM25 answer (~2 ms) to a slow LLM (30 s). */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30];

/**
 * The bot's Prometheus metrics (text exposition format 0.0.4, served at `/metrics`), one registry
 * per process, names per Prometheus' naming conventions (`_total` counters, `_seconds`
 * histograms; https://prometheus.io/docs/practices/naming/):
 *
 * - `supportbot_messages_total{platform,outcome}`: every incoming question by what became of it
 *   (`answered`, `abstained`, `escalated`, `duplicate`, `rate-limited`, `busy`, `ignored`, `failed`)
 * - `supportbot_answer_duration_seconds{stage}`: `retrieve`, `generate`, `total` per answer
 * - `supportbot_ratings_total{platform,value}`: `up`, `down`, `retract`, `ignored` (not an answer)
 * - `supportbot_sync_runs_total{source,result}`: `succeeded`, `failed`, `busy`
 * - `supportbot_sync_articles_total{source,change}`: `added`, `updated`, `deleted`, `failed`
 * - `supportbot_errors_total{component}`: `answer`, `escalation`, `sync`, …
 * - `supportbot_llm_fallbacks_total{code}`: extractive answers given because the LLM failed
 * plus Node's default process metrics (`process_*`, `nodejs_*`).
 */
export class BotMetrics {
  readonly registry = new Registry();
  readonly messages = new Counter({
    name: 'supportbot_messages_total',
    help: 'Incoming questions by platform and outcome',
    labelNames: ['platform', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly answerDuration = new Histogram({
    name: 'supportbot_answer_duration_seconds',
    help: 'Answer latency by stage (retrieve, generate, total)',
    labelNames: ['stage'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly ratings = new Counter({
    name: 'supportbot_ratings_total',
    help: 'Rating gestures by platform and value',
    labelNames: ['platform', 'value'] as const,
    registers: [this.registry],
  });
  readonly syncRuns = new Counter({
    name: 'supportbot_sync_runs_total',
    help: 'Sync jobs by source and result',
    labelNames: ['source', 'result'] as const,
    registers: [this.registry],
  });
  readonly syncArticles = new Counter({
    name: 'supportbot_sync_articles_total',
    help: 'Articles changed by syncs, by source and change',
    labelNames: ['source', 'change'] as const,
    registers: [this.registry],
  });
  readonly errors = new Counter({
    name: 'supportbot_errors_total',
    help: 'Errors by component',
    labelNames: ['component'] as const,
    registers: [this.registry],
  });
  readonly llmFallbacks = new Counter({
    name: 'supportbot_llm_fallbacks_total',
    help: 'Answers given by the extractive generator because the LLM failed, by error code',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** Records one answer's stage latencies and a fallback, if any. */
  observeAnswer(result: AnswerResult): void {
    if (result.timings) {
      this.answerDuration.observe({ stage: 'retrieve' }, result.timings.retrieveMs / 1000);
      if (result.timings.generateMs !== undefined) {
        this.answerDuration.observe({ stage: 'generate' }, result.timings.generateMs / 1000);
      }
    }
    this.answerDuration.observe({ stage: 'total' }, result.latencyMs / 1000);
    if (result.fallback) this.llmFallbacks.inc({ code: result.fallback.code });
  }

  /** Records what became of one incoming message. */
  observeOutcome(platform: Platform, outcome: HandleOutcome): void {
    const label =
      outcome.kind === 'answered'
        ? outcome.escalated
          ? 'escalated'
          : outcome.abstained
            ? 'abstained'
            : 'answered'
        : outcome.kind;
    this.messages.inc({ platform, outcome: label });
    if (outcome.kind === 'failed') this.errors.inc({ component: 'answer' });
  }

  /** Records one rating gesture: `value` 1, -1, null (retracted), or `ignored` when no answer matched. */
  observeRating(platform: Platform, value: 1 | -1 | null | 'ignored'): void {
    this.ratings.inc({
      platform,
      value: value === 'ignored' ? 'ignored' : value === 1 ? 'up' : value === -1 ? 'down' : 'retract',
    });
  }

  /** Records one sync job's result and article counts. */
  observeSync(
    source: string,
    result: 'succeeded' | 'failed' | 'busy',
    counts?: { added: number; updated: number; deleted: number; failed: number },
  ): void {
    this.syncRuns.inc({ source, result });
    if (result === 'failed') this.errors.inc({ component: 'sync' });
    if (counts) {
      for (const change of ['added', 'updated', 'deleted', 'failed'] as const) {
        if (counts[change] > 0) this.syncArticles.inc({ source, change }, counts[change]);
      }
    }
  }

  /** The exposition text and its content type, for `GET /metrics`. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
