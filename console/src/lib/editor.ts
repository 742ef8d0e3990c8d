// The editor's pure part: the server's problems as CodeMirror diagnostics, and what the page
// says about a draft, unit-tested without a browser.
import type { Diagnostic } from "@codemirror/lint";

export interface LineProblem {
  line?: number | null;
  message: string;
  severity?: "error" | "warning";
}

/** Problems as diagnostics: each over its whole line (the server names lines, not columns);
 * one without a line marks the first, one past the end the last. */
export function diagnosticsOf(
  doc: { lines: number; line(n: number): { from: number; to: number } },
  problems: LineProblem[],
): Diagnostic[] {
  return problems.map((p) => {
    const n = Math.min(Math.max(p.line ?? 1, 1), doc.lines);
    const line = doc.line(n);
    return { from: line.from, to: line.to, severity: p.severity ?? "error", message: p.message };
  });
}

/** The draft's state in words: errors first, else what applying it would do. */
export function verdictOf(check: {
  valid: boolean;
  problems: LineProblem[];
  version?: string | null;
  identical_to?: string | null;
}): string {
  const errors = check.problems.filter((p) => (p.severity ?? "error") === "error").length;
  const warnings = check.problems.length - errors;
  const also = warnings ? ` and ${warnings} warning${warnings > 1 ? "s" : ""}` : "";
  if (!check.valid) return `${errors} error${errors === 1 ? "" : "s"}${also}: fix them to apply`;
  if (check.identical_to) return `Valid${also}; identical to ${check.identical_to}: applying stores nothing`;
  return `Valid${also}; applying stores it as ${check.version}`;
}
