// Every workflow with each label's version and the rollout shares behind it.
import { call } from "../api/client";
import { Empty, Show } from "../components/States";
import { shares } from "../lib/shares";
import { Link } from "../router";
import type { Session } from "../session";
import { useApi } from "../useApi";

async function loadAll(key: string) {
  const workflows = await call(key, "get", "/v1/workflows");
  return Promise.all(
    workflows.map(async (wf) => {
      const rollouts = await Promise.all(
        Object.keys(wf.labels ?? {}).map((label) =>
          call(key, "get", "/v1/workflows/{name}/rollouts/{label}", {
            params: { name: wf.name, label },
          }),
        ),
      );
      return { wf, rollouts };
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
                </tr>
              </thead>
              <tbody>
                {rows.map(({ wf, rollouts }) => (
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
