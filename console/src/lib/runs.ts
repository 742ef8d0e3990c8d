// What the run views say about a run and its steps, kept out of the components so vitest can
// check it: which statuses are still moving, how a step state reads in words and a symbol
// (colour only repeats them), and money and durations in the units people read.
import type { Schemas } from "../api/client";

export type RunStatus = Schemas["RunPublic"]["status"];
export type StepStateName = Schemas["StepState"]["state"];

/** A run in one of these may still change: its view keeps polling. */
export function isLive(status: RunStatus): boolean {
  return status === "queued" || status === "running";
}

/** A run that ended without its outputs: it may be resumed under its id. */
export function isResumable(status: RunStatus): boolean {
  return status === "failed" || status === "budget_exceeded";
}

export const STATE_TEXT: Record<StepStateName, { symbol: string; word: string }> = {
  pending: { symbol: "○", word: "pending" },
  running: { symbol: "◔", word: "running" },
  succeeded: { symbol: "✓", word: "succeeded" },
  cached: { symbol: "↺", word: "cached (not billed)" },
  failed: { symbol: "✗", word: "failed" },
  skipped: { symbol: "–", word: "skipped" },
  cancelled: { symbol: "⊘", word: "cancelled" },
  fallback: { symbol: "↷", word: "fell back" },
};

/** $0.0042, $1.25, $0 — sub-cent costs keep two significant digits. */
export function usd(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  if (value === 0) return "$0";
  if (Math.abs(value) < 0.01) return `$${value.toPrecision(2)}`;
  return `$${value.toFixed(2)}`;
}

/** 850 ms, 2.4 s, 3 min 05 s. */
export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0)
    return "–";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  const rest = Math.round(seconds - minutes * 60);
  return `${minutes} min ${String(rest).padStart(2, "0")} s`;
}

/** A step's time so far: ended − started, or now − started while it runs. */
export function stepSeconds(
  step: Pick<Schemas["StepState"], "started_at" | "ended_at">,
  now: number = Date.now(),
): number | null {
  if (!step.started_at) return null;
  const start = Date.parse(step.started_at);
  const end = step.ended_at ? Date.parse(step.ended_at) : now;
  return Number.isFinite(start) && Number.isFinite(end) ? Math.max(0, end - start) / 1000 : null;
}

/** How many steps are in each state, in the order a run moves through them. */
export function tally(steps: Pick<Schemas["StepState"], "state">[]): [StepStateName, number][] {
  const order = Object.keys(STATE_TEXT) as StepStateName[];
  const counts = new Map<StepStateName, number>();
  for (const step of steps) counts.set(step.state, (counts.get(step.state) ?? 0) + 1);
  return order.filter((s) => counts.has(s)).map((s) => [s, counts.get(s) ?? 0]);
}
