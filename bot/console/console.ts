import { randomUUID } from 'node:crypto';
import { userInfo } from 'node:os';
import { createInterface } from 'node:readline';
import type { Turn } from '../../core/types.ts';
import type { Runtime } from '../runtime.ts';
import { formatAnswer } from './format.ts';

const HELP = [
  'Type a question and press Enter.',
  '  +1 / -1   rate the last answer (again to change it, "0" to retract)',
  '  /new      start a new conversation (forget the thread history)',
  '  /help     this text',
  '  /quit     leave (Ctrl-D works too)',
].join('\n');

export interface ConsoleOptions {
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
  /** Rating identity; defaults to the OS user name. */
  userId?: string;
}

/**
 * The console front end: one question per input line (works interactively and piped), answers
 * printed with their sources; `+1`/`-1` rate the last answer in the state store. Every answer is
 * recorded like a platform answer (platform `console`, one thread per session or `/new`), so
 * console feedback feeds the same training data as Slack and Discord.
 * Resolves when the input ends or on `/quit`.
 */
export async function runConsole(rt: Runtime, options: ConsoleOptions): Promise<void> {
  const out = (text: string) => options.output.write(`${text}\n`);
  const userId = options.userId ?? safeUserName();
  const maxQuestionChars = rt.config.bot.limits.maxQuestionChars;
  const interactive = Boolean((options.input as NodeJS.ReadStream).isTTY);
  const rl = createInterface({
    input: options.input,
    output: interactive ? options.output : undefined,
    terminal: interactive,
  });
  let threadId = randomUUID();
  let history: Turn[] = [];
  let lastAnswerId: string | null = null;
  if (interactive) out(`supportbot console — ${HELP.split('\n')[0]} /help for commands.`);
  const prompt = () => interactive && rl.prompt();
  prompt();

  for await (const raw of rl) {
    const line = raw.trim();
    if (!line) {
      prompt();
      continue;
    }
    if (line === '/quit' || line === '/exit') break;
    if (line === '/help') out(HELP);
    else if (line === '/new') {
      threadId = randomUUID();
      history = [];
      lastAnswerId = null;
      out('Started a new conversation.');
    } else if (/^([+-]1|0)$/.test(line)) {
      if (!lastAnswerId) out('There is no answer to rate yet.');
      else {
        const value = line === '0' ? null : line === '+1' ? 1 : -1;
        await rt.state.setRating(lastAnswerId, userId, value);
        out(
          value === null
            ? 'Rating removed.'
            : value === 1
              ? 'Thanks, rated 👍.'
              : 'Thanks, rated 👎. Rephrase the question or ask for a human.',
        );
      }
    } else if (line.startsWith('/')) {
      out(`Unknown command ${line.split(/\s/)[0]}. ${HELP.split('\n')[0]} /help lists the commands.`);
    } else if (line.length > maxQuestionChars) {
      // The same limit as the chat platforms and `ask` (bot.limits.maxQuestionChars).
      out(`That message is ${line.length} characters; please keep questions under ${maxQuestionChars}.`);
    } else {
      try {
        const result = await rt.ask(line, { history, scope: { platform: 'console' } });
        const id = randomUUID();
        const { retrieved, ...rest } = result;
        await rt.state.saveAnswer({
          id,
          platform: 'console',
          threadId,
          userId,
          question: line,
          result: { ...rest, retrievedChunkIds: retrieved.map((h) => h.chunk.id) },
          createdAt: new Date().toISOString(),
        });
        lastAnswerId = id;
        history = [
          ...history,
          { role: 'user' as const, text: line },
          { role: 'assistant' as const, text: result.text },
        ].slice(-10);
        out(formatAnswer(result));
        out('');
      } catch (err) {
        // A +1/-1 after a failed answer must not land on the answer before it.
        lastAnswerId = null;
        rt.log.error({ err }, 'answer failed');
        out(`Sorry, something went wrong answering that: ${(err as Error).message}`);
      }
    }
    prompt();
  }
  rl.close();
}

function safeUserName(): string {
  try {
    return `console:${userInfo().username}`;
  } catch {
    return 'console:user';
  }
}
