// Experiments, newest first, optionally of one workflow (through the URL): each with its
// label, arms and shares, ramp step and status in words.
import { call } from "../api/client";
import { Empty, Show } from "../components/States";
import { stepWords } from "../lib/experiment";
import { Link } from "../router";
import type { Session } from "../session";
import { useApi } from "../useApi";

const pct = (share: unknown) => (typeof share === "number" ? `${+(share * 100).toFixed(2)} %` : "");

export function Experiments(props: { session: Session; workflow: string | null }) {
  const workflow = props.workflow || undefined;
  const [loaded, reload] = useApi(
    () => call(props.session.key, "get", "/v1/experiments", { query: { workflow } }),
    [props.session.key, workflow],
  );
  return (
    <main>
      <h1>Experiments{workflow ? ` of ${workflow}` : ""}</h1>
      <Show
        loaded={loaded}
        what="experiments"
        retry={reload}
        ready={(experiments) =>
          experiments.length === 0 ? (
            <Empty>
              No experiment{workflow ? ` of ${workflow}` : ""} yet: start one with{" "}
              <code>rollgraph experiments start</code> or <code>POST /v1/experiments</code>.
            </Empty>
          ) : (
            <table className="list" data-testid="experiments">
              <caption className="sr-only">Experiments, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">Experiment</th>
                  <th scope="col">Label</th>
                  <th scope="col">Baseline</th>
                  <th scope="col">Candidates</th>
                  <th scope="col">Step</th>
                  <th scope="col">Status</th>
                  <th scope="col">Started</th>
                </tr>
              </thead>
              <tbody>
                {experiments.map((e) => (
                  <tr key={e.id} data-experiment={e.id}>
                    <th scope="row">
                      <Link to={`/experiments/${e.id}`}>{e.name}</Link>
                    </th>
                    <td>
                      <Link to={`/workflows/${encodeURIComponent(e.workflow)}`}>{e.workflow}</Link>
                      :{e.label}
                    </td>
                    <td>{e.baseline}</td>
                    <td>
                      {e.arms.map((a) => `${String(a.version)} ${pct(a.share)}`).join(", ")}
                    </td>
                    <td>{stepWords(e.step, e.config.ramp)}</td>
                    <td className={`status-${e.status}`}>{e.status.replace("_", " ")}</td>
                    <td>{new Date(e.created_at).toLocaleString()}</td>
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
