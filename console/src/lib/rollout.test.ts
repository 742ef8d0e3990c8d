import { describe, expect, it } from "vitest";
import { checkDraft } from "./rollout";

describe("a rollout draft", () => {
  it("takes valid rows, drops zero shares and leaves the baseline the rest", () => {
    const checked = checkDraft([
      { version: "v2", percent: "10" },
      { version: " v3 ", percent: "5.5" },
      { version: "v4", percent: "0" },
    ]);
    expect(checked.problems).toEqual([]);
    expect(checked.candidates).toEqual([
      { version: "v2", percent: 10 },
      { version: "v3", percent: 5.5 },
    ]);
    expect(checked.baselinePercent).toBeCloseTo(84.5);
    expect(checkDraft([]).baselinePercent).toBe(100);
  });
  it("says what to fix, as the API would", () => {
    const problems = (rows: { version: string; percent: string }[]) => checkDraft(rows).problems;
    expect(problems([{ version: "", percent: "5" }])).toEqual(["row 1: choose a version"]);
    expect(problems([{ version: "v2", percent: "NaN" }])[0]).toContain("from 0 to 100");
    expect(problems([{ version: "v2", percent: "" }])[0]).toContain("from 0 to 100");
    expect(problems([{ version: "v2", percent: "1e308" }])[0]).toContain("from 0 to 100");
    expect(problems([{ version: "v2", percent: "-1" }])[0]).toContain("from 0 to 100");
    expect(
      problems([
        { version: "v2", percent: "10" },
        { version: "v2", percent: "10" },
      ]),
    ).toEqual(["candidate v2 is listed more than once; list it once"]);
    expect(
      problems([
        { version: "v2", percent: "60" },
        { version: "v3", percent: "50" },
      ]),
    ).toEqual(["the percents sum to 110; at most 100, lower some of them"]);
    expect(
      problems([
        { version: "a", percent: "33.3" },
        { version: "b", percent: "33.3" },
        { version: "c", percent: "33.4" },
      ]),
    ).toEqual([]);
  });
});
