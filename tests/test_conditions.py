"""The ``when`` language: comparisons, boolean logic, define-time types, hostile input, runs."""

from __future__ import annotations

import asyncio
import textwrap
from typing import Any

import pytest

import engine
from engine.conditions import MAX_CONDITION_CHARS, compile_condition
from engine.errors import Problem


def problems(when: str, inputs: dict[str, Any] | None = None) -> list[Problem]:
    spec = {
        "name": "w",
        "inputs": inputs
        or {
            "n": "number",
            "i": "integer",
            "t": "text",
            "b": "boolean",
            "j": "json",
            "tags": "list[text]",
        },
        "nodes": {
            "a": {"uses": "template", "with": {"text": "x"}},
            "b": {"uses": "template", "with": {"text": "y"}, "when": when},
        },
    }
    return [p for p in engine.check(spec) if p.severity == "error"]


def codes(when: str) -> list[str]:
    return [p.code for p in problems(when)]


@pytest.mark.parametrize(
    "when",
    [
        "${inputs.b}",
        "not ${inputs.b}",
        "${inputs.n} >= 0.7",
        "${inputs.i} < 3 and ${inputs.n} != -1.5e3",
        '${inputs.t} == "violence"',
        "${inputs.t} == 'it\\'s'",
        '${inputs.b} and not (${inputs.i} > 3 or ${inputs.t} in ["a", "b"])',
        '"x" in ${inputs.tags}',
        '${inputs.t} not in ["a"]',
        '"vio" in ${inputs.t}',
        "${inputs.j} > 2",
        "${inputs.j}",
        "${inputs.t} == null",
        "${a.text} == ${inputs.t}",
        "((((${inputs.b}))))",
        "true",
    ],
)
def test_well_typed_conditions_are_accepted(when: str) -> None:
    assert problems(when) == []


@pytest.mark.parametrize(
    ("when", "code", "fragment"),
    [
        ('${inputs.n} == "7"', "type_mismatch", "number is never equal to text"),
        ("${inputs.b} < true", "type_mismatch", "booleans have no order"),
        ("${inputs.t} > 3", "type_mismatch", "cannot order text against integer"),
        ("${inputs.t}", "type_mismatch", "text, not a boolean"),
        ("${inputs.i} and ${inputs.b}", "type_mismatch", "integer, not a boolean"),
        ("3 in ${inputs.tags}", "type_mismatch", "never an element"),
        ("${inputs.n} in ${inputs.t}", "type_mismatch", "only text is found in text"),
        ("${inputs.b} in ${inputs.n}", "type_mismatch", "needs a list or text"),
        ("${inputs.n} >= nan", "bad_when", "NaN and infinity are not numbers"),
        ("${inputs.n} >= 1e999", "bad_when", "not a finite number"),
        ("${inputs.n} >= ", "bad_when", "ends where a value was expected"),
        ("${inputs.n} >= 1)", "bad_when", "unexpected ')'"),
        ("(${inputs.b}", "bad_when", "expected ')'"),
        ("${inputs.b} && true", "bad_when", "unexpected '&&"),
        ("${inputs.n} == [${inputs.i}]", "bad_when", "holds literals only"),
        ('${inputs.t} == "a\\q"', "bad_when", "unknown escape"),
        ("${inputs}", "bad_when", "names no output"),
        ("   ", "bad_when", "empty condition"),
    ],
)
def test_ill_typed_or_malformed_conditions_are_problems(
    when: str, code: str, fragment: str
) -> None:
    found = problems(when)
    assert [p.code for p in found] == [code], found
    assert found[0].location == "nodes.b.when"
    assert fragment in found[0].message, found[0].message


def test_unknown_references_suggest_the_close_name() -> None:
    found = problems("${a.txt} == 'x' and ${inputs.nn} > 1")
    by_code = {p.code: p.message for p in found}
    assert "did you mean a.text?" in by_code["unknown_output"]
    assert "did you mean inputs.n?" in by_code["unknown_input"]
    found = problems("${aa.text} == 'x'")
    assert [p.code for p in found] == ["unknown_node"]
    assert "did you mean a?" in found[0].message


def test_problems_carry_the_line_of_the_when() -> None:
    source = textwrap.dedent(
        """\
        name: w
        inputs: {score: number}
        nodes:
          a:
            uses: template
            with: {text: x}
            when: '${inputs.score} >= "high"'
        """
    )
    (problem,) = [p for p in engine.check(source) if p.severity == "error"]
    assert problem.code == "type_mismatch" and problem.line == 7


@pytest.mark.parametrize(
    "when",
    [
        "(" * 20_000 + "${inputs.b}" + ")" * 20_000,
        "not " * 5_000 + "${inputs.b}",
        '"' + "x" * 10_000_000 + '"',
        "(" * 40 + "${inputs.b}" + ")" * 40,
        "not " * 40 + "${inputs.b}",
        "[" * 40,
    ],
)
def test_hostile_conditions_are_clear_problems(when: str) -> None:
    found = problems(when)
    assert [p.code for p in found] == ["bad_when"], found
    message = found[0].message
    assert "over the limit" in message or "nested more than" in message or "literals" in message


def test_the_condition_is_never_evaluated_as_python() -> None:
    deps: set[str] = set()
    resolve, found = compile_condition("__import__('os').system('true')", lambda r: None, deps)
    assert resolve is None and found[0][0] == "bad_when"
    resolve, found = compile_condition("x" * (MAX_CONDITION_CHARS + 1), lambda r: None, deps)
    assert resolve is None and "over the limit" in found[0][1]


def run(spec: dict[str, Any], inputs: dict[str, Any]) -> engine.RunResult:
    async def go() -> engine.RunResult:
        async with engine.Engine(providers=[]) as eng:
            return await eng.run(eng.define(spec), inputs)

    return asyncio.run(go())


COMPARED: dict[str, Any] = {
    "name": "compared",
    "inputs": {"score": "number", "category": "text", "meta": "json"},
    "nodes": {
        "publish": {
            "uses": "template",
            "with": {"text": "published"},
            "when": '${inputs.score} >= 0.7 and ${inputs.category} != "violence"',
        },
        "review": {
            "uses": "template",
            "with": {"text": "review"},
            "when": 'not (${inputs.score} >= 0.7) or ${inputs.category} in ["violence", "gore"]',
        },
        "deep": {
            "uses": "template",
            "with": {"text": "deep"},
            "when": "${inputs.meta.level} > 2",
        },
    },
    "outputs": {"p": "${publish.text}", "r": "${review.text}", "d": "${deep.text}"},
}


@pytest.mark.parametrize(
    ("score", "category", "level", "expected"),
    [
        (0.9, "cats", 3, {"p": "published", "r": None, "d": "deep"}),
        (0.9, "violence", 1, {"p": None, "r": "review", "d": None}),
        (0.2, "cats", 2.5, {"p": None, "r": "review", "d": "deep"}),
    ],
)
def test_comparisons_decide_which_nodes_run(
    score: float, category: str, level: float, expected: dict[str, Any]
) -> None:
    result = run(COMPARED, {"score": score, "category": category, "meta": {"level": level}})
    assert result.status == "succeeded", result.error
    assert result.outputs == expected
    steps = result.trace.steps
    for name, out in (("publish", "p"), ("review", "r"), ("deep", "d")):
        if expected[out] is None:
            assert steps[name].status == "skipped"
            assert steps[name].reason == f"when {COMPARED['nodes'][name]['when']!r} is false"


def test_a_json_value_of_the_wrong_type_fails_the_step_not_the_engine() -> None:
    result = run(COMPARED, {"score": 0.9, "category": "x", "meta": {"level": "high"}})
    assert result.status == "failed"
    step = result.trace.steps["deep"]
    assert step.status == "failed" and step.error_code == "bad_input"
    assert "cannot order text 'high' and number 2" in (step.error or "")
    missing = run(COMPARED, {"score": 0.9, "category": "x", "meta": {}})
    assert missing.trace.steps["deep"].error_code == "bad_input"
