// Calls `reload` every `ms` while `active` and the tab is visible: a live view refreshes
// itself, a hidden tab costs the server nothing, and one that ends stops asking.
import { useEffect } from "react";

export function usePoll(reload: () => void, ms: number, active: boolean): void {
  useEffect(() => {
    if (!active) return;
    const timer = window.setInterval(() => {
      if (document.visibilityState === "visible") reload();
    }, ms);
    return () => window.clearInterval(timer);
  }, [reload, ms, active]);
}
