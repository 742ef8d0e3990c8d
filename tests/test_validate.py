"""Define-time checks: every problem at once, each with location, line and an actionable message."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

import engine
from engine.errors import DefinitionError, Problem, ValidationError

PRODUCT_VIDEO = textwrap.dedent(
    """\
    name: product-video
    version: v3.3
    inputs:
      prompt: text
    nodes:
      enhance:
        uses: prompt.enhance
        with: {model: sim/writer-small, prompt: "${inputs.prompt}"}
      video:
        uses: video.generate
        with: {model: sim/video-fast, prompt: "${enhance.text}", seconds: 8}
        retry: {max_attempts: 3, backoff: exponential, initial_s: 0.5}
        timeout_s: 120
      voice:
        uses: audio.tts
        with: {model: sim/voice-warm, script: "${enhance.text}"}
      cut:
        uses: media.compose
        with: {video: "${video.video}", audio: "${voice.audio}"}
    outputs:
      video: "${cut.video}"
    """
)


def problems_of(source: Any) -> list[Problem]:
    return [p for p in engine.check(source) if p.severity == "error"]


def one(source: Any, code: str) -> Problem:
    found = [p for p in problems_of(source) if p.code == code]
    assert len(found) == 1, engine.check(source)
    return found[0]


def test_design_example_is_valid_and_runs_branches_after_enhance() -> None:
    wf = engine.define(PRODUCT_VIDEO)
    assert wf.name == "product-video" and wf.version == "v3.3"
    assert wf.nodes[engine.NodeId("video")].deps == {"enhance"}
    assert wf.nodes[engine.NodeId("cut")].deps == {"video", "voice"}
    assert str(wf.output_types["video"]) == "video"
    assert engine.check(PRODUCT_VIDEO) == []


def test_typo_in_output_reference_suggests_the_right_one_with_its_line() -> None:
    source = PRODUCT_VIDEO.replace('${enhance.text}", seconds', '${enhance.txt}", seconds')
    problem = one(source, "unknown_output")
    assert problem.location == "nodes.video.with.prompt"
    assert "did you mean enhance.text?" in problem.message
    assert problem.line == 11


def test_media_type_mismatch_is_rejected_at_define_time() -> None:
    source = PRODUCT_VIDEO.replace('video: "${video.video}"', 'video: "${voice.audio}"')
    problem = one(source, "type_mismatch")
    assert problem.location == "nodes.cut.with.video"
    assert "audio" in problem.message and "video" in problem.message


def test_every_problem_is_reported_at_once() -> None:
    source = {
        "name": "broken",
        "inputs": {"prompt": "text"},
        "nodes": {
            "a": {"uses": "prompt.enhanse", "with": {"prompt": "${inputs.prompt}"}},
            "b": {"uses": "llm.generate", "with": {"prompt": "${inputs.promt}"}},
            "c": {
                "uses": "llm.generate",
                "with": {"model": "sim/writer-small", "prompt": "${d.text}"},
            },
            "d": {
                "uses": "llm.generate",
                "with": {"model": "sim/writer-small", "prompt": "${c.text}"},
            },
        },
        "outputs": {"x": "${zz.text}"},
    }
    codes = sorted(p.code for p in problems_of(source))
    assert codes == [
        "cycle",
        "missing_param",
        "unknown_input",
        "unknown_kind",
        "unknown_node",
    ]
    by_code = {p.code: p for p in problems_of(source)}
    assert "did you mean prompt.enhance?" in by_code["unknown_kind"].message
    assert "did you mean inputs.prompt?" in by_code["unknown_input"].message
    assert "c → d → c" in by_code["cycle"].message
    assert by_code["missing_param"].location == "nodes.b.with.model"
    with pytest.raises(ValidationError) as err:
        engine.define(source)
    assert sum(p.severity == "error" for p in err.value.problems) == 5


def test_cycle_names_its_whole_path() -> None:
    node = {"uses": "template", "with": {"text": "${%s.text}"}}
    source = {
        "name": "loop",
        "nodes": {
            "a": {**node, "with": {"text": "${c.text}"}},
            "b": {**node, "with": {"text": "${a.text}"}},
            "c": {**node, "with": {"text": "${b.text}"}},
        },
    }
    problem = one(source, "cycle")
    assert "a → b → c → a" in problem.message


def test_self_reference_is_a_cycle() -> None:
    source = {"name": "s", "nodes": {"a": {"uses": "template", "with": {"text": "${a.text}"}}}}
    assert {p.code for p in problems_of(source)} == {"cycle"}


def test_unknown_and_misspelled_parameters() -> None:
    source = {
        "name": "p",
        "nodes": {
            "v": {
                "uses": "video.generate",
                "with": {"model": "sim/video-fast", "prompt": "x", "secnds": 4},
            }
        },
    }
    problem = one(source, "unknown_param")
    assert problem.location == "nodes.v.with.secnds"
    assert "did you mean seconds?" in problem.message


def test_literal_of_the_wrong_type() -> None:
    source = {
        "name": "p",
        "nodes": {
            "v": {
                "uses": "video.generate",
                "with": {"model": "sim/video-fast", "prompt": "x", "seconds": "eight"},
            }
        },
    }
    assert one(source, "bad_value").location == "nodes.v.with.seconds"


def test_unknown_model_and_provider() -> None:
    source = {
        "name": "m",
        "nodes": {
            "a": {"uses": "video.generate", "with": {"model": "sim/video-fats", "prompt": "x"}},
            "b": {"uses": "video.generate", "with": {"model": "nope/video", "prompt": "x"}},
            "c": {"uses": "video.generate", "with": {"model": "sim/writer-small", "prompt": "x"}},
            "d": {"uses": "video.generate", "with": {"model": "video-fast", "prompt": "x"}},
        },
    }
    problems = {p.location: p for p in problems_of(source)}
    assert "did you mean video-fast?" in problems["nodes.a.with.model"].message
    assert "no provider named 'nope'" in problems["nodes.b.with.model"].message
    assert "is a text model" in problems["nodes.c.with.model"].message
    assert "video-fast" in problems["nodes.c.with.model"].message
    assert "provider/model" in problems["nodes.d.with.model"].message


def test_media_cannot_be_written_into_text() -> None:
    source = PRODUCT_VIDEO.replace(
        'script: "${enhance.text}"', 'script: "Narrate ${video.video} now"'
    )
    assert one(source, "not_interpolatable").location == "nodes.voice.with.script"


def test_template_strings_and_json_paths() -> None:
    source = {
        "name": "t",
        "inputs": {"who": "text", "n": "integer"},
        "nodes": {
            "api": {"uses": "http.json", "with": {"url": "https://api.example.com/x"}},
            "say": {
                "uses": "template",
                "with": {"text": "Hi ${inputs.who}, #${inputs.n}: ${api.body.title}"},
            },
        },
        "outputs": {"text": "${say.text}", "title": "${api.body.title}"},
    }
    assert problems_of(source) == []
    bad = {**source, "outputs": {"x": "${say.text.first}"}}
    assert one(bad, "not_json").location == "outputs.x"


def test_when_must_reference_a_boolean() -> None:
    base: dict[str, Any] = {
        "name": "w",
        "inputs": {"go": "boolean", "label": "text"},
        "nodes": {"a": {"uses": "template", "with": {"text": "x"}, "when": "${inputs.go}"}},
    }
    assert problems_of(base) == []
    negated = {**base, "nodes": {"a": {**base["nodes"]["a"], "when": "not ${inputs.go}"}}}
    assert problems_of(negated) == []
    wrong = {**base, "nodes": {"a": {**base["nodes"]["a"], "when": "${inputs.label}"}}}
    assert one(wrong, "type_mismatch").location == "nodes.a.when"
    code = {**base, "nodes": {"a": {**base["nodes"]["a"], "when": "${inputs.go} and True"}}}
    assert one(code, "bad_when").location == "nodes.a.when"


def test_structure_errors_are_definition_errors_with_lines() -> None:
    source = "name: x\nnodes:\n  a:\n    uses: template\n    with: {text: hi}\n    retries: 3\n"
    with pytest.raises(DefinitionError) as err:
        engine.define(source)
    (problem,) = err.value.problems
    assert problem.code == "unknown_field" and problem.location == "nodes.a.retries"
    assert problem.line == 6


def test_yaml_syntax_error_and_duplicate_keys() -> None:
    with pytest.raises(DefinitionError) as err:
        engine.define("name: x\nnodes:\n  a: {uses: template\n")
    assert err.value.problems[0].code == "syntax" and err.value.problems[0].line is not None
    dup = "name: x\nnodes:\n  a: {uses: template, with: {text: a}}\n  a: {uses: template}\n"
    problems = engine.check(dup)
    assert [(p.code, p.line) for p in problems] == [("duplicate_key", 4)]


def test_bad_input_type_and_reserved_names() -> None:
    source = {
        "name": "r",
        "inputs": {"x": "vidoe"},
        "nodes": {"inputs": {"uses": "template", "with": {"text": "x"}}},
    }
    codes = {p.code for p in problems_of(source)}
    assert codes == {"bad_type", "reserved_name"}


def test_unused_node_is_a_warning_not_an_error() -> None:
    source = {
        "name": "u",
        "nodes": {
            "a": {"uses": "template", "with": {"text": "a"}},
            "orphan": {"uses": "template", "with": {"text": "b"}},
        },
        "outputs": {"a": "${a.text}"},
    }
    wf = engine.define(source)
    assert [(w.code, w.location, w.severity) for w in wf.warnings] == [
        ("unused_node", "nodes.orphan", "warning")
    ]


def test_fallback_values_are_checked() -> None:
    source = {
        "name": "f",
        "nodes": {
            "a": {
                "uses": "llm.generate",
                "with": {"model": "sim/writer-small", "prompt": "x"},
                "on_failure": {"fallback": {"txt": "n/a"}},
            }
        },
    }
    assert one(source, "unknown_output").location == "nodes.a.on_failure.fallback.txt"


def test_map_types_item_from_the_list_it_fans_out_over() -> None:
    source = {
        "name": "m",
        "inputs": {"topics": "list[text]"},
        "nodes": {
            "explain": {
                "uses": "map",
                "with": {
                    "items": "${inputs.topics}",
                    "concurrency": 2,
                    "node": {
                        "uses": "image.generate",
                        "with": {"model": "sim/image-fast", "prompt": "Draw ${item}"},
                    },
                },
            },
            "first": {"uses": "media.compose", "with": {"video": "${explain.results}"}},
        },
    }
    problem = one(source, "type_mismatch")
    assert problem.location == "nodes.first.with.video"
    assert "list[image]" in problem.message
    outside = {"name": "o", "nodes": {"a": {"uses": "template", "with": {"text": "${item}"}}}}
    assert one(outside, "item_outside_map").location == "nodes.a.with.text"


def test_digest_ignores_formatting_key_order_defaults_and_version() -> None:
    a = engine.define(PRODUCT_VIDEO)
    reordered = {
        "outputs": {"video": "${cut.video}"},
        "version": "v9",
        "nodes": {
            "cut": {
                "with": {"audio": "${voice.audio}", "video": "${video.video}"},
                "uses": "media.compose",
            },
            "voice": {
                "uses": "audio.tts",
                "with": {"script": "${enhance.text}", "model": "sim/voice-warm"},
                "on_failure": "fail",
            },
            "video": {
                "uses": "video.generate",
                "timeout_s": 120,
                "retry": {"max_attempts": 3, "initial_s": 0.5},
                "with": {"seconds": 8, "prompt": "${enhance.text}", "model": "sim/video-fast"},
            },
            "enhance": {
                "uses": "prompt.enhance",
                "with": {"prompt": "${inputs.prompt}", "model": "sim/writer-small"},
            },
        },
        "inputs": {"prompt": {"type": "text"}},
        "name": "product-video",
    }
    b = engine.define(reordered)
    assert a.digest == b.digest
    changed = engine.define(PRODUCT_VIDEO.replace("seconds: 8", "seconds: 9"))
    assert changed.digest != a.digest
    assert a.digest.startswith("sha256:") and len(a.digest) == len("sha256:") + 64


def test_validating_1000_nodes_reports_nothing_spurious() -> None:
    nodes: dict[str, Any] = {"n0": {"uses": "template", "with": {"text": "${inputs.x}"}}}
    for i in range(1, 1000):
        deps = [f"n{i - 1}"] + ([f"n{i // 2}"] if i > 2 else [])
        nodes[f"n{i}"] = {
            "uses": "template",
            "with": {"text": " ".join(f"${{{d}.text}}" for d in deps)},
        }
    wf = engine.define(
        {"name": "big", "inputs": {"x": "text"}, "nodes": nodes, "outputs": {"y": "${n999.text}"}}
    )
    assert len(wf.order) == 1000 and wf.warnings == ()


def test_yaml_aliases_work_but_cannot_expand_without_bound() -> None:
    dry = textwrap.dedent(
        """\
        name: x
        nodes:
          a:
            uses: llm.generate
            with: {model: sim/writer-small, prompt: hi}
            retry: &r {max_attempts: 5}
          b: {uses: llm.generate, with: {model: sim/writer-small, prompt: "${a.text}"}, retry: *r}
        outputs: {b: "${b.text}"}
        """
    )
    wf = engine.define(dry)
    assert wf.nodes[engine.NodeId("b")].spec.retry == wf.nodes[engine.NodeId("a")].spec.retry
    laughs = "name: x\na: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
    for level in "bcdefghij":
        prev = chr(ord(level) - 1)
        laughs += f"{level}: &{level} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
    laughs += "nodes: {n: {uses: template, with: {text: hi}}}\n"
    problems = engine.check(laughs)
    assert [p.code for p in problems] == ["too_large"]
    assert "200,000" in problems[0].message


def test_a_file_that_is_not_utf8_is_a_definition_error(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(DefinitionError) as err:
        engine.define(bad)
    assert err.value.problems[0].code == "unreadable"
    assert "UTF-8" in err.value.problems[0].message
