/**
 * Zendesk help-center exports as kept in Git (Arduino's `help-center-content`): YAML front matter
 * with the Zendesk `id` and `title`, kramdown attribute lists (`## Heading {#anchor}`,
 * `[link](url){.link-external}`), GitHub alerts (`> [!NOTE]`), bare `---` dividers, raw HTML tables
 * and hub pages made of `div`/`img`/`a` blocks.
 *
 * Only the dividers need a text rewrite; attribute lists are stripped and HTML converted on the
 * tree by the shared clean-up (`stripAttributeLists`).
 */
import { scanLines } from '../normalize/markdown.ts';
import type { Dialect } from './index.ts';

const DIVIDER = /^ {0,3}-{3,}[ \t]*$/;

export const zendesk: Dialect = {
  name: 'zendesk',
  exclude: [],
  normalize: { stripAttributeLists: true },
  preprocess(text) {
    // In CommonMark `text\n---` makes `text` a setext heading; these exports use `---` only as a
    // divider (headings are always ATX), so a blank line is put in front of it.
    const out: string[] = [];
    let previous = '';
    for (const line of scanLines(text)) {
      if (!line.code && DIVIDER.test(line.text) && previous.trim() !== '') out.push('');
      out.push(line.text);
      previous = line.code ? '' : line.text;
    }
    return out.join('\n');
  },
};
