import { z } from 'zod';
import type { Article } from '../core/types.ts';

/**
 * A source's `name` in the config: it keys the source's articles in the stores, its sync lock
 * and its job ids (`sync:<name>:…`), so letters, digits, `-` and `_` only.
 */
export const sourceNameSchema = z.string().regex(/^[a-z0-9][a-z0-9_-]*$/i, 'letters, digits, - and _ only');

/** A file or page a source could not turn into an article; reported, skipped, never fatal. */
export interface SourceItemError {
  /** Path relative to the source root (or URL) of what failed. */
  sourcePath: string;
  /** Stable machine code: `bad-front-matter`, `binary-file`, `invalid-utf8`, `bad-include`, `symlink-stub`, `parse-error`, `read-error`, `empty`, `duplicate-id`, `dangling-symlink`, `symlink-loop`, `not-a-file`; HTTP sources add their own (`zendesk-…`, `http-404`, …). */
  code: string;
  /** One line for people. */
  message: string;
}

export type SourceItem = { ok: true; article: Article } | { ok: false; error: SourceItemError };

/**
 * The source seam: where articles come from (a folder, Zendesk, a website…). A source yields
 * every article it currently has; the sync engine works out what was added, changed and deleted.
 *
 * Errors: an item that fails is yielded as `{ ok: false }` and the sync goes on. When the source
 * as a whole fails (folder missing, API down) `articles()` throws; the sync then deletes nothing
 * from that source, since it cannot tell deleted from unreadable.
 */
export interface Source {
  /** The configured name, also `Article.source`. */
  readonly name: string;
  /** `folder`, `zendesk`, `website`. */
  readonly type: string;
  articles(): AsyncIterable<SourceItem>;
}
