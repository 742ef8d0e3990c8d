import { describe, expect, it } from "vitest";
import { diagnosticsOf, verdictOf } from "./editor";

const doc = (text: string) => {
  const lines = text.split("\n");
  const starts = lines.map((_, i) => lines.slice(0, i).reduce((n, l) => n + l.length + 1, 0));
  return {
    lines: lines.length,
    line: (n: number) => ({ from: starts[n - 1], to: starts[n - 1] + lines[n - 1].length }),
  };
};

describe("diagnostics", () => {
  it("covers the problem's line, the first without one, the last past the end", () => {
    const d = doc("name: x\nnodes:\n  a: 1");
    const [at, none, past] = diagnosticsOf(d, [
      { line: 2, message: "here", severity: "warning" },
      { line: null, message: "whole" },
      { line: 99, message: "after" },
    ]);
    expect(at).toMatchObject({ from: 8, to: 14, severity: "warning", message: "here" });
    expect(none).toMatchObject({ from: 0, to: 7, severity: "error" });
    expect(past).toMatchObject({ from: 15, to: 21 });
  });
});

describe("the draft in words", () => {
  it("counts errors and warnings and says what applying does", () => {
    const warn = { message: "w", severity: "warning" as const };
    expect(verdictOf({ valid: false, problems: [{ message: "e" }, warn] })).toBe(
      "1 error and 1 warning: fix them to apply",
    );
    expect(verdictOf({ valid: true, problems: [], version: "v4" })).toBe(
      "Valid; applying stores it as v4",
    );
    expect(verdictOf({ valid: true, problems: [warn, warn], identical_to: "v2" })).toBe(
      "Valid and 2 warnings; identical to v2: applying stores nothing",
    );
  });
});
