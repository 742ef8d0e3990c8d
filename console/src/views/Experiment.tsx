// One experiment, as GrowthBook's results page reads: arms and the ramp step, a health banner
// (halted, sample ratio), the decision now with its reasons, per metric and arm the figures,
// a chart per candidate and metric of the effect and its interval over the looks with the
// threshold it is judged against, and the decision log. While it runs or is halted the view
// reads it again every few seconds.
import { call, type Schemas } from "../api/client";
import { Show } from "../components/States";
import { type Look, type Row, pValue, stepWords } from "../lib/experiment";
import { Link } from "../router";
import { may, type Session } from "../session";
import { useApi } from "../useApi";
import { usePoll } from "../usePoll";
import { ExperimentActions } from "./ExperimentActions";
import {
  Charts,
  DecisionLog,
  judgedMetrics,
  MetricsTable,
  TargetsTable,
} from "./ExperimentTables";

const POLL_MS = 5000;
type View = Schemas["ExperimentView"];

const pct = (share: unknown) => (typeof share === "number" ? `${+(share * 100).toFixed(2)} %` : "?");

function Health({ view }: { view: View }) {
  const e = view.experiment;
  const srm = view.srm as { p_value?: number; flagged?: boolean; reason?: string } | null;
  return (
    <>
      {e.status === "halted" && (
        <div className="banner bad" role="alert">
          <strong>Halted</strong> since {new Date(e.halted_at ?? e.created_at).toLocaleString()}:
          traffic stays split as it was; ramps and rules wait for a person to resume or stop it.
          <ul>
            {(e.halt_reasons ?? []).map((r, i) => (
              <li key={i}>{String(r.message ?? r.code)}</li>
            ))}
          </ul>
        </div>
      )}
      {srm?.flagged ? (
        <div className="banner bad" role="alert">
          <strong>Sample ratio mismatch</strong> (p {pValue(srm.p_value)}): the arms did not get
          their shares, so routing or logging is broken and the figures cannot be trusted.
        </div>
      ) : srm ? (
        <p className="banner ok" data-testid="srm">
          Traffic split as planned (sample ratio check p {pValue(srm.p_value)}).
        </p>
      ) : null}
    </>
  );
}

export function Experiment(props: { session: Session; id: string }) {
  const { session } = props;
  const params = { experiment_id: props.id };
  const [loaded, reload] = useApi(async () => {
    const [view, looks, decisions] = await Promise.all([
      call(session.key, "get", "/v1/experiments/{experiment_id}/results", { params }),
      call(session.key, "get", "/v1/experiments/{experiment_id}/looks", { params }),
      call(session.key, "get", "/v1/experiments/{experiment_id}/decisions", { params }),
    ]);
    return { view, looks, decisions };
  }, [session.key, props.id]);
  const open =
    loaded.state === "ready" &&
    ["running", "halted"].includes(loaded.data.view.experiment.status);
  usePoll(reload, POLL_MS, open);
  return (
    <main>
      <Show
        loaded={loaded}
        what={`experiment ${props.id}`}
        retry={reload}
        ready={({ view, looks, decisions }) => {
          const e = view.experiment;
          const judged = judgedMetrics(e.config);
          const candidates = e.config.ramp?.length
            ? [String(e.config.candidate)]
            : (e.config.candidates ?? []).map((c) => c.version);
          return (
            <>
              <h1>{e.name}</h1>
              <dl className="facts">
                <dt>Status</dt>
                <dd className={`status-${e.status}`} data-testid="experiment-status">
                  {e.status.replace("_", " ")}
                  {open ? " (live)" : ""}
                </dd>
                <dt>Label</dt>
                <dd>
                  <Link to={`/workflows/${encodeURIComponent(e.workflow)}`}>{e.workflow}</Link>:
                  {e.label}
                </dd>
                <dt>Arms</dt>
                <dd>
                  baseline {e.baseline}
                  {e.arms.map((a) => `, ${String(a.version)} ${pct(a.share)}`).join("")}
                </dd>
                <dt>Step</dt>
                <dd>{stepWords(e.step, e.config.ramp)}</dd>
                <dt>Method</dt>
                <dd>
                  {view.method}, alpha {e.config.alpha}
                  {e.config.cuped ? ", CUPED" : ""}
                </dd>
                {e.outcome && (
                  <>
                    <dt>Ended</dt>
                    <dd>{e.outcome}</dd>
                  </>
                )}
              </dl>
              {may(session, "admin") && (
                <ExperimentActions session={session} experiment={e} onDone={reload} />
              )}
              <Health view={view} />
              <section aria-labelledby="decision">
                <h2 id="decision">
                  Decision{open ? " now" : ""}:{" "}
                  <span data-testid="decision" className={`action-${view.action}`}>
                    {view.action}
                  </span>
                  {view.winner ? ` (${view.winner})` : ""}
                </h2>
                <ul className="reasons" data-testid="reasons">
                  {view.reasons.map((r, i) => (
                    <li key={i}>{String(r.message ?? r.code)}</li>
                  ))}
                </ul>
              </section>
              <section aria-labelledby="metrics">
                <h2 id="metrics">Metrics</h2>
                <MetricsTable rows={view.metrics as Row[]} judged={judged} />
              </section>
              <section aria-labelledby="targets-h">
                <h2 id="targets-h">Targets</h2>
                <TargetsTable targets={view.targets ?? []} />
              </section>
              <section aria-labelledby="over-time">
                <h2 id="over-time">Over time</h2>
                <Charts
                  looks={looks satisfies Look[]}
                  judged={judged}
                  baseline={e.baseline}
                  candidates={candidates}
                />
              </section>
              <section aria-labelledby="log">
                <h2 id="log">Decision log</h2>
                <DecisionLog decisions={decisions} />
              </section>
            </>
          );
        }}
      />
    </main>
  );
}
