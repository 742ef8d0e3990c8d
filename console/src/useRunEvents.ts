// A live run's events (`GET /v1/runs/{id}/events`): each event re-reads the run (one read
// in flight at a time, and one more if events came meanwhile), so the view changes within
// a moment of a step ending. A stream that closes is resumed from its last event id; a server
// without the stream, or a network error, turns polling back on (`streaming` false).
import { useEffect, useRef, useState } from "react";
import { fillPath } from "./api/client";
import { readStream } from "./lib/sse";

export function useRunEvents(key: string, runId: string, live: boolean, reload: () => void) {
  const [streaming, setStreaming] = useState(false);
  const reloadRef = useRef(reload);
  reloadRef.current = reload;
  useEffect(() => {
    if (!live) return;
    const abort = new AbortController();
    const url = fillPath("/v1/runs/{run_id}/events", { run_id: runId });
    let timer: number | undefined;
    let pending = false;
    // Coalesced: a burst of step events is one re-read, started at the burst's first event.
    const changed = () => {
      if (pending) return;
      pending = true;
      timer = window.setTimeout(() => {
        pending = false;
        reloadRef.current();
      }, 50);
    };
    (async () => {
      let lastId: string | null = null;
      for (;;) {
        let outcome;
        try {
          setStreaming(true);
          outcome = await readStream(url, key, { lastId, signal: abort.signal, onEvent: changed });
        } catch {
          if (abort.signal.aborted) return;
          setStreaming(false); // the network or the server went away: poll until it is back
          return;
        }
        lastId = outcome.lastId;
        if (outcome.end === "ended") {
          reloadRef.current();
          return;
        }
        if (outcome.end === "unavailable") {
          setStreaming(false);
          return;
        }
        await new Promise((resolve) => window.setTimeout(resolve, outcome.retryMs));
        if (abort.signal.aborted) return;
      }
    })();
    return () => {
      abort.abort();
      window.clearTimeout(timer);
      setStreaming(false);
    };
  }, [key, runId, live]);
  return streaming;
}
