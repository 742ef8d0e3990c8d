// Sign in with an API key: GET /v1/keys/me says whose it is and its role; the key stays in this
// tab's sessionStorage and is sent as a bearer header.
import { type FormEvent, useState } from "react";
import { ApiError, call } from "../api/client";
import { navigate } from "../router";
import { setSession } from "../session";

export function SignIn({ next }: { next: string }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const me = await call(key.trim(), "get", "/v1/keys/me");
      setSession({ key: key.trim(), name: me.name, role: me.role });
      navigate(next, true);
    } catch (e) {
      setError(
        e instanceof ApiError && e.status === 401
          ? "That key is unknown or revoked."
          : `Could not sign in: ${(e as Error).message}`,
      );
    } finally {
      setBusy(false);
    }
  };
  return (
    <main className="signin">
      <h1>Sign in to rollgraph</h1>
      <form onSubmit={submit} aria-describedby="signin-help">
        <label htmlFor="api-key">API key</label>
        <input
          id="api-key"
          name="api-key"
          type="password"
          autoComplete="off"
          required
          value={key}
          onChange={(e) => setKey(e.target.value)}
        />
        <p id="signin-help" className="help">
          The key is kept in this tab only (session storage) and sent as a bearer header; no
          cookie is set. Its role decides what you can do here.
        </p>
        <button type="submit" className="primary" disabled={busy || !key.trim()}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        {error && (
          <p className="state error" role="alert">
            {error}
          </p>
        )}
      </form>
    </main>
  );
}
