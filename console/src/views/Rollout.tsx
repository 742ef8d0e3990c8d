// A label's rollout, as Argo Rollouts' dashboard shows one: the label's version (the baseline)
// and its candidates with their shares; for an admin, the candidates edited and checked as the
// API checks them, set after a confirmation that says who gets what, with the audit entry
// after; and for anyone, which version a given user would get now and why, without a run.
import { type FormEvent, useState } from "react";
import { ApiError, call, type Schemas } from "../api/client";
import { Confirm } from "../components/Confirm";
import { Show } from "../components/States";
import { checkDraft, type DraftRow } from "../lib/rollout";
import { shares } from "../lib/shares";
import { Link } from "../router";
import { may, type Session } from "../session";
import { useApi } from "../useApi";
import { Shadow } from "./Shadow";

type Rollout = Schemas["RolloutPublic"];

function Preview(props: { session: Session; name: string; label: string }) {
  const [user, setUser] = useState("");
  const [answer, setAnswer] = useState<Schemas["AssignmentPreview"] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const ask = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    try {
      setAnswer(
        await call(props.session.key, "get", "/v1/workflows/{name}/labels/{label}/assignment", {
          params: { name: props.name, label: props.label },
          query: { user_id: user },
        }),
      );
    } catch (e) {
      setAnswer(null);
      setError(e instanceof ApiError ? `${e.code}: ${e.message}` : (e as Error).message);
    }
  };
  return (
    <section aria-labelledby="preview-h">
      <h2 id="preview-h">Which version would a user get?</h2>
      <form className="inline" onSubmit={ask} aria-label="Preview a user's assignment">
        <label htmlFor="preview-user">User id</label>
        <input id="preview-user" value={user} onChange={(e) => setUser(e.target.value)} />
        <button type="submit">Show</button>
      </form>
      {error && (
        <p className="state error" role="alert">
          Error: {error}
        </p>
      )}
      {answer && (
        <div className="audit-entry" role="status" aria-live="polite" data-testid="assignment">
          <p>
            <strong>{answer.user_id || "(no user id)"}</strong> gets{" "}
            <strong data-testid="assigned-version">{answer.version}</strong> ({answer.assignment},
            by {answer.source}): {answer.explanation}
          </p>
          <p className="muted">
            bucket {answer.bucket} (buckets below {answer.rollout_buckets} are in the rollout)
            {answer.experiment_id ? `; experiment ${answer.experiment_id}` : ""}. No run was
            made.
          </p>
        </div>
      )}
    </section>
  );
}

function Editor(props: {
  session: Session;
  rollout: Rollout;
  versions: Schemas["VersionPublic"][];
  // the audit entry the change made: kept by the view, as this editor restarts from the new rollout
  onDone: (audit: Schemas["AuditEntryPublic"] | null) => void;
}) {
  const { rollout } = props;
  const choices = props.versions.filter(
    (v) => v.status === "active" && v.version !== rollout.baseline,
  );
  const [rows, setRows] = useState<DraftRow[]>(
    (rollout.candidates ?? [])
      .filter((c) => c.active)
      .map((c) => ({ version: c.version, percent: String(c.percent) })),
  );
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const checked = checkDraft(rows);
  const edit = (i: number, change: Partial<DraftRow>) =>
    setRows(rows.map((row, j) => (j === i ? { ...row, ...change } : row)));
  const set = async () => {
    setBusy(true);
    setError(null);
    try {
      await call(props.session.key, "put", "/v1/workflows/{name}/rollouts/{label}", {
        params: { name: rollout.workflow, label: rollout.label },
        body: { candidates: checked.candidates },
      });
      const entries = await call(props.session.key, "get", "/v1/audit", {
        query: { target_kind: "rollout", target: `${rollout.workflow}:${rollout.label}`, limit: 1 },
      });
      setAsking(false);
      setBusy(false);
      props.onDone(entries[0] ?? null);
    } catch (e) {
      setError(e instanceof ApiError ? `${e.code}: ${e.message}` : (e as Error).message);
      setAsking(false);
      setBusy(false);
    }
  };
  return (
    <section aria-labelledby="edit-h">
      <h2 id="edit-h">Change the rollout</h2>
      <form aria-label="Rollout candidates" onSubmit={(e) => e.preventDefault()}>
        {rows.map((row, i) => (
          <p className="inline" key={i} data-row={i}>
            <label htmlFor={`cand-${i}`}>Candidate {i + 1}</label>
            <select
              id={`cand-${i}`}
              value={row.version}
              onChange={(e) => edit(i, { version: e.target.value })}
            >
              <option value="">choose…</option>
              {choices.map((v) => (
                <option key={v.version}>{v.version}</option>
              ))}
            </select>
            <label htmlFor={`pct-${i}`}>percent</label>
            <input
              id={`pct-${i}`}
              inputMode="decimal"
              value={row.percent}
              aria-invalid={checked.problems.some((p) => p.includes(row.version || `row ${i + 1}`))}
              onChange={(e) => edit(i, { percent: e.target.value })}
            />
            <button type="button" onClick={() => setRows(rows.filter((_, j) => j !== i))}>
              Remove
            </button>
          </p>
        ))}
        <button type="button" onClick={() => setRows([...rows, { version: "", percent: "" }])}>
          Add candidate
        </button>{" "}
        <button type="button" disabled={checked.problems.length > 0} onClick={() => setAsking(true)}>
          Set rollout…
        </button>
      </form>
      {checked.problems.length > 0 ? (
        <ul className="state error" role="alert" aria-label="What to fix">
          {checked.problems.map((p) => (
            <li key={p}>{p}</li>
          ))}
        </ul>
      ) : (
        <p className="muted">
          {rollout.baseline} keeps {+checked.baselinePercent.toFixed(3)} % of the traffic.
        </p>
      )}
      {asking && (
        <Confirm
          title={`Set the rollout of ${rollout.label}?`}
          confirmLabel="Set rollout"
          busy={busy}
          onCancel={() => setAsking(false)}
          onConfirm={set}
        >
          <p className="what-changes">
            {checked.candidates.length === 0
              ? `The rollout ends: every user of ${rollout.label} gets ${rollout.baseline}.`
              : `${checked.candidates.map((c) => `${c.version} gets ${c.percent} %`).join(", ")}; ` +
                `${rollout.baseline} keeps ${+checked.baselinePercent.toFixed(3)} %.`}{" "}
            Users keep their buckets (sticky by user id): raising a share only adds users. The
            change is audited.
          </p>
        </Confirm>
      )}
      {error && (
        <p className="state error" role="alert">
          Error: {error}
        </p>
      )}
    </section>
  );
}

export function RolloutView(props: { session: Session; name: string; label: string }) {
  const { session, name, label } = props;
  const [loaded, reload] = useApi(async () => {
    const [rollout, versions] = await Promise.all([
      call(session.key, "get", "/v1/workflows/{name}/rollouts/{label}", { params: { name, label } }),
      call(session.key, "get", "/v1/workflows/{name}/versions", { params: { name } }),
    ]);
    return { rollout, versions };
  }, [session.key, name, label]);
  const [audit, setAudit] = useState<Schemas["AuditEntryPublic"] | null>(null);
  return (
    <main>
      <p className="crumbs">
        <Link to="/workflows">Workflows</Link> /{" "}
        <Link to={`/workflows/${encodeURIComponent(name)}`}>{name}</Link> / rollout of {label}
      </p>
      <h1>
        Rollout of {name}:{label}
      </h1>
      <Show
        loaded={loaded}
        what={`the rollout of ${label}`}
        retry={reload}
        ready={({ rollout, versions }) => (
          <>
            <p data-testid="shares">{shares(rollout)}</p>
            <table className="list" data-testid="candidates">
              <caption className="sr-only">The label's version and its candidates</caption>
              <thead>
                <tr>
                  <th scope="col">Version</th>
                  <th scope="col">Role</th>
                  <th scope="col">Share</th>
                </tr>
              </thead>
              <tbody>
                <tr>
                  <th scope="row">{rollout.baseline}</th>
                  <td>the label's version (baseline)</td>
                  <td>the rest</td>
                </tr>
                {(rollout.candidates ?? []).map((c) => (
                  <tr key={c.version} data-candidate={c.version}>
                    <th scope="row">{c.version}</th>
                    <td>candidate{c.active ? "" : " (serves nothing: archived or now the label's)"}</td>
                    <td>{c.percent} %</td>
                  </tr>
                ))}
              </tbody>
            </table>
            {audit && (
              <p className="audit-entry" role="status" aria-live="polite">
                Done. Audit entry #{audit.id}: <code>{audit.action}</code> of{" "}
                <code>{audit.target}</code> by {audit.actor}.
              </p>
            )}
            {may(session, "admin") && (
              <Editor
                key={JSON.stringify(rollout)}
                session={session}
                rollout={rollout}
                versions={versions}
                onDone={(entry) => {
                  setAudit(entry);
                  reload();
                }}
              />
            )}
            <Preview session={session} name={name} label={label} />
            <Shadow
              session={session}
              name={name}
              label={label}
              versions={versions}
              served={rollout.baseline}
            />
          </>
        )}
      />
    </main>
  );
}
