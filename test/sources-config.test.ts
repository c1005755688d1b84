import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeZendesk, seedHelpCenter } from './fakes/zendesk.ts';
import { runCli } from './helpers/cli.ts';

/**
 * A Zendesk Help Center declared in the config file (secret from the environment) goes through
 * the same commands as a folder: sync, ask with citations, status with the last sync job.
 */
describe('a zendesk source from the config file', () => {
  let zd: FakeZendesk;
  let dir: string;
  beforeEach(async () => {
    zd = await new FakeZendesk({ email: 'bot@acme.test', token: 'zd-secret' }).start();
    seedHelpCenter(zd);
    dir = mkdtempSync(path.join(tmpdir(), 'supportbot-zd-config-'));
    writeFileSync(
      path.join(dir, 'supportbot.config.yaml'),
      [
        'sources:',
        '  - type: zendesk',
        '    name: helpdesk',
        `    baseUrl: ${zd.url}`,
        '    email: bot@acme.test',
        // An env reference, resolved by the source at sync time (not a JS template).
        `    apiToken: ${'$'}{ZENDESK_API_TOKEN}`,
        '    locales: [en-us]',
        "    schedule: '0 3 * * *'",
        '    timezone: Europe/Berlin',
      ].join('\n'),
    );
  });
  afterEach(async () => {
    await zd.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('syncs, answers with a citation to the Zendesk article, and shows the last sync in status', async () => {
    const env = { ZENDESK_API_TOKEN: 'zd-secret' };
    const sync = await runCli(['sync', '--json'], dir, env);
    expect(sync.code, sync.stderr).toBe(0);
    const [summary] = JSON.parse(sync.stdout);
    expect(summary).toMatchObject({ source: 'helpdesk', failed: 0 });
    expect(summary.added).toBeGreaterThan(0);

    const ask = await runCli(['ask', '--json', 'When are payment reminders sent?'], dir, env);
    expect(ask.code, ask.stderr).toBe(0);
    const out = JSON.parse(ask.stdout);
    expect(out.citations[0].title).toBe('Payment reminders');
    expect(out.answer).toMatch(/3 days after the due date/);

    const status = await runCli(['status'], dir, env);
    expect(status.stdout).toMatch(
      new RegExp(
        `source: +helpdesk \\(zendesk, zendesk\\) ${zd.url}: \\d+ articles; schedule 0 3 \\* \\* \\*; last sync succeeded`,
      ),
    );

    const missing = await runCli(['sync'], dir, {});
    expect(missing.code).toBe(1);
    expect(missing.stderr + missing.stdout).toMatch(/ZENDESK_API_TOKEN/);
  }, 60_000);
});
