"""``python -m benchmarks.soak --json``: two replicas and two workers under mixed traffic, checked.

Two ``rollgraph serve`` replicas (one process each) and two ``rollgraph worker`` processes (with
``--metrics-port``) run as deployed against the machine's PostgreSQL (a schema of the soak's
own, dropped afterwards) and Redis (a key prefix of its own). The workflow ``greet`` (one
simulated ``prompt.enhance`` call, about 0.35 s, 1 % simulated failures) has v1 on ``prod`` and
a running experiment sending half of ``prod`` to v2.

The load is ``wrk`` (C, epoll), one process per route class and replica, all pinned with
``taskset`` to the last core, so the load generator is not what limits the servers; its CPU
share of that core is reported. ``benchmarks/soak.lua`` makes each class's requests: sync
runs, async runs, ``GET /v1/runs`` lists with a viewer key, ``GET /v1/runs/{id}``, outcomes,
experiment results and workflow reads, each client waiting a random think time between its
requests. Every answered run id is logged for the checker (``benchmarks/soak_check.py``):
5xx answers, runs answered but missing from the store, accepted async runs not finished after
a drain, runs stuck ``queued``/``running``, Prometheus counters against the store, p50/p99 per
class, and the RSS of every process at start and end.

    python -m benchmarks.soak --json                     # 200 clients, 300 s
    python -m benchmarks.soak --duration 60 --clients 100
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

from benchmarks.report import report
from benchmarks.scale import REDIS_URL, _schema
from benchmarks.soak_check import check, rss_kb

__all__ = ["CLASSES", "Cluster", "main", "measure"]

ROOT = Path(__file__).resolve().parent.parent
LUA = Path(__file__).with_name("soak.lua")
# class -> (share of the clients, mean think time in ms, key: admin | runner | viewer). Async
# runs are offered below the workers' throughput (2 x 4 slots of ~0.35 s runs): a queue that
# grows for the whole soak measures the offered rate, not the system.
CLASSES: dict[str, tuple[float, float, str]] = {
    "sync": (0.35, 1000, "runner"),
    "async": (0.08, 1500, "runner"),
    "list": (0.15, 1000, "viewer"),
    "get": (0.20, 500, "viewer"),
    "outcome": (0.10, 1000, "runner"),
    "results": (0.06, 2000, "viewer"),
    "workflows": (0.06, 1000, "viewer"),
}
SEEDED_RUNS = 200
GREET = """
name: greet
version: {version}
inputs:
  prompt: text
nodes:
  write:
    uses: prompt.enhance
    with: {{model: sim/writer-small, prompt: "${{inputs.prompt}}", style: {style}}}
outputs:
  text: "${{write.text}}"
"""
EXPERIMENT: dict[str, Any] = {
    "workflow": "greet",
    "name": "soak",
    "candidate": "v2",
    # Held at 50 % for the whole soak: routing stays the same from start to end.
    "ramp": [{"percent": 50, "min_duration_s": 86400}, {"percent": 100}],
    "primary": {"name": "converted", "kind": "proportion", "direction": "increase", "mde": 0.1},
    "auto_rollback": False,
}


def split(clients: int) -> dict[str, int]:
    """Clients per class, at least two (one per replica), summing to ``clients``."""
    counts = {name: max(2, round(share * clients)) for name, (share, _, _) in CLASSES.items()}
    counts["sync"] += clients - sum(counts.values())
    if counts["sync"] < 2:
        raise SystemExit(f"--clients must be at least {2 * len(CLASSES)}")
    return counts


class Cluster:
    """The soak's processes, their URLs and log files."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir, self.env = workdir, env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.urls: dict[str, str] = {}  # replicas: API; workers: metrics
        self._stack = ExitStack()

    def start(self, name: str, args: list[str], url: str) -> None:
        log = self._stack.enter_context((self.workdir / f"{name}.log").open("wb"))
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "control_plane.cli", *args],
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.urls[name] = url

    def wait_ready(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        for name, url in self.urls.items():
            path = "/readyz" if name.startswith("replica") else "/metrics"
            while True:
                if self.procs[name].poll() is not None:
                    raise RuntimeError(f"{name} exited: {self.log(name)[-2000:]}")
                try:
                    if httpx.get(url + path, timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not become ready in {timeout_s:g} s")
                time.sleep(0.1)

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def close(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._stack.close()


@contextmanager
def cluster(database_url: str, workdir: Path) -> Iterator[tuple[Cluster, str]]:
    admin_key = "rgk" + secrets.token_urlsafe(32)
    env = {
        "ROLLGRAPH_ENV": "test",
        "ROLLGRAPH_ADMIN_KEY": admin_key,
        "ROLLGRAPH_DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "ROLLGRAPH_REDIS_PREFIX": f"rgsoak-{uuid.uuid4().hex[:8]}",
    }
    from benchmarks.http import _free_port

    procs = Cluster(workdir, env)
    try:
        for i in (1, 2):
            port = _free_port()
            procs.start(f"replica-{i}", ["serve", "--port", str(port)], f"http://127.0.0.1:{port}")
        for i in (1, 2):
            port = _free_port()
            args = ["worker", "--name", f"w{i}", "--metrics-port", str(port)]
            procs.start(f"worker-{i}", args, f"http://127.0.0.1:{port}")
        procs.wait_ready()
        yield procs, admin_key
    finally:
        procs.close()
        _forget_redis_keys(env["ROLLGRAPH_REDIS_PREFIX"])


def _forget_redis_keys(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def seed(url: str, admin_key: str) -> dict[str, Any]:
    """Workflow versions, label, experiment, a viewer and a runner key, and seeded runs."""
    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as api:
        for version, style in (("v1", "plain"), ("v2", "cinematic")):
            source = GREET.format(version=version, style=style)
            answer = api.post("/v1/workflows", json={"source": source})
            assert answer.status_code == 201, answer.text
        assert api.put("/v1/workflows/greet/labels/prod", json={"version": "v1"}).is_success
        started = api.post("/v1/experiments", json=EXPERIMENT)
        assert started.status_code == 201, started.text
        keys = {"admin": admin_key}
        for role in ("viewer", "runner"):
            made = api.post("/v1/keys", json={"name": f"soak-{role}", "role": role})
            assert made.status_code == 201, made.text
            keys[role] = made.json()["key"]

        def one(i: int) -> str:
            body = {"workflow": "greet", "input": {"prompt": f"seed {i}"}, "user_id": f"s{i}"}
            answer = api.post("/v1/run", json=body)
            assert answer.status_code == 200, answer.text
            return str(answer.json()["run_id"])

        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(one, range(SEEDED_RUNS)))
    return {"keys": keys, "experiment": started.json()["id"], "ids": ids}


def drive(cluster: Cluster, seeded: dict[str, Any], *, clients: int, duration_s: float,
          workdir: Path) -> dict[str, Any]:  # fmt: skip
    """The wrk processes, all at once for ``duration_s``; their figures and CPU time."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed (Debian package `wrk`; .ci/run installs it)")
    core = str((os.cpu_count() or 1) - 1)
    ids_file = workdir / "ids.txt"
    ids_file.write_text("\n".join(seeded["ids"]) + "\n")
    replicas = [url for name, url in cluster.urls.items() if name.startswith("replica")]
    started: list[tuple[str, subprocess.Popen[bytes]]] = []
    for name, n in split(clients).items():
        _, think_ms, role = CLASSES[name]
        for i, url in enumerate(replicas):
            connections = n // 2 + (n % 2 if i == 0 else 0)
            out = workdir / f"wrk-{name}-{i}.json"
            env = {
                **os.environ,
                "SOAK_CLASS": name,
                "SOAK_KEY": seeded["keys"][role],
                "SOAK_IDS": str(ids_file),
                "SOAK_EXP": str(seeded["experiment"]),
                "SOAK_THINK": str(think_ms),
                "SOAK_LOG": str(workdir / f"answers-{i}"),
                "SOAK_OUT": str(out),
            }
            command = ["taskset", "-c", core, wrk, "-t1", f"-c{connections}"]
            command += [f"-d{int(duration_s)}s", "--timeout", "65s", "-s", str(LUA), url]
            with (workdir / f"wrk-{name}-{i}.log").open("wb") as log:
                proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
            started.append((str(out), proc))
    cpu_s = 0.0
    for _, proc in started:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        cpu_s += usage.ru_utime + usage.ru_stime
    failed = [str(p.args) for _, p in started if p.returncode != 0]
    if failed:
        raise RuntimeError(f"wrk failed: {failed[0]} (see {workdir})")
    figures = [json.loads(Path(out).read_text()) for out, _ in started]
    return {"figures": figures, "cpu_s": cpu_s, "core": int(core), "processes": len(started)}


def measure(
    *, duration_s: float = 300, clients: int = 200, keep: bool = False, database_url: str = ""
) -> dict[str, Any]:
    """The soak; on ``database_url`` (an empty database) or else a schema of its own."""
    workdir = Path(tempfile.mkdtemp(prefix="rollgraph-soak-"))
    try:
        with ExitStack() as stack:
            url = database_url or stack.enter_context(_schema())
            procs, admin_key = stack.enter_context(cluster(url, workdir))
            seeded = seed(procs.urls["replica-1"], admin_key)
            rss_start = {name: rss_kb(proc.pid) for name, proc in procs.procs.items()}
            load = drive(procs, seeded, clients=clients, duration_s=duration_s, workdir=workdir)
            result = check(procs, url, workdir, load, rss_start, seeded)
        result.update(duration_s=float(duration_s), clients=clients)
        if keep:
            result["notes"].append(f"logs and wrk output in {workdir}")
        return result
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--duration", type=float, default=300, help="seconds of load (300)")
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients (200)")
    parser.add_argument("--keep", action="store_true", help="keep the logs and wrk output")
    args = parser.parse_args(argv)
    result = measure(duration_s=args.duration, clients=args.clients, keep=args.keep)
    print(report(result, as_json=args.json))
    return 0 if all(result["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
