"""A trace as a waterfall in the terminal: one bar per node, placed on the run's time axis."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["render_waterfall"]

_MARK = {
    "succeeded": "█",
    "failed": "✗",
    "fallback": "▒",
    "skipped": "·",
    "cancelled": "╳",
    "pending": " ",
    "running": "░",
}


def _money(value: float) -> str:
    return f"${value:.4f}" if value < 1 else f"${value:.2f}"


def render_waterfall(trace: Mapping[str, Any], width: int = 40) -> str:
    """Render a serialised trace (``Trace.to_json()``) as text."""
    steps = trace.get("steps", [])
    total = trace.get("latency_s") or max(
        ((s.get("offset_s") or 0) + (s.get("latency_s") or 0) for s in steps), default=0.0
    )
    scale = width / total if total else 0.0
    name_w = max([len(s["node"]) for s in steps] + [4])
    lines = [
        f"run {trace.get('run_id')}  {trace.get('workflow')} {trace.get('version') or ''}  "
        f"{trace.get('status')}  {float(total):.3f}s  {_money(float(trace.get('cost_usd') or 0))}"
    ]
    for s in steps:
        offset = float(s.get("offset_s") or 0.0)
        latency = float(s.get("latency_s") or 0.0)
        start = int(offset * scale)
        length = max(1, round(latency * scale)) if s.get("latency_s") is not None else 1
        bar = " " * start + _MARK.get(s["status"], "?") * min(length, max(1, width - start))
        notes = []
        if s.get("cache_hit"):
            notes.append("cached")
        if (s.get("attempts") or 0) > 1:
            notes.append(f"{s['attempts']} attempts")
        if s.get("error"):
            notes.append(str(s["error"])[:60])
        elif s.get("reason"):
            notes.append(str(s["reason"])[:60])
        lines.append(
            f"  {s['node']:<{name_w}} {s['status']:<9} |{bar:<{width}}| "
            f"{latency:7.3f}s {_money(float(s.get('cost_usd') or 0)):>9}"
            + (f"  {'; '.join(notes)}" if notes else "")
        )
    saved = float(trace.get("cost_saved_usd") or 0)
    if saved:
        lines.append(f"  cache saved {_money(saved)}")
    if trace.get("error"):
        lines.append(f"  error: {trace['error']}")
    return "\n".join(lines)
