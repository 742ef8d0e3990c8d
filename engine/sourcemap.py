"""Read YAML or JSON text while remembering where each key stood, so problems can name a line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from engine.errors import Problem

__all__ = ["SourceMap"]


MAX_VALUES = 200_000  # YAML values a definition may expand to; a 1,000-node graph has ~20,000
# Nesting levels a definition may have; a real one has about six. Composing and walking a
# document recurse a level at a time, so 500 levels would exhaust the interpreter's stack (a
# RecursionError, not a problem with a line): the event scan below, which keeps no recursion,
# counts levels first and stops at this bound, long before.
MAX_DEPTH = 64

# libyaml's parser when PyYAML was built with it: a 600 KB definition composes in about a
# tenth of the time the pure-Python one takes. Both resolve tags the same way (SafeLoader's).
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_OPEN = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_STR, _SEQ, _MAP = "tag:yaml.org,2002:str", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"
# Keys that make SafeConstructor rewrite a mapping (``<<`` merges, ``=`` values): it builds those.
_REWRITTEN = frozenset({"tag:yaml.org,2002:merge", "tag:yaml.org,2002:value"})
_CLOSE = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


@dataclass(slots=True)
class _Level:
    """An open mapping or sequence during the event scan."""

    mapping: bool
    nodes: bool = False  # the root's `nodes:` mapping, whose keys are counted
    expect_key: bool = True
    key: str | None = None


def _line(event: yaml.Event) -> int:
    mark = event.start_mark
    return mark.line + 1 if mark is not None else 1


def _scan(text: str, max_nodes: int | None) -> Problem | None:
    """Depth and node count from the parser's events, before anything is composed.

    The event stream needs no recursion however deep the text nests, and it stops at the first
    level or node over the bound: refusing a 10,000-node definition reads as far as its
    1,001st node, not the whole text through the composer."""
    stack: list[_Level] = []
    count = 0
    for event in yaml.parse(text, Loader=_Loader):
        is_open = isinstance(event, _OPEN)
        if is_open or isinstance(event, yaml.ScalarEvent | yaml.AliasEvent):
            parent = stack[-1] if stack else None
            if parent is not None and parent.mapping:
                if parent.expect_key:
                    parent.key = event.value if isinstance(event, yaml.ScalarEvent) else None
                    if parent.nodes:
                        count += 1
                        if max_nodes is not None and count > max_nodes:
                            message = (
                                f"the workflow has more than {max_nodes:,} nodes (the limit; "
                                f"ROLLGRAPH_MAX_NODES on a server): node {parent.key!r} is "
                                f"number {count:,}; split it into smaller workflows"
                            )
                            return Problem("too_large", "nodes", message, line=_line(event))
                parent.expect_key = not parent.expect_key
            if is_open:
                if len(stack) >= MAX_DEPTH:
                    message = f"the definition is nested deeper than {MAX_DEPTH} levels"
                    return Problem("too_deep", "(root)", message, line=_line(event))
                nodes = (
                    len(stack) == 1
                    and parent is not None
                    and parent.mapping
                    and parent.key == "nodes"
                    and isinstance(event, yaml.MappingStartEvent)
                )
                stack.append(_Level(isinstance(event, yaml.MappingStartEvent), nodes))
        elif isinstance(event, _CLOSE):
            stack.pop()
    return None


def _build(node: yaml.Node, loader: yaml.SafeLoader, built: dict[int, Any]) -> Any:
    """The plain data of a composed node, as ``loader.construct_document`` makes it.

    Strings, lists and dicts with string keys (nearly all of a definition) are built here
    directly: SafeConstructor's generic path costs about a third of reading a large definition.
    Any other scalar, tag or key goes through the loader's constructor, so the result is the
    same. An alias yields the object built for its anchor, as the constructor's does; the walk
    has refused self-references and bounded depth before this recursion runs."""
    if isinstance(node, yaml.ScalarNode):
        return node.value if node.tag == _STR else loader.construct_object(node, deep=True)
    if id(node) in built:
        return built[id(node)]
    value: Any
    if node.tag == _SEQ and isinstance(node, yaml.SequenceNode):
        value = [_build(item, loader, built) for item in node.value]
    elif (
        node.tag == _MAP
        and isinstance(node, yaml.MappingNode)
        and all(isinstance(k, yaml.ScalarNode) and k.tag not in _REWRITTEN for k, _ in node.value)
    ):
        value = {
            (k.value if k.tag == _STR else loader.construct_object(k, deep=True)): _build(
                v, loader, built
            )
            for k, v in node.value
        }
    else:
        value = loader.construct_object(node, deep=True)
    built[id(node)] = value
    return value


@dataclass(slots=True)
class _Walk:
    budget: int = MAX_VALUES
    active: set[int] = field(default_factory=set)
    reported: bool = False


@dataclass(slots=True)
class SourceMap:
    """Dotted location (``nodes.video.with.prompt``) → 1-based line in the source text."""

    lines: dict[str, int] = field(default_factory=dict)

    @classmethod
    def empty(cls) -> SourceMap:
        return cls()

    def line(self, location: str) -> int | None:
        # A location deeper than any mapped key (a list index, a nested value) takes the line
        # of its closest mapped parent.
        probe = location
        while probe:
            if probe in self.lines:
                return self.lines[probe]
            cut = max(probe.rfind("."), probe.rfind("["))
            if cut <= 0:
                break
            probe = probe[:cut]
        return self.lines.get(probe)

    @classmethod
    def parse(
        cls, text: str, *, max_nodes: int | None = None
    ) -> tuple[Any, SourceMap, list[Problem]]:
        """Parse text (JSON is YAML) into plain data, its line map and any syntax problems.

        ``max_nodes`` bounds the entries of the root's ``nodes:`` mapping (``too_large``)."""
        smap = cls()
        loader = _Loader(text)
        try:
            problem = _scan(text, max_nodes)
            if problem is not None:
                return None, smap, [problem]
            root = loader.get_single_node()
            if root is None:
                return None, smap, [Problem("empty", "(root)", "the definition is empty")]
            problems: list[Problem] = []
            smap._walk(root, "", problems, _Walk(), 1)
            if problems:
                return None, smap, problems
            # Built from the node composed above: the text is composed once.
            return _build(root, loader, {}), smap, []
        except yaml.YAMLError as exc:  # a syntax error, or a bad tag when constructing
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            reason = getattr(exc, "problem", None) or str(exc)
            return None, smap, [Problem("syntax", "(root)", f"cannot parse: {reason}", line=line)]
        finally:
            loader.dispose()

    def _walk(
        self, node: yaml.Node, path: str, problems: list[Problem], walk: _Walk, depth: int
    ) -> None:
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            # An alias (*name) composes to the very node it names: count every visit, so a few
            # lines of aliases cannot expand into millions of values ("billion laughs"), and
            # refuse an alias inside its own anchor. Depth is counted here too, through
            # aliases: anchors nested inside each other's aliases nest deeper than the text.
            walk.budget -= len(node.value) + 1
            too_deep = depth > MAX_DEPTH
            if walk.budget < 0 or too_deep or id(node) in walk.active:
                if not walk.reported:
                    walk.reported = True
                    code = "too_large"
                    if walk.budget < 0:
                        message = (
                            f"the definition expands to more than {MAX_VALUES:,} values; "
                            "use fewer YAML aliases"
                        )
                    elif too_deep:
                        code = "too_deep"
                        message = (
                            f"the definition is nested deeper than {MAX_DEPTH} levels "
                            "(counting what its YAML aliases stand for)"
                        )
                    else:
                        message = "the definition refers to itself through a YAML alias"
                    line = node.start_mark.line + 1
                    where = path if len(path) <= 60 else path[:57] + "..."
                    problems.append(Problem(code, where or "(root)", message, line=line))
                return
            walk.active.add(id(node))
            try:
                self._walk_children(node, path, problems, walk, depth)
            finally:
                walk.active.discard(id(node))

    def _walk_children(
        self,
        node: yaml.MappingNode | yaml.SequenceNode,
        path: str,
        problems: list[Problem],
        walk: _Walk,
        depth: int,
    ) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                child = f"{path}.{key}" if path else key
                line = key_node.start_mark.line + 1
                if key in seen:
                    problems.append(
                        Problem("duplicate_key", child, f"key {key!r} is given twice", line=line)
                    )
                seen.add(key)
                self.lines.setdefault(child, line)
                self._walk(value_node, child, problems, walk, depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                child = f"{path}[{index}]"
                self.lines.setdefault(child, item.start_mark.line + 1)
                self._walk(item, child, problems, walk, depth + 1)
