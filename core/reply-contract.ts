/**
 * The answer contract's text conventions (DESIGN.md, "The adapter's behaviour contract"), parsed
 * in one place for every generator: citations are `[n]` markers (1-based context numbers) written
 * after a space or punctuation, and a reply that needs a human ends with a line
 * `ESCALATE: <reason>`.
 */

const ESCALATE_LINE = /\n?[ \t]*ESCALATE:[ \t]*(.*?)[ \t]*$/i;

/**
 * Splits a generator's reply into the text to show and the escalation marker, if its last
 * non-empty line is `ESCALATE: <reason>` (case-insensitive). An empty reason becomes
 * `escalated by the model`.
 */
export function parseEscalation(reply: string): { text: string; escalate?: { reason: string } } {
  const trimmed = reply.replace(/\s+$/, '');
  const m = ESCALATE_LINE.exec(trimmed);
  if (!m || !/(^|\n)[ \t]*ESCALATE:/i.test(trimmed.slice(m.index))) return { text: reply };
  return {
    text: trimmed.slice(0, m.index).trim(),
    escalate: { reason: m[1]?.trim() || 'escalated by the model' },
  };
}

/**
 * Calls `fn` on every stretch of `markdown` outside fenced code blocks and inline code spans and
 * returns the text with those stretches replaced; code is passed through untouched, so `a[1]`
 * in a code sample is never taken for a citation.
 */
export function mapOutsideCode(markdown: string, fn: (prose: string) => string): string {
  // Fences: a line opening with ``` or ~~~ up to the matching closing line (or the end).
  const pattern = /(^|\n)([ \t]*)(`{3,}|~{3,})[^\n]*\n[\s\S]*?(?:\n[ \t]*\3[ \t]*(?=\n|$)|$)|(`+)[^`\n]*?\4/g;
  let out = '';
  let last = 0;
  for (const m of markdown.matchAll(pattern)) {
    const start = m.index + (m[1]?.length ?? 0);
    out += fn(markdown.slice(last, start)) + markdown.slice(start, m.index + m[0].length);
    last = m.index + m[0].length;
  }
  return out + fn(markdown.slice(last));
}

/** A citation marker `[n]`: not escaped, not part of `word[n]`, `[n](link)` or `[n]: ref`. */
export const CITATION_MARKER = /(?<![\\\w\]])\[(\d{1,3})\](?![(:[])/g;

/** Escapes `[n]` in quoted help-center prose so it is not read as a citation marker. */
export function escapeCitationLookalikes(prose: string): string {
  return mapOutsideCode(prose, (p) => p.replace(CITATION_MARKER, '\\[$1\\]'));
}
