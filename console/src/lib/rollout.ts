// A rollout being edited: the rows as typed, checked by the rules the API applies
// (`check_candidates`: each version once, each percent 0–100, together at most 100), so the
// form says what to fix before anything is sent; the server checks again.

export interface DraftRow {
  version: string;
  percent: string;
}
export interface Checked {
  candidates: { version: string; percent: number }[];
  baselinePercent: number;
  problems: string[];
}

// The server's tolerance: 33.3 + 33.3 + 33.4 lands a hair above 100 in floating point.
const TOLERANCE = 1e-9;

export function checkDraft(rows: DraftRow[]): Checked {
  const problems: string[] = [];
  const candidates: Checked["candidates"] = [];
  const seen = new Set<string>();
  rows.forEach((row, i) => {
    const version = row.version.trim();
    const where = version ? `candidate ${version}` : `row ${i + 1}`;
    if (!version) problems.push(`${where}: choose a version`);
    else if (seen.has(version)) problems.push(`${where} is listed more than once; list it once`);
    seen.add(version);
    const text = row.percent.trim();
    const percent = text === "" ? Number.NaN : Number(text);
    if (!Number.isFinite(percent) || percent < 0 || percent > 100) {
      problems.push(`${where}: the percent must be a number from 0 to 100, got "${row.percent}"`);
      return;
    }
    // 0 ends a candidate's share: the API drops it, so the form does too
    if (version && percent > 0) candidates.push({ version, percent });
  });
  const total = candidates.reduce((sum, c) => sum + c.percent, 0);
  if (total > 100 + TOLERANCE) {
    problems.push(`the percents sum to ${+total.toFixed(6)}; at most 100, lower some of them`);
  }
  return { candidates, baselinePercent: Math.max(0, 100 - total), problems };
}
