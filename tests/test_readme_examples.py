"""What the README shows or states about the code, beyond its commands: its Python blocks run
(the node-kind decorator, the engine with its step cache; the client block runs against the server
in ``tests/test_readme_commands.py``), the output it shows for ``rollgraph validate``, its list of
definition codes, its node-kinds table and the settings' defaults it gives."""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import AliasChoices

import engine
from control_plane.cli import main
from control_plane.settings import Settings
from engine.spec import NodeSpec, RetrySpec, WorkflowSpec
from tests.fixtures import app_client
from tests.readme import README, ROOT, Block, blocks, commands
from tests.test_dashboards import Exported, exported  # noqa: F401 (its fixture, used by name)

__all__ = ["PYTHON_BLOCKS", "python_block", "run_python"]

# A broken.yaml that has the README's two problems on the lines it shows (11 and 19).
BROKEN = """\
name: broken
inputs:
  prompt: text
nodes:
  enhance:
    uses: prompt.enhance
    with: {model: sim/writer-large, prompt: "${inputs.prompt}"}
  video:
    uses: video.generate
    with:
      prompt: "${enhance.txt}"
      model: sim/video-fast
  voice:
    uses: audio.tts
    with: {model: sim/voice-warm, script: "${enhance.text}"}
  cut:
    uses: media.compose
    with:
      video: "${voice.audio}"
      audio: "${voice.audio}"
outputs:
  video: "${cut.video}"
  raw: "${video.video}"
"""

# The README's Python blocks, told apart by what they show; each is run by one test below.
PYTHON_BLOCKS = {
    "@engine.node_kind": (
        "tests/test_readme_examples.py::test_readme_python_node_kind_block_adds_a_kind"
    ),
    "engine.Engine(": (
        "tests/test_readme_examples.py::test_readme_python_engine_block_runs_and_resumes"
    ),
    "SyncClient(": "tests/test_readme_commands.py::test_readme_commands_run_against_a_server",
}


def python_block(shows: str) -> Block:
    """The one Python block of the README that contains ``shows``."""
    (block,) = [b for b in blocks() if b.lang == "python" and shows in b.text]
    return block


def run_python(block: Block, namespace: dict[str, object], text: str | None = None) -> None:
    """Run a block as a notebook would: top-level ``await`` and ``async with`` allowed."""
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    code = compile(block.text if text is None else text, block.where(), "exec", flags=flags)
    result = eval(code, namespace)
    if inspect.iscoroutine(result):
        asyncio.run(result)


def test_readme_validate_output_is_what_validate_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (shown,) = [b for b in blocks() if b.lang == "text" and "rollgraph validate" in b.text]
    (command,) = commands(shown)
    printed = [line for line in shown.text.splitlines() if not line.startswith("$ ")]
    (tmp_path / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(command.text.split()[1:]) == 1
    out, err = capsys.readouterr()
    assert (out + err).splitlines() == printed


@pytest.mark.slow
def test_readme_python_engine_block_runs_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    (tmp_path / "var").mkdir()
    monkeypatch.chdir(tmp_path)
    shown: dict[str, object] = {}
    run_python(python_block("engine.Engine("), shown)
    result = shown["result"]
    assert result.ok and set(result.outputs) >= {"video"}, result  # type: ignore[attr-defined]
    assert (tmp_path / "var" / "steps.db").is_file()
    assert "sim://compose/" in capsys.readouterr().out


@pytest.mark.slow
def test_readme_python_node_kind_block_adds_a_kind() -> None:
    # In a process of its own: the decorator adds the kind to every engine of the process.
    use = (
        "name: shout\ninputs: {text: text}\nnodes:\n  up:\n    uses: text.upper\n"
        '    with: {text: "${inputs.text}"}\noutputs: {text: "${up.text}"}\n'
    )
    script = (
        python_block("@engine.node_kind").text
        + f"\nprint(engine.run_sync(engine.define({use!r}), {{'text': 'quiet'}}).outputs)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "{'text': 'QUIET'}"


def test_readme_lists_every_code_a_definition_can_get() -> None:
    """The README's "Codes:" list holds every code the define-time checks emit, and nothing the
    engine never names."""
    emitted: set[str] = set()
    checks = ("spec.py", "sourcemap.py", "typecheck.py", "validate.py", "map_plan.py")
    for name in (*checks, "branching.py", "coalesce.py"):
        text = (ROOT / "engine" / name).read_text(encoding="utf-8")
        emitted |= set(re.findall(r'(?:\.error|\.warning|\bProblem)\(\s*"([a-z_]+)"', text))
        emitted |= set(re.findall(r'\bcode = "([a-z_]+)"', text))
    found = re.search(r"^Codes: (.*?)\. A stable", README.read_text(encoding="utf-8"), re.S | re.M)
    assert found is not None, "no Codes: list in the README"
    listed = set(re.findall(r"`([a-z_]+)`", found.group(1)))
    assert len(emitted) >= 25, emitted
    assert not emitted - listed, f"codes the README does not list: {sorted(emitted - listed)}"
    engine_source = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "engine").rglob("*.py"))
    unknown = {code for code in listed if f'"{code}"' not in engine_source}
    assert not unknown, f"the README lists codes the engine never names: {sorted(unknown)}"


def test_node_kinds_table_is_the_engines_kinds() -> None:
    """Each row of "Node kinds" names a kind of the engine with its parameters (``?`` optional,
    ``(N)`` a default) and outputs, and every built-in kind has a row."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Node kinds") : text.index("**`http.json`'s allow-list.**")]
    rows = re.findall(r"^\| `([\w.]+)` \| (.*) → (.*) \|$", section, re.M)
    assert sorted(kind for kind, _, _ in rows) == sorted(engine.default_kinds.names())
    for name, inputs, outputs in rows:
        kind = engine.default_kinds.get(name)
        assert kind is not None
        shown = []
        for item in re.sub(r"`[^`]*`", "", inputs).split(","):
            found = re.match(r"\s*(\w+)(\?)?(?: \(([\d.]+)\))?", item)
            assert found is not None, (name, item)
            param, optional, default = found.groups()
            shown.append(param)
            spec = kind.inputs.get(param)
            assert spec is not None, f"{name} has no parameter {param}"
            assert spec.required == (optional is None and default is None), (name, param)
            assert default is None or float(default) == spec.default, (name, param)
        assert shown == list(kind.inputs), name
        assert re.findall(r"\w+", re.sub(r"\(.*\)", "", outputs)) == list(kind.outputs), name


UNITS = {None: 1.0, "s": 1.0, "h": 3600.0, "MiB": 1048576.0}


def _setting_defaults() -> dict[str, object]:
    defaults: dict[str, object] = {}
    for name, spec in Settings.model_fields.items():
        alias = spec.validation_alias
        names = alias.choices if isinstance(alias, AliasChoices) else [f"ROLLGRAPH_{name.upper()}"]
        defaults.update({str(choice): spec.default for choice in names})
    return defaults


def test_defaults_the_readme_gives_are_the_settings_defaults() -> None:
    """``ROLLGRAPH_X` (60 s)`` in the prose and the variables table's default column say what the
    settings default to."""
    text = README.read_text(encoding="utf-8")
    said = re.findall(
        r"(?<!\+ )`(ROLLGRAPH_[A-Z0-9_]+)`\)?(?:,|\s\()\s?([0-9][0-9.,]*)(?: (s|h|MiB)\b)?", text
    )
    for row in re.findall(r"^\| (`ROLLGRAPH_.*?) \| ([0-9][0-9., ]*) \|", text, re.M):
        names = re.findall(r"`(ROLLGRAPH_\w+)`", row[0].split(" (or ")[0])
        said += [(n, v, None) for n, v in zip(names, row[1].split(", "), strict=True)]
    assert len(said) >= 25, said
    defaults = _setting_defaults()
    for name, value, unit in said:
        assert name in defaults, f"{name} is no setting"
        stated = float(value.replace(",", "")) * UNITS[unit or None]
        assert defaults[name] == pytest.approx(stated), f"README: {name} {value} {unit or ''}"


def test_metrics_the_readme_lists_are_exported_with_their_labels(
    request: pytest.FixtureRequest,
) -> None:
    """Every metric of the "Metrics" section is exported (with the labels it shows), and every
    metric the app exports is in it (``exported`` is tests/test_dashboards.py's fixture)."""
    found: Exported = request.getfixturevalue("exported")
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Metrics") : text.index("No label carries")]
    listed = re.findall(r"`([a-z][a-z0-9_]*[a-z])(?:\{([a-z_,]+)\})?`", section)
    assert len(listed) >= 20, listed
    for name, labels in listed:
        full = f"rollgraph_{name}"
        assert full in found, f"README lists {full}, which is not exported"
        assert set(labels.split(",")) - {""} <= found[full], (full, found[full])
    shown = {f"rollgraph_{name}" for name, _ in listed}
    families = {re.sub(r"_(bucket|sum|count|created)$", "", sample) for sample in found}
    missing = {name for name in families if name.startswith("rollgraph_")} - shown
    assert not missing, f"exported but not in the README's Metrics: {sorted(missing)}"


def test_routes_the_readme_names_exist_with_their_query_parameters(tmp_path: Path) -> None:
    """Every ``METHOD /path?query`` in the README is a route of the app (path parameters by
    position), and every query parameter it shows is one the route takes."""
    named = re.findall(
        r"\b(GET|POST|PUT|DELETE|PATCH)\s+(/[\w/{}.-]*)(?:\?([^`\s]*))?", README.read_text("utf-8")
    )
    assert len(named) >= 15, named
    key = "rgk" + secrets.token_urlsafe(32)
    with app_client(f"sqlite:///{tmp_path / 'rg.db'}", key, run_engine=None) as client:
        queries: dict[tuple[str, str], set[str]] = {}
        for path, operations in client.get("/openapi.json").json()["paths"].items():
            for method, operation in operations.items():
                where = (method.upper(), re.sub(r"\{[^}]*\}", "{}", path))
                params = operation.get("parameters", [])
                queries[where] = {p["name"] for p in params if p["in"] == "query"}
        for method, path, query in named:
            where = (method, re.sub(r"\{[^}]*\}", "{}", path))
            if where not in queries:  # outside the schema (/metrics): it answers
                answer = client.request(method, path)
                assert answer.status_code not in (404, 405), f"README: {method} {path}"
                continue
            asked = {part.split("=")[0] for part in query.split("&") if part}
            assert asked <= queries[where], f"{method} {path}: {asked - queries[where]}"


def test_alerts_the_readme_names_are_the_rules_alerts() -> None:
    rules = yaml.safe_load((ROOT / "dashboards" / "prometheus" / "rules.yml").read_text("utf-8"))
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    named = set(re.findall(r"`(Rollgraph[A-Za-z]+)`", README.read_text(encoding="utf-8")))
    assert named == alerts


def test_workflow_reference_table_is_the_spec() -> None:
    """The "Reference" table names every field of a workflow and of a node, and nothing else;
    its retry example spells out the defaults."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Reference") : text.index("Types: ")]
    firsts = re.findall(r"^\| (.*?) \| ", section, re.M)[1:]  # after the header
    dotted = [name.split(".") for first in firsts for name in re.findall(r"`([^`]+)`", first)]
    named = {parts[0] for parts in dotted} | {parts[-1] for parts in dotted}
    fields = {
        spec.alias or name
        for model in (WorkflowSpec, NodeSpec)
        for name, spec in model.model_fields.items()
    }
    assert named == fields
    retry = re.search(r"^\| `retry` \| `\{(.*?)\}`", section, re.M)
    assert retry is not None
    shown = dict(item.split(": ") for item in retry.group(1).split(", "))
    defaults = RetrySpec()
    assert set(shown) == set(RetrySpec.model_fields)
    for name, value in shown.items():
        assert yaml.safe_load(value.split("\\|")[0]) == getattr(defaults, name), name


def test_layout_table_names_files_that_exist() -> None:
    """In the "Layout" table, names after a directory (`engine/` (`spec.py`)) are in it."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Layout") : text.index("## Development")]
    checked = 0
    for cell in re.findall(r"^\| .*? \| (.*) \|$", section, re.M)[1:]:
        base: Path | None = None
        for name in re.findall(r"`([^`]+)`", cell):
            if (ROOT / name).exists() and name.endswith("/"):
                base = ROOT / name
            elif base is not None and re.fullmatch(r"[\w.]+/?", name):
                assert (base / name).exists(), f"Layout: {base.relative_to(ROOT)}/{name}"
                checked += 1
    assert checked >= 8, checked
