"""``switch`` routes a run down one branch and ``coalesce`` merges the branches again."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

import engine
from engine.errors import Problem

ROUTED: dict[str, Any] = {
    "name": "routed",
    "inputs": {"score": "number", "category": "text"},
    "nodes": {
        "route": {
            "uses": "switch",
            "with": {
                "cases": {
                    "unsafe": {
                        "when": '${inputs.category} in ["violence", "gore"]',
                        "then": ["block"],
                    },
                    "high": {"when": "${inputs.score} >= 0.7", "then": ["publish"]},
                },
                "default": ["draft"],
            },
        },
        "block": {"uses": "template", "with": {"text": "blocked"}},
        "publish": {"uses": "template", "with": {"text": "published"}},
        "announce": {"uses": "template", "with": {"text": "${publish.text}!"}},
        "draft": {"uses": "template", "with": {"text": "draft"}},
        "final": {
            "uses": "coalesce",
            "with": {"values": ["${block.text}", "${announce.text}", "${draft.text}"]},
        },
        "shout": {"uses": "template", "with": {"text": "${final.value}"}},
    },
    "outputs": {"final": "${shout.text}", "case": "${route.case}"},
}


def run(spec: dict[str, Any] | str, inputs: dict[str, Any]) -> engine.RunResult:
    async def go() -> engine.RunResult:
        async with engine.Engine(providers=[]) as eng:
            return await eng.run(eng.define(spec), inputs)

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("score", "category", "case", "final", "ran"),
    [
        (0.9, "cats", "high", "published!", {"publish", "announce"}),
        (0.9, "gore", "unsafe", "blocked", {"block"}),
        (0.1, "cats", "default", "draft", {"draft"}),
    ],
)
def test_the_switch_runs_one_branch_and_skips_the_others_with_a_reason(
    score: float, category: str, case: str, final: str, ran: set[str]
) -> None:
    result = run(ROUTED, {"score": score, "category": category})
    assert result.status == "succeeded", result.error
    assert result.outputs == {"final": final, "case": case}
    steps = result.trace.steps
    branch_of = {"block": "unsafe", "publish": "high", "draft": "default"}
    for node in ("block", "publish", "draft", "announce"):
        if node in ran:
            assert steps[node].status == "succeeded", node
        elif node in branch_of:
            assert steps[node].status == "skipped"
            assert steps[node].reason == (
                f"switch 'route' chose case {case!r}, not {branch_of[node]!r}"
            )
        else:  # downstream of a skipped head: today's skip propagation
            assert steps[node].status == "skipped"
            assert steps[node].reason == "upstream 'publish' was skipped"
    assert steps["route"].status == "succeeded"
    assert steps["final"].status == steps["shout"].status == "succeeded"


def test_a_value_switch_matches_case_names_or_match_literals() -> None:
    spec = {
        "name": "by-value",
        "inputs": {"kind": "text", "n": "integer"},
        "nodes": {
            "by_kind": {
                "uses": "switch",
                "with": {
                    "value": "${inputs.kind}",
                    "cases": {"cat": {"then": ["c"]}, "dog": {"then": "d"}},
                },
            },
            "by_n": {
                "uses": "switch",
                "with": {
                    "value": "${inputs.n}",
                    "cases": {"three": {"match": 3, "then": ["three"]}},
                },
            },
            "c": {"uses": "template", "with": {"text": "cat"}},
            "d": {"uses": "template", "with": {"text": "dog"}},
            "three": {"uses": "template", "with": {"text": "3"}},
        },
        "outputs": {"c": "${c.text}", "d": "${d.text}", "three": "${three.text}"},
    }
    result = run(spec, {"kind": "dog", "n": 3})
    assert result.outputs == {"c": None, "d": "dog", "three": "3"}
    result = run(spec, {"kind": "fish", "n": 4})
    assert result.outputs == {"c": None, "d": None, "three": None}
    assert result.trace.steps["c"].reason == "switch 'by_kind' chose case 'default', not 'cat'"


def test_a_branch_head_keeps_its_own_when() -> None:
    spec = copy.deepcopy(ROUTED)
    spec["nodes"]["publish"]["when"] = '${inputs.category} != "cats"'
    result = run(spec, {"score": 0.9, "category": "cats"})
    assert result.outputs == {"final": None, "case": "high"}
    steps = result.trace.steps
    assert steps["publish"].reason == "when '${inputs.category} != \"cats\"' is false"
    assert steps["final"].status == "skipped"
    assert steps["final"].reason == "none of 'block', 'announce', 'draft' ran"


def errors(spec: dict[str, Any]) -> list[Problem]:
    return [p for p in engine.check(spec) if p.severity == "error"]


def with_nodes(**nodes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(ROUTED)
    for name, node in nodes.items():
        if node is None:
            del spec["nodes"][name]
        else:
            spec["nodes"][name] = node
    return spec


def test_the_routed_example_is_clean() -> None:
    assert errors(ROUTED) == []
    wf = engine.define(ROUTED, providers=[])
    assert wf.output_types["final"].name == "text"  # coalesce of three texts is text


@pytest.mark.parametrize(
    ("change", "code", "location", "fragment"),
    [
        (
            {
                "route": {
                    "uses": "switch",
                    "with": {"cases": {"a": {"when": "true", "then": ["publsh"]}}},
                }
            },
            "unknown_node",
            "nodes.route.with.cases.a.then",
            "did you mean publish?",
        ),
        (
            {
                "route": {
                    "uses": "switch",
                    "with": {
                        "cases": {"a": {"when": "true", "then": ["draft"]}},
                        "default": ["draft"],
                    },
                }
            },
            "duplicate_branch",
            "nodes.route.with.default",
            "already in case 'a'",
        ),
        (
            {
                "route": {
                    "uses": "switch",
                    "with": {"cases": {"a": {"when": "${inputs.score}", "then": []}}},
                }
            },
            "type_mismatch",
            "nodes.route.with.cases.a.when",
            "number, not a boolean",
        ),
        (
            {
                "route": {
                    "uses": "switch",
                    "with": {
                        "value": "${inputs.score}",
                        "cases": {"a": {"match": "x", "then": []}},
                    },
                }
            },
            "type_mismatch",
            "nodes.route.with.cases.a.match",
            "never equals",
        ),
        (
            {"route": {"uses": "switch", "with": {"cases": {"a": {"then": []}}}}},
            "bad_value",
            "nodes.route.with.cases.a",
            "needs `when:`",
        ),
        (
            {"route": {"uses": "switch", "with": {"cases": {"a": {"when": "true", "thn": []}}}}},
            "unknown_field",
            "nodes.route.with.cases.a.thn",
            "did you mean then?",
        ),
        (
            {"route": {"uses": "switch", "with": {"case": {}}}},
            "unknown_param",
            "nodes.route.with.case",
            "did you mean cases?",
        ),
        (
            {
                "route": {
                    "uses": "switch",
                    "with": {"cases": {"default": {"when": "true", "then": []}}},
                }
            },
            "bad_value",
            "nodes.route.with.cases.default",
            "names the switch's default",
        ),
        (
            {
                "final": {
                    "uses": "coalesce",
                    "with": {"values": ["${block.text}", "${inputs.score}"]},
                }
            },
            "type_mismatch",
            "nodes.final.with.values",
            "${block.text} is text, ${inputs.score} is number",
        ),
        (
            {"final": {"uses": "coalesce", "with": {"values": ["${block.text}"]}}},
            "bad_value",
            "nodes.final.with.values",
            "two or more references",
        ),
        (
            {"final": {"uses": "template", "with": {"text": "${block.text} ${draft.text}"}}},
            "branch_conflict",
            "nodes.final",
            "needs case 'unsafe' and case 'default' of switch 'route'",
        ),
        (
            {"draft": {"uses": "template", "with": {"text": "${publish.text}"}}},
            "branch_conflict",
            "nodes.draft",
            "only one case runs",
        ),
        (
            {
                "route": {
                    "uses": "switch",
                    "with": {"cases": {"a": {"when": "${block.text} == 'x'", "then": ["block"]}}},
                }
            },
            "cycle",
            "nodes.block",
            "cycle: ",
        ),
    ],
)
def test_switch_and_coalesce_are_checked_when_defined(
    change: dict[str, Any], code: str, location: str, fragment: str
) -> None:
    found = [p for p in errors(with_nodes(**change)) if p.code == code]
    assert found, errors(with_nodes(**change))
    assert found[0].location == location
    assert fragment in found[0].message, found[0].message


def test_coalesce_types_flow_downstream() -> None:
    spec = with_nodes(
        shout={
            "uses": "video.generate",
            "with": {
                "model": "sim/video-fast",
                "prompt": "${final.value}",
                "image": "${final.value}",
            },
        }
    )
    found = [p for p in errors(spec) if p.location.startswith("nodes.shout")]
    assert [p.code for p in found] == ["type_mismatch"], found
    assert "${final.value} is text but this parameter takes image" in found[0].message


def test_a_coalesce_can_head_a_branch_of_another_switch() -> None:
    spec = copy.deepcopy(ROUTED)
    spec["nodes"]["gate"] = {
        "uses": "switch",
        "with": {"value": "${inputs.category}", "cases": {"loud": {"then": ["final"]}}},
    }
    result = run(spec, {"score": 0.9, "category": "cats"})
    assert result.outputs == {"final": None, "case": "high"}
    assert result.trace.steps["final"].reason == "switch 'gate' chose case 'default', not 'loud'"
    assert result.trace.steps["shout"].reason == "upstream 'final' was skipped"
    result = run(spec, {"score": 0.1, "category": "loud"})
    assert result.outputs == {"final": "draft", "case": "default"}


def test_yaml_integer_case_names_and_a_branch_upstream_of_its_switch() -> None:
    source = """
name: numbered
inputs: {n: integer}
nodes:
  pick:
    uses: switch
    with:
      value: ${inputs.n}
      cases:
        1: {match: 1, then: [one]}
        2: {match: 2, then: [two]}
  one: {uses: template, with: {text: "one"}}
  two: {uses: template, with: {text: "two"}}
outputs: {one: "${one.text}", two: "${two.text}", case: "${pick.case}"}
"""
    assert run(source, {"n": 2}).outputs == {"one": None, "two": "two", "case": "2"}
    upstream = with_nodes(
        route={
            "uses": "switch",
            "with": {"value": "${block.text}", "cases": {"a": {"then": ["block"]}}},
        }
    )
    assert "cycle" in [p.code for p in errors(upstream)]


def test_a_resumed_run_keeps_the_case_and_reruns_only_the_failed_branch_step() -> None:
    kinds = engine.default_kinds.copy()
    calls: list[str] = []
    failing = {"publish"}

    @engine.node_kind("t.step", inputs={"text": "text"}, outputs={"text": "text"}, kinds=kinds)
    async def step(ctx: engine.NodeContext, params: dict[str, Any]) -> engine.NodeResult:
        calls.append(ctx.node)
        if ctx.node in failing:
            raise engine.NodeError("down for now", retryable=False)
        return engine.NodeResult({"text": params["text"]}, cost_usd=1.0)

    spec = copy.deepcopy(ROUTED)
    for name in ("block", "publish", "draft"):
        spec["nodes"][name] = {"uses": "t.step", "with": {"text": name}}

    async def go() -> tuple[engine.RunResult, engine.RunResult]:
        eng = engine.Engine(kinds=kinds, providers=[], cache=engine.MemoryStepCache())
        wf = eng.define(spec)
        first = await eng.run(wf, {"score": 0.9, "category": "cats"})
        failing.clear()
        second = await eng.resume(wf, first.run_id, {"score": 0.9, "category": "cats"})
        await eng.aclose()
        return first, second

    first, second = asyncio.run(go())
    assert first.status == "failed" and first.trace.steps["publish"].status == "failed"
    assert second.status == "succeeded", second.error
    assert second.outputs == {"final": "publish!", "case": "high"}
    assert calls == ["publish", "publish"]  # block and draft never ran, in either attempt
    assert second.trace.steps["route"].cache_hit is True
    assert second.trace.steps["draft"].reason == "switch 'route' chose case 'high', not 'default'"
    assert second.trace.cost_usd == 1.0
