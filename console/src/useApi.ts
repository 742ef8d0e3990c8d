// Loading / error / data for one read, redone when its inputs change or `reload` is called.
import { useCallback, useEffect, useRef, useState } from "react";
import { ApiError } from "./api/client";
import { setSession } from "./session";

export type Loaded<T> =
  | { state: "loading" }
  | { state: "error"; error: ApiError | Error }
  | { state: "ready"; data: T };

export function useApi<T>(load: () => Promise<T>, deps: unknown[]): [Loaded<T>, () => void] {
  const [result, setResult] = useState<Loaded<T>>({ state: "loading" });
  const [tick, setTick] = useState(0);
  const shown = useRef("");
  const depsKey = JSON.stringify(deps);
  useEffect(() => {
    let live = true;
    // A reload of the same thing keeps showing the data until the new answer is in (a view
    // must not lose what it shows, like an action's audit entry); other inputs start afresh.
    if (shown.current !== depsKey) setResult({ state: "loading" });
    shown.current = depsKey;
    load().then(
      (data) => live && setResult({ state: "ready", data }),
      (error: Error) => {
        if (!live) return;
        // A key revoked or unknown since sign-in: back to the sign-in page.
        if (error instanceof ApiError && error.status === 401) setSession(null);
        setResult({ state: "error", error });
      },
    );
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [depsKey, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return [result, reload];
}
