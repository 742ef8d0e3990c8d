// The shell: who is signed in, navigation, and the route → view table. Every view is reachable
// by its URL; without a session any URL shows the sign-in and comes back after it.
import { useEffect } from "react";
import { BASE, Link, match, navigate, useLocation } from "./router";
import { may, setSession, useSession } from "./session";
import { Audit } from "./views/Audit";
import { Diff } from "./views/Diff";
import { Editor } from "./views/Editor";
import { Experiment } from "./views/Experiment";
import { Experiments } from "./views/Experiments";
import { Run } from "./views/Run";
import { Keys } from "./views/Keys";
import { Queue } from "./views/Queue";
import { RolloutView } from "./views/Rollout";
import { type RunFilters, Runs } from "./views/Runs";
import { SignIn } from "./views/SignIn";
import { Version } from "./views/Version";
import { Workflow } from "./views/Workflow";
import { Workflows } from "./views/Workflows";

function NotFound({ path }: { path: string }) {
  return (
    <main>
      <h1>Not found</h1>
      <p role="alert">
        Nothing at <code>{BASE + path}</code>. <Link to="/workflows">Go to the workflows</Link>.
      </p>
    </main>
  );
}

export function App() {
  const location = useLocation();
  const session = useSession();
  const path = location.pathname.slice(BASE.length) || "/";
  const here = path + location.search;

  useEffect(() => {
    if (path === "/" || path === "") navigate("/workflows", true);
  }, [path]);

  if (!session || path === "/sign-in") {
    const next = location.searchParams.get("next") ?? (path === "/sign-in" ? "/workflows" : here);
    if (session && path === "/sign-in") {
      navigate(next, true);
      return null;
    }
    return <SignIn next={next.startsWith("/") ? next : "/workflows"} />;
  }

  let view;
  let params: Record<string, string> | null;
  if ((params = match("/workflows", path))) view = <Workflows session={session} />;
  else if ((params = match("/workflows/:name", path)))
    view = <Workflow session={session} name={params.name} />;
  else if ((params = match("/workflows/:name/versions/:version", path)))
    view = <Version session={session} name={params.name} version={params.version} />;
  else if ((params = match("/workflows/:name/edit", path)))
    view = <Editor session={session} name={params.name} from={location.searchParams.get("from")} />;
  else if ((params = match("/workflows/:name/rollouts/:label", path)))
    view = <RolloutView session={session} name={params.name} label={params.label} />;
  else if ((params = match("/workflows/:name/diff", path)))
    view = (
      <Diff
        session={session}
        name={params.name}
        a={location.searchParams.get("a")}
        b={location.searchParams.get("b")}
      />
    );
  else if ((params = match("/experiments", path)))
    view = <Experiments session={session} workflow={location.searchParams.get("workflow")} />;
  else if ((params = match("/experiments/:id", path)))
    view = <Experiment session={session} id={params.id} />;
  else if ((params = match("/queue", path))) view = <Queue session={session} />;
  else if ((params = match("/audit", path)))
    view = (
      <Audit
        session={session}
        filters={{
          target_kind: location.searchParams.get("target_kind") ?? undefined,
          target: location.searchParams.get("target") ?? undefined,
          actor: location.searchParams.get("actor") ?? undefined,
        }}
      />
    );
  else if ((params = match("/keys", path))) view = <Keys session={session} />;
  else if ((params = match("/runs", path)))
    view = (
      <Runs
        session={session}
        filters={Object.fromEntries(location.searchParams.entries()) as RunFilters}
      />
    );
  else if ((params = match("/runs/:id", path))) {
    const attempt = Number(location.searchParams.get("attempt"));
    view = (
      <Run
        session={session}
        runId={params.id}
        attempt={Number.isInteger(attempt) && attempt >= 1 ? attempt : null}
      />
    );
  } else if (path === "/" || path === "") view = null;
  else view = <NotFound path={path} />;

  return (
    <>
      <a className="skip" href="#content">
        Skip to content
      </a>
      <header className="top">
        <nav aria-label="Main">
          <Link to="/workflows" className="brand">
            rollgraph
          </Link>
          <Link to="/workflows">Workflows</Link>
          <Link to="/runs">Runs</Link>
          <Link to="/experiments">Experiments</Link>
          <Link to="/queue">Queue</Link>
          {may(session, "admin") && <Link to="/audit">Audit</Link>}
          {may(session, "admin") && <Link to="/keys">Keys</Link>}
          <a href="/docs">API docs</a>
        </nav>
        <div className="who" data-testid="who">
          Signed in as <strong>{session.name}</strong> (<span data-role={session.role}>{session.role}</span>)
          <button type="button" onClick={() => setSession(null)}>
            Sign out
          </button>
        </div>
      </header>
      <div id="content" tabIndex={-1}>
        {view}
      </div>
    </>
  );
}
