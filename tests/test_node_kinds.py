"""Node kinds: the decorator, entry points, and references/templates without code."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import engine
from engine.refs import compile_value, iter_refs, parse_ref


def test_decorator_registers_a_typed_kind_usable_in_a_workflow() -> None:
    reg = engine.NodeKinds(load_entry_points=False)

    @engine.node_kind("text.upper", inputs={"text": "text"}, outputs={"text": "text"}, kinds=reg)
    async def upper(ctx: engine.NodeContext, p: dict[str, Any]) -> dict[str, Any]:
        """Upper-case a text."""
        return {"text": p["text"].upper()}

    kind = reg.get("text.upper")
    assert kind is upper
    assert kind.to_json()["description"] == "Upper-case a text."
    assert kind.to_json()["inputs"] == {"text": {"type": "text", "required": True, "default": None}}
    with pytest.raises(ValueError, match="already registered"):
        engine.node_kind("text.upper", inputs={}, outputs={}, kinds=reg)(upper.fn)

    async def go() -> engine.RunResult:
        async with engine.Engine(kinds=reg, providers=[]) as eng:
            spec = {
                "name": "u",
                "inputs": {"t": "text"},
                "nodes": {"u": {"uses": "text.upper", "with": {"text": "${inputs.t}!"}}},
                "outputs": {"t": "${u.text}"},
            }
            return await eng.run(spec, {"t": "hi"})

    assert asyncio.run(go()).outputs == {"t": "HI!"}


def test_kinds_from_the_rollgraph_nodes_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "plug_kinds.py").write_text(
        textwrap.dedent(
            """
            import engine

            async def shout(ctx, params):
                return {"text": params["text"] + "!"}

            def kinds():
                return [engine.NodeKind("plug.shout", {"text": engine.Param.of("text")},
                                        {"text": engine.ValueType("text")}, shout)]
            """
        )
    )
    dist = tmp_path / "plug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: plug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[rollgraph.nodes]\nshout = plug_kinds:kinds\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = engine.NodeKinds()
    kind = reg.get("plug.shout")
    assert kind is not None and kind.name == "plug.shout"
    assert "plug.shout" in reg.names()
    sys.modules.pop("plug_kinds", None)


def test_a_broken_plugin_does_not_break_the_node_kinds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    dist = tmp_path / "broken-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[rollgraph.nodes]\nbad = no_such_module_here:kinds\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = engine.NodeKinds()
    assert reg.get("anything") is None
    assert "could not load node kinds" in caplog.text


def test_builtin_kinds_are_all_registered() -> None:
    names = set(engine.default_kinds.names())
    assert {
        "prompt.enhance",
        "llm.generate",
        "image.generate",
        "video.generate",
        "audio.tts",
        "music.generate",
        "media.compose",
        "moderate",
        "template",
        "http.json",
        "map",
    } <= names


def test_references_parse_and_reject_anything_that_looks_like_code() -> None:
    assert parse_ref("enhance.text").source == "enhance"
    assert parse_ref("api.body.items.0").path == ("items", "0")
    assert parse_ref("item.title").path == ("title",)
    for bad in ("enhance", "a.b()", "__import__('os').system", "a[0]", "a..b", ""):
        with pytest.raises(ValueError, match="reference"):
            parse_ref(bad)
    found = list(iter_refs({"a": ["${x.y} and ${bad ref}"]}, "with"))
    assert [type(r).__name__ for r, _, _ in found] == ["Ref", "ValueError"]
    assert found[0][1] == "with.a[0]"


def test_templates_render_values_and_keep_escaped_dollars() -> None:
    scope = {"inputs": {"n": 3, "ok": True, "t": "hi", "j": {"k": [1]}}}
    render = compile_value("${inputs.t} x${inputs.n} ${inputs.ok} ${inputs.j} $${inputs.t}")
    assert render is not None
    assert render(scope) == 'hi x3 true {"k": [1]} ${inputs.t}'
    whole = compile_value("${inputs.j}")
    assert whole is not None and whole(scope) == {"k": [1]}
    assert compile_value("plain") is None
    nested = compile_value({"a": ["${inputs.n}", 2], "b": "c"})
    assert nested is not None and nested(scope) == {"a": [3, 2], "b": "c"}
