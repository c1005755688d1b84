/**
 * A source's private cache between syncs: one JSON file per source under `<dataDir>/sources/`
 * (`<name>.<type>.json`). The website source keeps its HTTP validators (ETag, Last-Modified) and
 * the article each validated page produced there; the Zendesk source its incremental-export
 * cursor and article snapshot.
 *
 * Why a file and not the knowledge store: the store's contract (`listArticleHashes`) is shared by
 * the SQLite and Weaviate implementations and knows nothing of HTTP; the cache is only an
 * optimization, so losing it (a new replica, a wiped volume) costs one full fetch, never
 * correctness. Writes go to a temporary file that is renamed over the old one, so a crash leaves
 * either the old or the new cache, never half of one.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * Reads a cache file written by `writeJsonCache`. Returns `null` when it is missing, unreadable,
 * not JSON, or of another `version` (an old layout is simply rebuilt).
 */
export function readJsonCache<T extends { version: number }>(file: string, version: number): T | null {
  try {
    const value = JSON.parse(readFileSync(file, 'utf8')) as T;
    return value && typeof value === 'object' && value.version === version ? value : null;
  } catch {
    return null;
  }
}

/** Writes `value` as JSON to `file` atomically (temporary file + rename), creating the folder. */
export function writeJsonCache<T extends { version: number }>(file: string, value: T): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.${Date.now()}.tmp`;
  writeFileSync(temporary, JSON.stringify(value));
  renameSync(temporary, file);
}

/** `<cacheDir>/<name>.<type>.json`; the source name is already restricted to `[a-z0-9_-]`. */
export function cacheFile(cacheDir: string, name: string, type: string): string {
  return path.join(cacheDir, `${name}.${type}.json`);
}
