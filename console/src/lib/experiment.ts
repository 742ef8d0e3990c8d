// The pure part of the experiment view: the unit an effect reads in, the threshold its decision
// is taken against, the chart's series and
// scales, and the words for numbers. Kept apart from React so it is unit-tested.

export type Row = Record<string, unknown>;
export interface Look {
  at: string;
  step: number;
  action: string;
  rows: Row[];
}
export interface MetricConfig {
  name: string;
  kind?: string | null;
  direction: "increase" | "decrease";
  mde?: number;
  margin?: number;
  relative?: boolean;
}
export interface Threshold {
  value: number;
  words: string;
}
export interface Point {
  t: number;
  effect: number;
  low: number | null;
  high: number | null;
}

const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

/** How an effect reads: a proportion's in percentage points (as the decision's reasons say),
 * a mean's in the metric's own unit. */
export type Unit = "points" | "plain";
export const unitOf = (metric: { kind?: string | null }): Unit =>
  metric.kind === "proportion" ? "points" : "plain";

/** Where the decision line lies on the effect axis (the absolute effect, the one the test
 * judges): the primary's minimum detectable effect on its better side, a guardrail's tolerated
 * worsening (its margin) on its worse one; a relative one is a share of the baseline's mean. */
export function thresholdOf(
  metric: MetricConfig,
  role: string,
  baselineMean: number | null,
): Threshold | null {
  const up = metric.direction === "increase" ? 1 : -1;
  const size = role === "primary" ? metric.mde : role === "guardrail" ? (metric.margin ?? 0) : undefined;
  if (size === undefined) return null;
  let value = size;
  if (metric.relative) {
    if (baselineMean === null) return null;
    value = size * Math.abs(baselineMean);
  }
  return role === "primary"
    ? { value: up * value, words: "minimum detectable effect" }
    : { value: -up * value, words: "tolerated worsening" };
}

/** The baseline's mean of a metric at the newest look that has it. */
export function baselineMean(looks: Look[], baseline: string, metric: string): number | null {
  for (let i = looks.length - 1; i >= 0; i--) {
    const row = looks[i].rows.find((r) => r.arm === baseline && r.metric === metric);
    const mean = row ? num(row.mean) : null;
    if (mean !== null) return mean;
  }
  return null;
}

/** One point per look with the candidate's figure for the metric, oldest first; looks where
 * it could not be estimated yet are left out. */
export function seriesOf(looks: Look[], arm: string, metric: string): Point[] {
  const [e, lo, hi] = ["effect", "ci_low", "ci_high"];
  const points: Point[] = [];
  for (const look of looks) {
    const row = look.rows.find((r) => r.arm === arm && r.metric === metric);
    const effect = row ? num(row[e]) : null;
    if (row === undefined || effect === null) continue;
    points.push({ t: Date.parse(look.at), effect, low: num(row[lo]), high: num(row[hi]) });
  }
  return points;
}

/** The y range: every point, its interval, zero and the threshold in view, with a margin. */
export function yDomain(points: Point[], threshold: Threshold | null): [number, number] {
  const values = [0];
  if (threshold) values.push(threshold.value);
  for (const p of points) values.push(p.effect, ...[p.low, p.high].filter((v) => v !== null));
  let low = Math.min(...values);
  let high = Math.max(...values);
  if (high - low < 1e-12) [low, high] = [low - 1, high + 1];
  const pad = (high - low) * 0.08;
  return [low - pad, high + pad];
}

/** A linear map from `domain` onto `range` (range may run downwards, as SVG's y does). */
export function scale(domain: [number, number], range: [number, number]): (v: number) => number {
  const [d0, d1] = domain;
  const [r0, r1] = range;
  const span = d1 - d0 || 1;
  return (v) => r0 + ((v - d0) / span) * (r1 - r0);
}

/** An effect in words, signed: in percentage points, as a percentage, or plain. */
export function signed(value: number | null | undefined, unit: Unit | "percent"): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  const figure = (v: number) => String(Number(v.toPrecision(3)));
  const text =
    unit === "points" ? `${figure(value * 100)} pts` : unit === "percent" ? `${figure(value * 100)} %` : figure(value);
  return value > 0 ? `+${text}` : text.replace("-", "−");
}

/** The interval in words, or why there is none. */
export function interval(low: unknown, high: unknown, unit: Unit | "percent"): string {
  const l = num(low);
  const h = num(high);
  if (l === null || h === null) return "—";
  return `${signed(l, unit)} to ${signed(h, unit)}`;
}

/** A p-value as it is read: "< 0.001" rather than 1e-9. */
export function pValue(p: unknown): string {
  const v = num(p);
  if (v === null) return "—";
  return v < 0.001 ? "< 0.001" : v.toFixed(3);
}

/** The ramp step in words: "step 2 of 4 (25 %)" with a ramp, "fixed shares" without. */
export function stepWords(step: number, ramp: { percent: number }[] = []): string {
  if (ramp.length === 0) return "fixed shares";
  const percent = ramp[Math.min(step, ramp.length - 1)]?.percent;
  return `step ${step + 1} of ${ramp.length} (${percent} %)`;
}
