// How a label's traffic splits: the baseline gets what the active candidates leave.
export interface RolloutLike {
  baseline: string;
  candidates?: { version: string; percent: number; active: boolean }[];
}

function percent(value: number): string {
  return `${+value.toFixed(3)} %`;
}

/** "v3.2 90 % · v3.3 10 %"; inactive candidates (archived, promoted) take no share. */
export function shares(rollout: RolloutLike): string {
  const active = (rollout.candidates ?? []).filter((c) => c.active);
  const rest = 100 - active.reduce((sum, c) => sum + c.percent, 0);
  return [
    `${rollout.baseline} ${percent(rest)}`,
    ...active.map((c) => `${c.version} ${percent(c.percent)}`),
  ].join(" · ");
}
