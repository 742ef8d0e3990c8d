// One candidate's effect on one metric over the looks: the estimate as a line, its interval
// (always-valid when the test is sequential) as a band, zero and the decision threshold as
// rules. The figure's gist is in its accessible name, so colour and shape carry nothing alone.
import { type Point, scale, signed, type Threshold, type Unit, yDomain } from "../lib/experiment";

const W = 360;
const H = 140;
const PAD = { left: 64, right: 8, top: 8, bottom: 20 };

export function EffectChart(props: {
  title: string;
  points: Point[];
  threshold: Threshold | null;
  unit: Unit;
}) {
  const { points, threshold, unit } = props;
  const last = points[points.length - 1];
  const gist = last
    ? `${props.title}: effect ${signed(last.effect, unit)}` +
      (last.low !== null && last.high !== null
        ? ` (interval ${signed(last.low, unit)} to ${signed(last.high, unit)})`
        : "") +
      ` at the last of ${points.length} looks` +
      (threshold ? `; ${threshold.words} ${signed(threshold.value, unit)}` : "")
    : `${props.title}: no estimate yet`;
  if (points.length === 0) {
    return (
      <figure className="chart" data-testid="effect-chart">
        <figcaption>{gist}</figcaption>
      </figure>
    );
  }
  const [low, high] = yDomain(points, threshold);
  const t0 = points[0].t;
  const t1 = Math.max(points[points.length - 1].t, t0 + 1);
  const x = scale([t0, t1], [PAD.left, W - PAD.right]);
  const y = scale([low, high], [H - PAD.bottom, PAD.top]);
  const banded = points.filter((p) => p.low !== null && p.high !== null);
  const band =
    banded.length > 0
      ? [
          ...banded.map((p) => `${x(p.t)},${y(p.high as number)}`),
          ...banded.reverse().map((p) => `${x(p.t)},${y(p.low as number)}`),
        ].join(" ")
      : "";
  const line = points.map((p) => `${x(p.t)},${y(p.effect)}`).join(" ");
  return (
    <figure className="chart" data-testid="effect-chart">
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={gist}>
        <rect x={PAD.left} y={PAD.top} width={W - PAD.left - PAD.right}
          height={H - PAD.top - PAD.bottom} className="plot" />
        {band && <polygon points={band} className="band" />}
        <line x1={PAD.left} x2={W - PAD.right} y1={y(0)} y2={y(0)} className="zero" />
        {threshold && (
          <line x1={PAD.left} x2={W - PAD.right} y1={y(threshold.value)}
            y2={y(threshold.value)} className="threshold" />
        )}
        <polyline points={line} className="effect" />
        {points.length === 1 && <circle cx={x(last.t)} cy={y(last.effect)} r={3} className="dot" />}
        <text x={PAD.left - 4} y={PAD.top + 10} className="tick" textAnchor="end">
          {signed(high, unit)}
        </text>
        <text x={PAD.left - 4} y={H - PAD.bottom} className="tick" textAnchor="end">
          {signed(low, unit)}
        </text>
        {threshold && (
          <text x={W - PAD.right - 2} y={y(threshold.value) - 3} className="tick" textAnchor="end">
            {threshold.words}
          </text>
        )}
        <text x={PAD.left} y={H - 4} className="tick">
          {new Date(t0).toLocaleTimeString()}
        </text>
        <text x={W - PAD.right} y={H - 4} className="tick" textAnchor="end">
          {new Date(t1).toLocaleTimeString()}
        </text>
      </svg>
      <figcaption>{gist}</figcaption>
    </figure>
  );
}
