// A run's trace as a waterfall: one row per step, its bar placed at its offset on the run's
// time axis and as long as it took, with attempts, cost and cache hits in words; choosing a
// row opens the step's panel (its figures, usage, error, model attempts).
import { duration, usd } from "../lib/runs";

export interface TraceStep {
  node: string;
  kind?: string;
  status?: string;
  attempts?: number;
  offset_s?: number | null;
  latency_s?: number | null;
  cost_usd?: number | null;
  cache_hit?: boolean;
  error?: string | null;
  usage?: Record<string, unknown> | null;
  meta?: Record<string, unknown> | null;
}

/** Each step's bar as fractions of the run's span: where it starts and how long it lasts (a
 * step still running or never started gets a sliver, so it stays visible). */
export function bars(steps: TraceStep[]): { left: number; width: number }[] {
  const end = Math.max(0, ...steps.map((s) => (s.offset_s ?? 0) + (s.latency_s ?? 0)));
  return steps.map((s) => {
    if (end <= 0) return { left: 0, width: 0.005 };
    const left = Math.min(1, (s.offset_s ?? 0) / end);
    const width = Math.max(0.005, Math.min(1 - left, (s.latency_s ?? 0) / end));
    return { left, width };
  });
}

export function Waterfall(props: {
  steps: TraceStep[];
  selected: string | null;
  onSelect: (node: string | null) => void;
}) {
  const placed = bars(props.steps);
  if (props.steps.length === 0) return null;
  return (
    <ol className="waterfall" aria-label="Trace waterfall" data-testid="waterfall">
      {props.steps.map((s, i) => {
        const notes = [duration(s.latency_s), usd(s.cost_usd ?? 0)];
        if (s.cache_hit) notes.push("from the cache");
        if ((s.attempts ?? 0) > 1) notes.push(`${s.attempts} attempts`);
        return (
          <li key={s.node} data-node={s.node} data-status={s.status}>
            <button
              type="button"
              aria-pressed={props.selected === s.node}
              onClick={() => props.onSelect(props.selected === s.node ? null : s.node)}
            >
              <span className="name">{s.node}</span>
              <span className="track" aria-hidden="true">
                <span
                  className={`bar status-bar-${s.status ?? "pending"}`}
                  style={{ left: `${placed[i].left * 100}%`, width: `${placed[i].width * 100}%` }}
                />
              </span>
              <span className="notes">
                {s.status} · {notes.join(" · ")}
              </span>
            </button>
          </li>
        );
      })}
    </ol>
  );
}

export function StepPanel({ step, onClose }: { step: TraceStep; onClose: () => void }) {
  const attempts = step.meta?.model_attempts;
  return (
    <aside className="step-panel" aria-labelledby="panel-h" data-testid="step-panel">
      <h3 id="panel-h">
        {step.node} <span className="muted">{step.kind}</span>
      </h3>
      <button type="button" onClick={onClose} aria-label={`Close ${step.node}`}>
        Close
      </button>
      <dl className="facts">
        <dt>State</dt>
        <dd>
          {step.status}
          {step.cache_hit ? " (from the step cache: not executed, not billed)" : ""}
        </dd>
        <dt>Attempts</dt>
        <dd>{step.attempts ?? 0}</dd>
        <dt>Started at</dt>
        <dd>+{duration(step.offset_s ?? 0)} into the run</dd>
        <dt>Took</dt>
        <dd>{duration(step.latency_s)}</dd>
        <dt>Cost</dt>
        <dd>{usd(step.cost_usd ?? 0)}</dd>
        {step.meta?.served_by !== undefined && (
          <>
            <dt>Served by</dt>
            <dd>{String(step.meta.served_by)}</dd>
          </>
        )}
      </dl>
      {step.error && (
        <p className="error-text" role="alert">
          {step.error}
        </p>
      )}
      {Array.isArray(attempts) && attempts.length > 0 && (
        <>
          <h4>Model attempts</h4>
          <pre className="json">{JSON.stringify(attempts, null, 2)}</pre>
        </>
      )}
      {step.usage && Object.keys(step.usage).length > 0 && (
        <>
          <h4>Usage</h4>
          <pre className="json">{JSON.stringify(step.usage, null, 2)}</pre>
        </>
      )}
    </aside>
  );
}
