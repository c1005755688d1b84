import type { AnswerResult } from '../../core/types.ts';

/** An `AnswerResult` with the given text and neutral defaults, for tests that render or route answers. */
export function makeAnswerResult(text: string, overrides: Partial<AnswerResult> = {}): AnswerResult {
  return {
    text,
    citations: [],
    abstained: false,
    escalated: false,
    confidence: 0.9,
    retrieved: [],
    generator: 'extractive',
    latencyMs: 12,
    ...overrides,
  };
}
