// The experiment view's tables: per metric and arm the figures the decision rests on, one
// chart per candidate and metric over the looks, and the log of what was decided and why.
import type { Schemas } from "../api/client";
import { EffectChart } from "../components/EffectChart";
import {
  interval,
  type Look,
  baselineMean,
  type MetricConfig,
  pValue,
  type Row,
  seriesOf,
  signed,
  thresholdOf,
  unitOf,
} from "../lib/experiment";

type Config = Schemas["ExperimentCreate"];
export interface Judged {
  metric: MetricConfig;
  role: "primary" | "guardrail" | "secondary";
}

/** The experiment's metrics in the order they are read: primary, guardrails, secondary. */
export function judgedMetrics(config: Config): Judged[] {
  return [
    { metric: config.primary as MetricConfig, role: "primary" },
    ...(config.guardrails ?? []).map((g) => ({ metric: g as MetricConfig, role: "guardrail" as const })),
    ...(config.secondary ?? []).map((s) => ({ metric: s as MetricConfig, role: "secondary" as const })),
  ];
}

const mean = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v.toPrecision(4) : "—");

export function MetricsTable({ rows, judged }: { rows: Row[]; judged: Judged[] }) {
  return (
    <table className="list" data-testid="metrics">
      <caption className="sr-only">
        Per metric and arm: users, runs, mean, effect, interval, p-values
      </caption>
      <thead>
        <tr>
          <th scope="col">Metric</th>
          <th scope="col">Arm</th>
          <th scope="col">Users</th>
          <th scope="col">Runs</th>
          <th scope="col">Mean</th>
          <th scope="col">Effect</th>
          <th scope="col">Interval</th>
          <th scope="col">Relative</th>
          <th scope="col">p</th>
          <th scope="col">Adjusted p</th>
        </tr>
      </thead>
      <tbody>
        {judged.flatMap(({ metric, role }) => {
          const unit = unitOf(metric);
          return rows
            .filter((r) => r.metric === metric.name)
            .map((r) => {
              const isBaseline = r.effect === undefined;
              const why = typeof r.reason === "string" && r.reason !== "ok" ? r.reason : null;
              return (
                <tr key={`${String(r.metric)}/${String(r.arm)}`} data-metric={String(r.metric)} data-arm={String(r.arm)}>
                  <th scope="row">
                    {String(r.metric)} <span className="muted">({role})</span>
                  </th>
                  <td>
                    {String(r.arm)}
                    {isBaseline ? " (baseline)" : ""}
                  </td>
                  <td>{String(r.n ?? 0)}</td>
                  <td>{r.runs === null || r.runs === undefined ? "—" : String(r.runs)}</td>
                  <td>{mean(r.mean)}</td>
                  <td>
                    {isBaseline ? "" : signed(r.effect as number | null, unit)}
                    {r.significant === true ? " (significant)" : ""}
                  </td>
                  <td>
                    {isBaseline ? "" : interval(r.ci_low, r.ci_high, unit)}
                    {!isBaseline && why ? <span className="muted"> {why.replaceAll("_", " ")}</span> : null}
                  </td>
                  <td>{isBaseline ? "" : signed(r.relative_effect as number | null, "percent")}</td>
                  <td>{isBaseline ? "" : pValue(r.p_value)}</td>
                  <td>{isBaseline ? "" : pValue(r.adjusted_p)}</td>
                </tr>
              );
            });
        })}
      </tbody>
    </table>
  );
}

export function Charts(props: {
  looks: Look[];
  judged: Judged[];
  baseline: string;
  candidates: string[];
}) {
  return (
    <div className="charts">
      {props.candidates.flatMap((arm) =>
        props.judged.map(({ metric, role }) => {
          const base = baselineMean(props.looks, props.baseline, metric.name);
          return (
            <EffectChart
              key={`${arm}/${metric.name}`}
              title={`${arm} vs ${props.baseline}, ${metric.name}`}
              points={seriesOf(props.looks, arm, metric.name)}
              threshold={thresholdOf(metric, role, base)}
              unit={unitOf(metric)}
            />
          );
        }),
      )}
    </div>
  );
}

export function DecisionLog({ decisions }: { decisions: Schemas["DecisionPublic"][] }) {
  if (decisions.length === 0) return <p className="muted">Nothing decided yet.</p>;
  return (
    <table className="list" data-testid="decisions">
      <caption className="sr-only">What the evaluator decided, newest first, and why</caption>
      <thead>
        <tr>
          <th scope="col">When</th>
          <th scope="col">Step</th>
          <th scope="col">Decision</th>
          <th scope="col">Done</th>
          <th scope="col">Why</th>
        </tr>
      </thead>
      <tbody>
        {decisions.map((d, i) => (
          <tr key={`${d.at}/${i}`}>
            <td>{new Date(d.at).toLocaleString()}</td>
            <td>{d.step + 1}</td>
            <td className={`action-${d.action}`}>{d.action}</td>
            <td>{d.applied ?? "nothing"}</td>
            <td>
              <ul className="reasons">
                {d.reasons.map((r, j) => (
                  <li key={j}>{String(r.message ?? r.code)}</li>
                ))}
              </ul>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

const TARGET_WORDS = {
  p95_latency_s: "p95 latency (s)",
  error_ratio: "error ratio",
  cost_per_run_usd: "cost per run (USD)",
} as const;

/** Each arm's version against its own `targets:` (p95 latency, error ratio, cost per run). */
export function TargetsTable({ targets }: { targets: Schemas["VersionTargets"][] }) {
  if (!targets.some((t) => t.figures.some((f) => f.target !== null)))
    return <p className="muted">No version here declares `targets:`.</p>;
  return (
    <table className="list" data-testid="targets">
      <caption className="sr-only">Each arm's measured figures against its version's targets</caption>
      <thead>
        <tr>
          <th scope="col">Version</th>
          <th scope="col">Ended runs</th>
          <th scope="col">Figure</th>
          <th scope="col">Measured</th>
          <th scope="col">Target</th>
          <th scope="col">Met</th>
        </tr>
      </thead>
      <tbody>
        {targets.flatMap((t) =>
          t.figures.map((f) => (
            <tr key={`${t.version}/${f.name}`} data-version={t.version} data-figure={f.name}>
              <th scope="row">{t.version}</th>
              <td>{t.runs}</td>
              <td>{TARGET_WORDS[f.name]}</td>
              <td>{mean(f.measured)}</td>
              <td>{f.target === null ? "none" : mean(f.target)}</td>
              <td className={f.met === false ? "status-failed" : f.met ? "status-succeeded" : ""}>
                {f.met === null ? "—" : f.met ? "✓ met" : "✗ missed"}
              </td>
            </tr>
          )),
        )}
      </tbody>
    </table>
  );
}
