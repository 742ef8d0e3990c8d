// A few routes need no router library: the path is the state, pushState moves it.
import { type MouseEvent, type ReactNode, useSyncExternalStore } from "react";

export const BASE = "/console";
const listeners = new Set<() => void>();
window.addEventListener("popstate", () => listeners.forEach((l) => l()));

function snapshot(): string {
  return window.location.pathname + window.location.search;
}

export function useLocation(): URL {
  const href = useSyncExternalStore((l) => {
    listeners.add(l);
    return () => listeners.delete(l);
  }, snapshot);
  return new URL(href, window.location.origin);
}

export function navigate(to: string, replace = false): void {
  const target = to.startsWith(BASE) ? to : BASE + to;
  if (replace) window.history.replaceState(null, "", target);
  else window.history.pushState(null, "", target);
  listeners.forEach((l) => l());
}

export function Link(props: {
  to: string;
  children: ReactNode;
  className?: string;
  // a name for a link whose text alone is ambiguous in a list ("rollout" on every row)
  label?: string;
}) {
  const href = BASE + props.to;
  const onClick = (event: MouseEvent<HTMLAnchorElement>) => {
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    navigate(props.to);
  };
  return (
    <a href={href} onClick={onClick} className={props.className} aria-label={props.label}>
      {props.children}
    </a>
  );
}

/** `/workflows/:name` against `/workflows/product-video` → {name: "product-video"}. */
export function match(pattern: string, path: string): Record<string, string> | null {
  const want = pattern.split("/").filter(Boolean);
  const got = path.split("/").filter(Boolean);
  if (want.length !== got.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    if (want[i].startsWith(":")) params[want[i].slice(1)] = decodeURIComponent(got[i]);
    else if (want[i] !== got[i]) return null;
  }
  return params;
}
