"""``python -m benchmarks.experiment_rps --json``: do runs inside a running experiment flow as
fast as runs outside one, with two replicas on one PostgreSQL?

Every run in an experiment also updates its arm's statistics rows (``experiment_unit``,
``arm_unit_stat``, ``arm_stat``) in the transaction that stores it, so two replicas writing
runs of the same arms could serialise on those rows' locks. Two ``rollgraph serve`` replicas
(one process each, no Redis, the simulator without latency: ``ROLLGRAPH_SIM_TIME_SCALE=0``)
run against a schema of the benchmark's own on the machine's PostgreSQL. Two identical
workflows, ``plain`` and ``exp``, have v1 on ``prod``; ``exp`` also has a running experiment
sending half of ``prod`` to v2 (held at that step). ``wrk`` (one process per replica, pinned to
the last core, its CPU share reported) drives ``POST /v1/run`` with a distinct user per
request, in interleaved rounds of ``plain`` and ``exp``; ``experiment_vs_plain_rps`` is the
median of the per-round paired ratios (target, issue 17: at least 0.9).

Afterwards the store is checked: every run of ``exp`` is counted exactly once in its arm's
statistics (the counters equal the store), and no request failed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from benchmarks.http import _free_port
from benchmarks.http_load import SATURATED, Round, wrk_path, wrk_round
from benchmarks.report import report
from benchmarks.scale import _schema
from benchmarks.soak import GREET, Cluster

__all__ = ["main", "measure"]

TARGET = 0.9
EXPERIMENT: dict[str, Any] = {
    "workflow": "exp",
    "name": "hot-rows",
    "candidate": "v2",
    "ramp": [{"percent": 50, "min_duration_s": 86400}, {"percent": 100}],
    "primary": {"name": "converted", "kind": "proportion", "direction": "increase", "mde": 0.1},
    "auto_rollback": False,
}


def _seed(url: str, admin_key: str) -> int:
    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as api:
        for name in ("plain", "exp"):
            for version, style in (("v1", "plain"), ("v2", "cinematic")):
                text = GREET.format(version=version, style=style)
                source = text.replace("name: greet", f"name: {name}")
                answer = api.post("/v1/workflows", json={"source": source})
                assert answer.status_code == 201, answer.text
            labelled = api.put(f"/v1/workflows/{name}/labels/prod", json={"version": "v1"})
            assert labelled.is_success, labelled.text
        started = api.post("/v1/experiments", json=EXPERIMENT)
        assert started.status_code == 201, started.text
        experiment: int = started.json()["id"]
        return experiment


def _check_store(database_url: str, experiment: int) -> dict[str, int]:
    """Runs of ``exp`` in the store against the runs its arms counted (metric ``success``)."""
    from sqlalchemy import func, select
    from sqlmodel import Session, col

    from control_plane.store.db import create_db_engine
    from control_plane.store.tables import ArmUnitStatRow, RunRow

    db = create_db_engine(database_url)
    try:
        with Session(db) as session:
            runs = session.execute(
                select(func.count()).where(col(RunRow.experiment_id) == experiment)
            ).scalar_one()
            units = session.execute(
                select(func.coalesce(func.sum(ArmUnitStatRow.sum_n), 0)).where(
                    col(ArmUnitStatRow.experiment_id) == experiment,
                    col(ArmUnitStatRow.metric) == "success",
                )
            ).scalar_one()
    finally:
        db.dispose()
    if runs != int(units):
        raise RuntimeError(f"{runs} runs in the experiment, {units} counted")
    return {"experiment_runs": int(runs)}


def measure(*, quick: bool = False) -> dict[str, Any]:
    if wrk_path() is None:
        raise SystemExit("wrk is not installed (Debian package `wrk`; .ci/run installs it)")
    rounds, seconds, connections = (1, 1, 8) if quick else (4, 5, 16)
    cores = os.cpu_count() or 1
    core = cores - 1 if cores > 1 else None
    admin_key = "rgk" + os.urandom(24).hex()
    loads: dict[str, list[Round]] = {"plain": [], "exp": []}
    with _schema() as database_url, tempfile.TemporaryDirectory(prefix="rg-hot-") as tmp:
        env = {
            "ROLLGRAPH_ENV": "test",
            "ROLLGRAPH_ADMIN_KEY": admin_key,
            "ROLLGRAPH_DATABASE_URL": database_url,
            "ROLLGRAPH_SIM_TIME_SCALE": "0",
        }
        procs = Cluster(Path(tmp), env)
        try:
            for i in (1, 2):
                port = _free_port()
                url = f"http://127.0.0.1:{port}"
                procs.start(f"replica-{i}", ["serve", "--port", str(port)], url)
            procs.wait_ready()
            first, second = procs.urls["replica-1"], procs.urls["replica-2"]
            experiment = _seed(first, admin_key)

            def drive(workflow: str, secs: int) -> Round:
                return wrk_round(first, admin_key, connections=connections, seconds=secs,
                                 core=core, workdir=Path(tmp), also=[second],
                                 workflow=workflow)  # fmt: skip

            for name in loads:  # warm-up: compiled workflows, caches, connections
                drive(name, 1)
            for _ in range(rounds):
                for name in loads:
                    loads[name].append(drive(name, seconds))
        finally:
            procs.close()
        checked = _check_store(database_url, experiment)
    return _result(loads, checked, rounds=rounds, seconds=seconds, connections=connections,
                   core=core, quick=quick)  # fmt: skip


def _result(
    loads: dict[str, list[Round]],
    checked: dict[str, int],
    *,
    rounds: int,
    seconds: int,
    connections: int,
    core: int | None,
    quick: bool,
) -> dict[str, Any]:
    plain, exp = loads["plain"], loads["exp"]
    errors = sum(r.errors for r in plain + exp)
    if errors:
        raise RuntimeError(f"{errors} requests failed")
    cpu = max(r.generator_cpu for r in plain + exp)
    ratio = statistics.median(e.rps / p.rps for e, p in zip(exp, plain, strict=True))
    saturated = cpu > 2 * SATURATED  # two wrk processes share the generator's core
    out: dict[str, Any] = {
        "plain_rps": statistics.median(r.rps for r in plain),
        "experiment_rps": statistics.median(r.rps for r in exp),
        "experiment_vs_plain_rps": None if saturated else ratio,
        "plain_p50_ms": Round.percentile_ms(plain, 0.5),
        "plain_p99_ms": Round.percentile_ms(plain, 0.99),
        "experiment_p50_ms": Round.percentile_ms(exp, 0.5),
        "experiment_p99_ms": Round.percentile_ms(exp, 0.99),
        "generator_cpu": cpu,
        **checked,
    }
    out["targets"] = {
        "experiment_vs_plain_rps_at_least_0.9": not saturated and ratio >= TARGET,
    }
    out["machine"] = {"cores": os.cpu_count(), "generator_core": "any" if core is None else core}
    out["notes"] = [
        f"2 replicas (rollgraph serve, one process each, no Redis, ROLLGRAPH_SIM_TIME_SCALE=0) "
        f"on a PostgreSQL schema of their own; wrk, one process per replica with {connections} "
        f"connections each, pinned to generator_core; {rounds} interleaved rounds of "
        f"{seconds} s per workflow after a 1 s warm-up; rps = median over rounds of the sum "
        "over replicas; experiment_vs_plain_rps = median of per-round paired ratios",
        "plain and exp are the same one-node workflow; exp has a running experiment sending "
        "half of prod to v2 (held at that step); every request a distinct user",
        "generator_cpu = the wrk processes' CPU time over wall time (two processes: up to 2)",
        "checked after the load: every run of the experiment counted once in its arm's "
        "statistics (arm_unit_stat sum_n of metric success), no failed request",
    ]
    if quick:
        out["notes"].append("--quick: too few requests for the numbers to mean anything")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.experiment_rps", description=__doc__
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="a few requests (smoke test)")
    args = parser.parse_args(argv)
    print(report(measure(quick=args.quick), as_json=args.json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
