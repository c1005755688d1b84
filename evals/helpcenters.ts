import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { type FolderSourceConfig, PACKAGE_ROOT } from '../core/config.ts';

/**
 * The real public help centers staged beside the project in `../shared/data/helpcenters`
 * (see that folder's SOURCES.md), as folder-source configs. Tests and benchmarks read them in
 * place; a fresh clone has no `../shared`, so callers check `sharedHelpcentersDir()` first.
 */
export const SHARED_DATA_DIR = path.resolve(PACKAGE_ROOT, '..', 'shared', 'data');

/** The staged help centers folder, or null when it is absent (then skip with a message). */
export function sharedHelpcentersDir(): string | null {
  const dir = path.join(SHARED_DATA_DIR, 'helpcenters');
  if (existsSync(dir)) return dir;
  if (!warned) {
    // Said once per process, on stderr, so a skipped real-data suite is never silent.
    process.stderr.write(`${dir} not found: skipping tests and benchmarks over the real help centers.\n`);
    warned = true;
  }
  return null;
}
let warned = false;

export const HELPCENTER_NAMES = ['arduino', 'zulip', 'plausible'] as const;
export type HelpcenterName = (typeof HELPCENTER_NAMES)[number];

/** Folder-source config for one staged help center, rooted at `root` (the helpcenters folder). */
export function helpcenterSource(name: HelpcenterName, root: string): FolderSourceConfig {
  const common = {
    type: 'folder' as const,
    name,
    locale: 'en',
    include: ['**/*.md', '**/*.mdx'],
    exclude: [] as string[],
  };
  switch (name) {
    case 'arduino':
      return {
        ...common,
        path: path.join(root, 'arduino', 'content'),
        dialect: 'zendesk',
        urlTemplate: 'https://support.arduino.cc/hc/en-us/articles/{id}',
      };
    case 'zulip':
      return {
        ...common,
        path: path.join(root, 'zulip', 'help'),
        dialect: 'zulip',
        urlTemplate: 'https://zulip.com/help/{slug}',
      };
    case 'plausible':
      return {
        ...common,
        path: path.join(root, 'plausible', 'docs'),
        dialect: 'docusaurus',
        urlTemplate: 'https://plausible.io/docs/{slug}',
      };
  }
}

/** One labelled question: `relevant` lists source paths (relative to the source root), best first. */
export interface LabelledQuestion {
  question: string;
  relevant: string[];
  kind: 'answerable' | 'unanswerable';
}

/** Reads `test/fixtures/retrieval/<name>.jsonl`. */
export function loadQuestions(name: string): LabelledQuestion[] {
  const file = path.join(PACKAGE_ROOT, 'test', 'fixtures', 'retrieval', `${name}.jsonl`);
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l, i) => {
      try {
        return JSON.parse(l) as LabelledQuestion;
      } catch (err) {
        throw new Error(`${file}:${i + 1}: ${(err as Error).message}`);
      }
    });
}
