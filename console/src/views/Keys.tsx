// API keys, for an admin: who may do what. A new key is shown once (the server keeps only its
// hash); revoking one asks first and takes effect at its next request.
import { type FormEvent, useState } from "react";
import { ApiError, call, type Schemas } from "../api/client";
import { Confirm } from "../components/Confirm";
import { Show } from "../components/States";
import type { Session } from "../session";
import { useApi } from "../useApi";

type Role = Schemas["KeyCreate"]["role"];
const ROLES: Role[] = ["viewer", "runner", "admin"];

export function Keys(props: { session: Session }) {
  const { session } = props;
  const [loaded, reload] = useApi(() => call(session.key, "get", "/v1/keys"), [session.key]);
  const [name, setName] = useState("");
  const [role, setRole] = useState<Role>("viewer");
  const [created, setCreated] = useState<Schemas["KeyCreated"] | null>(null);
  const [revoking, setRevoking] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const fail = (e: unknown) =>
    setError(e instanceof ApiError ? `${e.code}: ${e.message}` : (e as Error).message);
  const create = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    setCreated(null);
    try {
      setCreated(await call(session.key, "post", "/v1/keys", { body: { name: name.trim(), role } }));
      setName("");
      reload();
    } catch (e) {
      fail(e);
    }
  };
  const revoke = async () => {
    if (!revoking) return;
    setBusy(true);
    setError(null);
    try {
      await call(session.key, "delete", "/v1/keys/{name}", { params: { name: revoking } });
      reload();
    } catch (e) {
      fail(e);
    } finally {
      setRevoking(null);
      setBusy(false);
    }
  };
  return (
    <main>
      <h1>API keys</h1>
      <form className="inline" onSubmit={create} aria-label="Create a key">
        <label htmlFor="key-name">Name</label>
        <input id="key-name" value={name} onChange={(e) => setName(e.target.value)} required />
        <label htmlFor="key-role">Role</label>
        <select id="key-role" value={role} onChange={(e) => setRole(e.target.value as Role)}>
          {ROLES.map((r) => (
            <option key={r}>{r}</option>
          ))}
        </select>
        <button type="submit">Create key</button>
      </form>
      {error && (
        <p className="state error" role="alert">
          Error: {error}
        </p>
      )}
      {created && (
        <div className="audit-entry" role="status" aria-live="polite">
          <p>
            Key <strong>{created.name}</strong> ({created.role}) created. Copy it now: it is shown
            this once, the server keeps only its hash.
          </p>
          <code data-testid="new-key" className="secret">
            {created.key}
          </code>
        </div>
      )}
      <Show
        loaded={loaded}
        what="the keys"
        retry={reload}
        ready={(keys) => (
          <table className="list" data-testid="keys">
            <caption className="sr-only">API keys</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Role</th>
                <th scope="col">Prefix</th>
                <th scope="col">Created</th>
                <th scope="col">State</th>
                <th scope="col">Action</th>
              </tr>
            </thead>
            <tbody>
              {keys.map((k) => (
                <tr key={k.name} data-key={k.name}>
                  <th scope="row">{k.name}</th>
                  <td>{k.role}</td>
                  <td>
                    <code>{k.key_prefix}…</code>
                  </td>
                  <td>
                    {new Date(k.created_at).toLocaleString()} by {k.created_by}
                  </td>
                  <td>
                    {k.active ? "active" : `revoked ${new Date(k.revoked_at ?? "").toLocaleString()}`}
                  </td>
                  <td>
                    {k.active && k.name !== session.name && (
                      <button type="button" onClick={() => setRevoking(k.name)}>
                        Revoke…
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      />
      {revoking && (
        <Confirm
          title={`Revoke ${revoking}?`}
          confirmLabel="Revoke"
          busy={busy}
          onCancel={() => setRevoking(null)}
          onConfirm={revoke}
        >
          <p className="what-changes">
            The key <strong>{revoking}</strong> stops working at its next request, for good (its
            name is never reused). The revocation is audited.
          </p>
        </Confirm>
      )}
    </main>
  );
}
