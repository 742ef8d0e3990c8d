"""The README cannot drift from the code: every fenced block is classified and checked, every
shell command is run (``tests/test_readme_commands.py``) or mapped to the test that exercises it,
and every ``make TARGET`` and ``python -m MODULE`` in the prose is a real target or module with a
test. A block that fits no class fails here, so a new block must be classified (a ``# readme:
excerpt of PATH`` or ``# readme: illustrative`` marker is the exception, and is checked too)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import itertools
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

import engine
from control_plane.cli import main
from control_plane.experiments.schemas import ExperimentCreate
from tests.fixtures import GREET
from tests.readme import (
    README,
    ROOT,
    SHELL,
    Block,
    blocks,
    commands,
    inline_make_targets,
    inline_modules,
    marker,
    prose,
)
from tests.test_deploy import known_variables
from tests.test_readme_commands import MAPPED, mapped, runnable
from tests.test_readme_examples import PYTHON_BLOCKS

EXAMPLES = sorted((ROOT / "examples").rglob("*.yaml"))
BENCH = (
    "tests/test_benchmarks_{}_smoke.py::test_{}_benchmark_prints_one_json_object_with_every_figure"
)
DRY_RUN = "tests/test_readme.py::test_make_target_runs_what_the_readme_says"

# `make TARGET` in the prose -> the test that exercises it.
MAKE_TARGETS: dict[str, str] = {
    "run": MAPPED["make run"],
    "test": MAPPED["make test"],
    "lint": DRY_RUN,
    "typecheck": DRY_RUN,
    "lock": DRY_RUN,
    "example": DRY_RUN,  # its command is the README's `rollgraph exec`, run by test_readme_commands
    "demo": (
        "tests/test_demo_experiment.py::"
        "test_demo_rolls_back_the_worse_candidate_and_promotes_the_better_one"
    ),
    "bench": (
        "tests/test_benchmarks_smoke.py::"
        "test_engine_benchmark_prints_one_json_object_with_every_figure"
    ),
    "bench-http": (
        "tests/test_benchmarks_http_smoke.py::test_wrk_drives_the_benchmark_from_its_own_core"
    ),
    "bench-analysis": BENCH.format("analysis", "analysis"),
    "bench-scale": BENCH.format("scale", "scale"),
    "soak": "tests/test_soak.py::test_a_minute_of_mixed_traffic_has_no_5xx_and_loses_nothing",
    "console": "tests/test_console_build.py::test_make_console_rebuilds_when_a_source_changes",
}
# `python -m MODULE` in the prose -> the test that runs it.
MODULES: dict[str, str] = {
    "benchmarks.engine": MAKE_TARGETS["bench"],
    "benchmarks.http": MAKE_TARGETS["bench-http"],
    "benchmarks.analysis": MAKE_TARGETS["bench-analysis"],
    "benchmarks.scale": MAKE_TARGETS["bench-scale"],
    "benchmarks.costs": (
        "tests/test_benchmarks_costs_smoke.py::"
        "test_costs_benchmark_prints_the_per_run_costs_of_sync_and_async_runs"
    ),
    "benchmarks.soak": MAKE_TARGETS["soak"],
    "benchmarks.cuped": BENCH.format("cuped", "cuped"),
    "benchmarks.experiment_rps": BENCH.format("experiment_rps", "experiment_rps"),
    "benchmarks.units": BENCH.format("units", "units"),
}
# What `make -n TARGET` must run: the README says what each one does.
MAKE_RUNS: dict[str, list[str]] = {
    "test": ["ruff check .", "ruff format --check .", "mypy", "-m pytest"],
    "lint": ["ruff check .", "ruff format --check ."],
    "typecheck": ["mypy"],
    "lock": ["uv pip compile", "--generate-hashes -o requirements.lock"],
    "example": ["rollgraph exec examples/product-video/v3.3.yaml --input prompt="],
    "bench": ["-m benchmarks.engine --json"],
    "bench-http": ["-m benchmarks.http --json"],
    "bench-analysis": ["-m benchmarks.analysis --json"],
    "bench-scale": ["-m benchmarks.scale --json"],
    "soak": ["-m benchmarks.soak --json"],
}


def test_node_exists(node: str) -> None:
    """``node`` (``tests/FILE.py::test_name``, parameters allowed) names a test function that is
    in that file."""
    path, _, name = node.partition("::")
    source = ROOT / path
    assert source.is_file(), f"{node}: no file {path}"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    functions = {f.name for f in tree.body if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)}
    assert name.split("[")[0] in functions, f"{node}: no test {name} in {path}"


test_node_exists.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def _load(text: str) -> Any:
    return yaml.safe_load(text)


def _example(name: str, version: str) -> Path | None:
    for path in EXAMPLES:
        data = _load(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and (data.get("name"), data.get("version")) == (name, version):
            return path
    return None


def _is_sub_mapping(part: Any, whole: Any) -> bool:
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(
            key in whole and _is_sub_mapping(value, whole[key]) for key, value in part.items()
        )
    return bool(part == whole)


def classify(data: Any) -> str:
    """What a YAML block (parsed) is, or ``unclassified``."""
    if not isinstance(data, dict):
        return "unclassified"
    if "nodes" in data:
        return "workflow"
    if "workflow" in data and ("primary" in data or "candidate" in data or "candidates" in data):
        return "experiment"
    if "services" in data:
        return "compose"
    if "scrape_configs" in data or "groups" in data:
        return "prometheus"
    if set(data) == {"evaluators"}:
        return "evaluators"
    return "unclassified"


def check_yaml(text: str, where: str) -> None:
    """``text`` is valid as what it is; fails on a block that is nothing we know."""
    data = _load(text)
    kind = classify(data)
    if kind == "workflow":
        errors = [p for p in engine.check(text) if p.severity == "error"]
        assert not errors, f"{where}: " + "; ".join(map(str, errors))
        example = _example(data["name"], data["version"])
        assert example is not None, f"{where}: {data['name']} {data['version']} is no example"
        assert data == _load(example.read_text(encoding="utf-8")), (
            f"{where} differs from {example.relative_to(ROOT)}: show the file, or mark the block "
            "`# readme: excerpt of examples/...`"
        )
    elif kind == "experiment":
        spec = ExperimentCreate.model_validate(data)
        versions = [spec.candidate] if spec.candidate else [c.version for c in spec.candidates]
        for version in versions:  # what it names exists
            assert _example(spec.workflow, version) is not None, f"{where}: no {version}"
    elif kind == "compose":
        assert all("image" in s or "build" in s for s in data["services"].values()), where
    elif kind == "prometheus":
        assert isinstance(data.get("scrape_configs", data.get("groups")), list), where
    elif kind == "evaluators":  # checked on a workflow whose output is `text`
        errors = [p for p in engine.check(GREET + text) if p.severity == "error"]
        assert not errors, f"{where}: " + "; ".join(map(str, errors))
    else:
        pytest.fail(
            f"{where}: a YAML block that is no workflow, experiment, compose or "
            "Prometheus file; classify it in tests/test_readme.py or mark it"
        )


YAML_BLOCKS = [b for b in blocks() if b.lang in ("yaml", "yml")]


@pytest.mark.parametrize("block", YAML_BLOCKS, ids=lambda b: f"line{b.line}")
def test_yaml_block_is_classified_and_valid(block: Block) -> None:
    note = marker(block)
    if note is None:
        check_yaml(block.text, block.where())
    elif note.startswith("excerpt of "):
        source = ROOT / note.removeprefix("excerpt of ")
        check_yaml(source.read_text(encoding="utf-8"), str(source))  # the whole file is valid
        assert _is_sub_mapping(_load(block.text), _load(source.read_text(encoding="utf-8"))), (
            f"{block.where()} is not an excerpt of {source.relative_to(ROOT)}"
        )
    else:
        assert note == "illustrative", f"{block.where()}: unknown marker {note!r}"
        assert isinstance(_load(block.text), dict | list), block.where()


def test_the_readme_has_its_workflow_and_experiment_blocks() -> None:
    kinds = [classify(_load(b.text)) for b in YAML_BLOCKS]
    assert kinds.count("workflow") >= 1 and kinds.count("experiment") >= 1, kinds
    assert sum(marker(b) is not None for b in YAML_BLOCKS) <= 2  # exceptions stay few


def test_every_block_has_a_language_the_tests_read() -> None:
    for block in blocks():
        assert block.lang in {*SHELL, "yaml", "yml", "text", "python"}, block.where()
        if block.lang == "text":  # shown output: its commands are checked like a shell block's
            assert commands(block), f"{block.where()}: a text block without a `$ ` command"


def test_every_command_is_run_or_mapped_to_a_test_that_exists() -> None:
    found = [c for b in blocks() for c in commands(b)]
    assert len(found) >= 40, len(found)
    for command in found:
        node = mapped(command.text)
        assert node is not None or runnable(command.text), (
            f"README.md:{command.line}: `{command.text}` is neither run by "
            "tests/test_readme_commands.py nor mapped in its MAPPED table"
        )
    for node in MAPPED.values():
        test_node_exists(node)


def test_python_blocks_are_run_and_import_what_exists() -> None:
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    python = [b for b in blocks() if b.lang == "python"]
    assert python
    for block in python:  # each is run by the test of what it shows
        shows = [name for name in PYTHON_BLOCKS if name in block.text]
        assert len(shows) == 1, f"{block.where()}: add it to PYTHON_BLOCKS ({shows})"
        test_node_exists(PYTHON_BLOCKS[shows[0]])
        tree = compile(block.text, block.where(), "exec", flags=flags)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    importlib.import_module(alias.name)
            elif isinstance(node, ast.ImportFrom) and node.module is not None:
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{block.where()}: {alias.name}"


def test_inline_make_targets_are_targets_with_a_test() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([\w-]+):", makefile, re.M))
    shell = {c.text.split()[1] for b in blocks() for c in commands(b) if c.text.startswith("make ")}
    mentioned = inline_make_targets() | shell
    assert {"run", "test", "demo", "bench"} <= mentioned, mentioned
    for target in sorted(mentioned):
        assert target in targets, f"`make {target}` in the README is no Makefile target"
        assert target in MAKE_TARGETS, f"`make {target}`: map it to its test in MAKE_TARGETS"
        test_node_exists(MAKE_TARGETS[target])


def test_inline_python_modules_exist_with_a_test() -> None:
    mentioned = inline_modules()
    assert "benchmarks.engine" in mentioned, mentioned
    for module in sorted(mentioned):
        assert importlib.util.find_spec(module) is not None, f"no module {module}"
        assert module in MODULES, f"`python -m {module}`: map it to its test in MODULES"
        test_node_exists(MODULES[module])


@pytest.mark.parametrize("target", sorted(MAKE_RUNS))
def test_make_target_runs_what_the_readme_says(target: str) -> None:
    dry = subprocess.run(
        ["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert dry.returncode == 0, dry.stderr
    for part in MAKE_RUNS[target]:
        assert part in dry.stdout, (target, part, dry.stdout)


def _cli_help(words: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main([*words, "--help"])
    assert exited.value.code == 0, words
    return capsys.readouterr().out


def test_every_rollgraph_command_names_a_command_and_options_it_has(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Mapped commands and commands in the prose are not run here: their (sub)command and every
    option they pass must at least be in ``rollgraph ... --help``."""
    inline = re.findall(r"`(rollgraph [^`]*)`", prose())
    bare = (re.sub(r"^(\w+=\S+ )+", "", c.text) for b in blocks() for c in commands(b))
    shown = [command for command in bare if command.startswith("rollgraph ")]
    assert len(inline) >= 5, inline
    for command in [*inline, *shown]:
        words = shlex.split(command.replace("\n", " "))[1:]
        path = list(itertools.takewhile(lambda w: re.fullmatch(r"[a-z][a-z-]*", w), words))
        text = _cli_help(path, capsys)
        for option in (w.split("=")[0] for w in words if w.startswith("--")):
            assert option in text, f"`{command}`: rollgraph {' '.join(path)} has no {option}"


def test_paths_the_readme_names_exist() -> None:
    """Every backticked path under one of the repository's own directories exists."""
    top = {p.name for p in ROOT.iterdir()} - {".venv", "var", ".git"}
    named = re.findall(r"`((?:[\w.-]+/)+[\w.-]*)[^`]*`", README.read_text(encoding="utf-8"))
    ours = [path for path in named if path.split("/")[0] in top]
    assert len(ours) >= 40, ours
    missing = [path for path in ours if not (ROOT / path).exists()]
    assert not missing, f"the README names paths that do not exist: {missing}"


def test_rollgraph_variables_the_readme_names_are_read() -> None:
    """Every ``ROLLGRAPH_*`` variable is a setting, or read by name elsewhere in the code (the
    CLI's ``ROLLGRAPH_URL``)."""
    named = set(re.findall(r"\bROLLGRAPH_[A-Z0-9_]*[A-Z0-9]\b", README.read_text(encoding="utf-8")))
    assert len(named) >= 20, named
    code = "".join(
        path.read_text(encoding="utf-8")
        for package in ("control_plane", "engine", "demos")
        for path in (ROOT / package).rglob("*.py")
    )
    unread = {name for name in named - known_variables() if f'"{name}"' not in code}
    assert not unread, f"the README names variables nothing reads: {sorted(unread)}"
