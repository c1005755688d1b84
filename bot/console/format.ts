import type { AnswerResult } from '../../core/types.ts';

/**
 * Plain-text rendering of an answer for a terminal: the reply, then a numbered "Sources" list
 * (title, then URL or source path) that the `[n]` markers in the reply refer to.
 */
export function formatAnswer(result: AnswerResult): string {
  const lines = [result.text.trim()];
  if (result.citations.length > 0) {
    lines.push('', 'Sources:');
    for (const c of result.citations) lines.push(`  [${c.n}] ${c.title} — ${c.url ?? c.sourcePath}`);
  }
  return lines.join('\n');
}
