// A label's shadow traffic: which version runs unseen beside the served one, for what share
// of users and under which hourly cost cap, and the paired comparison of the two on the same
// requests (success, latency, cost, scores) with a verdict in words. An admin starts, changes
// and stops it, each after a confirmation, with the audit entry after.
import { type FormEvent, useState } from "react";
import { ApiError, call, type Schemas } from "../api/client";
import { Confirm } from "../components/Confirm";
import { pValue } from "../lib/experiment";
import { usd } from "../lib/runs";
import { may, type Session } from "../session";
import { useApi } from "../useApi";

type Comparison = Schemas["ShadowComparison"];
const fig = (v: number | null | undefined) =>
  v === null || v === undefined || !Number.isFinite(v) ? "—" : String(Number(v.toPrecision(3)));

async function load(key: string, name: string, label: string) {
  const params = { name, label };
  try {
    const shadow = await call(key, "get", "/v1/workflows/{name}/labels/{label}/shadow", { params });
    const comparison = await call(key, "get", "/v1/workflows/{name}/labels/{label}/shadow/comparison", {
      params,
    });
    return { shadow, comparison };
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return { shadow: null, comparison: null };
    throw e;
  }
}

function ComparisonTable({ comparison }: { comparison: Comparison }) {
  return (
    <>
      <p data-testid="shadow-verdict">
        <strong>{comparison.verdict}</strong> ({comparison.pairs} paired requests)
      </p>
      <table className="list" data-testid="shadow-comparison">
        <caption className="sr-only">Served against shadow, paired by request</caption>
        <thead>
          <tr>
            <th scope="col">Metric</th>
            <th scope="col">Pairs</th>
            <th scope="col">Served</th>
            <th scope="col">Shadow</th>
            <th scope="col">Difference</th>
            <th scope="col">Interval (always valid)</th>
            <th scope="col">p (always valid)</th>
            <th scope="col">Verdict</th>
          </tr>
        </thead>
        <tbody>
          {comparison.metrics.map((m) => (
            <tr key={m.metric} data-metric={m.metric}>
              <th scope="row">
                {m.metric} <span className="muted">({m.better} is better)</span>
              </th>
              <td>{m.pairs}</td>
              <td>{fig(m.served_mean)}</td>
              <td>{fig(m.shadow_mean)}</td>
              <td>{fig(m.mean_difference)}</td>
              <td>
                {m.sequential_ci_low !== null && m.sequential_ci_low !== undefined
                  ? `${fig(m.sequential_ci_low)} to ${fig(m.sequential_ci_high)}`
                  : m.reason !== "ok"
                    ? m.reason.replaceAll("_", " ")
                    : "—"}
              </td>
              <td>{pValue(m.sequential_p_value ?? m.p_value)}</td>
              <td>{m.verdict}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

export function Shadow(props: {
  session: Session;
  name: string;
  label: string;
  versions: Schemas["VersionPublic"][];
  served: string;
}) {
  const { session, name, label } = props;
  const [loaded, reload] = useApi(() => load(session.key, name, label), [session.key, name, label]);
  const choices = props.versions.filter((v) => v.status === "active" && v.version !== props.served);
  const [draft, setDraft] = useState({ version: choices[choices.length - 1]?.version ?? "", percent: "10", cap: "5" });
  const [pending, setPending] = useState<"start" | "stop" | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [audit, setAudit] = useState<Schemas["AuditEntryPublic"] | null>(null);
  const percent = Number(draft.percent);
  const cap = Number(draft.cap);
  const invalid =
    !draft.version || !(percent > 0 && percent <= 100) || !(Number.isFinite(cap) && cap > 0);
  const params = { name, label };
  const act = async () => {
    setBusy(true);
    setError(null);
    try {
      if (pending === "start")
        await call(session.key, "put", "/v1/workflows/{name}/labels/{label}/shadow", {
          params,
          body: { version: draft.version, percent, max_cost_usd_per_hour: cap },
        });
      else await call(session.key, "delete", "/v1/workflows/{name}/labels/{label}/shadow", { params });
      const entries = await call(session.key, "get", "/v1/audit", {
        query: { target_kind: "shadow", target: `${name}:${label}`, limit: 1 },
      });
      setAudit(entries[0] ?? null);
      reload();
    } catch (e) {
      setError(e instanceof ApiError ? `${e.code}: ${e.message}` : (e as Error).message);
    } finally {
      setPending(null);
      setBusy(false);
    }
  };
  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (!invalid) setPending("start");
  };
  const shadow = loaded.state === "ready" ? loaded.data.shadow : null;
  return (
    <section aria-labelledby="shadow-h">
      <h2 id="shadow-h">Shadow traffic</h2>
      {loaded.state === "error" && (
        <p className="state error" role="alert">
          Error: {loaded.error.message}
        </p>
      )}
      {loaded.state === "ready" && (
        <p data-testid="shadow-state">
          {shadow?.active
            ? `Shadowing ${shadow.version} on ${shadow.percent} % of users beside ${shadow.served}: ` +
              `its output is never returned; ${usd(shadow.cost_usd_last_hour)} of ` +
              `${usd(shadow.max_cost_usd_per_hour)} an hour spent in the last hour.`
            : shadow
              ? `Not shadowing (last: ${shadow.version}, stopped ${new Date(shadow.stopped_at ?? "").toLocaleString()}).`
              : "Not shadowing: no version runs unseen beside this label's."}
        </p>
      )}
      {loaded.state === "ready" && loaded.data.comparison && loaded.data.comparison.pairs > 0 && (
        <ComparisonTable comparison={loaded.data.comparison} />
      )}
      {may(session, "admin") && (
        <>
          <form className="inline" onSubmit={submit} aria-label="Shadow a version">
            <label htmlFor="shadow-version">Shadow version</label>
            <select
              id="shadow-version"
              value={draft.version}
              onChange={(e) => setDraft({ ...draft, version: e.target.value })}
            >
              {choices.map((v) => (
                <option key={v.version}>{v.version}</option>
              ))}
            </select>
            <label htmlFor="shadow-percent">on percent of users</label>
            <input id="shadow-percent" inputMode="decimal" value={draft.percent}
              onChange={(e) => setDraft({ ...draft, percent: e.target.value })} />
            <label htmlFor="shadow-cap">max $ an hour</label>
            <input id="shadow-cap" inputMode="decimal" value={draft.cap}
              onChange={(e) => setDraft({ ...draft, cap: e.target.value })} />
            <button type="submit" disabled={invalid}>
              {shadow?.active ? "Change shadow…" : "Start shadow…"}
            </button>
            {shadow?.active && (
              <button type="button" onClick={() => setPending("stop")}>
                Stop shadow…
              </button>
            )}
          </form>
          {invalid && (
            <p className="muted">Choose a version, a percent above 0 up to 100 and a cap above 0.</p>
          )}
        </>
      )}
      {pending && (
        <Confirm
          title={pending === "start" ? `Shadow ${draft.version}?` : "Stop shadowing?"}
          confirmLabel={pending === "start" ? "Start shadow" : "Stop shadow"}
          busy={busy}
          onCancel={() => setPending(null)}
          onConfirm={act}
        >
          <p className="what-changes">
            {pending === "start"
              ? `For ${percent} % of ${label}'s users (sticky, under the shadow's own salt), ` +
                `${draft.version} also runs on a copy of each request after the answer, never ` +
                `returned and never slowing it, billed up to ${usd(cap)} an hour. ` +
                "Shadow runs count in no experiment. The change is audited."
              : `No request of ${label} is mirrored any more; stored shadow runs and the ` +
                "comparison stay. The change is audited."}
          </p>
        </Confirm>
      )}
      {error && (
        <p className="state error" role="alert">
          Error: {error}
        </p>
      )}
      {audit && (
        <p className="audit-entry" role="status" aria-live="polite">
          Done. Audit entry #{audit.id}: <code>{audit.action}</code> of <code>{audit.target}</code>.
        </p>
      )}
    </section>
  );
}
