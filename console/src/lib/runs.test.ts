import { describe, expect, it } from "vitest";
import { duration, isLive, isResumable, stepSeconds, tally, usd } from "./runs";

describe("run statuses", () => {
  it("polls only what may still change and resumes only what ended without outputs", () => {
    expect(isLive("queued") && isLive("running")).toBe(true);
    expect(isLive("succeeded") || isLive("failed") || isLive("budget_exceeded")).toBe(false);
    expect(isResumable("failed") && isResumable("budget_exceeded")).toBe(true);
    expect(isResumable("succeeded") || isResumable("running")).toBe(false);
  });
});

describe("figures", () => {
  it("writes money with sub-cent precision and no float noise", () => {
    expect(usd(0)).toBe("$0");
    expect(usd(0.0042)).toBe("$0.0042");
    expect(usd(0.1 + 0.2)).toBe("$0.30");
    expect(usd(1234.5)).toBe("$1234.50");
    expect(usd(Number.NaN)).toBe("–");
    expect(usd(null)).toBe("–");
  });

  it("writes durations in ms, s or minutes", () => {
    expect(duration(0.85)).toBe("850 ms");
    expect(duration(2.44)).toBe("2.4 s");
    expect(duration(185)).toBe("3 min 05 s");
    expect(duration(-1)).toBe("–");
    expect(duration(undefined)).toBe("–");
  });

  it("times a step from its start to its end, or to now while it runs", () => {
    const started_at = "2026-12-04T10:00:00Z";
    expect(stepSeconds({ started_at, ended_at: "2026-12-04T10:00:02.5Z" })).toBe(2.5);
    expect(stepSeconds({ started_at, ended_at: null }, Date.parse(started_at) + 1200)).toBe(1.2);
    expect(stepSeconds({ started_at: null, ended_at: null })).toBeNull();
  });

  it("counts steps per state in the order a run moves through them", () => {
    const steps = [{ state: "succeeded" }, { state: "running" }, { state: "succeeded" }] as const;
    expect(tally([...steps])).toEqual([
      ["running", 1],
      ["succeeded", 2],
    ]);
  });
});
