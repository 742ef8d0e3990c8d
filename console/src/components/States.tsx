// The loading, empty and error states every view shows, announced to screen readers.
import type { ReactNode } from "react";
import { ApiError } from "../api/client";
import type { Loaded } from "../useApi";

export function Loading({ what }: { what: string }) {
  return (
    <p className="state loading" role="status" aria-live="polite">
      Loading {what}…
    </p>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return (
    <p className="state empty" role="status">
      {children}
    </p>
  );
}

export function Failure({ error, retry }: { error: Error; retry?: () => void }) {
  const detail = error instanceof ApiError ? `${error.status} ${error.code}: ` : "";
  return (
    <div className="state error" role="alert">
      <p>
        <span aria-hidden="true">⚠ </span>
        Error: {detail}
        {error.message}
      </p>
      {retry && (
        <button type="button" onClick={retry}>
          Retry
        </button>
      )}
    </div>
  );
}

/** Renders `ready` with the data, or the loading / error state of `loaded`. */
export function Show<T>(props: {
  loaded: Loaded<T>;
  what: string;
  retry?: () => void;
  ready: (data: T) => ReactNode;
}) {
  const { loaded } = props;
  if (loaded.state === "loading") return <Loading what={props.what} />;
  if (loaded.state === "error") return <Failure error={loaded.error} retry={props.retry} />;
  return <>{props.ready(loaded.data)}</>;
}
