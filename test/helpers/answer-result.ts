import { readFileSync } from 'node:fs';
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

/**
 * The long-answer case (test/fixtures/cases/chat/long-answer.md, from ../shared/cases/chat) as a
 * generator returned it, without its last line: "Sources: [1] Export your workspace [2] Import a
 * workspace", which the tests turn into citations of their own.
 * @throws when the fixture lost its Sources line.
 */
export function longAnswerCaseText(): string {
  const raw = readFileSync(new URL('../fixtures/cases/chat/long-answer.md', import.meta.url), 'utf8');
  const cut = raw.lastIndexOf('\nSources: [1] Export your workspace [2] Import a workspace');
  if (cut < 0) throw new Error('long-answer.md: no Sources line');
  return raw.slice(0, cut);
}
