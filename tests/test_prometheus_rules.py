"""The Prometheus files under ``dashboards/prometheus/`` are checked by Prometheus's own tool.

A rule that does not parse, or a join that turns many-to-many on real label sets, is only found
when Prometheus evaluates it: ``promtool check rules`` parses them, ``promtool test rules`` runs
the unit tests of ``rules_test.yml`` (every alert firing and not firing, recorded values exact)
and ``promtool check config`` loads the example configuration with its rule files.

``promtool`` comes with Prometheus (Debian package ``prometheus``). Without it the tests are
skipped, saying why, or fail under ``CI=true``, where the rules must be checked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

PROMETHEUS_DIR = Path(__file__).resolve().parent.parent / "dashboards" / "prometheus"


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is not None:
        return path
    reason = "promtool is not on PATH"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the Prometheus rules must be checked)")
    pytest.skip(f"{reason}; install it with `apt-get install prometheus`")


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("check", "rules", "rules.yml"), id="check-rules"),
        pytest.param(("test", "rules", "rules_test.yml"), id="test-rules"),
        pytest.param(("check", "config", "prometheus.yml"), id="check-config"),
    ],
)
def test_promtool(args: tuple[str, ...]) -> None:
    command, kind, name = args
    promtool = _promtool()
    # By absolute path so that the result does not depend on pytest's working directory
    # (promtool resolves rule_files relative to the file that names them).
    result = subprocess.run(
        [promtool, command, kind, str(PROMETHEUS_DIR / name)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (
        f"promtool {command} {kind} {name} exited {result.returncode}:\n"
        f"{result.stdout}\n{result.stderr}"
    )
