// Write a new version starting from an existing one: the text in a code editor, the server's
// define-time check run as you type (`POST /v1/workflows/validate`, nothing stored) with each
// problem at its line, the graph redrawn from what you typed, the diff against the version you
// started from, and for an admin "apply as a new version".
import { lazy, Suspense, useEffect, useRef, useState } from "react";
import { ApiError, call, type Schemas } from "../api/client";
import { Confirm } from "../components/Confirm";
import { Show } from "../components/States";
import { verdictOf } from "../lib/editor";
import { Link } from "../router";
import { may, type Session } from "../session";
import { useApi } from "../useApi";
import { UnifiedDiff } from "./Diff";
import { TimedGraph } from "./Version";

const CodeEditor = lazy(() => import("../components/CodeEditor"));
type Check = Schemas["ValidationPublic"];
const PAUSE_MS = 300; // checked once typing pauses, not at every key

function useCheck(key: string, text: string | null, against: string) {
  const [check, setCheck] = useState<Check | null>(null);
  const [error, setError] = useState<string | null>(null);
  const asked = useRef(0);
  useEffect(() => {
    if (text === null) return;
    const ask = ++asked.current;
    const timer = window.setTimeout(async () => {
      try {
        const answer = await call(key, "post", "/v1/workflows/validate", {
          body: { source: text, against },
        });
        if (ask === asked.current) {
          setCheck(answer);
          setError(null);
        }
      } catch (e) {
        if (ask === asked.current)
          setError(e instanceof ApiError ? `${e.code}: ${e.message}` : (e as Error).message);
      }
    }, PAUSE_MS);
    return () => window.clearTimeout(timer);
  }, [key, text, against]);
  return { check, error };
}

function Apply(props: { session: Session; text: string; check: Check; name: string }) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const [label, setLabel] = useState("");
  const [done, setDone] = useState<Schemas["ApplyResult"] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const version = label.trim() || props.check.version;
  const apply = async () => {
    setBusy(true);
    setError(null);
    try {
      setDone(
        await call(props.session.key, "post", "/v1/workflows", {
          body: { source: props.text, version: label.trim() || null },
        }),
      );
    } catch (e) {
      setError(e instanceof ApiError ? `${e.code}: ${e.message}` : (e as Error).message);
    } finally {
      setAsking(false);
      setBusy(false);
    }
  };
  return (
    <div className="label-actions">
      <label htmlFor="apply-label">Version label</label>
      <input
        id="apply-label"
        value={label}
        placeholder={props.check.version ?? ""}
        onChange={(e) => setLabel(e.target.value)}
      />
      <button
        type="button"
        disabled={!props.check.valid || Boolean(props.check.identical_to)}
        onClick={() => setAsking(true)}
      >
        Apply as a new version…
      </button>
      {asking && (
        <Confirm
          title={`Apply as ${props.check.workflow} ${version}?`}
          confirmLabel="Apply"
          busy={busy}
          onCancel={() => setAsking(false)}
          onConfirm={apply}
        >
          <p className="what-changes">
            A new immutable version <strong>{version}</strong> of{" "}
            <strong>{props.check.workflow}</strong> is stored (digest{" "}
            <code>{props.check.digest?.slice(0, 19)}…</code>). No label moves: promote it when
            you are ready. The change is audited.
          </p>
        </Confirm>
      )}
      {error && (
        <p className="state error" role="alert">
          Error: {error}
        </p>
      )}
      {done && (
        <p className="audit-entry" role="status" aria-live="polite">
          {done.message}.{" "}
          <Link
            to={`/workflows/${encodeURIComponent(done.workflow)}/versions/${encodeURIComponent(done.version)}`}
          >
            Open {done.workflow} {done.version}
          </Link>
        </p>
      )}
    </div>
  );
}

function Workbench(props: { session: Session; name: string; from: string; initial: string }) {
  const [text, setText] = useState(props.initial);
  const { check, error } = useCheck(props.session.key, text, props.from);
  // The graph of the last valid text stays drawn while the current one has errors.
  const [graph, setGraph] = useState<Check["graph"]>(null);
  useEffect(() => {
    if (check?.valid && check.graph) setGraph(check.graph);
  }, [check]);
  const problems = check?.problems ?? [];
  return (
    <>
      <div className="workbench">
        <section aria-labelledby="text-h" className="pane">
          <h2 id="text-h">Definition</h2>
          <Suspense fallback={<p className="state loading">Loading the editor…</p>}>
            <CodeEditor
              initial={props.initial}
              problems={problems}
              onChange={setText}
              label={`Definition of ${props.name}, from ${props.from}`}
            />
          </Suspense>
        </section>
        <section aria-labelledby="check-h" className="pane">
          <h2 id="check-h">Check</h2>
          {error && (
            <p className="state error" role="alert">
              Error: {error}
            </p>
          )}
          {check && (
            <p data-testid="verdict" className={check.valid ? "status-succeeded" : "status-failed"}>
              {verdictOf(check)}
            </p>
          )}
          <ul className="problems" data-testid="problems" aria-live="polite">
            {problems.map((p, i) => (
              <li key={i} className={`problem ${p.severity}`} data-line={p.line ?? undefined}>
                <strong>
                  {p.severity}
                  {p.line ? `, line ${p.line}` : ""}:
                </strong>{" "}
                {p.message} <code>{p.location}</code>
              </li>
            ))}
          </ul>
          {check && may(props.session, "admin") && (
            <Apply session={props.session} text={text} check={check} name={props.name} />
          )}
        </section>
      </div>
      <section aria-labelledby="preview-h">
        <h2 id="preview-h">
          Graph{check && !check.valid && graph ? " (as of the last valid text)" : ""}
        </h2>
        {graph ? (
          <TimedGraph graph={graph} label={`Graph of the draft of ${props.name}`} />
        ) : (
          <p className="muted">Drawn once the text is valid.</p>
        )}
      </section>
      {check?.diff && (
        <section aria-labelledby="diff-h">
          <h2 id="diff-h">Changes from {props.from}</h2>
          <UnifiedDiff text={check.diff.text} />
        </section>
      )}
    </>
  );
}

export function Editor(props: { session: Session; name: string; from: string | null }) {
  const { session, name } = props;
  const [loaded, reload] = useApi(async () => {
    let from = props.from;
    if (!from) {
      const versions = await call(session.key, "get", "/v1/workflows/{name}/versions", {
        params: { name },
      });
      from = versions[versions.length - 1]?.version ?? null;
      if (!from) throw new Error(`${name} has no version to start from`);
    }
    const detail = await call(session.key, "get", "/v1/workflows/{name}/versions/{version}", {
      params: { name, version: from },
    });
    return { from, source: detail.source };
  }, [session.key, name, props.from]);
  return (
    <main>
      <p className="crumbs">
        <Link to="/workflows">Workflows</Link> /{" "}
        <Link to={`/workflows/${encodeURIComponent(name)}`}>{name}</Link> / new version
      </p>
      <h1>New version of {name}</h1>
      <Show
        loaded={loaded}
        what={`the version to start from`}
        retry={reload}
        ready={({ from, source }) => (
          <>
            <p className="muted">
              Starting from {from}. Checked as you type; nothing is stored until you apply.
            </p>
            <Workbench key={from} session={session} name={name} from={from} initial={source} />
          </>
        )}
      />
    </main>
  );
}
