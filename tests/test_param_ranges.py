"""Kind parameter ranges and literal templates: refused at define time when written out, and
at run time, before anything is billed, when they arrive through a reference."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest

import engine
from engine.errors import Problem
from engine.ranges import Range


def _workflow(with_: dict[str, Any], uses: str = "video.generate") -> dict[str, Any]:
    return {
        "name": "ranges",
        "inputs": {"secs": {"type": "number", "default": 8}},
        "nodes": {"clip": {"uses": uses, "with": with_}},
        "outputs": {"out": "${clip.video}" if uses == "video.generate" else "${clip.text}"},
    }


def _errors(source: Any) -> list[Problem]:
    return [p for p in engine.check(source) if p.severity == "error"]


@pytest.mark.parametrize("seconds", [0, -5, 600.5, 1e8, 1e308])
def test_video_seconds_outside_its_range_is_a_define_time_problem(seconds: float) -> None:
    (problem,) = _errors(_workflow({"model": "sim/video-fast", "prompt": "x", "seconds": seconds}))
    assert problem.code == "out_of_range"
    assert problem.location == "nodes.clip.with.seconds"
    assert "video.generate" in problem.message
    assert repr(seconds) in problem.message
    assert "0 < seconds ≤ 600" in problem.message


@pytest.mark.parametrize("seconds", [0.5, 8, 600])
def test_video_seconds_within_its_range_is_accepted(seconds: float) -> None:
    assert _errors(_workflow({"model": "sim/video-fast", "prompt": "x", "seconds": seconds})) == []


def test_text_parameters_are_bounded_and_every_problem_is_reported_with_its_line() -> None:
    source = textwrap.dedent(
        """\
        name: text-ranges
        nodes:
          write:
            uses: llm.generate
            with:
              model: sim/writer-small
              prompt: hello
              temperature: 7
              max_tokens: -4
        outputs: {text: "${write.text}"}
        """
    )
    problems = {p.location: p for p in _errors(source)}
    assert set(problems) == {"nodes.write.with.temperature", "nodes.write.with.max_tokens"}
    assert problems["nodes.write.with.temperature"].line == 8
    assert "0 ≤ temperature ≤ 2" in problems["nodes.write.with.temperature"].message
    assert problems["nodes.write.with.max_tokens"].line == 9
    assert "1 ≤ max_tokens ≤ 128000" in problems["nodes.write.with.max_tokens"].message


def test_a_json_definition_with_an_infinite_or_huge_number_is_refused() -> None:
    text = json.dumps(_workflow({"model": "sim/video-fast", "prompt": "x", "seconds": 1e308}))
    (problem,) = _errors(text)
    # YAML 1.1 reads `1e+308` as text; either way the definition is refused at that parameter.
    assert problem.code in {"out_of_range", "bad_value"}
    assert problem.location == "nodes.clip.with.seconds"
    # NaN is not a number at all: the type check refuses it first.
    nan = json.dumps(_workflow({"model": "sim/video-fast", "prompt": "x", "seconds": 0})).replace(
        '"seconds": 0', '"seconds": NaN'
    )
    assert [p.code for p in _errors(nan)] != []


def test_a_map_inner_node_literal_is_checked_too() -> None:
    source = {
        "name": "m",
        "nodes": {
            "clips": {
                "uses": "map",
                "with": {
                    "items": ["a", "b"],
                    "node": {
                        "uses": "video.generate",
                        "with": {"model": "sim/video-fast", "prompt": "${item}", "seconds": -1},
                    },
                },
            }
        },
        "outputs": {"out": "${clips.results}"},
    }
    (problem,) = _errors(source)
    assert problem.code == "out_of_range"
    assert problem.location == "nodes.clips.with.node.with.seconds"


@pytest.mark.parametrize("seconds", [-5, 1e8, 1e308])
def test_a_referenced_value_out_of_range_fails_the_step_before_billing(
    seconds: float,
) -> None:
    source = _workflow({"model": "sim/video-fast", "prompt": "x", "seconds": "${inputs.secs}"})
    result = engine.run_sync(source, {"secs": seconds})
    assert result.status == "failed"
    step = result.trace.steps["clip"]
    assert step.error_code == "out_of_range"
    assert step.attempts == 0
    assert repr(float(seconds)) in (step.error or "") or repr(seconds) in (step.error or "")
    assert result.trace.cost_usd == 0.0


def test_a_referenced_value_in_range_runs_and_bills() -> None:
    source = _workflow({"model": "sim/video-fast", "prompt": "x", "seconds": "${inputs.secs}"})
    result = engine.run_sync(source, {"secs": 4.0e-4})
    assert result.status == "succeeded"
    assert result.trace.cost_usd == pytest.approx(4.0e-4 * 0.05)


def test_a_map_item_out_of_range_fails_before_it_is_billed() -> None:
    source = {
        "name": "m",
        "inputs": {"lengths": "list[number]"},
        "nodes": {
            "clips": {
                "uses": "map",
                "with": {
                    "items": "${inputs.lengths}",
                    "concurrency": 1,
                    "node": {
                        "uses": "video.generate",
                        "with": {"model": "sim/video-fast", "prompt": "p", "seconds": "${item}"},
                    },
                },
            }
        },
        "outputs": {"out": "${clips.results}"},
    }
    result = engine.run_sync(source, {"lengths": [1e9]})
    assert result.status == "failed"
    assert "outside its range" in (result.error or "")
    assert result.trace.cost_usd == 0.0


def test_templates_are_checked_against_their_placeholders_at_define_time() -> None:
    bad = _workflow({"text": "{a.__class__} and {b}", "values": {"a": 1}}, uses="template")
    codes = {p.code: p for p in _errors(bad)}
    assert set(codes) == {"template_unsupported", "template_missing_value"}
    assert "{b}" in codes["template_missing_value"].message
    assert codes["template_unsupported"].location == "nodes.clip.with.text"
    # Values from a reference: their keys are unknown until the run, so only access is checked.
    source = _workflow({"text": "{a} {b}", "values": "${inputs.secs}"}, uses="template")
    assert [p.code for p in _errors(source)] != ["template_missing_value"]
    fine = _workflow({"text": "{a} {{literal}}", "values": {"a": "${inputs.secs}"}}, "template")
    assert _errors(fine) == []


def test_a_range_describes_itself_and_rejects_non_finite_values() -> None:
    rng = Range(0, 600, low_open=True)
    assert rng.describe("s") == "0 < s ≤ 600"
    assert Range(low=1).describe("n") == "1 ≤ n"
    assert not rng.contains(float("inf"))
    assert not rng.contains(float("nan"))
    assert rng.problem("s", True) is None  # a boolean is the type check's to refuse
    assert engine.node_kinds.default_kinds.get("video.generate") is not None
    kind = engine.node_kinds.default_kinds.get("video.generate")
    assert kind is not None
    assert kind.to_json()["inputs"]["seconds"]["range"] == "0 < seconds ≤ 600"
