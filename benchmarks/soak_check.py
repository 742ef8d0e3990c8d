"""The soak's checker (``benchmarks/soak.py``): what the clients were answered against what the
store and the counters hold once the load has stopped and the queue has drained."""

from __future__ import annotations

import math
import os
import re
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from control_plane.store.db import create_db_engine

if TYPE_CHECKING:
    from benchmarks.soak import Cluster

__all__ = ["DRAIN_S", "check", "percentile_ms", "rss_kb"]

DRAIN_S = 180.0  # the longest the checker waits for accepted async runs to end
ENDED = ("succeeded", "failed")
COMPARED = ("runs_succeeded", "runs_failed", "outcomes")  # and every runs_{status}_{mode} counted


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile_ms(histogram: Iterable[tuple[int, int]], q: float) -> float:
    """The ``q`` quantile (nearest rank) of a ``(microseconds, count)`` histogram, in ms."""
    ordered = sorted(histogram)
    total = sum(count for _, count in ordered)
    rank, seen = max(1, math.ceil(q * total)), 0
    for value, count in ordered:
        seen += count
        if seen >= rank:
            return round(value / 1000, 1)
    raise ValueError("an empty histogram has no percentile")


def _classes(figures: list[dict[str, Any]], duration_s: float) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for figure in figures:
        into = merged.setdefault(
            figure["class"], {"requests": 0, "statuses": Counter(), "errors": Counter(), "h": []}
        )
        into["requests"] += figure["requests"]
        into["statuses"].update({str(code): n for code, n in figure["statuses"]})
        into["errors"].update(figure["errors"])
        into["h"].extend(tuple(pair) for pair in figure["latency_us"])
    out = {}
    for name, m in merged.items():
        errors = {k: v for k, v in m["errors"].items() if v and k != "status"}
        out[name] = {
            "requests": m["requests"],
            "per_s": round(m["requests"] / duration_s, 1),
            "statuses": dict(sorted(m["statuses"].items())),
            "socket_errors": errors,
            "p50_ms": percentile_ms(m["h"], 0.50) if m["h"] else None,
            "p99_ms": percentile_ms(m["h"], 0.99) if m["h"] else None,
            "max_ms": percentile_ms(m["h"], 1.0) if m["h"] else None,
        }
    return out


def _answers(workdir: Path) -> tuple[dict[str, str], list[str]]:
    """Answered run ids (id -> "sync" | "async") and the heads of 5xx bodies."""
    answered: dict[str, str] = {}
    server_errors: list[str] = []
    for path in workdir.glob("answers-*"):
        for line in path.read_text(errors="replace").splitlines():
            code, _, rest = line.partition(" ")
            if rest.startswith("ERR "):
                if code.startswith("5"):
                    server_errors.append(f"{code} {rest[4:]}")
            elif code in ("200", "202"):
                answered[rest] = "sync" if code == "200" else "async"
    return answered, server_errors


def _error_code(line: str) -> str:
    """``"503 store_busy"`` for a logged ``503 {"error": {"code": "store_busy", ...}}``."""
    found = re.search(r'"code"\s*:\s*"([^"]+)"', line)
    return f"{line[:3]} {found.group(1) if found else '?'}"


def _store_status(database_url: str, ids: list[str]) -> dict[str, str]:
    engine = create_db_engine(database_url)
    found: dict[str, str] = {}
    try:
        with engine.connect() as connection:
            for start in range(0, len(ids), 1000):
                rows = connection.execute(
                    text("SELECT id, status FROM run WHERE id = ANY(:ids)"),
                    {"ids": ids[start : start + 1000]},
                )
                found.update({row.id: row.status for row in rows})
    finally:
        engine.dispose()
    return found


def _store_counts(database_url: str) -> dict[str, int]:
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT status, mode, count(*) AS n FROM run GROUP BY status, mode")
            )
            counts: Counter[str] = Counter()
            for row in rows:
                counts[f"runs_{row.status}"] += int(row.n)
                counts[f"runs_{row.status}_{row.mode}"] += int(row.n)
            outcomes = connection.execute(text("SELECT count(*) FROM outcome")).scalar_one()
            counts["outcomes"] = int(outcomes)
            return dict(counts)
    finally:
        engine.dispose()


def _drain(database_url: str) -> tuple[float, dict[str, int]]:
    start = time.monotonic()
    while True:
        counts = _store_counts(database_url)
        busy = counts.get("runs_queued", 0) + counts.get("runs_running", 0)
        if busy == 0 or time.monotonic() - start > DRAIN_S:
            return time.monotonic() - start, counts
        time.sleep(1)


def _counters(urls: Iterable[str]) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for url in urls:
        families = text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text)
        for family in families:
            for sample in family.samples:
                if sample.name == "rollgraph_runs_total":
                    status, mode = sample.labels["status"], sample.labels["mode"]
                    totals[f"runs_{status}"] += int(sample.value)
                    totals[f"runs_{status}_{mode}"] += int(sample.value)
                elif sample.name == "rollgraph_outcomes_total":
                    totals["outcomes"] += int(sample.value)
    return dict(totals)


def _mb(kb: int) -> float:
    return round(kb / 1024, 1)


def check(
    cluster: Cluster,
    database_url: str,
    workdir: Path,
    load: dict[str, Any],
    rss_start: dict[str, int],
    seeded: dict[str, Any],
) -> dict[str, Any]:
    duration_s = max(f["duration_us"] for f in load["figures"]) / 1e6
    classes = _classes(load["figures"], duration_s)
    drain_s, store = _drain(database_url)
    answered, server_errors = _answers(workdir)
    status = _store_status(database_url, list(answered))
    missing = [run_id for run_id in answered if run_id not in status]
    unfinished = [
        i for i, mode in answered.items() if mode == "async" and status.get(i) not in ENDED
    ]
    counters = _counters(cluster.urls.values())
    keys = sorted({*COMPARED, *(k for k in counters if k.startswith("runs_"))})
    compared = {k: {"store": store.get(k, 0), "counters": counters.get(k, 0)} for k in keys}
    five_xx = sum(n for c in classes.values() for code, n in c["statuses"].items() if code >= "5")
    by_code = Counter(_error_code(line) for line in server_errors)
    socket_errors = sum(sum(c["socket_errors"].values()) for c in classes.values())
    stuck = store.get("runs_queued", 0) + store.get("runs_running", 0)
    requests = sum(c["requests"] for c in classes.values())
    return {
        "requests": requests,
        "requests_per_s": round(requests / duration_s, 1),
        "five_xx": five_xx,
        "five_xx_by_code": dict(by_code),
        "five_xx_samples": list({_error_code(line): line for line in server_errors}.values()),
        "socket_errors": socket_errors,
        "answered_runs": dict(Counter(answered.values())),
        "answered_but_missing": len(missing),
        "accepted_but_unfinished": len(unfinished),
        "stuck": stuck,
        "drain_s": round(drain_s, 1) or 0,  # report() reads a float 0.0 as a failed figure
        "counters_vs_store": compared,
        "classes": classes,
        "rss_mb": {
            name: {
                "start": round(rss_start[name] / 1024, 1),
                "end": round(rss_kb(proc.pid) / 1024, 1),
            }
            for name, proc in cluster.procs.items()
        },
        "process_cpu_s": {name: round(cpu_s(p.pid), 1) for name, p in cluster.procs.items()},
        "load_generator": {
            "tool": "wrk",
            "processes": load["processes"],
            "pinned_core": load["core"],
            "cpu_share_of_its_core": round(load["cpu_s"] / duration_s, 3),
        },
        "targets": {
            "no_5xx": five_xx == 0,
            "no_connection_errors": socket_errors == 0,
            "nothing_answered_lost": not missing,
            "every_accepted_run_finished": not unfinished,
            "nothing_stuck": stuck == 0,
            "counters_match_store": all(v["store"] == v["counters"] for v in compared.values()),
        },
        "machine": {"cores": os.cpu_count(), "seeded_runs": len(seeded["ids"])},
        "notes": [
            "wrk: one process per route class and replica (-t1), all pinned to one core; "
            "each client one keep-alive connection with a uniform think time; latencies are "
            "wrk's (request written to response read), merged over both replicas' processes",
            f"checks after the load, once no run was queued or running (or after {DRAIN_S:g} "
            "s): answered = run ids in 200/202 answers to POST /v1/run",
        ],
    }
