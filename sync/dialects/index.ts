/**
 * Markdown dialects a folder source understands (`SourceConfig.dialect`). A dialect rewrites its
 * own syntax into CommonMark + GFM *text* before the shared pipeline of `sync/normalize/markdown.ts`
 * parses it, and says which files of a source tree are not articles.
 *
 * | dialect      | for                                   | see              |
 * |--------------|---------------------------------------|------------------|
 * | `markdown`   | plain CommonMark/GFM + YAML front matter | (this file)   |
 * | `zendesk`    | Zendesk/kramdown exports (Arduino)    | `zendesk.ts`     |
 * | `zulip`      | Zulip's help-center Markdown          | `zulip.ts`       |
 * | `docusaurus` | Docusaurus Markdown/MDX (Plausible)   | `docusaurus.ts`  |
 *
 * HTML files (`.html`, `.htm`) do not go through a dialect; see `sync/normalize/html.ts`.
 */
import type { DIALECTS } from '../../core/config.ts';
import { SupportbotError } from '../../core/errors.ts';
import type { NormalizeOptions } from '../normalize/markdown.ts';
import { docusaurus } from './docusaurus.ts';
import { zendesk } from './zendesk.ts';
import { zulip } from './zulip.ts';

export type DialectName = (typeof DIALECTS)[number];

/** What a dialect may know about the file it rewrites. */
export interface DialectContext {
  /** The file's path relative to the source root, POSIX separators. */
  sourcePath: string;
  /** The file's front matter (`{}` when none). */
  frontMatter: Record<string, unknown>;
  /**
   * Reads another file of the same source as UTF-8, by path relative to the source root (POSIX);
   * `undefined` when it does not exist or is outside the root. Cached for one pass over the source.
   */
  readFile(relativePath: string): string | undefined;
}

export interface Dialect {
  readonly name: DialectName;
  /** Globs (relative to the source root) that are never articles, added to the source's `exclude`. */
  readonly exclude: readonly string[];
  /** Options for the shared tree clean-up (`normalizeTree`). */
  readonly normalize: NormalizeOptions;
  /**
   * Rewrites dialect syntax in a file's Markdown (front matter already split off) into CommonMark +
   * GFM; raw HTML may remain, the shared clean-up converts it.
   *
   * @throws SupportbotError for a file that cannot be rewritten; its `code` becomes the item
   *   error's code (`bad-include` for a missing or cyclic Zulip include).
   */
  preprocess(text: string, context: DialectContext): string;
}

/** Plain CommonMark + GFM: nothing to rewrite. */
export const markdown: Dialect = {
  name: 'markdown',
  exclude: [],
  normalize: {},
  preprocess: (text) => text,
};

export const dialects: Readonly<Record<DialectName, Dialect>> = { markdown, zendesk, zulip, docusaurus };

/** @throws SupportbotError `config-invalid` for an unknown name. */
export function getDialect(name: string): Dialect {
  const dialect = (dialects as Record<string, Dialect | undefined>)[name];
  if (!dialect) {
    throw new SupportbotError(
      'config-invalid',
      `unknown dialect "${name}" (expected one of ${Object.keys(dialects).join(', ')})`,
    );
  }
  return dialect;
}
