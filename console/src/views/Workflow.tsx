// One workflow: its labels (promote / roll back for an admin), its versions, and a form to
// compare two of them.
import { type FormEvent, useState } from "react";
import { call, type Schemas } from "../api/client";
import { Empty, Show } from "../components/States";
import { Link, navigate } from "../router";
import { may, type Session } from "../session";
import { useApi } from "../useApi";
import { LabelActions } from "./LabelActions";

async function load(key: string, name: string) {
  const [versions, labels] = await Promise.all([
    call(key, "get", "/v1/workflows/{name}/versions", { params: { name } }),
    call(key, "get", "/v1/workflows/{name}/labels", { params: { name } }),
  ]);
  return { versions, labels };
}

function Compare({ name, versions }: { name: string; versions: Schemas["VersionPublic"][] }) {
  const labels = versions.map((v) => v.version);
  const [a, setA] = useState(labels[Math.max(0, labels.length - 2)] ?? "");
  const [b, setB] = useState(labels[labels.length - 1] ?? "");
  const submit = (event: FormEvent) => {
    event.preventDefault();
    const q = new URLSearchParams({ a, b });
    navigate(`/workflows/${encodeURIComponent(name)}/diff?${q}`);
  };
  return (
    <form className="inline" onSubmit={submit} aria-label="Compare two versions">
      <label htmlFor="diff-a">From</label>
      <select id="diff-a" value={a} onChange={(e) => setA(e.target.value)}>
        {labels.map((v) => (
          <option key={v}>{v}</option>
        ))}
      </select>
      <label htmlFor="diff-b">to</label>
      <select id="diff-b" value={b} onChange={(e) => setB(e.target.value)}>
        {labels.map((v) => (
          <option key={v}>{v}</option>
        ))}
      </select>
      <button type="submit" disabled={!a || !b || a === b}>
        Compare
      </button>
    </form>
  );
}

export function Workflow({ session, name }: { session: Session; name: string }) {
  const [loaded, reload] = useApi(() => load(session.key, name), [session.key, name]);
  const admin = may(session, "admin");
  return (
    <main>
      <p className="crumbs">
        <Link to="/workflows">Workflows</Link> / {name}
      </p>
      <h1>{name}</h1>
      <p>
        <Link to={`/runs?workflow=${encodeURIComponent(name)}`}>Runs of {name}</Link>
      </p>
      <Show
        loaded={loaded}
        what={`${name}`}
        retry={reload}
        ready={({ versions, labels }) => (
          <>
            <section aria-labelledby="labels-h">
              <h2 id="labels-h">Labels</h2>
              {labels.length === 0 ? (
                <Empty>No labels point at a version yet.</Empty>
              ) : (
                <table className="list">
                  <thead>
                    <tr>
                      <th scope="col">Label</th>
                      <th scope="col">Version</th>
                      <th scope="col">Updated</th>
                      {admin && <th scope="col">Actions</th>}
                    </tr>
                  </thead>
                  <tbody>
                    {labels.map((label) => (
                      <tr key={label.name} data-label={label.name}>
                        <th scope="row">
                          {label.name}{" "}
                          <Link
                            to={`/workflows/${encodeURIComponent(name)}/rollouts/${encodeURIComponent(label.name)}`}
                            label={`Rollout of ${label.name}`}
                          >
                            rollout
                          </Link>
                        </th>
                        <td className="label-version">{label.version}</td>
                        <td>{new Date(label.updated_at).toLocaleString()}</td>
                        {admin && (
                          <td>
                            <LabelActions
                              session={session}
                              label={label}
                              versions={versions}
                              onDone={reload}
                            />
                          </td>
                        )}
                      </tr>
                    ))}
                  </tbody>
                </table>
              )}
            </section>
            <section aria-labelledby="versions-h">
              <h2 id="versions-h">Versions</h2>
              {versions.length >= 2 && <Compare name={name} versions={versions} />}
              {versions.length === 0 ? (
                <Empty>No versions.</Empty>
              ) : (
                <table className="list">
                  <thead>
                    <tr>
                      <th scope="col">Version</th>
                      <th scope="col">Status</th>
                      <th scope="col">Digest</th>
                      <th scope="col">Created</th>
                    </tr>
                  </thead>
                  <tbody>
                    {versions.map((v) => (
                      <tr key={v.version}>
                        <th scope="row">
                          <Link
                            to={`/workflows/${encodeURIComponent(name)}/versions/${encodeURIComponent(v.version)}`}
                          >
                            {v.version}
                          </Link>
                        </th>
                        <td>{v.status}</td>
                        <td>
                          <code>{v.digest.slice(0, 19)}</code>
                        </td>
                        <td>
                          {new Date(v.created_at).toLocaleString()} by {v.created_by}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )}
            </section>
          </>
        )}
      />
    </main>
  );
}
