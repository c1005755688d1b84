/**
 * Zulip's help-center Markdown (`zulip/zulip`, `help/*.md`, before the 2025 move to MDX): no front
 * matter, an H1 title, and Python-Markdown extensions that Zulip renders server-side:
 *
 * - `{!fragment.md!}` includes from `include/`, nested, anywhere on a line (a list item's text,
 *   indented under a list item). Fragments are not articles: `include/**` is excluded.
 * - `{start_tabs}` / `{tab|desktop-web}` / `{end_tabs}`: each tab becomes a heading one level
 *   below the section it sits in (`### Desktop/Web`), so every tab's steps stay readable and
 *   chunks carry the tab name; a block without `{tab|…}` just loses its markers.
 * - `!!! tip ""` / `!!! warn ""` admonitions with a 4-space indented body → a blockquote with a
 *   bold label (`> **Tip:** …`).
 * - `{settings_tab|notifications}`, `{relative|gear|billing}`, `{relative|stream|all}`, … → the
 *   navigation step written out ("Click the gear icon…, select Personal settings, and open the
 *   Notifications tab."), as Zulip's own renderer would, without its links into the web app.
 * - a macro alone on a line that we do not know (`{emoticon_translations}`, a generated table) is
 *   dropped.
 *
 * Also excluded: `missing.md`, Zulip's "No such article." 404 page.
 *
 * A missing or cyclic include fails the article (`bad-include`) rather than indexing it with a
 * hole: the text around an include usually reads "follow these steps:" and is wrong without it,
 * and the error names the file and line so the source can be fixed.
 */
import { SupportbotError } from '../../core/errors.ts';
import {
  admonitionLines,
  dedent,
  headingDepth,
  humanize,
  indentOf,
  scanLines,
  tabLabelLine,
} from '../normalize/markdown.ts';
import type { Dialect, DialectContext } from './index.ts';

const INCLUDE = /\{!([^{}!]+?)!\}/;
const ADMONITION = /^([ \t]*)!!![ \t]+([\w-]+)(?:[ \t]+"([^"]*)")?[ \t]*$/;
const START_TABS = /^[ \t]*\{start_tabs\}[ \t]*$/;
const END_TABS = /^[ \t]*\{end_tabs\}[ \t]*$/;
const TAB = /^([ \t]*)\{tab\|([^}]+)\}[ \t]*$/;
const MACRO = /\{(settings_tab|relative)\|([^|}]*)(?:\|([^}]*))?\}/g;
const LONE_MACRO = /^[ \t]*\{[a-z_]+\}[ \t]*$/;
const MAX_INCLUDE_DEPTH = 20;
const ICON = /<i\b[^>]*>\s*<\/i>|<span\b[^>]*>\s*<\/span>|<img\b[^>]*>/g;
const EMOJI =
  /<img\b[^>]*\bclass="emoji"[^>]*?\balt="([^"]*)"[^>]*>|<img\b[^>]*?\balt="([^"]*)"[^>]*\bclass="emoji"[^>]*>/g;
// `**<i …></i> icon**` would leave `** icon**`, which is not bold: the space goes with the icon.
const ICON_IN_STRONG_START = new RegExp(`(^|[\\s(])\\*\\*[ \\t]*(?:${ICON.source})\\s*`, 'gm');
const ICON_IN_STRONG_END = new RegExp(`\\s*(?:${ICON.source})[ \\t]*\\*\\*(?=$|[\\s.,:;!?)])`, 'gm');
const DEFINITION = /^[ \t]*\[([^\]]+)\]:[ \t]+\S/;
const SPACED_REFERENCE = /\][ \t]\[([^\]]+)\]/g;
const ICON_IN_PARENS = new RegExp(`[ \\t]*\\(\\s*(?:${ICON.source}[\\s,]*(?:or\\s|and\\s)?\\s*)+\\)`, 'g');
/** Jinja variables Zulip fills in when it renders (`{{ support_email }}`). */
const TEMPLATE_VARIABLE = /\{\{\s*([\w.]+)\s*\}\}/g;

/** Zulip's tab labels where they are not just the key humanized. */
const TAB_LABELS: Record<string, string> = {
  'desktop-web': 'Desktop/Web',
  ios: 'iOS',
  mac: 'macOS',
  js: 'JavaScript',
  curl: 'curl',
  'zulip-send': 'zulip-send',
  stream: 'From a stream view',
  'not-stream': 'From other views',
  'stream-compose': 'Compose to a stream',
  'dm-compose': 'Compose a DM',
  'instructions-for-all-platforms': 'Instructions for all platforms',
  'via-markdown': 'Via Markdown',
  'mm-default': 'Default installation',
  'mm-cloud': 'Cloud instance',
  azuread: 'AzureAD',
  onelogin: 'OneLogin',
  'jitsi-meet': 'Jitsi Meet',
  bigbluebutton: 'BigBlueButton',
  disable: 'Disabled',
  'logged-in': 'If you are logged in',
  'logged-out': 'If you are logged out',
};

const ADMONITION_LABELS: Record<string, string> = {
  tip: 'Tip',
  keyboard_tip: 'Tip',
  warn: 'Warning',
  warning: 'Warning',
  note: 'Note',
};

/** `{settings_tab|key}`: the settings page and its tab name. Unlisted keys are organization tabs. */
const PERSONAL_SETTINGS: Record<string, string> = {
  profile: 'Profile',
  'account-and-privacy': 'Account & privacy',
  preferences: 'Preferences',
  'display-settings': 'Display settings',
  notifications: 'Notifications',
  'your-bots': 'Bots',
  'alert-words': 'Alert words',
  'uploaded-files': 'Uploaded files',
  'muted-topics': 'Muted topics',
  'muted-users': 'Muted users',
};
const ORGANIZATION_SETTINGS: Record<string, string> = {
  'emoji-settings': 'Custom emoji',
  'auth-methods': 'Authentication methods',
  'user-groups-admin': 'User groups',
  'user-list-admin': 'Users',
  'deactivated-users-admin': 'Deactivated users',
  'bot-list-admin': 'Bots',
  'default-streams-list': 'Default streams',
  'linkifier-settings': 'Linkifiers',
  'playground-settings': 'Code playgrounds',
  'profile-field-settings': 'Custom profile fields',
  'invites-list-admin': 'Invitations',
  'data-exports-admin': 'Data exports',
};
/** `{relative|gear|key}`: the gear-menu item. */
const GEAR_MENU: Record<string, string> = {
  settings: 'Personal settings',
  'manage-streams': 'Manage streams',
  'stream-settings': 'Stream settings',
  'group-settings': 'Group settings',
  'organization-settings': 'Organization settings',
  'manage-organization': 'Manage organization',
  stats: 'Usage statistics',
  plans: 'Plans and pricing',
  invite: 'Invite users',
};

const GEAR = 'Click the **gear** (⚙) icon in the upper right corner of the web or desktop app';

export const zulip: Dialect = {
  name: 'zulip',
  exclude: ['include/**', 'missing.md'],
  normalize: {},
  preprocess(text, context) {
    const included = resolveIncludes(text, context, [context.sourcePath]);
    return expandMacros(expandTabs(expandAdmonitions(fixReferenceLinks(removeIcons(included)))));
  },
};

// ---------------------------------------------------------------------------------------------

function resolveIncludes(text: string, context: DialectContext, stack: string[]): string {
  const current = stack[stack.length - 1] as string;
  const out: string[] = [];
  scanLines(text).forEach((line, index) => {
    let rest = line.text;
    let match = line.code ? null : INCLUDE.exec(rest);
    if (!match) {
      out.push(rest);
      return;
    }
    let pending = '';
    while (match) {
      const name = (match[1] as string).trim();
      const found = findInclude(name, current, context);
      if (!found) {
        throw new SupportbotError(
          'bad-include',
          `include {!${name}!} not found (${current} line ${index + 1}; looked in include/)`,
        );
      }
      if (stack.includes(found.path) || stack.length > MAX_INCLUDE_DEPTH) {
        throw new SupportbotError('bad-include', `include cycle: ${[...stack, found.path].join(' → ')}`);
      }
      const body = resolveIncludes(found.text, context, [...stack, found.path]).replace(/\n+$/, '');
      const prefix = pending + rest.slice(0, match.index);
      // Continuation lines line up under the text the include stands in for (`1. {!x.md!}`).
      const hang = /^[ \t]*$/.test(prefix) ? prefix : ' '.repeat(prefix.length);
      const bodyLines = body.split('\n');
      const last = bodyLines.length - 1;
      bodyLines.forEach((b, i) => {
        const lead = i === 0 ? prefix : b.trim() ? hang : '';
        if (i === last) pending = lead + b;
        else out.push(lead + b);
      });
      rest = rest.slice(match.index + match[0].length);
      match = INCLUDE.exec(rest);
    }
    out.push(pending + rest);
  });
  return out.join('\n');
}

function findInclude(
  name: string,
  current: string,
  context: DialectContext,
): { path: string; text: string } | undefined {
  const dir = current.includes('/') ? current.slice(0, current.lastIndexOf('/')) : '';
  const candidates = [`include/${name}`, dir ? `${dir}/include/${name}` : '', dir ? `${dir}/${name}` : name];
  for (const candidate of new Set(candidates.filter(Boolean))) {
    const text = context.readFile(candidate);
    if (text !== undefined) return { path: candidate, text };
  }
  return undefined;
}

/**
 * Icons (`<i class="zulip-icon zulip-icon-more-vertical"></i>`, `<img class="help-center-icon">`)
 * render nothing as text; they go, and so do the parentheses the help text puts around them
 * ("click the **ellipsis** (icon)" → "click the **ellipsis**").
 */
function removeIcons(text: string): string {
  return text
    .replace(EMOJI, (_m, a?: string, b?: string) => a ?? b ?? '')
    .replace(ICON_IN_PARENS, '')
    .replace(ICON_IN_STRONG_START, '$1**')
    .replace(ICON_IN_STRONG_END, '**')
    .replace(ICON, '');
}

/**
 * Reference links as Python-Markdown reads them and CommonMark does not: a definition right
 * under a paragraph line gets a blank line in front (CommonMark would read `[x]: url` as text),
 * and `[text] [ref]` loses the space when `ref` is defined.
 */
function fixReferenceLinks(text: string): string {
  const lines = scanLines(text);
  const defined = new Set<string>();
  for (const line of lines) {
    const label = line.code ? undefined : DEFINITION.exec(line.text)?.[1];
    if (label) defined.add(label.toLowerCase());
  }
  const out: string[] = [];
  let previous = '';
  for (const line of lines) {
    if (line.code) {
      out.push(line.text);
      previous = '';
      continue;
    }
    if (DEFINITION.test(line.text) && previous.trim() && !DEFINITION.test(previous)) out.push('');
    out.push(
      line.text.replace(SPACED_REFERENCE, (whole, ref: string) =>
        defined.has(ref.toLowerCase()) ? `][${ref}]` : whole,
      ),
    );
    previous = line.text;
  }
  return out.join('\n');
}

function expandAdmonitions(text: string): string {
  const lines = scanLines(text);
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as (typeof lines)[number];
    const match = line.code ? null : ADMONITION.exec(line.text);
    if (!match) {
      out.push(line.text);
      continue;
    }
    const indent = indentOf(line.text);
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const next = (lines[j] as (typeof lines)[number]).text;
      if (next.trim() !== '' && indentOf(next) <= indent) break;
      body.push(next);
    }
    while (body.length && !body[body.length - 1]?.trim()) {
      body.pop();
      j--;
    }
    const kind = (match[2] as string).toLowerCase();
    const title = match[3]?.trim();
    const label = title || ADMONITION_LABELS[kind] || humanize(kind);
    const inner = expandAdmonitions(body.map((b) => dedent(b, indent + 4)).join('\n')).split('\n');
    out.push(...admonitionLines(label, inner, match[1] ?? '', Boolean(title)));
    i = j - 1;
  }
  return out.join('\n');
}

function expandTabs(text: string): string {
  const out: string[] = [];
  let depth = 1;
  let tabDepth = 1;
  for (const line of scanLines(text)) {
    if (line.code) {
      out.push(line.text);
      continue;
    }
    const heading = headingDepth(line.text);
    if (heading) depth = heading;
    if (START_TABS.test(line.text) || END_TABS.test(line.text)) {
      tabDepth = depth;
      out.push('');
      continue;
    }
    const tab = TAB.exec(line.text);
    if (tab) {
      const key = (tab[2] as string).trim();
      out.push('', tabLabelLine(TAB_LABELS[key] ?? tabLabel(key), tabDepth, tab[1] ?? ''), '');
      continue;
    }
    out.push(line.text);
  }
  return out.join('\n');
}

function tabLabel(key: string): string {
  const version = /^v(\d+)$/.exec(key);
  return version ? `Zulip Server ${version[1]}.0+` : humanize(key);
}

function expandMacros(text: string): string {
  return scanLines(text)
    .map((line) => {
      if (line.code) return line.text;
      if (LONE_MACRO.test(line.text)) return '';
      const text = line.text.replace(TEMPLATE_VARIABLE, (_m, name: string) => humanize(name).toLowerCase());
      const whole = /^([ \t]*)\{(?:settings_tab|relative)\|[^}]*\}[ \t]*$/.exec(text);
      const replaced = text.replace(MACRO, (_m, kind: string, a: string, b: string | undefined) =>
        kind === 'settings_tab' ? settingsStep(a.trim()) : relativeStep(a.trim(), (b ?? '').trim()),
      );
      // A macro alone on its line is a step of the surrounding numbered instructions.
      return whole ? `${whole[1]}1. ${replaced.trim()}` : replaced;
    })
    .join('\n');
}

function settingsStep(key: string): string {
  const personal = PERSONAL_SETTINGS[key];
  const page = personal ? 'Personal settings' : 'Organization settings';
  const tab = personal ?? ORGANIZATION_SETTINGS[key] ?? humanize(key);
  return `${GEAR}, select **${page}**, and open the **${tab}** tab.`;
}

function relativeStep(kind: string, key: string): string {
  switch (kind) {
    case 'gear':
      return `${GEAR}, and select **${GEAR_MENU[key] ?? humanize(key)}**.`;
    case 'stream':
      return `${GEAR}, select **Stream settings**, and click **${key === 'all' ? 'All streams' : humanize(key)}** in the upper left.`;
    case 'group':
      return `${GEAR}, select **Group settings**, and click **${key === 'all' ? 'All groups' : humanize(key)}** in the upper left.`;
    case 'help':
      return `Click the **help** (?) icon in the upper right corner of the web or desktop app, and select **${humanize(key)}**.`;
    case 'message':
      return `Click **${key === 'direct' ? 'Direct messages' : humanize(key)}** in the left sidebar.`;
    default:
      return `**${humanize(key || kind)}**`;
  }
}
