/** Small HTTP helpers shared by the remote sources (Zendesk, website). */

/**
 * Parses a `Retry-After` value: delay-seconds or an HTTP date (RFC 9110 §10.2.3). Returns seconds
 * (≥ 0), or `null` when absent or unparsable.
 */
export function parseRetryAfter(value: string | null, nowMs = Date.now()): number | null {
  if (value === null || value.trim() === '') return null;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? null : Math.max(0, (date - nowMs) / 1000);
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `origin + pathname` of a URL, without the query (which may carry tokens) for messages and logs. */
export function redactUrl(url: string): string {
  const u = new URL(url);
  return `${u.origin}${u.pathname}`;
}
