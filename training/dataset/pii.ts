/**
 * PII scrubbing for training data: every prompt and reply is passed through `scrubPii` before a
 * training example exists in memory as something that could be written, so no dataset file,
 * export or trainer input ever holds the originals.
 *
 * Kinds and how each is recognised (checks, not just shapes, where a checksum exists, so order
 * numbers and timestamps are left alone):
 * - `secret`: API keys and tokens with a known prefix (OpenAI `sk-`, Stripe `sk_live_`/`rk_live_`,
 *   Slack `xoxb-`/`xoxp-`/`xoxe-`/`xapp-`, GitHub `ghp_`/`gho_`/`ghs_`/`github_pat_`, GitLab `glpat-`,
 *   Hugging Face `hf_`, npm `npm_`, AWS access key ids `AKIA…`/`ASIA…`, Google `AIza…`, JWTs
 *   `eyJ….eyJ….…`, `Bearer …`), and any other run of ≥ 24 token characters that looks random:
 *   Shannon entropy H = −Σ p·log2 p over its characters (Shannon 1948) of at least
 *   `ENTROPY_BITS_PER_CHAR`, with letters and digits mixed, and not a slug or path of plain words.
 * - `email`: `local@domain.tld`.
 * - `mention`: Slack user/group mentions `<@U123ABC>`, `<@W…|name>`, `<!subteam^S…>` and Discord
 *   `<@123…>`, `<@!123…>`, `<@&123…>` (role).
 * - `iban`: 2 letters + 2 check digits + up to 30 alphanumerics (a space or dash every 4 allowed;
 *   either case), with the
 *   country's length where known and the ISO 13616 / ISO 7064 mod-97 check (the number with its
 *   first four characters moved to the end, letters as 10..35, is ≡ 1 mod 97).
 * - `card`: 13–19 digits (up to two spaces, dots or dashes between groups allowed) starting with a card network's
 *   issuer prefix (Visa 4, Mastercard 51–55/2221–2720, Amex 34/37, Discover 6011/644–649/65,
 *   JCB 3528–3589, Diners 300–305/36/38, UnionPay 62, Maestro 50/56–69) and passing the Luhn check
 *   (ISO/IEC 7812-1 Annex B).
 * - `phone`: `+` and a country code with 8–15 digits in all (E.164's maximum is 15), North
 *   American `(555) 123-4567` / `555-123-4567` / `555.123.4567` (optionally after `1`), or a
 *   national number with a trunk `0` and separators (`020 7946 0958`, `07911 123456`,
 *   `0151 12345678`, `06 12 34 56 78`). A bare run of digits is not taken for a phone
 *   number (it is far more often an order or ticket number).
 *
 * Replacements are typed placeholders in the `{{…}}` style of the Bitext data: `{{EMAIL}}`,
 * `{{PHONE}}`, `{{CARD_NUMBER}}`, `{{IBAN}}`, `{{SECRET}}`, `{{USER}}`.
 */

/** The kinds of personal or secret data the scrubber replaces. */
export type PiiKind = 'email' | 'phone' | 'card' | 'iban' | 'secret' | 'mention';

export const PII_KINDS: readonly PiiKind[] = ['email', 'phone', 'card', 'iban', 'secret', 'mention'];

/** Replacements found, per kind. */
export type PiiCounts = Record<PiiKind, number>;

/** The placeholder each kind is replaced with. */
export const PII_PLACEHOLDERS: Readonly<Record<PiiKind, string>> = {
  email: '{{EMAIL}}',
  phone: '{{PHONE}}',
  card: '{{CARD_NUMBER}}',
  iban: '{{IBAN}}',
  secret: '{{SECRET}}',
  mention: '{{USER}}',
};

/** Minimum Shannon entropy, in bits per character, for an unprefixed string to count as a secret. */
export const ENTROPY_BITS_PER_CHAR = 3.7;
/** Minimum length of an unprefixed high-entropy string. */
export const SECRET_MIN_LENGTH = 24;

export const emptyPiiCounts = (): PiiCounts => ({
  email: 0,
  phone: 0,
  card: 0,
  iban: 0,
  secret: 0,
  mention: 0,
});

/** Adds `b` into `a` (in place) and returns `a`. */
export function addPiiCounts(a: PiiCounts, b: PiiCounts): PiiCounts {
  for (const k of PII_KINDS) a[k] += b[k];
  return a;
}

/** Luhn check (ISO/IEC 7812-1 Annex B) of a digit string: doubling every second digit from the right. */
export function luhnValid(digits: string): boolean {
  if (!/^\d+$/.test(digits)) return false;
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

/** Whether `digits` (13–19 digits) starts with a card network's issuer prefix and has a length it issues. */
export function cardNetwork(digits: string): string | null {
  const n = digits.length;
  const p2 = Number(digits.slice(0, 2));
  const p3 = Number(digits.slice(0, 3));
  const p4 = Number(digits.slice(0, 4));
  if (digits[0] === '4' && (n === 13 || n === 16 || n === 19)) return 'visa';
  if (((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720)) && n === 16) return 'mastercard';
  if ((p2 === 34 || p2 === 37) && n === 15) return 'amex';
  if ((p4 === 6011 || p2 === 65 || (p3 >= 644 && p3 <= 649)) && n >= 16 && n <= 19) return 'discover';
  if (p4 >= 3528 && p4 <= 3589 && n >= 16 && n <= 19) return 'jcb';
  if (((p3 >= 300 && p3 <= 305) || p2 === 36 || p2 === 38) && n >= 14 && n <= 19) return 'diners';
  if (p2 === 62 && n >= 16 && n <= 19) return 'unionpay';
  if ((p2 === 50 || (p2 >= 56 && p2 <= 69)) && n >= 12 && n <= 19) return 'maestro';
  return null;
}

/** IBAN lengths per country (SWIFT IBAN registry), for the countries most likely to appear. */
const IBAN_LENGTHS: Readonly<Record<string, number>> = {
  AD: 24, AE: 23, AT: 20, BE: 16, BG: 22, BH: 22, BR: 29, CH: 21, CY: 28, CZ: 24, DE: 22, DK: 18,
  EE: 20, ES: 24, FI: 18, FO: 18, FR: 27, GB: 22, GI: 23, GL: 18, GR: 27, HR: 21, HU: 28, IE: 22,
  IL: 23, IS: 26, IT: 27, KW: 30, KZ: 20, LB: 28, LI: 21, LT: 20, LU: 20, LV: 21, MC: 27, MT: 31,
  NL: 18, NO: 15, PK: 24, PL: 28, PT: 25, QA: 29, RO: 24, RS: 22, SA: 24, SE: 24, SI: 19, SK: 24,
  SM: 27, TR: 26, UA: 29,
}; // biome-ignore format: a table

/**
 * IBAN check (ISO 13616-1; check digits per ISO 7064 MOD 97-10): the country's registered length
 * when known (else 15–34), then the rearranged number mod 97 must be 1. Spaces are ignored.
 */
export function ibanValid(iban: string): boolean {
  const s = iban.replace(/[ -]/g, '').toUpperCase();
  if (!/^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$/.test(s)) return false;
  const expected = IBAN_LENGTHS[s.slice(0, 2)];
  if (expected !== undefined ? s.length !== expected : s.length < 15 || s.length > 34) return false;
  const rearranged = s.slice(4) + s.slice(0, 4);
  let rem = 0;
  for (const ch of rearranged) {
    const v = ch >= 'A' ? ch.charCodeAt(0) - 55 : ch.charCodeAt(0) - 48;
    // Letters are two digits; fold digit by digit so the number never leaves the safe range.
    rem = v > 9 ? (rem * 100 + v) % 97 : (rem * 10 + v) % 97;
  }
  return rem === 1;
}

/** Shannon entropy of the character distribution of `s`, in bits per character. */
export function shannonEntropy(s: string): number {
  if (s.length === 0) return 0;
  const freq = new Map<string, number>();
  for (const ch of s) freq.set(ch, (freq.get(ch) ?? 0) + 1);
  let h = 0;
  for (const n of freq.values()) {
    const p = n / s.length;
    h -= p * Math.log2(p);
  }
  return h;
}

/**
 * Whether `part` reads as words: it splits into camel-case words (`All`, `Docs`, `LBaa`), acronyms
 * (`RSA`), single capitals and short numbers, with at most one piece per 3 characters. A random
 * string does not split that way (lone lowercase letters, a piece every 1–2 characters).
 */
function wordy(part: string): boolean {
  const pieces = part.match(/[a-z]\d{1,4}|[A-Z]?[a-z]{2,}|[A-Z]{2,}(?![a-z])|[A-Z]|\d{1,4}/g) ?? [];
  if (pieces.join('') !== part) return false;
  return pieces.length <= Math.max(3, part.length / 3);
}

/**
 * Whether an unprefixed token looks like a random secret: long, mixed letters and digits, high
 * entropy, and not made of plain words joined by `-`, `_`, `/` or `.` (URL slugs, file paths,
 * identifiers like `contact_human_agent`) nor a UUID (ids, not credentials).
 */
export function looksLikeSecret(token: string): boolean {
  if (token.length < SECRET_MIN_LENGTH) return false;
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(token)) return false;
  if (!/[0-9]/.test(token) || !/[A-Za-z]/.test(token)) return false;
  const parts = token.split(/[-_/.]+/).filter(Boolean);
  // Words and numbers joined by separators (a slug, a path, `ECDHE-RSA-AES128-GCM-SHA256`,
  // `SoftLayer_Network_LBaaS_L7Policy`, `com.ibm.cloud.v1.model.AllDocsResult`) are not keys.
  if (parts.every(wordy)) return false;
  // Pure hex (API keys such as 32-hex tokens) has at most 4 bits/char; judge it by length instead.
  if (/^[0-9a-f]+$/i.test(token)) return token.length >= 32 && shannonEntropy(token) >= 3.0;
  return shannonEntropy(token) >= ENTROPY_BITS_PER_CHAR;
}

interface Rule {
  kind: PiiKind;
  pattern: RegExp;
  /**
   * Returns false to leave a match alone (a failed checksum), or the length of the prefix of the
   * match that is the PII (the rest is kept).
   */
  accept?: (match: string) => boolean | number;
  /** Instead of `accept`: the replacement text and how many items it replaced. */
  replace?: (match: string) => { text: string; n: number };
}

const RULES: readonly Rule[] = [
  {
    kind: 'secret',
    pattern: new RegExp(
      [
        String.raw`\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}`,
        String.raw`\b[sprk]k_(?:live|test)_[A-Za-z0-9]{16,}`,
        // Slack bot/user/app-level tokens, and `xoxe-` refresh / `xoxe.xoxp-` rotating tokens.
        String.raw`\b(?:xoxe\.)?xox[abeposr]-[A-Za-z0-9-]{10,}`,
        String.raw`\bxapp-[A-Za-z0-9-]{10,}`,
        String.raw`\bgh[pousr]_[A-Za-z0-9]{30,}`,
        String.raw`\bgithub_pat_[A-Za-z0-9_]{30,}`,
        String.raw`\bglpat-[A-Za-z0-9_-]{20,}`,
        String.raw`\bhf_[A-Za-z0-9]{30,}`,
        String.raw`\bnpm_[A-Za-z0-9]{30,}`,
        String.raw`\b(?:AKIA|ASIA)[0-9A-Z]{16}\b`,
        // At least 35 after the prefix, greedily: a longer run is replaced whole, no tail stays visible.
        String.raw`\bAIza[0-9A-Za-z_-]{35,}`,
        String.raw`\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}`,
        String.raw`(?<=\bBearer )[A-Za-z0-9._~+/-]{16,}=*`,
      ].join('|'),
      'g',
    ),
  },
  { kind: 'email', pattern: /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/g },
  {
    kind: 'mention',
    pattern: /<@[!&]?[UW]?[A-Z0-9]{6,}(?:\|[^>\n]{0,80})?>|<!subteam\^[A-Z0-9]+(?:\|[^>\n]{0,80})?>/g,
  },
  {
    kind: 'iban',
    // Groups of 4 separated by a space or a dash, or none; either case (people type `de89 3704 …`).
    pattern: /\b[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]{4}){2,7}(?:[ -]?[A-Z0-9]{1,4})?\b/gi,
    accept: (m) => {
      // The pattern may run into a following capitalised word: try shorter group prefixes too.
      for (let end = m.length; end >= 15; end--) {
        if (/[A-Za-z0-9]/.test(m[end] ?? ' ')) continue;
        if (ibanValid(m.slice(0, end))) return end;
      }
      return false;
    },
  },
  {
    kind: 'card',
    // Separators: up to two of space, dot or dash (`4111.1111.…`, `4111  1111 …` as people type them).
    pattern: /(?<![\d.-])\d(?:[ .-]{0,2}\d){12,18}(?![\d-]|\.\d)/g,
    accept: (m) => {
      const digits = m.replace(/[ .-]/g, '');
      // Separators, when used, sit between groups of 4 (Amex 4-6-5): reject odd groupings like dates.
      if (
        /[ .-]/.test(m) &&
        !/^\d{4}(?:[ .-]{1,2}\d{4}){2,3}(?:[ .-]{1,2}\d{1,3})?$|^\d{4}[ .-]{1,2}\d{6}[ .-]{1,2}\d{4,5}$/.test(
          m,
        )
      ) {
        return false;
      }
      return cardNetwork(digits) !== null && luhnValid(digits);
    },
  },
  {
    kind: 'phone',
    pattern: new RegExp(
      [
        // International: + country code, then groups.
        String.raw`(?<![\w+])(?<!\d[ -])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,6}(?![\w])`,
        // North American: (555) 123-4567, 555-123-4567, 555.123.4567, with or without the leading
        // country code 1 (1-555-123-4567, 1 (555) 123-4567).
        String.raw`(?<![\w(.])(?<!\d[ -])(?:1[-. ]?)?(?:\(\d{3}\) ?|\d{3}[-. ])\d{3}[-. ]\d{4}(?![\w-]|\.\d)`,
        // National with a trunk 0 and separators: 020 7946 0958, 030-1234-5678; an area or mobile
        // prefix and one subscriber group (UK 07911 123456, DE 0151 12345678); France's pairs
        // (06 12 34 56 78, 01.23.45.67.89).
        String.raw`(?<![\w.])(?<!\d[ -])0(?:\d{1,4}[ -]\d{3,4}[ -]\d{3,4}|\d{2,4}[ -]\d{5,8}|\d(?:([ .])\d{2})(?:\1\d{2}){3})(?![\w-]|[ .]\d)`,
      ].join('|'),
      'g',
    ),
    accept: (m) => {
      const digits = m.replace(/\D/g, '').length;
      return digits >= 8 && digits <= 15;
    },
  },
  {
    kind: 'secret',
    // URLs are links, not keys: their paths hold hashes and ids that look random. Only the value of
    // a credential-named query parameter in a URL is a secret; elsewhere any random-looking run is.
    pattern: new RegExp(
      [
        String.raw`\bhttps?://[^\s<>()\]"']+`,
        `(?<![A-Za-z0-9_+/=.-])[A-Za-z0-9_+/=.-]{${SECRET_MIN_LENGTH},}(?![A-Za-z0-9_+/=.-])`,
      ].join('|'),
      'g',
    ),
    replace: (m) => {
      if (/^https?:\/\//i.test(m)) {
        let n = 0;
        const text = m.replace(
          /([?&](?:access_token|api_key|apikey|key|token|secret|sig|signature|password|auth)=)([^&#]{12,})/gi,
          (_all, name: string) => {
            n++;
            return `${name}${PII_PLACEHOLDERS.secret}`;
          },
        );
        return { text, n };
      }
      return looksLikeSecret(m.replace(/[.=]+$/, ''))
        ? { text: PII_PLACEHOLDERS.secret + (m.match(/[.=]+$/)?.[0] ?? ''), n: 1 }
        : { text: m, n: 0 };
    },
  },
];

/**
 * Replaces every recognised piece of PII in `text` with its kind's placeholder. Rules run in a
 * fixed order (prefixed secrets, emails, mentions, IBANs, cards, phones, entropy secrets) so a
 * later rule never sees what an earlier one replaced; placeholders contain no digits, so they are
 * never matched again. Pure and deterministic.
 *
 * @returns the scrubbed text and how many replacements of each kind were made.
 */
export function scrubPii(text: string): { text: string; counts: PiiCounts } {
  const counts = emptyPiiCounts();
  let out = text;
  for (const rule of RULES) {
    out = out.replace(rule.pattern, (match) => {
      if (rule.replace) {
        const r = rule.replace(match);
        counts[rule.kind] += r.n;
        return r.text;
      }
      const accepted = rule.accept ? rule.accept(match) : true;
      if (accepted === false) return match;
      counts[rule.kind]++;
      return typeof accepted === 'number'
        ? PII_PLACEHOLDERS[rule.kind] + match.slice(accepted)
        : PII_PLACEHOLDERS[rule.kind];
    });
  }
  return { text: out, counts };
}

/** `scrubPii` over several texts, summing the counts. */
export function scrubAll(texts: string[]): { texts: string[]; counts: PiiCounts } {
  const counts = emptyPiiCounts();
  const out = texts.map((t) => {
    const r = scrubPii(t);
    addPiiCounts(counts, r.counts);
    return r.text;
  });
  return { texts: out, counts };
}
