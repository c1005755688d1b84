import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../bot/logging.ts';
import { BotMetrics } from '../bot/metrics.ts';
import { makeAnswerResult } from './helpers/answer-result.ts';

describe('logs', () => {
  it('never write credentials or what people typed', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const log = createLogger('info', sink as never);
    log.info(
      {
        question: 'my card is 4111 1111 1111 1111, email ann@example.com',
        slack: { botToken: 'xoxb-123-secret', signingSecret: 'shh' },
        err: { headers: { authorization: 'Bearer sk-live-abc' } },
        messageKey: 'C1:1.0',
      },
      'answered',
    );
    const out = lines.join('');
    for (const secret of ['4111', 'ann@example.com', 'xoxb-123-secret', 'shh', 'sk-live-abc']) {
      expect(out).not.toContain(secret);
    }
    expect(JSON.parse(out)).toMatchObject({ messageKey: 'C1:1.0', question: '[redacted]', msg: 'answered' });
  });
});

describe('metrics', () => {
  it('count outcomes, ratings, syncs and stage latencies in the Prometheus text format', async () => {
    const m = new BotMetrics({ processMetrics: false });
    m.observeOutcome('slack', { kind: 'answered', answerId: 'a', escalated: false, abstained: false });
    m.observeOutcome('slack', { kind: 'answered', answerId: 'b', escalated: true, abstained: false });
    m.observeOutcome('discord', { kind: 'duplicate' });
    m.observeOutcome('discord', { kind: 'failed', error: 'x' });
    m.observeRating('slack', 1);
    m.observeRating('slack', null);
    m.observeRating('discord', 'ignored');
    m.observeSync('docs', 'succeeded', { added: 3, updated: 0, deleted: 1, failed: 0 });
    m.observeSync('docs', 'busy');
    m.observeAnswer(
      makeAnswerResult('x', {
        latencyMs: 120,
        timings: { retrieveMs: 20, generateMs: 95 },
        fallback: { from: 'openai:m', code: 'llm_timeout', reason: 'slow' },
      }),
    );
    const { contentType, body } = await m.exposition();
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    for (const line of [
      'supportbot_messages_total{platform="slack",outcome="answered"} 1',
      'supportbot_messages_total{platform="slack",outcome="escalated"} 1',
      'supportbot_messages_total{platform="discord",outcome="duplicate"} 1',
      'supportbot_errors_total{component="answer"} 1',
      'supportbot_ratings_total{platform="slack",value="up"} 1',
      'supportbot_ratings_total{platform="slack",value="retract"} 1',
      'supportbot_ratings_total{platform="discord",value="ignored"} 1',
      'supportbot_sync_runs_total{source="docs",result="succeeded"} 1',
      'supportbot_sync_runs_total{source="docs",result="busy"} 1',
      'supportbot_sync_articles_total{source="docs",change="added"} 3',
      'supportbot_sync_articles_total{source="docs",change="deleted"} 1',
      'supportbot_llm_fallbacks_total{code="llm_timeout"} 1',
      'supportbot_answer_duration_seconds_bucket{le="0.025",stage="retrieve"} 1',
      'supportbot_answer_duration_seconds_bucket{le="0.1",stage="generate"} 1',
      'supportbot_answer_duration_seconds_count{stage="total"} 1',
    ]) {
      expect(body).toContain(line);
    }
  });
});
