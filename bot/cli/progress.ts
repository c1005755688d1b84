import cliProgress from 'cli-progress';
import type { SyncProgress } from '../../sync/sync.ts';

/**
 * A sync progress callback that draws a bar on stderr when it is a terminal and does nothing
 * otherwise (CI logs, pipes). Sources do not know their size up front, so the bar counts files
 * processed; it is stopped by the next summary line.
 */
export function syncProgressReporter(
  stream: NodeJS.WriteStream = process.stderr,
): ((p: SyncProgress) => void) | undefined {
  if (!stream.isTTY) return undefined;
  let bar: cliProgress.SingleBar | null = null;
  let source = '';
  return (p) => {
    if (p.source !== source) {
      bar?.stop();
      source = p.source;
      bar = new cliProgress.SingleBar(
        { format: `${p.source} {value} files | {article}`, stream, clearOnComplete: true, hideCursor: true },
        cliProgress.Presets.shades_classic,
      );
      bar.start(0, 0, { article: '' });
    }
    bar?.update(p.processed, { article: (p.article ?? '').slice(-60) });
    if (p.done) bar?.stop();
  };
}
