"""A version's graph as a console draws it: each node with its kind, model and typed ports, each
node-to-node edge with the type of the value it carries.

Types come from the node kinds of the engine that will run the version (plug-ins included), the
same registry that checked it when it was applied, so an edge's type is the one the define-time
check agreed to. A ``map`` node's output is a list of its inner kind's chosen output, as the
type checker has it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from control_plane.workflows.schemas import GraphEdge, GraphNode, GraphPublic
from engine import NodeKinds
from engine.refs import INPUTS, ITEM, iter_refs
from engine.typecheck import MAP_KIND

__all__ = ["version_graph"]

_UNKNOWN = "json"  # a kind no longer registered: its ports are untyped, the graph still draws


def _output_types(node: Mapping[str, Any], kinds: NodeKinds) -> dict[str, str]:
    kind = kinds.get(str(node.get("uses", "")))
    if kind is None:
        return {}
    if kind.name != MAP_KIND:
        return {name: str(vtype) for name, vtype in kind.outputs.items()}
    params = node.get("with") or {}
    inner = params.get("node") if isinstance(params, Mapping) else None
    inner_kind = kinds.get(str(inner.get("uses", ""))) if isinstance(inner, Mapping) else None
    if inner_kind is None:
        return {"results": "list[json]"}
    chosen = params.get("output") or next(iter(inner_kind.outputs), "")
    item = inner_kind.outputs.get(chosen)
    return {"results": f"list[{item if item is not None else _UNKNOWN}]"}


def _input_types(node: Mapping[str, Any], kinds: NodeKinds) -> dict[str, str]:
    kind = kinds.get(str(node.get("uses", "")))
    params = node.get("with") or {}
    if kind is None or not isinstance(params, Mapping):
        return {}
    # The parameters this node sets, in the kind's order: those are the handles that can be fed.
    return {name: str(p.type) for name, p in kind.inputs.items() if name in params}


def _on_failure(value: Any) -> Literal["fail", "skip", "fallback"]:
    if value is None or value == "fail":
        return "fail"
    return "skip" if value == "skip" else "fallback"  # a mapping: `{fallback: {...}}`


def _edges(nodes: Mapping[str, Any]) -> set[tuple[str, str, str, str | None]]:
    """``(source, output, target, input)`` per reference; ``input`` is the parameter of
    ``target`` that reads it (None for its ``when``), so each edge meets its own handle. The
    same node-to-node references as the diff's ``edges_of``, one per reading parameter."""
    edges: set[tuple[str, str, str, str | None]] = set()
    for target, node in nodes.items():
        params = node.get("with") or {}
        reading: list[tuple[Any, str | None]] = [(node.get("when"), None)]
        if isinstance(params, Mapping):
            reading.extend((value, str(name)) for name, value in params.items())
        for value, param in reading:
            for ref, _loc, _whole in iter_refs(value, f"nodes.{target}"):
                if isinstance(ref, ValueError) or ref.source in (INPUTS, ITEM) or not ref.field:
                    continue
                edges.add((ref.source, ref.field, target, param))
    return edges


def version_graph(
    definition: Mapping[str, Any], *, workflow: str, version: str, digest: str, kinds: NodeKinds
) -> GraphPublic:
    """The graph of one stored (normalised) definition."""
    nodes_spec: Mapping[str, Any] = definition.get("nodes") or {}
    outputs = {nid: _output_types(node, kinds) for nid, node in nodes_spec.items()}
    nodes = []
    for nid, node in nodes_spec.items():
        params = node.get("with") or {}
        model = params.get("model") if isinstance(params, Mapping) else None
        nodes.append(
            GraphNode(
                id=nid,
                kind=str(node.get("uses", "")),
                model=model if isinstance(model, str) else None,
                inputs=_input_types(node, kinds),
                outputs=outputs[nid],
                conditional=bool(node.get("when")),
                on_failure=_on_failure(node.get("on_failure")),
            )
        )
    edges = [
        GraphEdge(source=s, output=o, target=t, input=i, type=outputs.get(s, {}).get(o, _UNKNOWN))
        for s, o, t, i in sorted(_edges(nodes_spec), key=lambda e: (e[0], e[1], e[2], e[3] or ""))
    ]
    return GraphPublic(workflow=workflow, version=version, digest=digest, nodes=nodes, edges=edges)
