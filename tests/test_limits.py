"""Bounds on work: each amplification the issue measured is refused cleanly, with the limit named.

Before: a 400,000-item ``map`` took 13 s and 480 MB; 60 KB of template produced a 100 MB
response; a 10,000-node definition took 5-9 s of a replica to apply; a 1,000-node chain whose
names sort against its data flow, and YAML aliases nesting each other 1,500 levels deep, were
RecursionErrors (500s). Now a definition over a bound is a 422 (a CLI error) naming it, and a
run over one fails with a step error ``too_large``, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

import engine
from control_plane.cli import main
from control_plane.runs.compiler import engine_limits
from control_plane.settings import Settings, settings_problem
from tests.fixtures import app_client, apply

JSON_INPUT = {"type": "json", "required": False}
JSON = {"content-type": "application/json"}


def wide(nodes: int) -> dict[str, Any]:
    """``nodes`` independent template nodes (the cheapest kind), as a definition."""
    return {
        "name": "wide",
        "inputs": {"p": "text"},
        "nodes": {
            f"n{i}": {"uses": "template", "with": {"text": "${inputs.p}"}} for i in range(nodes)
        },
    }


def reverse_chain(nodes: int) -> dict[str, Any]:
    """A chain n0000 ← n0001 ← ... whose names sort against the data flow: a depth-first
    search from the first name walks the whole chain."""
    spec: dict[str, Any] = {}
    for i in range(nodes):
        source = f"${{n{i + 1:04d}.text}}" if i < nodes - 1 else "${inputs.p}"
        spec[f"n{i:04d}"] = {"uses": "template", "with": {"text": source}}
    return {
        "name": "chain",
        "inputs": {"p": "text"},
        "nodes": spec,
        "outputs": {"o": "${n0000.text}"},
    }


def mapped(items: Any) -> dict[str, Any]:
    return {
        "name": "fan",
        "inputs": {"xs": JSON_INPUT},
        "nodes": {
            "each": {
                "uses": "map",
                "with": {
                    "items": items,
                    "node": {
                        "uses": "template",
                        "with": {"text": "a{v}", "values": {"v": "${item}"}},
                    },
                },
            }
        },
        "outputs": {"results": "${each.results}"},
    }


AMPLIFY = {  # 60 KB of placeholders, each standing for the whole prompt
    "name": "amplify",
    "inputs": {"p": "text"},
    "nodes": {
        "fill": {
            "uses": "template",
            "with": {"text": "{x}" * 20_000, "values": {"x": "${inputs.p}"}},
        }
    },
    "outputs": {"text": "${fill.text}"},
}
INTERPOLATE = {  # the same through a parameter's own ${...} interpolation
    "name": "interpolate",
    "inputs": {"p": "text"},
    "nodes": {"fill": {"uses": "template", "with": {"text": "${inputs.p}," * 300}}},
    "outputs": {"text": "${fill.text}"},
}
ECHO = {
    "name": "echo",
    "inputs": {"data": JSON_INPUT},
    "nodes": {"note": {"uses": "template", "with": {"text": "ok"}}},
    "outputs": {"data": "${inputs.data}", "note": "${note.text}"},
}


def alias_chain(levels: int) -> str:
    """YAML whose anchors nest each other's aliases: 60 levels of text each, ``levels`` deep."""
    lines = ["name: aliased", "nodes: {}", "a0: &a0 " + "[" * 60 + "]" * 60]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} " + "[" * 60 + f"*a{i - 1}" + "]" * 60)
    return "\n".join(lines) + "\n"


def run(definition: Any, inputs: dict[str, Any], limits: engine.Limits | None = None) -> Any:
    async def go() -> engine.RunResult:
        async with engine.Engine(providers=[], limits=limits) as eng:
            return await eng.run(definition, inputs)

    return asyncio.run(go())


def failed_step(result: engine.RunResult, node: str) -> dict[str, Any]:
    assert result.status == "failed"
    assert result.outputs is None
    step: dict[str, Any] = next(s for s in result.trace.to_json()["steps"] if s["node"] == node)
    assert step["status"] == "failed"
    return step


def problem_of(source: Any, limits: engine.Limits | None = None) -> engine.Problem:
    problems = [p for p in engine.check(source, limits=limits) if p.severity == "error"]
    assert len(problems) == 1, problems
    return problems[0]


# -- the engine -------------------------------------------------------------------------------


def test_limits_must_be_positive_integers() -> None:
    with pytest.raises(ValueError, match="max_nodes must be a positive integer"):
        engine.Limits(max_nodes=0)
    with pytest.raises(ValueError, match="max_map_items"):
        engine.Limits(max_map_items=True)


def test_a_map_over_the_limit_fails_before_any_element_runs() -> None:
    result = run(mapped("${inputs.xs}"), {"xs": list(range(400_000))})
    step = failed_step(result, "each")
    assert step["error_code"] == "too_large"
    assert "400,000 items, more than the limit of 10,000" in step["error"]
    assert step["attempts"] == 0  # refused when its parameters were read
    at_limit = run(mapped("${inputs.xs}"), {"xs": [1, 2, 3]}, engine.Limits(max_map_items=3))
    assert at_limit.outputs == {"results": ["a1", "a2", "a3"]}


def test_a_literal_map_over_the_limit_is_a_definition_problem() -> None:
    problem = problem_of(mapped(list(range(11))), engine.Limits(max_map_items=10))
    assert (problem.code, problem.location) == ("too_large", "nodes.each.with.items")
    assert "11 items, more than the limit of 10" in problem.message


def test_map_results_are_bounded_like_a_response() -> None:
    limits = engine.Limits(max_response_bytes=2_000)
    step = failed_step(run(mapped("${inputs.xs}"), {"xs": ["y" * 100] * 50}, limits), "each")
    assert step["error_code"] == "too_large" and "larger than 2,000 bytes" in step["error"]


@pytest.mark.parametrize("definition", [AMPLIFY, INTERPOLATE], ids=["template", "interpolation"])
def test_template_amplification_is_refused_before_the_text_is_built(
    definition: dict[str, Any],
) -> None:
    result = run(definition, {"p": "y" * 5_000})  # 100 MB, or 1.5 MB, if built
    step = failed_step(result, "fill")
    assert step["error_code"] == "too_large"
    assert "more than 1,048,576 bytes" in step["error"]
    assert "ROLLGRAPH_MAX_TEMPLATE_BYTES" in step["error"]
    small = run(definition, {"p": "y"}, engine.Limits(max_template_bytes=20_000))
    assert small.ok  # the same graph within the bound


def test_a_map_elements_interpolation_is_bounded_too() -> None:
    definition = mapped("${inputs.xs}")
    definition["nodes"]["each"]["with"]["node"] = {
        "uses": "template",
        "with": {"text": "${item}," * 100},
    }
    limits = engine.Limits(max_template_bytes=10_000)
    step = failed_step(run(definition, {"xs": ["a", "b" * 200]}, limits), "each")
    assert step["error_code"] == "too_large" and "more than 10,000 bytes" in step["error"]


def test_outputs_larger_than_the_response_limit_fail_the_run() -> None:
    limits = engine.Limits(max_response_bytes=10_000)
    result = run(ECHO, {"data": {"text": "é" * 6_000}}, limits)  # 12,000 bytes of UTF-8
    assert result.status == "failed" and result.outputs is None
    assert result.trace.error_code == "too_large"
    assert "larger than 10,000 bytes" in str(result.error)
    assert run(ECHO, {"data": {"text": "é" * 4_000}}, limits).ok


def test_a_graph_over_the_node_limit_is_refused_as_it_is_read() -> None:
    problem = problem_of(json.dumps(wide(10_000)))
    assert (problem.code, problem.location) == ("too_large", "nodes")
    assert (
        "more than 1,000 nodes" in problem.message and "'n1000' is number 1,001" in problem.message
    )
    as_mapping = problem_of(wide(1_001))  # no text to count: counted once parsed
    assert "1,001 nodes, more than the limit of 1,000" in as_mapping.message
    assert engine.define(json.dumps(wide(1_000))).nodes  # at the limit


def test_a_graph_over_the_edge_limit_is_refused() -> None:
    definition = wide(4)
    definition["nodes"]["join"] = {
        "uses": "template",
        "with": {"text": "${n0.text}${n1.text}${n2.text}${n3.text}"},
    }
    problem = problem_of(definition, engine.Limits(max_edges=3))
    assert problem.code == "too_large"
    assert "4 edges (references between nodes), more than the limit of 3" in problem.message
    assert not [p for p in engine.check(definition, limits=engine.Limits(max_edges=4))]


def test_a_long_chain_against_name_order_compiles_and_runs() -> None:
    result = run(reverse_chain(1_000), {"p": "x"})
    assert result.ok and result.outputs == {"o": "x"}


def test_aliases_that_nest_deeper_than_the_bound_are_too_deep() -> None:
    problem = problem_of(alias_chain(25))  # 1,500 levels once the aliases are expanded
    assert problem.code == "too_deep" and problem.line is not None
    assert "counting what its YAML aliases stand for" in problem.message


# -- the control plane ------------------------------------------------------------------------


def test_settings_give_the_engine_its_limits_and_refuse_bad_ones() -> None:
    settings = Settings(env="dev", max_nodes=5, max_map_items=7, max_response_bytes=100)
    limits = engine_limits(settings)
    assert (limits.max_nodes, limits.max_map_items, limits.max_response_bytes) == (5, 7, 100)
    with pytest.raises(ValidationError) as caught:
        Settings(env="dev", max_template_bytes=0)
    assert settings_problem(caught.value).startswith("ROLLGRAPH_MAX_TEMPLATE_BYTES:")


def test_applying_oversized_or_over_deep_definitions_is_a_422_naming_the_limit(
    api: TestClient,
) -> None:
    cases = {
        "10,000 nodes": (json.dumps(wide(10_000)), "nodes", "too_large"),
        "aliases 1,500 deep": (alias_chain(25), None, "too_deep"),
    }
    for name, (source, location, code) in cases.items():
        response = api.post("/v1/workflows", json={"source": source})
        assert response.status_code == 422, (name, response.text)
        body = response.json()["error"]
        assert body["code"] == "invalid_definition", name
        [problem] = body["problems"]
        assert problem["code"] == code, name
        if location is not None:
            assert problem["location"] == location
    assert api.get("/v1/workflows").json() == []  # nothing stored


def test_a_long_chain_is_applied_and_run(api: TestClient) -> None:
    created = apply(api, json.dumps(reverse_chain(1_000)), version="v1")
    assert created["created"] is True
    response = api.post("/v1/run", json={"workflow": "chain", "version": "v1", "input": {"p": "x"}})
    assert response.status_code == 200, response.text
    assert response.json()["outputs"] == {"o": "x"}


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_runs_over_a_limit_fail_cleanly_with_small_answers(
    database_url: str, admin_key: str, mode: str
) -> None:
    with app_client(database_url, admin_key, max_response_bytes=50_000) as api:
        for definition in (mapped("${inputs.xs}"), AMPLIFY, ECHO):
            apply(api, json.dumps(definition), version="v1")
        requests = {
            "fan": ({"xs": [0] * 400_000}, "each", "400,000 items, more than the limit of 10,000"),
            "amplify": ({"p": "y" * 5_000}, "fill", "more than 1,048,576 bytes"),
            "echo": ({"data": ["z" * 60_000]}, None, "larger than 50,000 bytes"),
        }
        for workflow, (inputs, node, says) in requests.items():
            body = {"workflow": workflow, "version": "v1", "input": inputs, "mode": mode}
            compact = json.dumps(body, separators=(",", ":"))  # 800 KB: under the body limit
            response = api.post("/v1/run", content=compact, headers=JSON)
            assert response.status_code == (200 if mode == "sync" else 202), response.text
            assert len(response.content) < 10_000  # not the 100 MB it would have been
            stored = wait_finished(api, response.json()["run_id"])
            assert stored["status"] == "failed", workflow
            assert says in stored["error"], (workflow, stored["error"])
            trace = stored["trace"]
            if node is None:
                assert trace["error_code"] == "too_large"
            else:
                [step] = [s for s in trace["steps"] if s["node"] == node]
                assert step["error_code"] == "too_large", workflow


def wait_finished(api: TestClient, run_id: str) -> dict[str, Any]:
    for _ in range(500):
        response = api.get(f"/v1/runs/{run_id}")
        assert response.status_code == 200, response.text
        run: dict[str, Any] = response.json()
        if run["finished_at"] is not None:
            return run
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} did not finish")


def test_the_cli_names_the_limit_without_a_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cases = {
        "big.json": (json.dumps(wide(10_000)), "more than 1,000 nodes", "[too_large]"),
        "aliases.yaml": (alias_chain(25), "nested deeper than 64 levels", "[too_deep]"),
    }
    for name, (text, says, code) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        assert main(["validate", str(path)]) == 1
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        assert says in err and code in err, err
