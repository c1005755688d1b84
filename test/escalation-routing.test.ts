import { describe, expect, it } from 'vitest';
import { resolveEscalationTarget } from '../bot/conversation/escalation-routing.ts';
import { configSchema } from '../core/config.ts';

const routing = configSchema.parse({
  slack: {
    signingSecret: 's',
    escalation: {
      default: { channel: 'C-DEFAULT', mention: '<!subteam^S-ALL>' },
      channels: { 'C-VIP': { channel: 'C-VIP-ESC' } },
      workspaces: {
        T1: {
          channel: 'C-T1',
          mention: '<!subteam^S-T1>',
          channels: { 'C-BILLING': { channel: 'C-BILLING-ESC', mention: '<@U-FINANCE>' } },
        },
        T2: { mention: '<!subteam^S-T2>' },
      },
    },
  },
}).slack.escalation;

describe('resolveEscalationTarget', () => {
  it('picks the most specific target', () => {
    const at = (workspaceId: string, channelId: string) =>
      resolveEscalationTarget(routing, { workspaceId, channelId });
    expect(at('T1', 'C-BILLING')).toEqual({ channelId: 'C-BILLING-ESC', mention: '<@U-FINANCE>' });
    expect(at('T1', 'C-OTHER')).toEqual({ channelId: 'C-T1', mention: '<!subteam^S-T1>' });
    // The workspace entry has only a mention: the channel override, then the default channel with it.
    expect(at('T2', 'C-VIP')).toEqual({ channelId: 'C-VIP-ESC' });
    expect(at('T2', 'C-OTHER')).toEqual({ channelId: 'C-DEFAULT', mention: '<!subteam^S-T2>' });
    expect(at('T9', 'C-OTHER')).toEqual({ channelId: 'C-DEFAULT', mention: '<!subteam^S-ALL>' });
  });

  it('returns null when nothing is configured', () => {
    const empty = configSchema.parse({}).discord.escalation;
    expect(resolveEscalationTarget(empty, { workspaceId: 'G1', channelId: 'C1' })).toBeNull();
  });
});
