import { describe, expect, it } from "vitest";
import {
  baselineMean,
  interval,
  type Look,
  pValue,
  scale,
  seriesOf,
  signed,
  stepWords,
  thresholdOf,
  unitOf,
  yDomain,
} from "./experiment";

const look = (at: string, rows: Look["rows"]): Look => ({ at, step: 0, action: "continue", rows });

describe("thresholds", () => {
  it("puts the primary's mde on its better side and a guardrail's margin on its worse", () => {
    const t = (m: Parameters<typeof thresholdOf>[0], role: string) => thresholdOf(m, role, null)?.value;
    expect(t({ name: "c", direction: "increase", mde: 0.1 }, "primary")).toBe(0.1);
    expect(t({ name: "l", direction: "decrease", mde: 0.2 }, "primary")).toBe(-0.2);
    expect(t({ name: "s", direction: "increase", margin: 0.01 }, "guardrail")).toBe(-0.01);
    expect(t({ name: "l", direction: "decrease", margin: 0.5 }, "guardrail")).toBe(0.5);
    expect(thresholdOf({ name: "x", direction: "increase" }, "secondary", 1)).toBeNull();
  });
  it("reads a relative one as a share of the baseline's mean, none without a baseline", () => {
    const primary = { name: "c", direction: "increase" as const, mde: 0.1, relative: true };
    expect(thresholdOf(primary, "primary", 0.25)?.value).toBeCloseTo(0.025);
    expect(thresholdOf(primary, "primary", null)).toBeNull();
    const guard = { name: "l", direction: "decrease" as const, margin: 0.2, relative: true };
    expect(thresholdOf(guard, "guardrail", -3)?.value).toBeCloseTo(0.6);
  });
});

describe("series", () => {
  const looks = [
    look("2026-12-05T10:00:00Z", [{ arm: "v2", metric: "c", effect: null, reason: "too_few_events" }]),
    look("2026-12-05T10:01:00Z", [
      { arm: "v1", metric: "c", mean: 0.5 },
      { arm: "v2", metric: "c", effect: 0.02, ci_low: -0.1, ci_high: 0.14 },
    ]),
    look("2026-12-05T10:02:00Z", [
      { arm: "v1", metric: "c", mean: null },
      { arm: "v2", metric: "c", effect: 0.03, ci_low: -0.02, ci_high: 0.08 },
    ]),
  ];
  it("skips looks without an estimate, oldest first, times apart as they were", () => {
    const points = seriesOf(looks, "v2", "c");
    expect(points.map((p) => p.effect)).toEqual([0.02, 0.03]);
    expect(points[0]).toMatchObject({ low: -0.1, high: 0.14 });
    expect(points[1].t - points[0].t).toBe(60_000);
    expect(seriesOf(looks, "v3", "c")).toEqual([]);
  });
  it("takes the baseline's mean from the newest look that has one", () => {
    expect(baselineMean(looks, "v1", "c")).toBe(0.5);
    expect(baselineMean(looks, "v1", "other")).toBeNull();
  });
  it("keeps zero, the threshold and every interval in view", () => {
    const points = seriesOf(looks, "v2", "c");
    const [low, high] = yDomain(points, { value: 0.2, words: "mde" });
    expect(low).toBeLessThan(-0.1);
    expect(high).toBeGreaterThan(0.2);
    const [l0, h0] = yDomain([], null);
    expect(l0).toBeLessThan(0);
    expect(h0).toBeGreaterThan(0);
  });
  it("maps a domain onto a downward range", () => {
    const y = scale([0, 10], [100, 0]);
    expect(y(0)).toBe(100);
    expect(y(10)).toBe(0);
    expect(y(2.5)).toBe(75);
  });
});

describe("words", () => {
  it("says a proportion's effect in points, a mean's plain, with three figures", () => {
    expect(unitOf({ kind: "proportion" })).toBe("points");
    expect(unitOf({ kind: "mean" })).toBe("plain");
    expect(signed(0.4312, "points")).toBe("+43.1 pts");
    expect(signed(-0.5, "plain")).toBe("−0.5");
    expect(signed(0.0312, "percent")).toBe("+3.12 %");
    expect(signed(0.0008, "plain")).toBe("+0.0008");
    expect(signed(null, "plain")).toBe("—");
    expect(interval(-0.01, 0.05, "points")).toBe("−1 pts to +5 pts");
    expect(interval(null, 0.05, "points")).toBe("—");
    expect(pValue(1e-9)).toBe("< 0.001");
    expect(pValue(0.0421)).toBe("0.042");
    expect(stepWords(1, [{ percent: 5 }, { percent: 25 }, { percent: 100 }])).toBe(
      "step 2 of 3 (25 %)",
    );
    expect(stepWords(0, [])).toBe("fixed shares");
  });
});
