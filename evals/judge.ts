/**
 * Optional LLM-as-judge scoring of answers through an OpenAI-compatible chat-completions endpoint
 * (`POST {baseUrl}/v1/chat/completions`, https://platform.openai.com/docs/api-reference/chat/create;
 * vLLM, llama.cpp server and Ollama speak it). Off unless a judge is configured; its scores are
 * a model's opinion and are labelled as such in every report ("LLM judge: <model>").
 *
 * The rubric follows the common faithfulness/helpfulness 1–5 scale (as in Zheng et al., "Judging
 * LLM-as-a-Judge with MT-Bench and Chatbot Arena", NeurIPS 2023, single-answer grading): the judge
 * sees the question, the supplied passages and the answer, and replies with JSON `{"score": 1..5,
 * "reason": "…"}`. The score is mapped to 0..1 as (score − 1) / 4.
 */

export interface JudgeVerdict {
  /** 0..1 (the 1–5 rating rescaled); `NaN` is never stored: unparseable replies throw. */
  score: number;
  /** The judge's one-line reason. */
  reason: string;
}

export interface Judge {
  /** `openai:<model>`, shown in reports. */
  readonly id: string;
  /** @throws Error `judge failed: …` on HTTP errors or a reply without a 1–5 score. */
  score(input: { question: string; answer: string; contexts: string[] }): Promise<JudgeVerdict>;
}

export interface OpenAIJudgeOptions {
  /** Server root, with or without `/v1` (`http://127.0.0.1:8000`). */
  baseUrl: string;
  model: string;
  apiKey?: string;
  /** Per-request timeout, ms (default 60 000). */
  timeoutMs?: number;
}

const SYSTEM = [
  'You grade answers of a customer-support assistant.',
  'Rate how well the ANSWER answers the QUESTION using only the PASSAGES: 5 = correct, complete and fully supported;',
  '4 = correct with minor gaps; 3 = partly correct or partly supported; 2 = mostly wrong or unsupported; 1 = wrong, off-topic or invented.',
  'Reply with JSON only: {"score": <1-5>, "reason": "<one sentence>"}.',
].join(' ');

/** A judge over an OpenAI-compatible server (temperature 0, one request per answer). */
export function openAIJudge(options: OpenAIJudgeOptions): Judge {
  const root = options.baseUrl.replace(/\/+$/, '').replace(/\/v1$/, '');
  return {
    id: `openai:${options.model}`,
    async score({ question, answer, contexts }) {
      const passages = contexts.map((c, i) => `[${i + 1}] ${c}`).join('\n\n');
      const res = await fetch(`${root}/v1/chat/completions`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {}),
        },
        body: JSON.stringify({
          model: options.model,
          temperature: 0,
          messages: [
            { role: 'system', content: SYSTEM },
            {
              role: 'user',
              content: `QUESTION:\n${question}\n\nPASSAGES:\n${passages}\n\nANSWER:\n${answer}`,
            },
          ],
        }),
        signal: AbortSignal.timeout(options.timeoutMs ?? 60_000),
      });
      if (!res.ok) throw new Error(`judge failed: HTTP ${res.status} ${(await res.text()).slice(0, 200)}`);
      const body = (await res.json()) as { choices?: { message?: { content?: string } }[] };
      return parseVerdict(body.choices?.[0]?.message?.content ?? '');
    },
  };
}

/**
 * Reads `{"score": n, "reason": "…"}` from a judge reply (the first JSON object in it, so code
 * fences or a preamble are tolerated). @throws Error when there is no integer score 1..5.
 */
export function parseVerdict(content: string): JudgeVerdict {
  const match = content.match(/\{[\s\S]*\}/);
  let parsed: { score?: unknown; reason?: unknown } = {};
  try {
    parsed = match ? (JSON.parse(match[0]) as typeof parsed) : {};
  } catch {
    // fall through to the error below
  }
  const s = Number(parsed.score);
  if (!Number.isInteger(s) || s < 1 || s > 5) {
    throw new Error(`judge failed: no 1-5 score in reply ${JSON.stringify(content.slice(0, 200))}`);
  }
  return { score: (s - 1) / 4, reason: typeof parsed.reason === 'string' ? parsed.reason : '' };
}
