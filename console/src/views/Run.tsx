// One run: what it is and why it got its version, each step's state drawn on the version's
// graph, the steps' figures, its outputs or error. While it is queued or running the view
// reads it again on each event of its stream (`GET /v1/runs/{id}/events`: the server stores a
// snapshot of a running attempt's steps at most every ROLLGRAPH_PROGRESS_INTERVAL_S), every
// second where there is no stream, and stops once it ended. A failed run can be resumed by a
// runner: its completed steps come from the step cache, neither executed nor billed again.
import { useMemo, useState } from "react";
import { ApiError, call, type Schemas } from "../api/client";
import { Confirm } from "../components/Confirm";
import { GraphView } from "../components/GraphView";
import { Empty, Show } from "../components/States";
import { StepPanel, type TraceStep, Waterfall } from "../components/Waterfall";
import { layoutGraph } from "../graph/layout";
import { type GraphData, portCount } from "../graph/model";
import { duration, isLive, isResumable, STATE_TEXT, stepSeconds, tally, usd } from "../lib/runs";
import { Link } from "../router";
import { may, type Session } from "../session";
import { useApi } from "../useApi";
import { usePoll } from "../usePoll";
import { useRunEvents } from "../useRunEvents";
import { RunAgain } from "./RunAgain";

type RunDetail = Schemas["RunDetail"];
type Step = Schemas["StepState"];
const POLL_MS = 1000;

function StepGraph({ graph, steps, label }: { graph: GraphData; steps: Step[]; label: string }) {
  // Laid out once per version: a step changing state moves nothing.
  const positions = useMemo(
    () =>
      layoutGraph(
        graph.nodes.map((n) => ({ id: n.id, ports: portCount(n) })),
        graph.edges,
      ),
    [graph],
  );
  const nodes = useMemo(() => {
    const byNode = new Map(steps.map((s) => [s.node, s]));
    return graph.nodes.map((node) => {
      const step = byNode.get(node.id);
      if (!step) return { node };
      const figures = [usd(step.cost_usd), duration(stepSeconds(step))];
      if (step.attempts > 1) figures.push(`${step.attempts} attempts`);
      return { node, state: step.state, note: figures.join(" · ") };
    });
  }, [graph, steps]);
  const edges = useMemo(() => graph.edges.map((edge) => ({ edge })), [graph]);
  return <GraphView nodes={nodes} edges={edges} positions={positions} label={label} />;
}

function StepsTable({ steps }: { steps: Step[] }) {
  if (steps.length === 0)
    return <Empty>No step has reported yet (a snapshot comes within a second of a change).</Empty>;
  return (
    <table className="list" data-testid="steps">
      <caption className="sr-only">Each step of this attempt</caption>
      <thead>
        <tr>
          <th scope="col">Step</th>
          <th scope="col">Kind</th>
          <th scope="col">State</th>
          <th scope="col">Attempts</th>
          <th scope="col">Cost</th>
          <th scope="col">Time</th>
          <th scope="col">Error</th>
        </tr>
      </thead>
      <tbody>
        {steps.map((s) => (
          <tr key={s.node} data-step={s.node} data-state={s.state}>
            <th scope="row">{s.node}</th>
            <td>{s.kind}</td>
            <td>
              {STATE_TEXT[s.state].symbol} {STATE_TEXT[s.state].word}
            </td>
            <td>{s.attempts}</td>
            <td>{usd(s.cost_usd)}</td>
            <td>{duration(stepSeconds(s))}</td>
            <td className="error-text">{s.error ?? ""}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Resume(props: { session: Session; run: RunDetail; onDone: () => void }) {
  const { session, run } = props;
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const [maxCost, setMaxCost] = useState("");
  const [error, setError] = useState<string | null>(null);
  const completed = (run.steps ?? []).filter((s) => s.state === "succeeded" || s.state === "cached");
  const limit = maxCost.trim() === "" ? null : Number(maxCost);
  const invalid = limit !== null && !(Number.isFinite(limit) && limit > 0);
  const resume = async () => {
    setBusy(true);
    setError(null);
    try {
      await call(session.key, "post", "/v1/runs/{run_id}/resume", {
        params: { run_id: run.run_id },
        body: { mode: "async", budget: limit !== null ? { max_cost_usd: limit } : undefined },
      });
      setAsking(false);
      props.onDone();
    } catch (e) {
      setError(e instanceof ApiError ? `${e.status} ${e.code}: ${e.message}` : String(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="label-actions">
      <button type="button" className="primary" onClick={() => setAsking(true)}>
        Resume…
      </button>
      {error && (
        <p role="alert" className="state error">
          {error}
        </p>
      )}
      {asking && (
        <Confirm
          title={`Resume run ${run.run_id}?`}
          confirmLabel="Resume"
          busy={busy}
          disabled={invalid}
          onConfirm={resume}
          onCancel={() => setAsking(false)}
        >
          <p>
            It runs again as attempt {run.attempt + 1} on {run.workflow} {run.version} with the
            same input. The {completed.length} step{completed.length === 1 ? "" : "s"} it
            completed come from its step cache, neither executed nor billed again; it has cost{" "}
            {usd(run.cost_usd)} so far, which counts toward any budget.
          </p>
          <label className="inline">
            Max cost for this attempt (USD, optional)
            <input
              inputMode="decimal"
              value={maxCost}
              onChange={(e) => setMaxCost(e.target.value)}
              aria-invalid={invalid}
            />
          </label>
          {invalid && <p className="state error">A max cost is a number above 0.</p>}
        </Confirm>
      )}
    </div>
  );
}

export function Run(props: { session: Session; runId: string; attempt: number | null }) {
  const { session, runId, attempt } = props;
  const [loaded, reload] = useApi(
    () =>
      call(session.key, "get", "/v1/runs/{run_id}", {
        params: { run_id: runId },
        query: { attempt: attempt ?? undefined },
      }),
    [session.key, runId, attempt],
  );
  const run = loaded.state === "ready" ? loaded.data : null;
  const [selected, setSelected] = useState<string | null>(null);
  const live = run !== null && isLive(run.status) && attempt === null;
  // Live through the run's event stream; polling only while the stream is not there.
  const streaming = useRunEvents(session.key, runId, live, reload);
  usePoll(reload, POLL_MS, live && !streaming);
  const [graph, reloadGraph] = useApi(
    () =>
      run
        ? call(session.key, "get", "/v1/workflows/{name}/versions/{version}/graph", {
            params: { name: run.workflow, version: run.version },
          })
        : new Promise<GraphData>(() => {}), // waits for the run
    [session.key, run?.workflow ?? null, run?.version ?? null],
  );
  const wf = run ? encodeURIComponent(run.workflow) : "";
  return (
    <main className="wide">
      <p className="crumbs">
        <Link to="/runs">Runs</Link> / {runId}
      </p>
      <h1>
        Run <code>{runId}</code>
      </h1>
      <Show
        loaded={loaded}
        what={`run ${runId}`}
        retry={reload}
        ready={(r) => {
          const steps = r.steps ?? [];
          const traceSteps = ((r.trace as { steps?: TraceStep[] }).steps ?? []).filter(
            (t) => typeof t.node === "string",
          );
          const chosen = traceSteps.find((t) => t.node === selected) ?? null;
          return (
          <>
            <dl className="facts">
              <dt>Status</dt>
              <dd data-testid="run-status" data-status={r.status} className={`status-${r.status}`}>
                {r.status}
                {live && (
                  <span className="live" role="status" aria-live="polite">
                    {" "}
                    · live, {streaming ? "as each step changes" : "refreshed every second"}
                  </span>
                )}
              </dd>
              <dt>Workflow</dt>
              <dd>
                <Link to={`/workflows/${wf}/versions/${encodeURIComponent(r.version)}`}>
                  {r.workflow} {r.version}
                </Link>
                {r.label ? ` (label ${r.label})` : ""}
              </dd>
              <dt>Why this version</dt>
              <dd>
                {r.reason}
                {r.experiment_id !== null && r.experiment_id !== undefined
                  ? ` (experiment ${r.experiment_id})`
                  : ""}
              </dd>
              <dt>User</dt>
              <dd>{r.user_id ?? "(none)"}</dd>
              <dt>Mode</dt>
              <dd>{r.mode}</dd>
              <dt>Cost</dt>
              <dd data-testid="run-cost">{usd(r.cost_usd)} (billed over every attempt)</dd>
              <dt>Latency</dt>
              <dd>{duration(r.latency_s)}</dd>
              <dt>Started</dt>
              <dd>{new Date(r.created_at).toLocaleString()}</dd>
              <dt>Ended</dt>
              <dd>{r.finished_at ? new Date(r.finished_at).toLocaleString() : "not yet"}</dd>
              <dt>Attempt</dt>
              <dd>
                {r.trace_attempt ?? r.attempt} of {r.attempt}
                {r.attempt > 1 && (
                  <span className="inline">
                    {" "}
                    {Array.from({ length: r.attempt }, (_, i) => i + 1).map((n) => (
                      <Link key={n} to={`/runs/${encodeURIComponent(runId)}?attempt=${n}`}>
                        trace {n}
                      </Link>
                    ))}
                  </span>
                )}
              </dd>
            </dl>
            {r.error && (
              <p role="alert" className="error-text" data-testid="run-error">
                {r.error}
              </p>
            )}
            {isResumable(r.status) && attempt === null && may(session, "runner") && (
              <Resume
                session={session}
                run={r}
                onDone={reload}
              />
            )}
            {!live && may(session, "runner") && <RunAgain session={session} run={r} />}
            <section aria-labelledby="steps-h">
              <h2 id="steps-h">Steps</h2>
              <p className="muted" data-testid="tally">
                {tally(steps)
                  .map(([state, n]) => `${n} ${STATE_TEXT[state].word}`)
                  .join(", ") || "no steps yet"}
              </p>
              <Show
                loaded={graph}
                what="the graph"
                retry={reloadGraph}
                ready={(g) => (
                  <StepGraph graph={g} steps={steps} label={`Steps of run ${runId}`} />
                )}
              />
              <StepsTable steps={steps} />
            </section>
            <section aria-labelledby="trace-h">
              <h2 id="trace-h">Trace</h2>
              <div className="trace-view">
                <Waterfall
                  steps={traceSteps}
                  selected={selected}
                  onSelect={setSelected}
                />
                {chosen && <StepPanel step={chosen} onClose={() => setSelected(null)} />}
              </div>
            </section>
            {r.outputs && (
              <section aria-labelledby="outputs-h">
                <h2 id="outputs-h">Outputs</h2>
                <pre className="json" tabIndex={0} aria-label="Run outputs">
                  {JSON.stringify(r.outputs, null, 2)}
                </pre>
              </section>
            )}
          </>
          );
        }}
      />
    </main>
  );
}
