import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { folderSourceSchema } from '../core/config.ts';
import type { Article } from '../core/types.ts';
import { FrontMatterError, splitFrontMatter } from '../sync/normalize/markdown.ts';
import type { Source, SourceItemError } from '../sync/source.ts';
import { createFolderSource } from '../sync/sources/folder.ts';

const FIXTURES = path.join(import.meta.dirname, 'fixtures', 'sources');

function folder(options: { name?: string; path: string; dialect?: string; [key: string]: unknown }): Source {
  return createFolderSource(
    folderSourceSchema.parse({ type: 'folder', name: options.name ?? 'test', ...options }),
  );
}

async function collect(source: Source): Promise<{ articles: Article[]; errors: SourceItemError[] }> {
  const articles: Article[] = [];
  const errors: SourceItemError[] = [];
  for await (const item of source.articles()) {
    if (item.ok) articles.push(item.article);
    else errors.push(item.error);
  }
  return { articles, errors };
}

function byPath(articles: Article[], sourcePath: string): Article {
  const article = articles.find((a) => a.sourcePath === sourcePath);
  if (!article)
    throw new Error(`no article ${sourcePath} among ${articles.map((a) => a.sourcePath).join(', ')}`);
  return article;
}

describe('folder source, markdown dialect', () => {
  let articles: Article[];
  let errors: SourceItemError[];
  beforeAll(async () => {
    ({ articles, errors } = await collect(
      folder({
        name: 'docs',
        path: path.join(FIXTURES, 'markdown'),
        urlTemplate: 'https://help.example/{slug}?id={id}&file={path}',
        locale: 'en',
      }),
    ));
  });

  it('yields files sorted by path, skips drafts and reports empty articles', () => {
    expect(articles.map((a) => a.sourcePath)).toEqual([
      'billing/refunds.md',
      'contact.html',
      'getting-started.md',
      'notes/plain-file-name.md',
    ]);
    expect(errors).toEqual([
      { sourcePath: 'empty-body.md', code: 'empty', message: expect.stringContaining('empty-body.md') },
    ]);
  });

  it('takes id, title, tags, access, locale, url and date from front matter; the duplicate H1 leaves the body', () => {
    const a = byPath(articles, 'getting-started.md');
    expect(a).toMatchObject({
      id: 'start-here',
      source: 'docs',
      title: 'Getting started with Ledgerly',
      url: 'https://help.example.com/custom/start',
      updatedAt: '2024-03-05T10:00:00.000Z',
      tags: ['onboarding', 'basics'],
      accessGroups: ['staff', 'partners'],
      locale: 'en-GB',
    });
    expect(a.body.startsWith('Welcome aboard.')).toBe(true);
    expect(a.body).not.toContain('# Getting started');
  });

  it('turns a GitHub alert into a bold label', () => {
    expect(byPath(articles, 'getting-started.md').body).toContain(
      '> **Tip:** You can import an existing spreadsheet instead.',
    );
  });

  it('without front matter: id from the path, title from the H1 (removed), folder names as tags, mtime as date', () => {
    const a = byPath(articles, 'billing/refunds.md');
    expect(a).toMatchObject({
      id: 'billing/refunds',
      title: 'Refund a payment',
      url: 'https://help.example/billing/refunds?id=billing/refunds&file=billing/refunds.md',
      tags: ['billing'],
      accessGroups: [],
      locale: 'en',
    });
    expect(Number.isNaN(Date.parse(a.updatedAt))).toBe(false);
    expect(a.body).not.toContain('# Refund a payment');
    expect(a.body).toContain('| Card | 5 |');
  });

  it('falls back to the file name for the title', () => {
    expect(byPath(articles, 'notes/plain-file-name.md').title).toBe('Plain file name');
  });

  it('HTML files: main content only, title from <h1>, lang as locale, tables as GFM', () => {
    const a = byPath(articles, 'contact.html');
    expect(a.title).toBe('Contact support');
    expect(a.locale).toBe('fr');
    expect(a.body).toContain('Write to <help@ledgerly.example> any weekday.');
    expect(a.body).toContain('## Response times');
    expect(a.body).toContain('| Plan | First reply |');
    expect(a.body).toContain('| Pro | 4 hours; phone on request |');
    for (const chrome of [
      'Pricing',
      'Copyright',
      'trackPageview',
      'analytics',
      'color: red',
      'Contact us |',
    ]) {
      expect(a.body).not.toContain(chrome);
    }
  });
});

describe('folder source, zendesk dialect', () => {
  let articles: Article[];
  beforeAll(async () => {
    const result = await collect(
      folder({
        path: path.join(FIXTURES, 'zendesk'),
        dialect: 'zendesk',
        urlTemplate: 'https://support.example/hc/articles/{id}',
      }),
    );
    expect(result.errors).toEqual([]);
    articles = result.articles;
  });

  it('keeps a long numeric Zendesk id exactly and builds the URL from it', () => {
    const a = byPath(articles, 'Store Support/Shipping/Shipping-options.md');
    expect(a.id).toBe('360012345678901234');
    expect(a.url).toBe('https://support.example/hc/articles/360012345678901234');
    expect(a.title).toBe('Shipping options');
    expect(a.tags).toEqual(['Store Support', 'Shipping']);
  });

  it('reads a bare --- under a paragraph as a divider, not a setext heading', () => {
    const { body } = byPath(articles, 'Store Support/Shipping/Shipping-options.md');
    expect(body).toMatch(/^Pick the carrier that suits your parcel\.\n\n---\n/);
    expect(body).not.toContain('## Pick the carrier');
  });

  it('strips kramdown heading ids and attribute lists', () => {
    const { body } = byPath(articles, 'Store Support/Shipping/Shipping-options.md');
    expect(body).toContain('## Shipping inside Europe\n');
    expect(body).toContain('## Track a parcel\n');
    expect(body).toContain('See [the carrier list](https://carrier.example/list) for contact details.');
    expect(body).not.toMatch(/\{[#.]/);
  });

  it('converts a raw HTML table to a GFM table, list items in cells joined', () => {
    const { body } = byPath(articles, 'Store Support/Shipping/Shipping-options.md');
    expect(body).toContain('| Carrier | Details | Time |');
    expect(body).toContain(
      '| [Parcel Standard](https://carrier.example/standard) | Tracked; Signature on delivery | 2-4 days |',
    );
    expect(body).toContain('| Letter post | Untracked | up to 3 weeks |');
    expect(body).not.toMatch(/<\/?(table|tr|td|li|a)\b/);
  });

  it('keeps blockquoted notes inside list steps, inline HTML as Markdown, drops comments', () => {
    const { body } = byPath(articles, 'Store Support/Shipping/Shipping-options.md');
    expect(body).toContain(
      '1. Open your order history.\n\n   > **Note:** Orders placed as a guest are listed in your confirmation email instead.',
    );
    expect(body).toContain('2. Press `Ctrl` + `F` and search for the order number.');
    expect(body).toContain('   > The tracking link appears once the parcel is scanned.');
    expect(body).not.toContain('internal: update');
    expect(body).not.toContain('<a id=');
  });

  it('reduces hub HTML (div/img/a/form) to text and links', () => {
    const a = byPath(articles, 'Hubs/Board-hub.md');
    expect(a.id).toBe('42');
    expect(a.body).toBe(
      'Boards\n\n## Troubleshooting\n\nBoard not detected?\n\n[Read the article](https://help.example/articles/7-Board-not-detected)',
    );
  });
});

describe('folder source, zulip dialect', () => {
  let articles: Article[];
  let errors: SourceItemError[];
  beforeAll(async () => {
    ({ articles, errors } = await collect(
      folder({
        path: path.join(FIXTURES, 'zulip'),
        dialect: 'zulip',
        urlTemplate: 'https://chat.example/help/{slug}',
      }),
    ));
  });

  it('treats include/ as fragments and missing.md as the 404 page, not articles', () => {
    expect(articles.map((a) => a.sourcePath)).toEqual(['pin-a-widget.md']);
  });

  it('fails an article whose include is missing or cyclic, naming the include', () => {
    expect(errors).toEqual([
      {
        sourcePath: 'broken-include.md',
        code: 'bad-include',
        message: expect.stringContaining('{!no-such-fragment.md!} not found (broken-include.md line 3'),
      },
      {
        sourcePath: 'include-loop.md',
        code: 'bad-include',
        message: expect.stringContaining('include/loop-a.md → include/loop-b.md → include/loop-a.md'),
      },
    ]);
  });

  it('takes the H1 as title and id and URL from the path', () => {
    const a = byPath(articles, 'pin-a-widget.md');
    expect(a).toMatchObject({
      id: 'pin-a-widget',
      title: 'Pin a widget',
      url: 'https://chat.example/help/pin-a-widget',
    });
    expect(a.body.startsWith('Widgets collect related messages in one place.')).toBe(true);
  });

  it('resolves includes recursively, indented under the list item they stand in', () => {
    const { body } = byPath(articles, 'pin-a-widget.md');
    expect(body).toContain(
      '2. Open the widget menu.\n\n   > **Tip:** Widgets you pin stay at the top of the list.\n\n3. Click **Pin** next to the widget.',
    );
    expect(body).not.toContain('{!');
  });

  it('turns each tab into a heading one level below its section, keeping every tab', () => {
    const { body } = byPath(articles, 'pin-a-widget.md');
    expect(body).toContain('## Pin or unpin a widget\n\n### Desktop/Web\n\n1. Click the **gear**');
    expect(body).toContain('### Mobile\n\n1. Long-press the widget and tap **Pin**.');
    // A tab block without {tab|…} only loses its markers.
    expect(body).toContain('## Browse all widgets\n\n1. Click the **gear**');
    expect(body).not.toMatch(/\{(start_tabs|end_tabs|tab\|)/);
  });

  it('writes out settings and navigation macros as steps', () => {
    const { body } = byPath(articles, 'pin-a-widget.md');
    expect(body).toContain(
      '1. Click the **gear** (⚙) icon in the upper right corner of the web or desktop app, select **Personal settings**, and open the **Notifications** tab.',
    );
    expect(body).toContain('and select **Stream settings**.\n\n2. Scroll to **Widgets**.');
    expect(body).not.toMatch(/\{(settings_tab|relative)\|/);
    expect(body).not.toContain('{widget_table}');
  });

  it('turns admonitions into labelled blockquotes, without a second label when the body has one', () => {
    const { body } = byPath(articles, 'pin-a-widget.md');
    expect(body).toContain('> **Note**: Only administrators can do this.');
    expect(body).toContain('> **Tip:** Press `P` to pin the widget you are viewing.');
    expect(body).not.toContain('!!!');
  });

  it('drops icon markup together with its parentheses', () => {
    expect(byPath(articles, 'pin-a-widget.md').body).not.toMatch(/<i\b|\(\s*\)/);
  });
});

describe('folder source, docusaurus dialect', () => {
  let articles: Article[];
  beforeAll(async () => {
    const result = await collect(
      folder({
        path: path.join(FIXTURES, 'docusaurus'),
        dialect: 'docusaurus',
        urlTemplate: 'https://docs.example/{slug}',
      }),
    );
    expect(result.errors).toEqual([]);
    articles = result.articles;
  });

  it('uses the front-matter title and slug (relative to the folder, or from the root)', () => {
    const a = byPath(articles, 'guides/event-tracking.md');
    expect(a).toMatchObject({
      id: 'guides/event-tracking',
      title: 'Track custom events',
      url: 'https://docs.example/guides/track-events',
      tags: ['guides'],
    });
    expect(byPath(articles, 'intro.md').url).toBe('https://docs.example/');
  });

  it('removes imports, the <head> with JSON-LD, comments and expression-only JSX', () => {
    const { body } = byPath(articles, 'guides/event-tracking.md');
    for (const gone of [
      '@docusaurus',
      'helpers.tsx',
      'ld+json',
      'Secret structured data',
      'TODO',
      'editors:',
      'getExampleCode',
    ]) {
      expect(body).not.toContain(gone);
    }
    expect(body.startsWith('> **Business plan:** Event tracking is a Business plan feature.')).toBe(true);
  });

  it('drops self-closing components but keeps the ones that carry text', () => {
    const { body } = byPath(articles, 'guides/event-tracking.md');
    expect(body).not.toContain('Try it free');
    expect(body).not.toMatch(/<\/?[A-Z]/);
    expect(body).toContain('### name (required)\n');
    expect(body).toContain('### props (optional)\n');
  });

  it('turns admonitions, nested ones too, into blockquotes', () => {
    const { body } = byPath(articles, 'guides/event-tracking.md');
    expect(body).toContain('> **Note:** Events count towards your monthly quota.');
    expect(body).toContain(
      '> **Using a site builder?**\n>\n> Most builders let you add a CSS class instead of code.\n>\n> > **Warning:** Classes are case sensitive.',
    );
    expect(body).not.toContain(':::');
  });

  it('turns <TabItem label> into headings with their (dedented) content, code blocks intact', () => {
    const { body } = byPath(articles, 'guides/event-tracking.md');
    expect(body).toContain(
      '## Send an event\n\n### CSS classes\n\nAdd the class `tracker-event-name=Signup` to the button.',
    );
    expect(body).toContain(
      "### JavaScript\n\nCall the tracker from your code:\n\n```js\nimport { track } from 'tracker';\ntrack('Signup');\n```",
    );
  });

  it('leaves fenced code alone and drops images with JSX attributes', () => {
    const { body } = byPath(articles, 'guides/event-tracking.md');
    expect(body).toContain('```html\n<script defer src="https://cdn.example/tracker.js"></script>\n```');
    expect(body).not.toContain('useBaseUrl');
    expect(body).not.toContain('The goal list');
  });
});

describe('folder source, malformed files', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'supportbot-sources-'));
    mkdirSync(path.join(dir, 'sub'));
    writeFileSync(path.join(dir, 'a-good.md'), '# Good article\n\nStill readable.\n');
    writeFileSync(path.join(dir, 'bad-yaml.md'), '---\ntitle: Broken\ntags: [unclosed\n---\n\nBody.\n');
    writeFileSync(path.join(dir, 'duplicate-key.md'), '---\ntitle: A\ntitle: B\n---\n\nBody.\n');
    const png = Buffer.from([
      0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52,
    ]);
    writeFileSync(path.join(dir, 'sub', 'image.md'), Buffer.concat([png, Buffer.alloc(64)]));
    writeFileSync(
      path.join(dir, 'sub', 'latin1.md'),
      Buffer.concat([
        Buffer.from('# Menu\n\nA long enough line of ordinary text before the bad byte.\n'),
        Buffer.from('Caf'),
        Buffer.from([0xe9]),
        Buffer.from(' au lait, and more ordinary text after it.\n'),
      ]),
    );
    writeFileSync(path.join(dir, 'stub.md'), '../elsewhere/real-article.md');
    writeFileSync(path.join(dir, 'z-good.md'), '---\ntitle: Last one\n---\n\nAlso fine.\n');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reports each bad file with its path and code, and still yields the good ones', async () => {
    const { articles, errors } = await collect(folder({ path: dir }));
    expect(articles.map((a) => a.sourcePath)).toEqual(['a-good.md', 'z-good.md']);
    expect(errors.map((e) => [e.sourcePath, e.code])).toEqual([
      ['bad-yaml.md', 'bad-front-matter'],
      ['duplicate-key.md', 'bad-front-matter'],
      ['stub.md', 'symlink-stub'],
      ['sub/image.md', 'binary-file'],
      ['sub/latin1.md', 'invalid-utf8'],
    ]);
    for (const error of errors) {
      expect(error.message).toContain(error.sourcePath);
      expect(error.message).not.toContain('\n');
    }
    expect(errors[0]?.message).toContain('line 3');
    expect(errors[1]?.message).toContain('line 3');
    expect(errors[4]?.message).toContain('line 4');
  });

  it('honours include and exclude globs', async () => {
    const { articles, errors } = await collect(
      folder({ path: dir, include: ['*.md'], exclude: ['z-*.md', 'b*.md'] }),
    );
    expect(articles.map((a) => a.sourcePath)).toEqual(['a-good.md']);
    expect(errors.map((e) => e.sourcePath)).toEqual(['duplicate-key.md', 'stub.md']);
  });

  it('throws source-unavailable when the root folder is missing', async () => {
    const source = folder({ name: 'gone', path: path.join(dir, 'does-not-exist') });
    await expect(collect(source)).rejects.toMatchObject({
      name: 'SupportbotError',
      code: 'source-unavailable',
      message: expect.stringContaining('does-not-exist'),
    });
  });
});

describe('folder source, entries that are not readable files', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'supportbot-sources-'));
    mkdirSync(path.join(dir, 'sub'));
    writeFileSync(path.join(dir, 'a-good.md'), '# Good article\n\nStill readable.\n');
    symlinkSync('moved-away.md', path.join(dir, 'dangling.md'));
    symlinkSync('loop-b.md', path.join(dir, 'sub', 'loop-a.md'));
    symlinkSync('loop-a.md', path.join(dir, 'sub', 'loop-b.md'));
    mkdirSync(path.join(dir, 'reset-password.md'));
    writeFileSync(path.join(dir, 'reset-password.md', 'inside.md'), '# Inside\n\nAn article in a folder.\n');
    mkdirSync(path.join(dir, 'images'));
    symlinkSync('../a-good.md', path.join(dir, 'sub', 'alias.md'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reports a dangling symlink, a symlink loop and a folder named like an article, each with its code', async () => {
    const { articles, errors } = await collect(folder({ path: dir }));
    // A working symlink is still an article, and so is a file inside the oddly named folder.
    expect(articles.map((a) => a.sourcePath)).toEqual([
      'a-good.md',
      'reset-password.md/inside.md',
      'sub/alias.md',
    ]);
    expect(errors.map((e) => [e.sourcePath, e.code])).toEqual([
      ['dangling.md', 'dangling-symlink'],
      ['reset-password.md', 'not-a-file'],
      ['sub/loop-a.md', 'symlink-loop'],
      ['sub/loop-b.md', 'symlink-loop'],
    ]);
    for (const error of errors) {
      expect(error.message).toContain(error.sourcePath);
      expect(error.message).not.toContain('\n');
    }
    expect(errors[0]?.message).toContain('moved-away.md');
  });

  it('applies include and exclude globs to them like to files', async () => {
    const { errors } = await collect(folder({ path: dir, exclude: ['sub/**', 'dangling.md'] }));
    expect(errors.map((e) => [e.sourcePath, e.code])).toEqual([['reset-password.md', 'not-a-file']]);
  });
});

describe('splitFrontMatter', () => {
  it('names the line of a YAML error, counted in the whole file', () => {
    expect(() => splitFrontMatter('---\ntitle: ok\nid: [1, 2\nmore: x\n---\nbody')).toThrow(FrontMatterError);
    try {
      splitFrontMatter('---\ntitle: ok\nkey: "unterminated\n---\nbody');
    } catch (err) {
      expect((err as FrontMatterError).line).toBeGreaterThanOrEqual(3);
      expect((err as Error).message).toMatch(/^bad front matter at line \d+: /);
    }
  });

  it('leaves a leading --- divider that is not YAML alone', () => {
    const text = '---\nJust a divider and a sentence.\n---\nMore text.';
    expect(splitFrontMatter(text)).toEqual({ data: {}, body: text, bodyLine: 1 });
  });

  it('returns the body and the line it starts on', () => {
    expect(splitFrontMatter('---\ntitle: T\nid: 7\n---\n\nHello')).toEqual({
      data: { title: 'T', id: 7 },
      body: '\nHello',
      bodyLine: 5,
    });
  });
});
