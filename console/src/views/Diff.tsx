// Two versions side by side on one shared layout, each node and edge marked added, removed or
// changed (symbol, word and colour), the changed fields listed, and the unified YAML diff.
import { useMemo } from "react";
import { call, type Schemas } from "../api/client";
import { GraphView } from "../components/GraphView";
import { Failure, Show } from "../components/States";
import { CHANGE_TEXT, side, type UnionGraph, unionGraph } from "../graph/diffGraph";
import { Link } from "../router";
import type { Session } from "../session";
import { useApi } from "../useApi";

async function load(key: string, name: string, a: string, b: string) {
  const [ga, gb, diff] = await Promise.all([
    call(key, "get", "/v1/workflows/{name}/versions/{version}/graph", {
      params: { name, version: a },
    }),
    call(key, "get", "/v1/workflows/{name}/versions/{version}/graph", {
      params: { name, version: b },
    }),
    call(key, "get", "/v1/workflows/{name}/diff", { params: { name }, query: { a, b } }),
  ]);
  return { ga, gb, diff };
}

function Side({ union, which, title }: { union: UnionGraph; which: "a" | "b"; title: string }) {
  const drawn = useMemo(() => side(union, which), [union, which]);
  const nodes = useMemo(() => {
    const here = new Set(drawn.nodes.map((n) => n.id));
    return union.nodes.map((n) =>
      here.has(n.id)
        ? { node: (which === "a" ? n.a : n.b) ?? n.a ?? n.b!, change: n.change, fields: n.fields }
        : { node: (n.a ?? n.b)!, ghost: true },
    );
  }, [union, drawn, which]);
  const edges = useMemo(() => drawn.edges.map((e) => ({ edge: e.edge, change: e.change })), [drawn]);
  return (
    <section className={`diff-side side-${which}`} aria-label={title}>
      <h2>{title}</h2>
      <GraphView nodes={nodes} edges={edges} positions={drawn.positions} label={title} />
    </section>
  );
}

function Summary({ union, diff }: { union: UnionGraph; diff: Schemas["DiffPublic"] }) {
  const marked = union.nodes.filter((n) => n.change !== "unchanged");
  return (
    <section aria-labelledby="changes-h">
      <h2 id="changes-h">Changed nodes</h2>
      {marked.length === 0 ? (
        <p>No node changed{diff.identical ? ": the versions are identical." : "."}</p>
      ) : (
        <ul className="changes">
          {marked.map((n) => (
            <li key={n.id} className={`change-${n.change}`} data-node={n.id} data-change={n.change}>
              <strong>
                {CHANGE_TEXT[n.change].symbol} {n.id}
              </strong>{" "}
              {CHANGE_TEXT[n.change].word}
              {n.fields.length > 0 && (
                <ul>
                  {n.fields.map((f) => (
                    <li key={f.path}>
                      <code>{f.path}</code> {f.change}
                      {f.change !== "added" && (
                        <>
                          {" "}
                          from <code>{JSON.stringify(f.before)}</code>
                        </>
                      )}
                      {f.change !== "removed" && (
                        <>
                          {" "}
                          to <code>{JSON.stringify(f.after)}</code>
                        </>
                      )}
                    </li>
                  ))}
                </ul>
              )}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

export function UnifiedDiff({ text }: { text: string }) {
  const lines = text.split("\n");
  return (
    <pre className="unified" tabIndex={0} aria-label="Unified YAML diff">
      {lines.map((line, i) => {
        const kind =
          line.startsWith("+++") || line.startsWith("---") || line.startsWith("@@")
            ? "meta"
            : line.startsWith("+")
              ? "add"
              : line.startsWith("-")
                ? "del"
                : "ctx";
        return (
          <span key={i} className={`line ${kind}`}>
            {line}
            {"\n"}
          </span>
        );
      })}
    </pre>
  );
}

export function Diff(props: { session: Session; name: string; a: string | null; b: string | null }) {
  const { session, name, a, b } = props;
  const [loaded, reload] = useApi(
    () => (a && b ? load(session.key, name, a, b) : Promise.reject(new Error("no versions"))),
    [session.key, name, a, b],
  );
  const wf = encodeURIComponent(name);
  const union = useMemo(
    () =>
      loaded.state === "ready"
        ? unionGraph(loaded.data.ga, loaded.data.gb, loaded.data.diff.nodes_changed)
        : null,
    [loaded],
  );
  if (!a || !b) {
    return (
      <main>
        <Failure error={new Error("choose two versions: ?a=VERSION&b=VERSION")} />
      </main>
    );
  }
  return (
    <main className="wide">
      <p className="crumbs">
        <Link to="/workflows">Workflows</Link> / <Link to={`/workflows/${wf}`}>{name}</Link> /
        diff
      </p>
      <h1>
        {name}: {a} → {b}
      </h1>
      <p className="legend">
        Marks: <span className="change-added">+ added</span>{" "}
        <span className="change-removed">− removed</span>{" "}
        <span className="change-changed">~ changed</span>
      </p>
      <Show
        loaded={loaded}
        what="the diff"
        retry={reload}
        ready={({ diff }) =>
          union && (
            <>
              <div className="diff-sides">
                <Side union={union} which="a" title={`${a} (before)`} />
                <Side union={union} which="b" title={`${b} (after)`} />
              </div>
              <Summary union={union} diff={diff} />
              <section aria-labelledby="unified-h">
                <h2 id="unified-h">YAML diff</h2>
                <UnifiedDiff text={diff.text} />
              </section>
            </>
          )
        }
      />
    </main>
  );
}
