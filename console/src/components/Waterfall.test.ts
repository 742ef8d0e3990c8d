import { describe, expect, it } from "vitest";
import { bars } from "./Waterfall";

describe("the waterfall's bars", () => {
  it("places each step at its offset on the run's span, as long as it took", () => {
    const placed = bars([
      { node: "a", offset_s: 0, latency_s: 1 },
      { node: "b", offset_s: 1, latency_s: 3 },
      { node: "c", offset_s: 1, latency_s: 0.5 },
    ]);
    expect(placed[0]).toEqual({ left: 0, width: 0.25 });
    expect(placed[1]).toEqual({ left: 0.25, width: 0.75 });
    expect(placed[2]).toEqual({ left: 0.25, width: 0.125 });
  });
  it("keeps a step that has not started or not ended visible", () => {
    const placed = bars([
      { node: "a", offset_s: 0, latency_s: 2 },
      { node: "b", offset_s: 2, latency_s: null },
    ]);
    expect(placed[1]).toEqual({ left: 1, width: 0.005 });
    expect(bars([{ node: "a" }])[0]).toEqual({ left: 0, width: 0.005 });
  });
});
