/**
 * The promotion gate: a candidate generator/adapter may replace the baseline only if it is not
 * worse beyond a tolerance on any gated answer metric. The adapter registry calls
 * `gateConfigurations` (two configurations, evaluated here) or `gate` (two results it already
 * has); `supportbot eval gate CANDIDATE.json BASELINE.json` calls `gate` on files.
 */
import {
  type AnswerEvalConfig,
  type AnswerEvalOptions,
  type AnswerEvalResult,
  type AnswerMetrics,
  runAnswerEval,
} from './answers.ts';
import type { EvalDataset } from './datasets.ts';

/** The numeric fields of `AnswerMetrics` a rule can gate. */
export type GatedMetric = {
  [K in keyof AnswerMetrics]: AnswerMetrics[K] extends number | null ? K : never;
}[keyof AnswerMetrics];

/**
 * One gate rule.
 * - `higher`: fail when candidate < baseline − tolerance (absolute, in the metric's unit).
 * - `lower`: fail when candidate > baseline × (1 + tolerance) (relative; for latencies, where a
 *   fixed number of ms means different things on different machines).
 * - `max`: fail when candidate > tolerance, whatever the baseline (hard limits such as 0
 *   citations to unsupplied chunks).
 */
export interface GateRule {
  metric: GatedMetric;
  direction: 'higher' | 'lower' | 'max';
  tolerance: number;
}

/**
 * Default rules: rates may drop by at most 2 points (escalation and judge 5), p95 latency may grow
 * by at most 25 %, and no answer may cite a chunk it was not given.
 */
export const DEFAULT_GATE_RULES: readonly GateRule[] = [
  { metric: 'answerRate', direction: 'higher', tolerance: 0.02 },
  { metric: 'abstentionRate', direction: 'higher', tolerance: 0.02 },
  { metric: 'citationAccuracy', direction: 'higher', tolerance: 0.02 },
  { metric: 'citationHitRate', direction: 'higher', tolerance: 0.02 },
  { metric: 'escalationPrecision', direction: 'higher', tolerance: 0.05 },
  { metric: 'escalationRecall', direction: 'higher', tolerance: 0.05 },
  { metric: 'judgeScore', direction: 'higher', tolerance: 0.05 },
  { metric: 'latencyP95Ms', direction: 'lower', tolerance: 0.25 },
  { metric: 'unsuppliedCitations', direction: 'max', tolerance: 0 },
];

export interface GateCheck {
  metric: GatedMetric;
  baseline: number | null;
  candidate: number | null;
  /** candidate − baseline (null when either is missing). */
  delta: number | null;
  ok: boolean;
  /** `not measured` when the metric is null on both sides (the check is then skipped and ok). */
  note: string;
}

export interface GateDecision {
  pass: boolean;
  dataset: string;
  candidate: string;
  baseline: string;
  checks: GateCheck[];
  /** One line per failed check, for the command's output and the registry's log. */
  reasons: string[];
}

const fmt = (m: GatedMetric, v: number) =>
  m.endsWith('Ms') ? `${v.toFixed(1)} ms` : m === 'unsuppliedCitations' ? String(v) : v.toFixed(3);

/**
 * Compares two answer-eval results of the same dataset under `rules`.
 *
 * A metric the baseline measured but the candidate did not (null) fails; one neither measured is
 * skipped. @throws Error when the results are of different datasets.
 */
export function gate(
  candidate: AnswerEvalResult,
  baseline: AnswerEvalResult,
  rules: readonly GateRule[] = DEFAULT_GATE_RULES,
): GateDecision {
  if (candidate.dataset !== baseline.dataset) {
    throw new Error(`cannot gate results of different datasets: ${candidate.dataset} vs ${baseline.dataset}`);
  }
  const checks: GateCheck[] = rules.map((rule) => {
    const c = candidate.metrics[rule.metric] as number | null;
    const b = baseline.metrics[rule.metric] as number | null;
    const base = {
      metric: rule.metric,
      baseline: b,
      candidate: c,
      delta: c !== null && b !== null ? c - b : null,
    };
    if (rule.direction === 'max') {
      if (c === null) return { ...base, ok: true, note: 'not measured' };
      const ok = c <= rule.tolerance;
      return {
        ...base,
        ok,
        note: ok ? '' : `${rule.metric} is ${fmt(rule.metric, c)}, must be at most ${rule.tolerance}`,
      };
    }
    if (b === null && c === null) return { ...base, ok: true, note: 'not measured' };
    if (c === null)
      return {
        ...base,
        ok: false,
        note: `${rule.metric} was measured for the baseline but not for the candidate`,
      };
    if (b === null) return { ...base, ok: true, note: 'no baseline value' };
    if (rule.direction === 'higher') {
      const ok = c >= b - rule.tolerance - 1e-12;
      return {
        ...base,
        ok,
        note: ok
          ? ''
          : `${rule.metric} dropped from ${fmt(rule.metric, b)} to ${fmt(rule.metric, c)} (allowed drop ${rule.tolerance})`,
      };
    }
    const limit = b * (1 + rule.tolerance);
    const ok = c <= limit + 1e-9;
    return {
      ...base,
      ok,
      note: ok
        ? ''
        : `${rule.metric} rose from ${fmt(rule.metric, b)} to ${fmt(rule.metric, c)} (allowed up to +${Math.round(rule.tolerance * 100)}%)`,
    };
  });
  const reasons = checks.filter((c) => !c.ok).map((c) => c.note);
  return {
    pass: reasons.length === 0,
    dataset: candidate.dataset,
    candidate: candidate.config.name,
    baseline: baseline.config.name,
    checks,
    reasons,
  };
}

/**
 * Evaluates two generator/adapter configurations on the same dataset and gates the candidate
 * against the baseline: what the adapter registry calls before promoting an adapter.
 */
export async function gateConfigurations(
  dataset: EvalDataset,
  candidate: AnswerEvalConfig,
  baseline: AnswerEvalConfig,
  options: AnswerEvalOptions & { rules?: readonly GateRule[] } = {},
): Promise<{ decision: GateDecision; candidate: AnswerEvalResult; baseline: AnswerEvalResult }> {
  const base = await runAnswerEval(dataset, baseline, options);
  const cand = await runAnswerEval(dataset, candidate, options);
  return { decision: gate(cand, base, options.rules), candidate: cand, baseline: base };
}

/**
 * Parses `metric=tolerance` overrides (`answerRate=0.05,latencyP95Ms=0.5`) onto the default rules.
 * @throws Error naming an unknown metric or a non-numeric tolerance.
 */
export function parseTolerances(
  spec: string | undefined,
  rules: readonly GateRule[] = DEFAULT_GATE_RULES,
): GateRule[] {
  const out = rules.map((r) => ({ ...r }));
  if (!spec) return out;
  for (const part of spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const [name, value] = part.split('=');
    const rule = out.find((r) => r.metric === name);
    if (!rule) throw new Error(`unknown gated metric ${name}; known: ${out.map((r) => r.metric).join(', ')}`);
    const t = Number(value);
    if (value === undefined || !Number.isFinite(t) || t < 0)
      throw new Error(`tolerance for ${name} must be a number >= 0, got ${value}`);
    rule.tolerance = t;
  }
  return out;
}
