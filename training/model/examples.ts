/**
 * Training records → token ids with the base model's chat template, so the adapter learns the
 * exact text it is served with (the generator renders `core/prompt.ts`'s messages through the
 * same template).
 *
 * Accepted JSONL records (the formats TRL/Axolotl/Unsloth take, and what
 * `supportbot feedback export` writes):
 * - chat: `{"messages": [{role, content}, …, {role: "assistant", content}], "label"?: bool}` —
 *   the last message must be the assistant's reply; everything before it is the prompt;
 * - prompt/completion: `{"prompt": string | messages, "completion": string | messages,
 *   "label"?: bool}` — strings are used as raw text (no template), messages are templated.
 * `label` (KTO's desirable flag) defaults to true; SFT never trains on `label: false`.
 *
 * Tokenisation: prompt = template(prompt messages, add_generation_prompt = true); completion =
 * template(all messages)[len(prompt):] (the reply plus the template's end-of-turn marker, so the
 * model learns to stop). The loss covers the tokens after the longest common prefix of
 * tokens(prompt) and tokens(prompt + completion).
 */
import { readFile } from 'node:fs/promises';
import type { ChatMessage } from '../../core/prompt.ts';
import type { TokenizedExample } from '../trainer.ts';
import type { ChatTokenizer } from './tokenizer.ts';

/** One example before tokenisation. */
export interface TrainingRecord {
  prompt: string | ChatMessage[];
  completion: string | ChatMessage[];
  desirable: boolean;
}

function isMessages(x: unknown): x is ChatMessage[] {
  return (
    Array.isArray(x) &&
    x.every((m) => m && typeof m === 'object' && typeof m.role === 'string' && typeof m.content === 'string')
  );
}

/**
 * Parses one JSONL record.
 * @throws Error (with the line number) on a record in neither format.
 */
export function parseRecord(obj: unknown, line: number): TrainingRecord {
  const o = obj as Record<string, unknown>;
  const desirable = o.label === undefined ? true : Boolean(o.label);
  if (isMessages(o.messages)) {
    const last = o.messages.at(-1);
    if (last?.role !== 'assistant')
      throw new Error(`line ${line}: the last message must be the assistant's reply`);
    return { prompt: o.messages.slice(0, -1), completion: [last], desirable };
  }
  const okPart = (x: unknown) => typeof x === 'string' || isMessages(x);
  if (okPart(o.prompt) && okPart(o.completion))
    return {
      prompt: o.prompt as string | ChatMessage[],
      completion: o.completion as string | ChatMessage[],
      desirable,
    };
  throw new Error(`line ${line}: expected {"messages": [...]} or {"prompt", "completion"}`);
}

/** Reads a JSONL file of records (blank lines skipped). */
export async function readRecords(file: string): Promise<TrainingRecord[]> {
  const lines = (await readFile(file, 'utf8')).split('\n');
  const out: TrainingRecord[] = [];
  lines.forEach((l, i) => {
    if (l.trim()) out.push(parseRecord(JSON.parse(l), i + 1));
  });
  return out;
}

/**
 * Tokenises a record. `maxLength` keeps the reply and cuts the prompt from the left (its oldest
 * text goes first); a reply that alone exceeds it is cut at the end.
 */
export function tokenizeRecord(
  tok: ChatTokenizer,
  record: TrainingRecord,
  maxLength = Number.POSITIVE_INFINITY,
): TokenizedExample {
  let promptText: string;
  let completionText: string;
  if (typeof record.prompt === 'string' && typeof record.completion === 'string') {
    promptText = record.prompt;
    completionText = record.completion;
  } else {
    const p: ChatMessage[] =
      typeof record.prompt === 'string' ? [{ role: 'user', content: record.prompt }] : record.prompt;
    const c: ChatMessage[] =
      typeof record.completion === 'string'
        ? [{ role: 'assistant', content: record.completion }]
        : record.completion;
    promptText = tok.render(p, true);
    const full = tok.render([...p, ...c], false);
    if (!full.startsWith(promptText))
      throw new Error('the chat template does not render the prompt as a prefix of the conversation');
    completionText = full.slice(promptText.length);
  }
  // The whole text is tokenised at once, as the server will tokenise it; the reply starts
  // where the tokens of the prompt alone stop matching (a merge across the boundary, rare,
  // moves that token into the reply).
  let ids = tok.encode(promptText + completionText);
  const promptIds = tok.encode(promptText);
  let promptLength = 0;
  while (
    promptLength < promptIds.length &&
    promptLength < ids.length &&
    ids[promptLength] === promptIds[promptLength]
  )
    promptLength++;
  if (tok.addBos && tok.bosId !== null && ids[0] !== tok.bosId) {
    ids = [tok.bosId, ...ids];
    promptLength++;
  }
  let prompt = ids.slice(0, promptLength);
  let completion = ids.slice(promptLength);
  if (completion.length >= maxLength) completion = completion.slice(0, Math.max(1, maxLength - 1));
  if (prompt.length + completion.length > maxLength)
    prompt = prompt.slice(prompt.length + completion.length - maxLength);
  // At least one prompt token: position 0 predicts nothing.
  if (prompt.length === 0 && tok.bosId !== null) prompt = [tok.bosId];
  return { ids: [...prompt, ...completion], promptLength: prompt.length, desirable: record.desirable };
}
