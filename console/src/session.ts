// The signed-in key lives in sessionStorage (gone with the tab) and is sent as a bearer header;
// the console sets no cookie.
import { useSyncExternalStore } from "react";

export type Role = "viewer" | "runner" | "admin";
export interface Session {
  key: string;
  name: string;
  role: Role;
}

const STORAGE = "rollgraph.session";
const RANK: Record<Role, number> = { viewer: 0, runner: 1, admin: 2 };
const listeners = new Set<() => void>();
let cached: Session | null | undefined;

function read(): Session | null {
  if (cached !== undefined) return cached;
  try {
    const raw = sessionStorage.getItem(STORAGE);
    cached = raw ? (JSON.parse(raw) as Session) : null;
  } catch {
    cached = null;
  }
  return cached;
}

export function setSession(session: Session | null): void {
  if (session) sessionStorage.setItem(STORAGE, JSON.stringify(session));
  else sessionStorage.removeItem(STORAGE);
  cached = session;
  listeners.forEach((l) => l());
}

export function useSession(): Session | null {
  return useSyncExternalStore(
    (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    read,
  );
}

export function may(session: Session | null, role: Role): boolean {
  return session !== null && RANK[session.role] >= RANK[role];
}
