// An admin's controls on an experiment: evaluate now, resume a halted one, promote a candidate,
// roll back, stop. Each asks first, says what will change, and shows the audit entry it made.
import { useState } from "react";
import { ApiError, call, type Schemas } from "../api/client";
import { Confirm } from "../components/Confirm";
import type { Session } from "../session";

type Experiment = Schemas["ExperimentPublic"];
type Pending = "stop" | "resume" | "evaluate" | "rollback" | `promote:${string}`;

function words(pending: Pending): { title: string; label: string } {
  if (pending.startsWith("promote:")) {
    const version = pending.slice("promote:".length);
    return { title: `Promote ${version}?`, label: `Promote ${version}` };
  }
  return {
    stop: { title: "Stop this experiment?", label: "Stop" },
    resume: { title: "Resume this experiment?", label: "Resume" },
    evaluate: { title: "Evaluate now?", label: "Evaluate" },
    rollback: { title: "Roll back this experiment?", label: "Roll back" },
  }[pending as "stop" | "resume" | "evaluate" | "rollback"];
}

function WhatChanges({ pending, e }: { pending: Pending; e: Experiment }) {
  const arms = e.arms.map((a) => String(a.version)).join(", ");
  if (pending.startsWith("promote:"))
    return (
      <p className="what-changes">
        The experiment ends promoted and the label{" "}
        <strong>
          {e.workflow}:{e.label}
        </strong>{" "}
        moves from <strong>{e.baseline}</strong> to{" "}
        <strong>{pending.slice("promote:".length)}</strong>: every request of it gets that
        version from the next one on. Both changes are audited.
      </p>
    );
  if (pending === "rollback")
    return (
      <p className="what-changes">
        The experiment ends rolled back: {arms} go to 0 % and every request of{" "}
        <strong>
          {e.workflow}:{e.label}
        </strong>{" "}
        gets <strong>{e.baseline}</strong> again; the label does not move. The rollback is
        audited.
      </p>
    );
  if (pending === "stop")
    return (
      <p className="what-changes">
        The experiment ends: {arms} go to 0 % and every request of{" "}
        <strong>
          {e.workflow}:{e.label}
        </strong>{" "}
        gets the label's version <strong>{e.baseline}</strong> (and its rollout) again. Its
        figures and decisions stay. The stop is audited.
      </p>
    );
  if (pending === "resume")
    return (
      <p className="what-changes">
        The evaluator goes on with it at its current shares; the reasons it halted for (
        {(e.halt_reasons ?? []).map((r) => String(r.code)).join(", ") || "none"}) are
        acknowledged and halt it no more. The resume is audited.
      </p>
    );
  return (
    <p className="what-changes">
      The rules are applied now, as the evaluator does on its interval: this may ramp, promote,
      roll back or halt it, as its rules say. What is done is audited.
    </p>
  );
}

export function ExperimentActions(props: { session: Session; experiment: Experiment; onDone: () => void }) {
  const { session, experiment: e } = props;
  const [pending, setPending] = useState<Pending | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [audit, setAudit] = useState<Schemas["AuditEntryPublic"] | null>(null);
  const [decided, setDecided] = useState<Schemas["DecisionPublic"] | null>(null);
  const params = { experiment_id: String(e.id) };
  const open = e.status === "running" || e.status === "halted";
  if (!open && !audit && !decided) return null;

  const act = async () => {
    if (!pending) return;
    setBusy(true);
    setError(null);
    try {
      setAudit(null);
      setDecided(null);
      if (pending === "evaluate") {
        // An evaluation that decides nothing new writes no audit entry: show the decision.
        setDecided(
          await call(session.key, "post", "/v1/experiments/{experiment_id}/evaluate", { params }),
        );
        props.onDone();
        return;
      }
      if (pending === "stop")
        await call(session.key, "post", "/v1/experiments/{experiment_id}/stop", { params });
      else if (pending === "rollback")
        await call(session.key, "post", "/v1/experiments/{experiment_id}/rollback", { params });
      else if (pending.startsWith("promote:"))
        await call(session.key, "post", "/v1/experiments/{experiment_id}/promote", {
          params,
          body: { version: pending.slice("promote:".length) },
        });
      else await call(session.key, "post", "/v1/experiments/{experiment_id}/resume", { params });
      const entries = await call(session.key, "get", "/v1/audit", {
        query: { target_kind: "experiment", target: String(e.id), limit: 1 },
      });
      setAudit(entries[0] ?? null);
      props.onDone();
    } catch (err) {
      setError(err instanceof ApiError ? `${err.code}: ${err.message}` : (err as Error).message);
    } finally {
      setPending(null);
      setBusy(false);
    }
  };

  return (
    <div className="label-actions">
      {e.status === "running" && (
        <button type="button" onClick={() => setPending("evaluate")}>
          Evaluate now…
        </button>
      )}
      {e.status === "halted" && (
        <button type="button" onClick={() => setPending("resume")}>
          Resume…
        </button>
      )}
      {open &&
        e.arms.map((a) => (
          <button key={String(a.version)} type="button"
            onClick={() => setPending(`promote:${String(a.version)}`)}>
            Promote {String(a.version)}…
          </button>
        ))}
      {open && (
        <button type="button" onClick={() => setPending("rollback")}>
          Roll back…
        </button>
      )}
      {open && (
        <button type="button" onClick={() => setPending("stop")}>
          Stop…
        </button>
      )}
      {pending && (
        <Confirm
          title={words(pending).title}
          confirmLabel={words(pending).label}
          busy={busy}
          onCancel={() => setPending(null)}
          onConfirm={act}
        >
          <WhatChanges pending={pending} e={e} />
        </Confirm>
      )}
      {error && (
        <p className="state error" role="alert">
          Error: {error}
        </p>
      )}
      {decided && (
        <p className="audit-entry" role="status" aria-live="polite">
          Evaluated: <strong>{decided.action}</strong>, done: {decided.applied ?? "nothing"}.
        </p>
      )}
      {audit && (
        <p className="audit-entry" role="status" aria-live="polite">
          Done. Audit entry #{audit.id}: <code>{audit.action}</code> by {audit.actor}.
        </p>
      )}
    </div>
  );
}
