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

const WINDOWS: Record<string, number> = { "1h": 3600, "24h": 86_400, "7d": 604_800 };
const FIELDS = ["workflow", "version", "label", "user_id", "status", "within"] as const;
type Field = (typeof FIELDS)[number];
export type RunFilters = Partial<Record<Field | "until" | "limit", string>>;

/** The filters in the URL: a filtered list, or one page of it, is a link to share. */
function href(filters: RunFilters): string {
  // in one order, so one list has one address
  const keys = [...FIELDS, "until", "limit"] as const;
  const query = new URLSearchParams(
    keys.flatMap((k) => (filters[k]?.trim() ? [[k, filters[k].trim()]] : [])),
  ).toString();
  return `/runs${query ? `?${query}` : ""}`;
}

export function Runs(props: { session: Session; filters: RunFilters }) {
  const { session, filters } = props;
  const status = STATUSES.includes(filters.status as Status) ? (filters.status as Status) : undefined;
  const workflow = filters.workflow || undefined;
  const within = filters.within && WINDOWS[filters.within] ? filters.within : undefined;
  const asked = Number(filters.limit);
  const limit = Number.isInteger(asked) && asked >= 1 && asked <= 1000 ? asked : LIMIT;
  const [draft, setDraft] = useState<RunFilters>({ ...filters, until: undefined });
  const [loaded, reload] = useApi(() => {
    const since = within ? new Date(Date.now() - WINDOWS[within] * 1000).toISOString() : undefined;
    return call(session.key, "get", "/v1/runs", {
      query: {
        workflow,
        status,
        version: filters.version || undefined,
        // the API takes these with a workflow only (its indexes are per workflow)
        label: workflow ? filters.label || undefined : undefined,
        user_id: workflow ? filters.user_id || undefined : undefined,
        since,
        until: filters.until || undefined,
        limit,
      },
    });
  }, [session.key, filters]);
  usePoll(
    reload,
    3000,
    !filters.until && loaded.state === "ready" && loaded.data.some((r) => isLive(r.status)),
  );
  const apply = (event: FormEvent) => {
    event.preventDefault();
    navigate(href({ ...draft, until: undefined, limit: filters.limit }));
  };
  const text = (field: Field, label: string, placeholder: string, needsWorkflow = false) => (
    <label>
      {label}
      <input
        value={draft[field] ?? ""}
        onChange={(e) => setDraft({ ...draft, [field]: e.target.value })}
        placeholder={placeholder}
        disabled={needsWorkflow && !draft.workflow?.trim()}
        title={needsWorkflow ? "with a workflow" : undefined}
      />
    </label>
  );
  return (
    <main>
      <h1>Runs</h1>
      <form className="filters" onSubmit={apply} aria-label="Filter runs">
        {text("workflow", "Workflow", "any")}
        {text("version", "Version", "any")}
        {text("label", "Label", "any", true)}
        {text("user_id", "User", "any", true)}
        <label>
          Status
          <select
            value={draft.status ?? ""}
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
        <label>
          Started
          <select
            value={draft.within ?? ""}
            onChange={(e) => setDraft({ ...draft, within: e.target.value })}
          >
            <option value="">any time</option>
            <option value="1h">in the last hour</option>
            <option value="24h">in the last day</option>
            <option value="7d">in the last week</option>
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
              {status ? ` ${status}` : ""}
              {filters.until ? " older than these" : " yet"}.
            </Empty>
          ) : (
            <>
              <RunsTable runs={runs} />
              <p className="pager">
                {filters.until && <Link to={href({ ...filters, until: undefined })}>Newest</Link>}{" "}
                {runs.length === limit && (
                  <Link to={href({ ...filters, until: runs[runs.length - 1].created_at })}>
                    Older runs
                  </Link>
                )}
              </p>
            </>
          )
        }
      />
    </main>
  );
}
