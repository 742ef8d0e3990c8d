// One version: its graph laid out left to right, digest, labels pointing at it, and its YAML.
import { useCallback, useMemo, useState } from "react";
import { call, type Schemas } from "../api/client";
import { GraphView } from "../components/GraphView";
import { Empty, Show } from "../components/States";
import { layoutGraph } from "../graph/layout";
import { type GraphData, portCount } from "../graph/model";
import { Link } from "../router";
import type { Session } from "../session";
import { useApi } from "../useApi";

async function load(key: string, name: string, version: string) {
  const params = { name, version };
  const [detail, graph, labels] = await Promise.all([
    call(key, "get", "/v1/workflows/{name}/versions/{version}", { params }),
    call(key, "get", "/v1/workflows/{name}/versions/{version}/graph", { params }),
    call(key, "get", "/v1/workflows/{name}/labels", { params: { name } }),
  ]);
  // Every move of a label to or from this version, newest first.
  const histories = await Promise.all(
    labels.map((l) =>
      call(key, "get", "/v1/workflows/{name}/labels/{label}/history", {
        params: { name, label: l.name },
        query: { limit: 100 },
      }),
    ),
  );
  const history = histories
    .flat()
    .filter((e) => e.to_version === version || e.from_version === version)
    .sort((x, y) => y.at.localeCompare(x.at));
  return { detail, graph, labels: labels.filter((l) => l.version === version), history };
}

function History({ events }: { events: Schemas["LabelEventPublic"][] }) {
  if (events.length === 0) return <Empty>No label has pointed at this version yet.</Empty>;
  return (
    <table className="list" data-testid="label-history">
      <thead>
        <tr>
          <th scope="col">When</th>
          <th scope="col">Label</th>
          <th scope="col">Move</th>
          <th scope="col">How</th>
          <th scope="col">By</th>
        </tr>
      </thead>
      <tbody>
        {events.map((e, i) => (
          <tr key={i}>
            <td>{new Date(e.at).toLocaleString()}</td>
            <th scope="row">{e.label}</th>
            <td>
              {e.from_version ?? "(none)"} → {e.to_version}
            </td>
            <td>{e.reason}</td>
            <td>{e.actor}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** The graph with its layout timed: from the start of the layout to the browser's paint. */
export function TimedGraph({ graph, label }: { graph: GraphData; label: string }) {
  const [drawnMs, setDrawnMs] = useState<number | null>(null);
  const { positions, started, layoutMs } = useMemo(() => {
    const started = performance.now();
    const positions = layoutGraph(
      graph.nodes.map((n) => ({ id: n.id, ports: portCount(n) })),
      graph.edges,
    );
    return { positions, started, layoutMs: performance.now() - started };
  }, [graph]);
  const onDrawn = useCallback((at: number) => setDrawnMs(at - started), [started]);
  const nodes = useMemo(() => graph.nodes.map((node) => ({ node })), [graph]);
  const edges = useMemo(() => graph.edges.map((edge) => ({ edge })), [graph]);
  if (graph.nodes.length === 0) return <Empty>This version has no nodes.</Empty>;
  return (
    <div
      data-drawn-ms={drawnMs ?? undefined}
      data-layout-ms={layoutMs.toFixed(1)}
      className="timed-graph"
    >
      <GraphView nodes={nodes} edges={edges} positions={positions} label={label} onDrawn={onDrawn} />
    </div>
  );
}

export function Version(props: { session: Session; name: string; version: string }) {
  const { session, name, version } = props;
  const [loaded, reload] = useApi(
    () => load(session.key, name, version),
    [session.key, name, version],
  );
  const wf = encodeURIComponent(name);
  return (
    <main>
      <p className="crumbs">
        <Link to="/workflows">Workflows</Link> / <Link to={`/workflows/${wf}`}>{name}</Link> /{" "}
        {version}
      </p>
      <h1>
        {name} {version}
      </h1>
      <p>
        <Link to={`/workflows/${wf}/edit?from=${encodeURIComponent(version)}`}>
          Write a new version from {version}
        </Link>
      </p>
      <Show
        loaded={loaded}
        what={`${name} ${version}`}
        retry={reload}
        ready={({ detail, graph, labels, history }) => (
          <>
            <dl className="facts">
              <dt>Digest</dt>
              <dd>
                <code data-testid="digest">{detail.digest}</code>
              </dd>
              <dt>Status</dt>
              <dd>{detail.status}</dd>
              <dt>Labels</dt>
              <dd data-testid="labels">
                {labels.length ? labels.map((l) => l.name).join(", ") : "none"}
              </dd>
              <dt>Created</dt>
              <dd>
                {new Date(detail.created_at).toLocaleString()} by {detail.created_by}
              </dd>
            </dl>
            <section aria-labelledby="graph-h">
              <h2 id="graph-h">Graph</h2>
              <TimedGraph graph={graph} label={`Graph of ${name} ${version}`} />
            </section>
            <section aria-labelledby="history-h">
              <h2 id="history-h">Label history</h2>
              <History events={history} />
            </section>
            <section aria-labelledby="yaml-h">
              <h2 id="yaml-h">Definition</h2>
              <pre className="yaml" tabIndex={0} aria-label="YAML definition">
                {detail.source}
              </pre>
            </section>
          </>
        )}
      />
    </main>
  );
}
