// "Run again" for a runner: the same input on the same workflow version (pinned, so what ran
// is what runs), as a new async run; the view then opens it.
import { useState } from "react";
import { ApiError, call, type Schemas } from "../api/client";
import { Confirm } from "../components/Confirm";
import { navigate } from "../router";
import type { Session } from "../session";

export function RunAgain({ session, run }: { session: Session; run: Schemas["RunDetail"] }) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  if (!run.input) return null;
  const again = async () => {
    setBusy(true);
    setError(null);
    try {
      const started = await call(session.key, "post", "/v1/run", {
        body: {
          workflow: run.workflow,
          version: run.version,
          input: run.input ?? {},
          user_id: run.user_id ?? undefined,
          mode: "async",
        },
      });
      navigate(`/runs/${encodeURIComponent(started.run_id)}`);
    } catch (e) {
      setError(e instanceof ApiError ? `${e.status} ${e.code}: ${e.message}` : String(e));
      setAsking(false);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="label-actions">
      <button type="button" onClick={() => setAsking(true)}>
        Run again…
      </button>
      {error && (
        <p role="alert" className="state error">
          {error}
        </p>
      )}
      {asking && (
        <Confirm
          title="Run again?"
          confirmLabel="Run again"
          busy={busy}
          onConfirm={again}
          onCancel={() => setAsking(false)}
        >
          <p className="what-changes">
            A new run of {run.workflow} {run.version} (pinned) on the same input
            {run.user_id ? ` for user ${run.user_id}` : ""}, billed anew: the step cache is this
            run's, not the new one's.
          </p>
          <pre className="json">{JSON.stringify(run.input, null, 2)}</pre>
        </Confirm>
      )}
    </div>
  );
}
