import { describe, expect, it } from "vitest";
import { shares } from "./shares";

describe("shares", () => {
  it("gives the baseline what the active candidates leave", () => {
    expect(
      shares({
        baseline: "v3.2",
        candidates: [
          { version: "v3.3", percent: 10, active: true },
          { version: "v3.1", percent: 5, active: false },
          { version: "v3.4", percent: 2.5, active: true },
        ],
      }),
    ).toBe("v3.2 87.5 % · v3.3 10 % · v3.4 2.5 %");
  });

  it("rounds float noise away and reads a baseline alone as 100 %", () => {
    expect(shares({ baseline: "v1", candidates: [{ version: "v2", percent: 0.1 + 0.2, active: true }] }))
      .toBe("v1 99.7 % · v2 0.3 %");
    expect(shares({ baseline: "v1" })).toBe("v1 100 %");
  });
});
