// Runs, newest first, filtered by workflow and status through the URL (a filtered list is a
// link to share); the list refreshes itself while any run in it is still queued or running.
import { type FormEvent, useState } from "react";
import { call, type Schemas } from "../api/client";
import { Empty, Show } from "../components/States";
import { duration, isLive, usd } from "../lib/runs";
import { Link, navigate } from "../router";
import type { Session } from "../session";
import { useApi } from "../useApi";
import { usePoll } from "../usePoll";

const STATUSES = ["queued", "running", "succeeded", "failed", "budget_exceeded"] as const;
type Status = (typeof STATUSES)[number];
const LIMIT = 100;

export function RunsTable({ runs }: { runs: Schemas["RunPublic"][] }) {
  return (
    <table className="list" data-testid="runs">
      <caption className="sr-only">Runs, newest first</caption>
      <thead>
        <tr>
          <th scope="col">Run</th>
          <th scope="col">Workflow</th>
          <th scope="col">Status</th>
          <th scope="col">Why this version</th>
          <th scope="col">Cost</th>
          <th scope="col">Latency</th>
          <th scope="col">Started</th>
        </tr>
      </thead>
      <tbody>
        {runs.map((r) => (
          <tr key={r.run_id} data-run={r.run_id}>
            <th scope="row">
              <Link to={`/runs/${encodeURIComponent(r.run_id)}`}>
                <code>{r.run_id}</code>
              </Link>
            </th>
            <td>
              {r.workflow} {r.version}
            </td>
            <td className={`status-${r.status}`}>
              {r.status}
              {r.attempt > 1 ? ` (attempt ${r.attempt})` : ""}
            </td>
            <td>{r.reason}</td>
            <td>{usd(r.cost_usd)}</td>
            <td>{duration(r.latency_s)}</td>
            <td>{new Date(r.created_at).toLocaleString()}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function Runs(props: { session: Session; workflow: string | null; status: string | null }) {
  const { session } = props;
  const status = STATUSES.includes(props.status as Status) ? (props.status as Status) : undefined;
  const workflow = props.workflow || undefined;
  const [draft, setDraft] = useState({ workflow: workflow ?? "", status: status ?? "" });
  const [loaded, reload] = useApi(
    () => call(session.key, "get", "/v1/runs", { query: { workflow, status, limit: LIMIT } }),
    [session.key, workflow, status],
  );
  usePoll(reload, 3000, loaded.state === "ready" && loaded.data.some((r) => isLive(r.status)));
  const apply = (event: FormEvent) => {
    event.preventDefault();
    const query = new URLSearchParams();
    if (draft.workflow.trim()) query.set("workflow", draft.workflow.trim());
    if (draft.status) query.set("status", draft.status);
    const search = query.toString();
    navigate(`/runs${search ? `?${search}` : ""}`);
  };
  return (
    <main>
      <h1>Runs</h1>
      <form className="filters" onSubmit={apply} aria-label="Filter runs">
        <label>
          Workflow
          <input
            value={draft.workflow}
            onChange={(e) => setDraft({ ...draft, workflow: e.target.value })}
            placeholder="any"
          />
        </label>
        <label>
          Status
          <select
            value={draft.status}
            onChange={(e) => setDraft({ ...draft, status: e.target.value })}
          >
            <option value="">any</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <button type="submit">Show</button>
        <button type="button" onClick={reload}>
          Refresh
        </button>
      </form>
      <Show
        loaded={loaded}
        what="runs"
        retry={reload}
        ready={(runs) =>
          runs.length === 0 ? (
            <Empty>
              No runs{workflow ? ` of ${workflow}` : ""}
              {status ? ` ${status}` : ""} yet.
            </Empty>
          ) : (
            <>
              <RunsTable runs={runs} />
              {runs.length === LIMIT && (
                <p className="muted">The newest {LIMIT}; narrow the filters to see older ones.</p>
              )}
            </>
          )
        }
      />
    </main>
  );
}
