/**
 * Stand-alone entry for the eval commands, until `supportbot eval …` is wired into the main CLI:
 * `npx tsx evals/run.ts eval retrieval --dataset …` accepts exactly what `supportbot eval …` does
 * (plus the global `--config` / `--data-dir`). Exit code 0, 1 (an error, or a failed gate), 2 (usage).
 */
import { Command, CommanderError } from 'commander';
import { Runtime } from '../bot/runtime.ts';
import { loadConfig } from '../core/config.ts';
import { registerEvalCommands } from './cli.ts';

const program = new Command('supportbot')
  .option('--config <file>', 'config file')
  .option('--data-dir <dir>', 'data directory')
  .exitOverride();
let runtime: Runtime | null = null;
registerEvalCommands(program, async () => {
  if (runtime) return runtime;
  const opts = program.opts<{ config?: string; dataDir?: string }>();
  const env = { ...process.env, ...(opts.dataDir ? { DATA_DIR: opts.dataDir } : {}) };
  runtime = await Runtime.open(loadConfig({ file: opts.config, env }));
  return runtime;
});
let code = 0;
try {
  await program.parseAsync(process.argv);
  code = typeof process.exitCode === 'number' ? process.exitCode : 0;
} catch (err) {
  if (err instanceof CommanderError) code = err.exitCode === 0 ? 0 : 2;
  else {
    process.stderr.write(`error: ${(err as Error).message}\n`);
    code = 1;
  }
} finally {
  await (runtime as Runtime | null)?.close();
}
process.exit(code);
