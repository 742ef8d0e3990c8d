"""CPU accounting for the benchmarks that start their own processes, without psutil.

A benchmark is only worth its figure if it says who was busy: the server, the workers, the
benchmark itself, or the rest of a shared machine. ``CpuClock`` reads each watched process's
user + system time from ``/proc/PID/stat``, the benchmark's own from ``getrusage`` (all its
threads) and the machine's busy time from ``/proc/stat``, and turns deltas into shares of one
core (1.0 = one core busy the whole interval; a 2-core machine tops out at 2.0). ``rest`` is the
machine's share minus the watched processes and the benchmark: PostgreSQL, Redis and whatever
else shares the machine. A ``machine`` share near the core count means the figures measure the
machine's contention, not the system's scaling.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

__all__ = ["CpuClock", "loadavg", "process_cpu_s"]

_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (its threads included)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _machine_busy_s() -> float:
    # First line of /proc/stat: cpu user nice system idle iowait irq softirq steal ...
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / _TICK


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages: on a shared machine, what else was running."""
    return [round(v, 2) for v in os.getloadavg()]


class CpuClock:
    """Shares of one core used by named processes, the benchmark and the machine over an
    interval: ``start()`` then ``shares()``."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._start: dict[str, float] = {}
        self._wall = 0.0

    def _read(self) -> dict[str, float]:
        now = {name: process_cpu_s(pid) for name, pid in self.pids.items()}
        now["benchmark"] = _own_cpu_s()
        now["machine"] = _machine_busy_s()
        return now

    def start(self) -> None:
        self._start = self._read()
        self._wall = time.perf_counter()

    def shares(self) -> dict[str, float]:
        wall = time.perf_counter() - self._wall
        end = self._read()
        shares = {name: (end[name] - self._start[name]) / wall for name in end}
        shares["rest"] = shares["machine"] - sum(v for k, v in shares.items() if k != "machine")
        return {name: round(value, 2) for name, value in shares.items()}
