import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { PACKAGE_ROOT } from '../core/config.ts';

/**
 * Bot-token scopes each Web API method needs (from each method's page on api.slack.com/methods);
 * `null` when the method needs none.
 */
const METHOD_SCOPES: Record<string, string | null> = {
  'chat.postMessage': 'chat:write',
  'chat.postEphemeral': 'chat:write',
  'chat.update': 'chat:write',
  'chat.getPermalink': null,
  'usergroups.users.list': 'usergroups:read',
  'auth.test': null,
};
/** Scope each subscribed bot event needs (api.slack.com/events). */
const EVENT_SCOPES: Record<string, string> = {
  app_mention: 'app_mentions:read',
  'message.channels': 'channels:history',
  'message.groups': 'groups:history',
  'message.im': 'im:history',
  reaction_added: 'reactions:read',
  reaction_removed: 'reactions:read',
};

/** The `message.*` events `app.message` handles: where the Slack transport takes questions as messages. */
const MESSAGE_EVENTS = ['message.im', 'message.channels', 'message.groups'];

describe('deploy/slack-app-manifest.yaml', () => {
  const manifest = YAML.parse(
    readFileSync(path.join(PACKAGE_ROOT, 'deploy', 'slack-app-manifest.yaml'), 'utf8'),
  );
  const source = readFileSync(path.join(PACKAGE_ROOT, 'bot', 'slack', 'app.ts'), 'utf8');
  const scopes: string[] = manifest.oauth_config.scopes.bot;
  const events: string[] = manifest.settings.event_subscriptions.bot_events;

  it('subscribes to exactly the events the Slack transport listens to', () => {
    const listened = [...source.matchAll(/app\.event\('([a-z_]+)'/g)].map((m) => m[1] as string);
    // `app.message` is the listener for every `message.*` subscription: direct messages
    // (message.im) and thread follow-ups without a mention in public (message.channels) and
    // private channels (message.groups). Mentions arrive as app_mention.
    if (/app\.message\(/.test(source)) listened.push(...MESSAGE_EVENTS);
    expect(new Set(events)).toEqual(new Set(listened));
  });

  it('requests exactly the scopes the code uses', () => {
    const methods = [...source.matchAll(/client\.([a-zA-Z]+(?:\.[a-zA-Z]+)+)\(/g)].map((m) => m[1] as string);
    expect(methods.length).toBeGreaterThan(0);
    const unknown = methods.filter((m) => !(m in METHOD_SCOPES));
    expect(unknown, 'add these methods and their scopes to METHOD_SCOPES').toEqual([]);
    const needed = new Set<string>([
      ...methods.map((m) => METHOD_SCOPES[m]).filter((s): s is string => s !== null),
      ...events.map((e) => EVENT_SCOPES[e] as string),
      'commands',
      // Escalation notices go to a support channel the bot may not have been invited to.
      'chat:write.public',
    ]);
    expect(new Set(scopes)).toEqual(needed);
    expect(manifest.features.slash_commands.map((c: { command: string }) => c.command)).toEqual(['/support']);
    expect(manifest.settings.interactivity.is_enabled).toBe(true);
  });
});
