// The run queue (Redis streams) as the operator watches it: depth, waiting time, whether
// submissions are accepted, and the dead letters, each resumable by a runner. Without Redis a
// server runs async runs in-process and has no queue: the view says so.
import { useState } from "react";
import { ApiError, call, type Schemas } from "../api/client";
import { Confirm } from "../components/Confirm";
import { Empty, Show } from "../components/States";
import { duration } from "../lib/runs";
import { Link } from "../router";
import { may, type Session } from "../session";
import { useApi } from "../useApi";
import { usePoll } from "../usePoll";

type Dead = Schemas["DeadLetterPublic"];

function DeadLetters(props: { session: Session; letters: Dead[]; onDone: () => void }) {
  const [pending, setPending] = useState<Dead | null>(null);
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<string | null>(null);
  const runner = may(props.session, "runner");
  const resume = async () => {
    if (!pending) return;
    setBusy(true);
    try {
      const run = await call(props.session.key, "post", "/v1/runs/{run_id}/resume", {
        params: { run_id: pending.run_id },
        body: { mode: "async" },
      });
      setMessage(`Run ${run.run_id} resumed: attempt ${run.attempt}, ${run.status}.`);
      props.onDone();
    } catch (e) {
      setMessage(e instanceof ApiError ? `Error: ${e.code}: ${e.message}` : `Error: ${(e as Error).message}`);
    } finally {
      setPending(null);
      setBusy(false);
    }
  };
  if (props.letters.length === 0) return <Empty>No dead letters.</Empty>;
  return (
    <>
      <table className="list" data-testid="dead-letters">
        <caption className="sr-only">Dead letters, newest first</caption>
        <thead>
          <tr>
            <th scope="col">Run</th>
            <th scope="col">When</th>
            <th scope="col">Deliveries</th>
            <th scope="col">Why</th>
            {runner && <th scope="col">Action</th>}
          </tr>
        </thead>
        <tbody>
          {props.letters.map((d) => (
            <tr key={d.id} data-run={d.run_id}>
              <th scope="row">
                <Link to={`/runs/${encodeURIComponent(d.run_id)}`}>
                  <code>{d.run_id}</code>
                </Link>
              </th>
              <td>{new Date(d.at).toLocaleString()}</td>
              <td>{d.deliveries}</td>
              <td>{d.error}</td>
              {runner && (
                <td>
                  <button type="button" onClick={() => setPending(d)}>
                    Resume…
                  </button>
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
      {pending && (
        <Confirm
          title={`Resume run ${pending.run_id}?`}
          confirmLabel="Resume"
          busy={busy}
          onCancel={() => setPending(null)}
          onConfirm={resume}
        >
          <p className="what-changes">
            A new attempt of the run is queued; its completed steps come from the step cache,
            neither executed nor billed again.
          </p>
        </Confirm>
      )}
      {message && (
        <p className="audit-entry" role="status" aria-live="polite">
          {message}
        </p>
      )}
    </>
  );
}

export function Queue(props: { session: Session }) {
  const { session } = props;
  const [loaded, reload] = useApi(async () => {
    const queue = await call(session.key, "get", "/v1/queue");
    const letters = queue.enabled ? await call(session.key, "get", "/v1/queue/dead-letters") : [];
    return { queue, letters };
  }, [session.key]);
  usePoll(reload, 5000, loaded.state === "ready" && loaded.data.queue.enabled);
  return (
    <main>
      <h1>Queue</h1>
      <Show
        loaded={loaded}
        what="the queue"
        retry={reload}
        ready={({ queue, letters }) =>
          !queue.enabled ? (
            <Empty>
              No run queue: this server has no Redis (<code>REDIS_URL</code>), so async runs run
              in-process here. Set it, and run <code>rollgraph worker</code>, to queue them.
            </Empty>
          ) : (
            <>
              <dl className="facts" data-testid="queue">
                <dt>Accepting</dt>
                <dd>{queue.accepting ? "yes" : "no: submissions get 429 queue_full"}</dd>
                <dt>Waiting</dt>
                <dd>
                  {queue.waiting ?? 0}
                  {queue.max_depth ? ` (429 at ${queue.max_depth})` : ""}
                </dd>
                <dt>Running</dt>
                <dd>{queue.pending ?? 0} taken by workers</dd>
                <dt>Oldest wait</dt>
                <dd>
                  {duration(queue.oldest_wait_s ?? 0)}
                  {queue.max_wait_s ? ` (429 past ${duration(queue.max_wait_s)})` : ""}
                </dd>
                <dt>Dead letters</dt>
                <dd>{queue.dead ?? 0}</dd>
              </dl>
              <section aria-labelledby="dead-h">
                <h2 id="dead-h">Dead letters</h2>
                <DeadLetters session={session} letters={letters} onDone={reload} />
              </section>
            </>
          )
        }
      />
    </main>
  );
}
