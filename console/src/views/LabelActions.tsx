// Promote a label to another version or roll it back, for an admin: a confirmation says what
// will change, and the audit entry the change made is shown after.
import { useState } from "react";
import { ApiError, call, type Schemas } from "../api/client";
import { Confirm } from "../components/Confirm";
import type { Session } from "../session";

type Label = Schemas["LabelPublic"];
type Audit = Schemas["AuditEntryPublic"];
type Pending = { kind: "promote"; to: string } | { kind: "rollback"; to: string | null };

export function LabelActions(props: {
  session: Session;
  label: Label;
  versions: Schemas["VersionPublic"][];
  onDone: () => void;
}) {
  const { session, label } = props;
  const others = props.versions.filter(
    (v) => v.status === "active" && v.version !== label.version,
  );
  const [target, setTarget] = useState(others[others.length - 1]?.version ?? "");
  const [pending, setPending] = useState<Pending | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [audit, setAudit] = useState<Audit | null>(null);
  const params = { name: label.workflow, label: label.name };
  const selectId = `promote-${label.name}`;

  const askRollback = async () => {
    setError(null);
    try {
      // Where a rollback goes: back to where the label's last move came from.
      const history = await call(session.key, "get", "/v1/workflows/{name}/labels/{label}/history", {
        params,
        query: { limit: 1 },
      });
      setPending({ kind: "rollback", to: history[0]?.from_version ?? null });
    } catch (e) {
      setError((e as Error).message);
    }
  };

  const run = async () => {
    if (!pending) return;
    setBusy(true);
    setError(null);
    try {
      if (pending.kind === "promote") {
        await call(session.key, "put", "/v1/workflows/{name}/labels/{label}", {
          params,
          body: { version: pending.to },
        });
      } else {
        await call(session.key, "post", "/v1/workflows/{name}/labels/{label}/rollback", { params });
      }
      const entries = await call(session.key, "get", "/v1/audit", {
        query: { target: `${label.workflow}:${label.name}`, limit: 1 },
      });
      setAudit(entries[0] ?? null);
      setPending(null);
      props.onDone();
    } catch (e) {
      setError(e instanceof ApiError ? `${e.code}: ${e.message}` : (e as Error).message);
      setPending(null);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="label-actions">
      {others.length > 0 && (
        <span className="inline">
          <label htmlFor={selectId}>Promote {label.name} to</label>
          <select id={selectId} value={target} onChange={(e) => setTarget(e.target.value)}>
            {others.map((v) => (
              <option key={v.version}>{v.version}</option>
            ))}
          </select>
          <button type="button" onClick={() => setPending({ kind: "promote", to: target })}>
            Promote…
          </button>
        </span>
      )}
      <button type="button" onClick={askRollback}>
        Roll back…
      </button>
      {pending && (
        <Confirm
          title={pending.kind === "promote" ? `Promote ${label.name}?` : `Roll back ${label.name}?`}
          confirmLabel={pending.kind === "promote" ? "Promote" : "Roll back"}
          busy={busy}
          onCancel={() => setPending(null)}
          onConfirm={run}
        >
          {pending.kind === "rollback" && pending.to === null ? (
            <p>
              The label <strong>{label.name}</strong> has no earlier version to go back to; the
              server will refuse this.
            </p>
          ) : (
            <p className="what-changes">
              The label <strong>{label.name}</strong> of <strong>{label.workflow}</strong> moves
              from <strong>{label.version}</strong> to <strong>{pending.to}</strong>. Requests
              routed by {label.name} get {pending.to} from the next one on (users in a rollout
              or experiment of this label keep their assignment rules). The change is audited.
            </p>
          )}
        </Confirm>
      )}
      {error && (
        <p className="state error" role="alert">
          Error: {error}
        </p>
      )}
      {audit && (
        <div className="audit-entry" role="status" aria-live="polite">
          <p>
            Done. Audit entry #{audit.id}: <code>{audit.action}</code> of{" "}
            <code>{audit.target}</code> by {audit.actor} at {new Date(audit.at).toLocaleString()}
          </p>
          <p className="muted">
            before: <code>{JSON.stringify(audit.before)}</code> after:{" "}
            <code>{JSON.stringify(audit.after)}</code>
          </p>
        </div>
      )}
    </div>
  );
}
