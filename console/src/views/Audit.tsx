// The audit log, newest first, filtered through the URL (a filtered log is a link to share):
// who did what to which target, and the before and after of each change.
import { type FormEvent, useState } from "react";
import { call } from "../api/client";
import { Empty, Show } from "../components/States";
import { navigate } from "../router";
import type { Session } from "../session";
import { useApi } from "../useApi";

const KINDS = ["version", "label", "rollout", "experiment", "api_key"] as const;
const LIMIT = 200;
type Filters = { target_kind: string; target: string; actor: string };

export function Audit(props: { session: Session; filters: Partial<Filters> }) {
  const filters: Filters = {
    target_kind: props.filters.target_kind ?? "",
    target: props.filters.target ?? "",
    actor: props.filters.actor ?? "",
  };
  const [draft, setDraft] = useState(filters);
  const query = Object.fromEntries(Object.entries(filters).filter(([, v]) => v)) as Partial<Filters>;
  const [loaded, reload] = useApi(
    () => call(props.session.key, "get", "/v1/audit", { query: { ...query, limit: LIMIT } }),
    [props.session.key, query],
  );
  const apply = (event: FormEvent) => {
    event.preventDefault();
    const search = new URLSearchParams(
      Object.entries(draft).filter(([, v]) => v.trim()).map(([k, v]) => [k, v.trim()]),
    ).toString();
    navigate(`/audit${search ? `?${search}` : ""}`);
  };
  return (
    <main>
      <h1>Audit log</h1>
      <form className="filters" onSubmit={apply} aria-label="Filter the audit log">
        <label>
          Target kind
          <select
            value={draft.target_kind}
            onChange={(e) => setDraft({ ...draft, target_kind: e.target.value })}
          >
            <option value="">any</option>
            {KINDS.map((k) => (
              <option key={k}>{k}</option>
            ))}
          </select>
        </label>
        <label>
          Target
          <input
            value={draft.target}
            placeholder="e.g. product-video:prod"
            onChange={(e) => setDraft({ ...draft, target: e.target.value })}
          />
        </label>
        <label>
          Actor
          <input
            value={draft.actor}
            placeholder="a key's name"
            onChange={(e) => setDraft({ ...draft, actor: e.target.value })}
          />
        </label>
        <button type="submit">Show</button>
      </form>
      <Show
        loaded={loaded}
        what="the audit log"
        retry={reload}
        ready={(entries) =>
          entries.length === 0 ? (
            <Empty>No audit entry matches.</Empty>
          ) : (
            <table className="list" data-testid="audit">
              <caption className="sr-only">Audit entries, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">#</th>
                  <th scope="col">When</th>
                  <th scope="col">Actor</th>
                  <th scope="col">Action</th>
                  <th scope="col">Target</th>
                  <th scope="col">Change</th>
                </tr>
              </thead>
              <tbody>
                {entries.map((e) => (
                  <tr key={e.id} data-action={e.action}>
                    <td>{e.id}</td>
                    <td>{new Date(e.at).toLocaleString()}</td>
                    <td>{e.actor}</td>
                    <th scope="row">
                      <code>{e.action}</code>
                    </th>
                    <td>
                      {e.target_kind} <code>{e.target}</code>
                    </td>
                    <td>
                      <details>
                        <summary>before and after</summary>
                        <pre className="yaml">
                          {JSON.stringify({ before: e.before ?? null, after: e.after ?? null }, null, 2)}
                        </pre>
                      </details>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      />
      {loaded.state === "ready" && loaded.data.length === LIMIT && (
        <p className="muted">The newest {LIMIT}; narrow the filters to see older ones.</p>
      )}
    </main>
  );
}
