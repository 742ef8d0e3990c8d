"""Running a benchmark as its smoke tests do: ``python -m benchmarks.NAME --json`` in a child
process, which must exit 0 and print exactly one JSON object (the figures are the benchmark's to
measure; tests only check their shape, never wall-clock values)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["assert_positive", "run_benchmark"]

ROOT = Path(__file__).resolve().parent.parent


def run_benchmark(
    module: str, *args: str, quick: bool = True, strict: bool = True, timeout: float = 300
) -> dict[str, Any]:
    """The benchmark's JSON object. ``strict``: warnings are errors (``-W error``) and none may
    be printed; ``quick``: its shortened run, which checks that it works, not what it finds."""
    command = [sys.executable, *(["-W", "error"] if strict else [])]
    command += ["-m", f"benchmarks.{module}", "--json", *(["--quick"] if quick else []), *args]
    proc = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    if strict:
        assert "Warning" not in proc.stderr, proc.stderr[-3000:]
    result = json.loads(proc.stdout)  # the whole of stdout: exactly one JSON value
    assert isinstance(result, dict)
    return result


def assert_positive(result: Mapping[str, Any], keys: Iterable[str]) -> None:
    """Each of ``keys`` is a finite number above zero (a bool is not a number here)."""
    for key in keys:
        value = result[key]
        assert isinstance(value, int | float) and not isinstance(value, bool), key
        assert math.isfinite(value) and value > 0, key
