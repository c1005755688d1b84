import type { Config } from '../../core/config.ts';
import type { EscalationTarget, IncomingMessage } from './types.ts';

/** One platform's `escalation` settings from the config (`slack.escalation` / `discord.escalation`). */
export type EscalationRouting = Config['slack']['escalation'];

/**
 * Resolves where an escalation for `message` goes, most specific first: the channel inside its
 * workspace (`workspaces.<team>.channels.<channel>`), the workspace (`workspaces.<team>`, whose
 * `mention` alone may refine the default's channel), a channel anywhere (`channels.<channel>`),
 * then `default`.
 *
 * @returns the target, or null when nothing is configured (the asker is still told).
 */
export function resolveEscalationTarget(
  routing: EscalationRouting,
  message: Pick<IncomingMessage, 'workspaceId' | 'channelId'>,
): EscalationTarget | null {
  const workspace = routing.workspaces[message.workspaceId];
  const candidates = [
    workspace?.channels[message.channelId],
    workspace?.channel ? { channel: workspace.channel, mention: workspace.mention } : undefined,
    routing.channels[message.channelId],
    routing.default
      ? { channel: routing.default.channel, mention: workspace?.mention ?? routing.default.mention }
      : undefined,
  ];
  const hit = candidates.find((c) => c !== undefined);
  if (!hit) return null;
  return hit.mention ? { channelId: hit.channel, mention: hit.mention } : { channelId: hit.channel };
}
