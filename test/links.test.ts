import path from 'node:path';
import type { Nodes, Root } from 'mdast';
import { beforeAll, describe, expect, it } from 'vitest';
import { folderSourceSchema } from '../core/config.ts';
import { cl100kTokenizer } from '../core/tokenizer.ts';
import type { Article } from '../core/types.ts';
import { HELPCENTER_NAMES, helpcenterSource, sharedHelpcentersDir } from '../evals/helpcenters.ts';
import { chunkArticle } from '../sync/chunker.ts';
import { htmlToBlocks } from '../sync/normalize/html.ts';
import { type LinkContext, resolveHref, resolveLinks } from '../sync/normalize/links.ts';
import { normalizeTree, parseMarkdown, stringifyMarkdown } from '../sync/normalize/markdown.ts';
import type { Source } from '../sync/source.ts';
import { createFolderSource } from '../sync/sources/folder.ts';

const FIXTURE = path.join(import.meta.dirname, 'fixtures', 'sources', 'links');

function folder(options: Record<string, unknown>): Source {
  return createFolderSource(folderSourceSchema.parse({ type: 'folder', name: 'links', ...options }));
}

async function articlesOf(source: Source): Promise<Article[]> {
  const out: Article[] = [];
  for await (const item of source.articles()) {
    if (!item.ok) throw new Error(`${item.error.sourcePath}: ${item.error.code} ${item.error.message}`);
    out.push(item.article);
  }
  return out;
}

function byPath(articles: Article[], sourcePath: string): Article {
  const found = articles.find((a) => a.sourcePath === sourcePath);
  if (!found) throw new Error(`no ${sourcePath} among ${articles.map((a) => a.sourcePath).join(', ')}`);
  return found;
}

/** Every link, image and definition URL of a Markdown body, parsed (so code is never counted). */
function urlsOf(body: string): string[] {
  const urls: string[] = [];
  const walk = (node: Nodes): void => {
    if (node.type === 'link' || node.type === 'image' || node.type === 'definition') urls.push(node.url);
    if ('children' in node) for (const child of node.children) walk(child as Nodes);
  };
  walk(parseMarkdown(body));
  return urls;
}

function rewrite(markdown: string, context: LinkContext): string {
  const tree = parseMarkdown(markdown);
  resolveLinks(tree, context);
  return stringifyMarkdown(tree);
}

describe('resolveHref', () => {
  const base = 'https://help.example/docs/guides/setup';
  it('resolves relative references the WHATWG way and leaves URLs with a scheme alone', () => {
    const context: LinkContext = { base };
    expect(resolveHref('#install', context)).toBe('https://help.example/docs/guides/setup#install');
    expect(resolveHref('other', context)).toBe('https://help.example/docs/guides/other');
    expect(resolveHref('../faq?x=1#a', context)).toBe('https://help.example/docs/faq?x=1#a');
    expect(resolveHref('/help/mute-a-stream', context)).toBe('https://help.example/help/mute-a-stream');
    expect(resolveHref('//cdn.example/x', context)).toBe('https://cdn.example/x');
    expect(resolveHref('mailto:help@help.example', context)).toBe('mailto:help@help.example');
    expect(resolveHref('tel:+15550100', context)).toBe('tel:+15550100');
    expect(resolveHref('http://other.example/a b', context)).toBe('http://other.example/a b');
  });

  it('maps a file link to the article URL with the link fragment, relative to the linking file', () => {
    const files: Record<string, string | null> = {
      'guides/excluding.md': 'https://help.example/docs/exclude-visits',
      'index.md': 'https://help.example/',
      'Store Support/a b.md': 'https://help.example/docs/store/ab',
      'no-url.md': null,
    };
    const context: LinkContext = {
      base,
      sourcePath: 'guides/setup.md',
      articleForFile: (file) => files[file],
    };
    expect(resolveHref('excluding.md', context)).toBe('https://help.example/docs/exclude-visits');
    expect(resolveHref('./excluding.md#how', context)).toBe('https://help.example/docs/exclude-visits#how');
    expect(resolveHref('../index.md', context)).toBe('https://help.example/');
    expect(resolveHref('/index.md#top', context)).toBe('https://help.example/#top');
    expect(resolveHref('../Store%20Support/a%20b.md', context)).toBe('https://help.example/docs/store/ab');
    // Not an article, outside the root, or an article without URL: resolved as a URL.
    expect(resolveHref('missing.md', context)).toBe('https://help.example/docs/guides/missing.md');
    expect(resolveHref('../../up.md', context)).toBe('https://help.example/up.md');
    expect(resolveHref('../no-url.md', context)).toBe('https://help.example/docs/no-url.md');
  });

  it('maps a site-relative link to the URL of the article published there', () => {
    const context: LinkContext = {
      base,
      articleForUrl: (url) =>
        url === 'https://help.example/help/mute-a-stream/' ? 'https://help.example/help/mute' : undefined,
    };
    expect(resolveHref('/help/mute-a-stream/#how', context)).toBe('https://help.example/help/mute#how');
    expect(resolveHref('/help/other', context)).toBe('https://help.example/help/other');
  });

  it('gives nothing for a relative link without an article URL, or an empty link', () => {
    expect(resolveHref('#install', { base: null })).toBeNull();
    expect(resolveHref('other.md', { base: null })).toBeNull();
    expect(resolveHref('', { base })).toBeNull();
    expect(resolveHref('https://x.example/', { base: null })).toBe('https://x.example/');
  });
});

describe('resolveLinks on a tree', () => {
  it('replaces unpublished images by their alt text and drops what they leave empty', () => {
    const out = rewrite(
      [
        'Click ![the upload button](img/upload.png) to upload.',
        '',
        '![](../img/decoration.png)',
        '',
        '[![](img/badge.png)](https://x.example/badge)',
        '',
        '![Site logo](/static/logo.png) and ![remote](https://cdn.example/a.png)',
        '',
        '![ref image][pic]',
        '',
        '[pic]: img/ref.png',
      ].join('\n'),
      { base: 'https://help.example/a/b' },
    );
    expect(out).toBe(
      [
        'Click the upload button to upload.',
        '',
        '![Site logo](https://help.example/static/logo.png) and ![remote](https://cdn.example/a.png)',
        '',
        'ref image',
      ].join('\n'),
    );
  });

  it('keeps the text of links it cannot resolve, and reference definitions only while used', () => {
    const out = rewrite(
      'See [setup](setup.md), [above](#top), [a ref][r] and [home](https://x.example/).\n\n[r]: other.md\n',
      { base: null },
    );
    expect(out).toBe('See setup, above, a ref and [home](https://x.example/).');
  });

  it('leaves code alone', () => {
    const out = rewrite('`[x](a.md)`\n\n```\n[y](b.md)\n```\n', { base: 'https://help.example/' });
    expect(out).toBe('`[x](a.md)`\n\n```\n[y](b.md)\n```');
  });
});

describe('normalizeTree with links, on converted HTML (the Zendesk and website path)', () => {
  it('resolves links that came from <a href> against the page URL', () => {
    const tree: Root = {
      type: 'root',
      children: htmlToBlocks(
        '<p>See <a href="/hc/en-us/articles/2-Other">the other article</a>, <a href="#steps">the steps</a>' +
          ' and <a href="../sections/9">the section</a>.</p>',
      ),
    };
    normalizeTree(tree, { links: { base: 'https://help.example/hc/en-us/articles/1-This' } });
    expect(stringifyMarkdown(tree)).toBe(
      'See [the other article](https://help.example/hc/en-us/articles/2-Other), ' +
        '[the steps](https://help.example/hc/en-us/articles/1-This#steps) and ' +
        '[the section](https://help.example/hc/en-us/sections/9).',
    );
  });

  it('leaves links as written without the links option', () => {
    const tree = parseMarkdown('[a](a.md) and [b](#b)');
    normalizeTree(tree);
    expect(stringifyMarkdown(tree)).toBe('[a](a.md) and [b](#b)');
  });
});

describe('folder source: links between articles', () => {
  let articles: Article[];
  let setup: Article;
  beforeAll(async () => {
    articles = await articlesOf(folder({ path: FIXTURE, urlTemplate: 'https://docs.example/help/{slug}' }));
    setup = byPath(articles, 'guides/setup.md');
  });

  it('turns links to other articles into their URLs, as the source builds them', () => {
    expect(setup.url).toBe('https://docs.example/help/guides/setup');
    const body = setup.body;
    // slug `exclude-visits` beside the file, front matter `url`, a site path with a trailing slash.
    expect(body).toContain('[excluding](https://docs.example/help/guides/exclude-visits)');
    expect(body).toContain('[home page](https://docs.example/#start)');
    expect(body).toContain('[mute a stream](https://docs.example/help/mute-a-stream)');
    expect(body).toContain('[the HTML way](https://docs.example/help/guides/exclude-visits#how)');
    expect(body).toContain('[reference][ref]');
    expect(body).toContain('[ref]: https://docs.example/help/guides/exclude-visits');
  });

  it('resolves anchors and other relative links against the article URL; leaves absolute ones', () => {
    const body = setup.body;
    expect(body).toContain('[the install step](https://docs.example/help/guides/setup#install)');
    expect(body).toContain('[another page](https://docs.example/help/guides/other-page?x=1)');
    // A draft is no article: its link is only resolved as a URL.
    expect(body).toContain('[draft](https://docs.example/help/guides/draft.md)');
    expect(body).toContain('[support](mailto:help@docs.example)');
    expect(body).toContain('[changelog](https://other.example/changes)');
  });

  it('keeps alt text for images that are files of the source, resolves site images, leaves code', () => {
    const body = setup.body;
    expect(body).toContain('\n\nScreenshot of the settings\n\n');
    expect(body).not.toMatch(/img\/|badge/);
    expect(body).toContain('![Logo](https://docs.example/static/logo.png)');
    expect(body).toContain('`[not a link](excluding.md)`');
    expect(body).toContain('```md\n[also not a link](excluding.md)\n```');
    for (const url of urlsOf(body)) expect(url, url).toMatch(/^(?:https:|mailto:)/);
  });

  it('chunks carry the resolved links', () => {
    const chunks = chunkArticle(setup, { maxTokens: 60, overlapTokens: 0, tokenizer: cl100kTokenizer });
    const text = chunks.map((c) => c.text).join('\n');
    expect(text).toContain('https://docs.example/help/guides/exclude-visits');
    for (const chunk of chunks) {
      expect(setup.body).toContain(chunk.text.split('\n')[0]);
      for (const url of urlsOf(chunk.text)) expect(url, url).toMatch(/^(?:https:|mailto:)/);
    }
  });

  it('without a urlTemplate: links to articles with a front-matter url still map, the rest become text', async () => {
    const plain = byPath(await articlesOf(folder({ path: FIXTURE })), 'guides/setup.md');
    expect(plain.url).toBeNull();
    expect(plain.body).toContain('[home page](https://docs.example/#start)');
    expect(plain.body).toContain('read about excluding your own visits');
    expect(plain.body).toContain('jump to the install step,');
    expect(plain.body).not.toContain('[ref]:');
    expect(plain.body).not.toContain('![Logo]');
    for (const url of urlsOf(plain.body)) expect(url, url).toMatch(/^(?:https:|mailto:)/);
  });
});

const helpcenters = sharedHelpcentersDir();

describe.skipIf(!helpcenters)('real help centers: links (../shared/data/helpcenters)', () => {
  const all = new Map<string, Article[]>();
  beforeAll(async () => {
    for (const name of HELPCENTER_NAMES) {
      const out: Article[] = [];
      for await (const item of createFolderSource(helpcenterSource(name, helpcenters as string)).articles()) {
        if (item.ok) out.push(item.article);
      }
      all.set(name, out);
    }
  }, 120_000);

  it('no article of any help center keeps a relative link or image', () => {
    for (const [name, articles] of all) {
      expect(articles.length, name).toBeGreaterThan(100);
      for (const a of articles) {
        for (const url of urlsOf(a.body)) {
          // `[text]()` placeholders are dropped, so every URL has a scheme.
          expect(url, `${name}/${a.sourcePath}`).toMatch(/^[a-z][a-z\d+.-]*:/i);
        }
      }
    }
  });

  it('Zulip: /help/... links become zulip.com URLs, site images are resolved', () => {
    const a = byPath(all.get('zulip') ?? [], 'mute-a-stream.md');
    expect(a.body).toContain('[Mute or unmute a topic](https://zulip.com/help/mute-a-topic)');
    expect(a.body).toContain('https://zulip.com/help/dm-mention-alert-notifications#alert-words');
    const markdown = byPath(all.get('zulip') ?? [], 'format-your-message-using-markdown.md');
    expect(markdown.body).toContain(
      '![Markdown emphasis](https://zulip.com/static/images/help/markdown-emphasis.png)',
    );
  });

  it('Plausible: relative .md links become the linked doc URL, fragments kept', () => {
    const a = byPath(all.get('plausible') ?? [], 'proxy/introduction.md');
    expect(a.body).toContain('[Cloudflare](https://plausible.io/docs/proxy/guides/cloudflare)');
    expect(a.body).toContain('[Script installation →](https://plausible.io/docs/plausible-script)');
    expect(a.body).toContain('[Events API reference](https://plausible.io/docs/events-api#request-headers)');
  });

  it('Arduino: anchors point into the article, images of the export become their alt text', () => {
    const articles = all.get('arduino') ?? [];
    const withAnchor = articles.find((a) => a.id === '16884223752220');
    expect(withAnchor?.body).toContain(
      '[Troubleshooting steps](https://support.arduino.cc/hc/en-us/articles/16884223752220#troubleshooting)',
    );
    const order = byPath(articles, 'Store Support/Shipping/Track-your-order.md');
    expect(order.body).toContain('\n\nOrder overview\n\n');
    expect(order.body).not.toContain('img/');
  });
});
