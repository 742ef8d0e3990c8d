"""Structured and textual diffs between two normalised workflow definitions.

Both are taken over ``WorkflowSpec.normalized()`` (defaults dropped, version label removed), so
reformatting a file or spelling out a default never shows up as a change.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from control_plane.workflows.schemas import DefinitionDiff, EdgePublic, FieldChange
from engine.refs import INPUTS, ITEM, iter_refs

__all__ = ["canonical_yaml", "diff_versions", "edges_of"]

_SECTIONS = ("nodes", "inputs", "outputs")


def canonical_yaml(definition: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(definition), sort_keys=True, allow_unicode=True, width=100)


def edges_of(definition: Mapping[str, Any]) -> set[tuple[str, str, str]]:
    """``(source node, output, target node)`` for every node-to-node reference.

    References to ``inputs`` and to a map's ``item`` are not edges between nodes; a reference to
    an unknown node cannot occur in a stored definition (it is rejected when defined).
    """
    nodes: Mapping[str, Any] = definition.get("nodes") or {}
    edges: set[tuple[str, str, str]] = set()
    for target, node in nodes.items():
        # The whole node: parameters, `when`, and a map's inner node all hold references.
        for ref, _loc, _whole in iter_refs(dict(node), f"nodes.{target}"):
            if isinstance(ref, ValueError) or ref.source in (INPUTS, ITEM) or ref.field is None:
                continue
            edges.add((ref.source, ref.field, target))
    return edges


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    # Nested mappings become dotted paths so a change reads `with.model`, not a whole `with` dict.
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix or "(value)", value


def _field_changes(before: Any, after: Any) -> list[FieldChange]:
    a, b = dict(_flatten(before)), dict(_flatten(after))
    changes = []
    for path in sorted(a.keys() | b.keys()):
        if path not in b:
            changes.append(FieldChange(path=path, change="removed", before=a[path]))
        elif path not in a:
            changes.append(FieldChange(path=path, change="added", after=b[path]))
        elif a[path] != b[path]:
            changes.append(FieldChange(path=path, change="changed", before=a[path], after=b[path]))
    return changes


def _section(
    a: Mapping[str, Any], b: Mapping[str, Any]
) -> tuple[list[str], list[str], dict[str, list[FieldChange]]]:
    added = [k for k in b if k not in a]  # in the order the newer definition lists them
    removed = [k for k in a if k not in b]
    changed = {k: c for k in a if k in b and (c := _field_changes(a[k], b[k]))}
    return added, removed, changed


def _edge_list(edges: set[tuple[str, str, str]]) -> list[EdgePublic]:
    return [EdgePublic(source=s, output=o, target=t) for s, o, t in sorted(edges)]


def diff_versions(
    a_definition: Mapping[str, Any],
    b_definition: Mapping[str, Any],
    *,
    a_label: str = "a",
    b_label: str = "b",
) -> DefinitionDiff:
    """What changed from ``a`` to ``b``: nodes, edges, inputs, outputs, field by field, and a
    unified diff of the canonical YAML labelled ``a_label`` / ``b_label``."""
    sections = {
        name: _section(a_definition.get(name) or {}, b_definition.get(name) or {})
        for name in _SECTIONS
    }
    other = sorted((a_definition.keys() | b_definition.keys()) - set(_SECTIONS))
    fields_changed = _field_changes(
        {k: a_definition[k] for k in other if k in a_definition},
        {k: b_definition[k] for k in other if k in b_definition},
    )
    a_edges, b_edges = edges_of(a_definition), edges_of(b_definition)
    a_text, b_text = canonical_yaml(a_definition), canonical_yaml(b_definition)
    text = "".join(
        difflib.unified_diff(
            a_text.splitlines(keepends=True),
            b_text.splitlines(keepends=True),
            fromfile=a_label,
            tofile=b_label,
        )
    )
    return DefinitionDiff(
        identical=a_text == b_text,
        nodes_added=sections["nodes"][0],
        nodes_removed=sections["nodes"][1],
        nodes_changed=sections["nodes"][2],
        edges_added=_edge_list(b_edges - a_edges),
        edges_removed=_edge_list(a_edges - b_edges),
        inputs_added=sections["inputs"][0],
        inputs_removed=sections["inputs"][1],
        inputs_changed=sections["inputs"][2],
        outputs_added=sections["outputs"][0],
        outputs_removed=sections["outputs"][1],
        outputs_changed=sections["outputs"][2],
        fields_changed=fields_changed,
        text=text,
    )
