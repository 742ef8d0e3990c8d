// Every workflow with each label's version and the rollout shares behind it, and what it did
// in the last hour: runs, error ratio, cost per run.
import { call } from "../api/client";
import { Empty, Show } from "../components/States";
import { usd } from "../lib/runs";
import { shares } from "../lib/shares";
import { Link } from "../router";
import type { Session } from "../session";
import { useApi } from "../useApi";

async function loadAll(key: string) {
  const [workflows, activity] = await Promise.all([
    call(key, "get", "/v1/workflows"),
    call(key, "get", "/v1/runs/activity", { query: { window_s: 3600 } }),
  ]);
  const lately = new Map(activity.map((a) => [a.workflow, a]));
  return Promise.all(
    workflows.map(async (wf) => {
      const rollouts = await Promise.all(
        Object.keys(wf.labels ?? {}).map((label) =>
          call(key, "get", "/v1/workflows/{name}/rollouts/{label}", {
            params: { name: wf.name, label },
          }),
        ),
      );
      return { wf, rollouts, hour: lately.get(wf.name) };
    }),
  );
}

export function Workflows({ session }: { session: Session }) {
  const [loaded, reload] = useApi(() => loadAll(session.key), [session.key]);
  return (
    <main>
      <h1>Workflows</h1>
      <Show
        loaded={loaded}
        what="workflows"
        retry={reload}
        ready={(rows) =>
          rows.length === 0 ? (
            <Empty>
              No workflows yet. Apply one with <code>rollgraph apply FILE.yaml</code>.
            </Empty>
          ) : (
            <table className="list">
              <caption className="sr-only">Workflows, their labels and rollout shares</caption>
              <thead>
                <tr>
                  <th scope="col">Workflow</th>
                  <th scope="col">Versions</th>
                  <th scope="col">Labels and rollout shares</th>
                  <th scope="col">Runs, last hour</th>
                  <th scope="col">Error ratio</th>
                  <th scope="col">Cost per run</th>
                </tr>
              </thead>
              <tbody>
                {rows.map(({ wf, rollouts, hour }) => (
                  <tr key={wf.name} data-workflow={wf.name}>
                    <th scope="row">
                      <Link to={`/workflows/${encodeURIComponent(wf.name)}`}>{wf.name}</Link>
                    </th>
                    <td>{wf.versions}</td>
                    <td>
                      {rollouts.length === 0 ? (
                        "no labels"
                      ) : (
                        <ul className="plain">
                          {rollouts.map((r) => (
                            <li key={r.label} data-label={r.label}>
                              <strong>{r.label}</strong> → {r.baseline}
                              {(r.candidates ?? []).some((c) => c.active) && (
                                <span className="muted"> (rollout: {shares(r)})</span>
                              )}
                            </li>
                          ))}
                        </ul>
                      )}
                    </td>
                    <td data-testid="hour-runs">{hour?.runs ?? 0}</td>
                    <td data-testid="hour-errors">
                      {hour?.error_ratio !== null && hour?.error_ratio !== undefined
                        ? `${+(hour.error_ratio * 100).toFixed(1)} % (${hour.failed} of ${hour.ended})`
                        : "—"}
                    </td>
                    <td data-testid="hour-cost">
                      {hour?.cost_per_run_usd !== null && hour?.cost_per_run_usd !== undefined
                        ? usd(hour.cost_per_run_usd)
                        : "—"}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      />
    </main>
  );
}
