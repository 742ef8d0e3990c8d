// Every workflow with each label's version and the rollout shares behind it.
import { call, type Schemas } from "../api/client";
import { Empty, Show } from "../components/States";
import { Link } from "../router";
import type { Session } from "../session";
import { useApi } from "../useApi";

type Rollout = Schemas["RolloutPublic"];

/** "v3.2 90 % · v3.3 10 %": the baseline gets what the active candidates leave. */
export function shares(rollout: Rollout): string {
  const active = (rollout.candidates ?? []).filter((c) => c.active);
  const rest = 100 - active.reduce((sum, c) => sum + c.percent, 0);
  const parts = [`${rollout.baseline} ${+rest.toFixed(3)} %`];
  for (const c of active) parts.push(`${c.version} ${+c.percent.toFixed(3)} %`);
  return parts.join(" · ");
}

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
