import { expect, it } from 'vitest';

// vega-lite 6 patches Set.prototype.toJSON when it loads, which breaks discord.js's bundled
// inspector in the same process. The CLI loads both (eval reports and serve): rendering a chart
// must leave the global alone, and discord.js must still load afterwards.
it('rendering an eval chart leaves Set.prototype alone, so discord.js still loads', async () => {
  const { renderSvg } = await import('../evals/report.ts');
  const svg = await renderSvg({
    data: { values: [{ a: 'x', b: 1 }] },
    mark: 'bar',
    encoding: { x: { field: 'a', type: 'nominal' }, y: { field: 'b', type: 'quantitative' } },
  });
  expect(svg).toContain('<svg');
  expect(Object.getOwnPropertyNames(Set.prototype)).not.toContain('toJSON');
  const discord = await import('discord.js');
  expect(typeof discord.Client).toBe('function');
  await import('../bot/cli/main.ts');
});
