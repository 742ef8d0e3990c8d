"""Read YAML or JSON text while remembering where each key stood, so problems can name a line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from engine.errors import Problem

__all__ = ["SourceMap"]


MAX_VALUES = 200_000  # YAML values a definition may expand to; a 1,000-node graph has ~20,000
# Nesting levels a definition may have; a real one has about six. PyYAML composes a node by
# recursing into its children, two Python frames a level, so 500 levels would exhaust the
# interpreter's stack (a RecursionError, not a problem with a line): the composer below counts
# levels and stops at this bound, long before.
MAX_DEPTH = 64


class _TooDeep(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


class _BoundedLoader(yaml.SafeLoader):
    """``SafeLoader`` whose composer refuses nodes nested deeper than ``MAX_DEPTH``."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
                mark = event.start_mark
                raise _TooDeep(mark.line + 1 if mark is not None else 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


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
    def parse(cls, text: str) -> tuple[Any, SourceMap, list[Problem]]:
        """Parse text (JSON is YAML) into plain data, its line map and any syntax problems."""
        smap = cls()
        try:
            root = yaml.compose(text, Loader=_BoundedLoader)
        except _TooDeep as exc:
            message = f"the definition is nested deeper than {MAX_DEPTH} levels"
            return None, smap, [Problem("too_deep", "(root)", message, line=exc.line)]
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            reason = getattr(exc, "problem", None) or str(exc)
            return None, smap, [Problem("syntax", "(root)", f"cannot parse: {reason}", line=line)]
        if root is None:
            return None, smap, [Problem("empty", "(root)", "the definition is empty")]
        problems: list[Problem] = []
        smap._walk(root, "", problems, _Walk())
        if problems:
            return None, smap, problems
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:  # composed but not constructible (bad tag, say)
            return None, smap, [Problem("syntax", "(root)", f"cannot parse: {exc}")]
        return data, smap, []

    def _walk(self, node: yaml.Node, path: str, problems: list[Problem], walk: _Walk) -> None:
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            # An alias (*name) composes to the very node it names: count every visit, so a few
            # lines of aliases cannot expand into millions of values ("billion laughs"), and
            # refuse an alias inside its own anchor.
            walk.budget -= len(node.value) + 1
            if walk.budget < 0 or id(node) in walk.active:
                if not walk.reported:
                    walk.reported = True
                    message = (
                        "the definition refers to itself through a YAML alias"
                        if walk.budget >= 0
                        else f"the definition expands to more than {MAX_VALUES:,} values; "
                        "use fewer YAML aliases"
                    )
                    line = node.start_mark.line + 1
                    problems.append(Problem("too_large", path or "(root)", message, line=line))
                return
            walk.active.add(id(node))
            try:
                self._walk_children(node, path, problems, walk)
            finally:
                walk.active.discard(id(node))

    def _walk_children(
        self,
        node: yaml.MappingNode | yaml.SequenceNode,
        path: str,
        problems: list[Problem],
        walk: _Walk,
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
                self._walk(value_node, child, problems, walk)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                child = f"{path}[{index}]"
                self.lines.setdefault(child, item.start_mark.line + 1)
                self._walk(item, child, problems, walk)
