import { stemmer } from 'stemmer';
import { eng } from 'stopword';

/**
 * Words that carry no topic in a support question: the usual English stop words plus the
 * question scaffolding people type into chat ("how do I…", "can you…", "please").
 */
const STOP = new Set([
  // "on"/"off" decide between "turn on 2FA" and "turn off 2FA"; they stay topic words.
  ...eng.filter((w) => w !== 'on' && w !== 'off'),
  ...[
    'how',
    'can',
    'could',
    'would',
    'should',
    'do',
    'does',
    'did',
    'i',
    'im',
    "i'm",
    'my',
    'me',
    'we',
    'our',
  ],
  ...['you', 'your', 'please', 'hi', 'hello', 'hey', 'thanks', 'thank', 'want', 'need', 'way', 'get', 'use'],
  ...['is', 'are', 'there', 'what', 'which', 'when', 'where', 'why', 'who', 'anyone', 'know', 'tell'],
]);

const WORDS = new Intl.Segmenter('en', { granularity: 'word' });

/** Lower-cased word tokens of `text` (Unicode word segmentation, UAX #29), punctuation dropped. */
export function words(text: string): string[] {
  const out: string[] = [];
  for (const seg of WORDS.segment(text.toLowerCase())) if (seg.isWordLike) out.push(seg.segment);
  return out;
}

/**
 * Topic terms of `text`: words minus stop words, Porter-stemmed (M. F. Porter, "An algorithm for
 * suffix stripping", 1980 — the same family as SQLite FTS5's `porter` tokenizer), de-duplicated
 * in first-seen order. Non-Latin words pass through unstemmed.
 */
export function contentTerms(text: string): string[] {
  const seen = new Set<string>();
  for (const w of words(text)) {
    // Single ASCII letters are noise; a single CJK character is a word.
    if (STOP.has(w) || (w.length < 2 && /^[a-z0-9]$/.test(w))) continue;
    seen.add(/^[a-z]+$/.test(w) ? stemmer(w) : w);
  }
  return [...seen];
}

/** `contentTerms` as a set, for overlap tests. */
export function termSet(text: string): Set<string> {
  return new Set(contentTerms(text));
}

/**
 * Words joined by hyphens ("End-of-Life", "two-factor", "auto-reply"), as matches in `text`.
 * Hyphen-minus and the Unicode hyphens U+2010/U+2011 join; dashes (en/em) and spaces do not.
 */
const COMPOUND = /[\p{L}\p{N}]+(?:[-\u2010\u2011][\p{L}\p{N}]+)+/gu;

/**
 * Topic terms of `text` split by where they occur: `free` are the terms of words that stand on
 * their own, `compounds` the terms of each hyphenated compound (one array per compound, in
 * order). Word segmentation (UAX #29) breaks "End-of-Life" into three words, so plain
 * `termSet` cannot tell "life" the word from "life" inside "end-of-life".
 */
export function termsByCompound(text: string): { free: Set<string>; compounds: string[][] } {
  const compounds: string[][] = [];
  for (const m of text.matchAll(COMPOUND)) compounds.push(contentTerms(m[0]));
  return { free: termSet(text.replace(COMPOUND, ' ')), compounds };
}

/**
 * Text as it is indexed for BM25: a Markdown link or image target keeps only its last path
 * segment (`](https://zulip.com/help/mute-a-stream#x)` → `](mute-a-stream)`). Sync makes every
 * link absolute so quotes work in chat; indexed whole, the same site words (`https`, `zulip`,
 * `com`, `help`) would land in most chunks and dilute BM25, while the last segment names the
 * linked topic. Stored chunk text is not changed.
 */
export function indexableText(text: string): string {
  return text.replace(/\]\(\s*<?([^\s)>]*)/g, (_m, target: string) => {
    const path = target.replace(/[?#].*$/, '').replace(/\/+$/, '');
    const last = path.slice(path.lastIndexOf('/') + 1).replace(/\.(md|mdx|html?)$/i, '');
    return `](${last}`;
  });
}
