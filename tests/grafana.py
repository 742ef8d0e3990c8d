"""Reading the Grafana dashboards under ``dashboards/grafana`` the way Grafana would query
Prometheus with them, for tests: the static contract test (``test_dashboards.py``) and the
end-to-end test that runs every query against a real Prometheus.

Both need the same three things, so they live here once: every PromQL expression a dashboard
sends (panel targets, rows included, annotations, templating queries), the expression as
Grafana would send it once its variables are filled in, and the metric names and labels an
expression refers to. The PromQL reading is a scanner, not a parser: enough to find selectors
and ``by (...)`` groupings in the expressions these dashboards and the recording rules use; a
query it cannot follow is reported as having nothing to check rather than guessed at.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "DASHBOARDS_DIR",
    "Grouping",
    "PanelQuery",
    "Selector",
    "fill",
    "groupings",
    "load_dashboards",
    "metric_names",
    "panel_queries",
    "selectors",
    "variable_queries",
    "walk_panels",
]

DASHBOARDS_DIR = Path(__file__).resolve().parent.parent / "dashboards" / "grafana"


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str  # dashboard uid
    panel: str  # panel title, or "annotation: <name>" / "variable: <name>"
    expr: str  # the PromQL as written in the JSON (variables not filled in)


def load_dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard in ``DASHBOARDS_DIR`` (not its ``provisioning`` folder), by uid."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(DASHBOARDS_DIR.glob("*.json")):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        uid = dashboard.get("uid")
        if not isinstance(uid, str) or not uid:
            raise ValueError(f"{path.name}: no uid")
        if uid in found:
            raise ValueError(f"{path.name}: uid {uid!r} is used twice")
        found[uid] = dashboard
    return found


def walk_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, and the panels inside collapsed rows (which Grafana keeps
    in the row's own ``panels`` list rather than at the top level)."""

    def walk(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in panels:
            yield panel
            yield from walk(panel.get("panels") or [])

    yield from walk(dashboard.get("panels") or [])


_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<args>.*)\)\s*$", re.DOTALL)
_QUERY_RESULT = re.compile(r"^\s*query_result\((?P<expr>.*)\)\s*$", re.DOTALL)


def _variable_query(variable: Mapping[str, Any]) -> str | None:
    """The query string of a Prometheus query variable (a string in old dashboards, an
    object with ``query`` since Grafana 10), else ``None``."""
    if variable.get("type") != "query":
        return None
    query = variable.get("query")
    if isinstance(query, Mapping):
        query = query.get("query")
    return query if isinstance(query, str) and query.strip() else None


def _label_values(query: str) -> tuple[str, str] | None:
    """``(selector, label)`` of ``label_values(selector, label)``; ``None`` for other forms
    (``label_values(label)`` has no selector to run)."""
    match = _LABEL_VALUES.match(query)
    if match is None or "," not in match["args"]:
        return None
    # The selector may hold commas between its matchers; the label name cannot.
    selector, label = match["args"].rsplit(",", 1)
    return selector.strip(), label.strip()


def variable_queries(dashboard: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(name, metric selector, label)`` of each ``label_values(selector, label)`` variable,
    in the order Grafana resolves them (a later one may use an earlier one's value)."""
    found: list[tuple[str, str, str]] = []
    for variable in (dashboard.get("templating") or {}).get("list") or []:
        query = _variable_query(variable)
        parsed = _label_values(query) if query is not None else None
        if parsed is not None:
            found.append((variable["name"], *parsed))
    return found


def panel_queries(dashboard: Mapping[str, Any]) -> list[PanelQuery]:
    """Every PromQL expression the dashboard sends: each target of each panel, each
    annotation, and each templating query (``label_values(selector, label)`` as its selector,
    ``query_result(expr)`` as its expression; other variable forms send no PromQL)."""
    uid = str(dashboard["uid"])
    found = []
    for panel in walk_panels(dashboard):
        for target in panel.get("targets") or []:
            expr = target.get("expr")
            if isinstance(expr, str) and expr.strip():
                found.append(PanelQuery(uid, str(panel.get("title", "")), expr))
    for annotation in (dashboard.get("annotations") or {}).get("list") or []:
        expr = annotation.get("expr") or (annotation.get("target") or {}).get("expr")
        if isinstance(expr, str) and expr.strip():
            found.append(PanelQuery(uid, f"annotation: {annotation.get('name', '')}", expr))
    for variable in (dashboard.get("templating") or {}).get("list") or []:
        query = _variable_query(variable)
        if query is None:
            continue
        name = f"variable: {variable['name']}"
        label_values = _label_values(query)
        if label_values is not None:
            found.append(PanelQuery(uid, name, label_values[0]))
        elif (result := _QUERY_RESULT.match(query)) is not None:
            found.append(PanelQuery(uid, name, result["expr"].strip()))
    return found


# -- filling in variables ----------------------------------------------------------------------
_VARIABLE = re.compile(r"\$\{(?P<braced>\w+)(?::(?P<format>\w+))?\}|\$(?P<plain>\w+)")
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
# Grafana's `regex` format escapes these with a backslash.
_REGEX_SPECIAL = re.compile(r"[\\^$*+?.()|\[\]{}/]")


def _seconds(duration: str) -> float:
    parts = _DURATION.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return sum(int(n) * _SECONDS[u] for n, u in parts)


def _formatted(value: str, format_: str | None) -> str:
    if format_ in (None, "raw", "text", "pipe", "csv", "glob"):
        return value  # one value: these formats only differ in how they join several
    if format_ == "regex":
        return _REGEX_SPECIAL.sub(lambda m: "\\" + m[0], value)
    raise ValueError(f"variable format {format_!r} is not supported here")


def fill(
    expr: str,
    variables: Mapping[str, str],
    *,
    rate_interval: str = "1m",
    interval: str = "15s",
    range_: str = "5m",
) -> str:
    """``expr`` as Grafana would send it: ``$__rate_interval``, ``$__interval``,
    ``$__range`` (and their ``_ms`` / ``_s`` forms) and ``$var``, ``${var}``,
    ``${var:format}`` replaced. Values are inserted as given: the caller passes what the
    matcher should see (one value; for a multi-value variable, e.g. ``(v1|v2)``). A variable
    without a value raises ``KeyError``, so that a query is never run half filled."""
    builtins = {
        "__rate_interval": rate_interval,
        "__interval": interval,
        "__interval_ms": str(round(_seconds(interval) * 1000)),
        "__range": range_,
        "__range_s": str(round(_seconds(range_))),
        "__range_ms": str(round(_seconds(range_) * 1000)),
    }

    def substitute(match: re.Match[str]) -> str:
        name = match["braced"] or match["plain"]
        if name in builtins:
            return builtins[name]
        if name not in variables:
            raise KeyError(f"no value for variable ${name} in {expr!r}")
        return _formatted(variables[name], match["format"])

    return _VARIABLE.sub(substitute, expr)


# -- reading PromQL ----------------------------------------------------------------------------
_TOKEN = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<comment>\#[^\n]*)
    | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    | (?P<variable>\$\{[^}]*\}|\$\w+)
    | (?P<number>(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?:[a-zA-Z]+\d*)*)
    | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
    | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=(){}\[\],@:])
    """,
    re.VERBOSE,
)
_KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right"}
    | {"offset", "bool", "atan2", "inf", "nan"}
)
_LABEL_LISTS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_MATCH_OPS = frozenset({"=", "!=", "=~", "!~"})
# Functions that give a result labels its inputs do not have.
_LABEL_MAKERS = frozenset({"label_replace", "label_join", "count_values"})


@dataclass(frozen=True)
class Selector:
    metric: str | None  # None: a selector without a name, e.g. {__name__=~"..."}
    labels: frozenset[str]  # label names its matchers use


@dataclass(frozen=True)
class Grouping:
    labels: tuple[str, ...]  # the labels of a `by (...)` clause
    metrics: frozenset[str]  # metric names in the aggregated expression
    opaque: bool  # the aggregated expression can make labels (label_replace, group_left, ...)


_Tokens = list[tuple[str, str]]  # (kind, text)


def _tokens(expr: str) -> _Tokens:
    tokens = []
    position = 0
    while position < len(expr):
        match = _TOKEN.match(expr, position)
        if match is None:
            raise ValueError(f"cannot read PromQL at {expr[position : position + 20]!r}")
        kind = match.lastgroup or ""
        if kind not in ("space", "comment"):
            tokens.append((kind, match[0]))
        position = match.end()
    return tokens


def _closing(tokens: _Tokens, start: int) -> int:
    """Index of the bracket closing the one at ``start``."""
    pairs = {"(": ")", "{": "}", "[": "]"}
    opening = tokens[start][1]
    depth = 0
    for index in range(start, len(tokens)):
        text = tokens[index][1] if tokens[index][0] == "op" else ""
        if text == opening:
            depth += 1
        elif text == pairs[opening]:
            depth -= 1
            if depth == 0:
                return index
    raise ValueError(f"unbalanced {opening!r}")


def _opening(tokens: _Tokens, end: int) -> int:
    """Index of the ``(`` that the ``)`` at ``end`` closes."""
    depth = 0
    for index in range(end, -1, -1):
        text = tokens[index][1] if tokens[index][0] == "op" else ""
        if text == ")":
            depth += 1
        elif text == "(":
            depth -= 1
            if depth == 0:
                return index
    raise ValueError("unbalanced ')'")


_Scan = tuple[_Tokens, list[tuple[int, Selector]], list[tuple[int, int, int]]]


def _is_op(tokens: _Tokens, index: int, text: str) -> bool:
    return 0 <= index < len(tokens) and tokens[index] == ("op", text)


def _scan(expr: str) -> _Scan:
    """The tokens of ``expr``, its selectors (by token index) and its label lists (keyword,
    opening and closing token indexes)."""
    tokens = _tokens(expr)

    def op(index: int, text: str) -> bool:
        return _is_op(tokens, index, text)

    found: list[tuple[int, Selector]] = []
    label_list_at: list[tuple[int, int, int]] = []  # (keyword index, "(" index, ")" index)
    index = 0
    while index < len(tokens):
        kind, text = tokens[index]
        if kind == "ident" and text.lower() in _LABEL_LISTS and op(index + 1, "("):
            close = _closing(tokens, index + 1)
            label_list_at.append((index, index + 1, close))
            index = close + 1
            continue
        is_metric = (
            kind == "ident"
            and text.lower() not in _KEYWORDS
            and not op(index + 1, "(")
            and not (
                index + 1 < len(tokens)
                and tokens[index + 1][0] == "ident"
                and tokens[index + 1][1].lower() in ("by", "without")
            )
        )
        if is_metric or op(index, "{"):
            start = index
            name: str | None = text if is_metric else None
            labels: set[str] = set()
            brace = index + 1 if is_metric else index
            end = index
            if op(brace, "{"):
                end = _closing(tokens, brace)
                matchers = tokens[brace + 1 : end]
                for position in range(len(matchers) - 2):
                    (l_kind, l_text), operator, value = matchers[position : position + 3]
                    if l_kind not in ("ident", "string") or operator[0] != "op":
                        continue
                    if operator[1] not in _MATCH_OPS:
                        continue
                    label = l_text[1:-1] if l_kind == "string" else l_text
                    labels.add(label)
                    exact_name = label == "__name__" and operator[1] == "="
                    if exact_name and value[0] == "string" and name is None:
                        name = value[1][1:-1]
            found.append((start, Selector(name, frozenset(labels - {"__name__"}))))
            index = end + 1
            continue
        index += 1

    return tokens, found, label_list_at


def selectors(expr: str) -> list[Selector]:
    """Every series selector in ``expr``: its metric name (or ``None``) and the label names
    its matchers use (``__name__`` left out: it names the metric)."""
    return [selector for _, selector in _scan(expr)[1]]


def groupings(expr: str) -> list[Grouping]:
    """Every ``by (...)`` clause in ``expr`` with the metrics of the expression it
    aggregates (``without`` clauses name labels to drop, which need not exist)."""
    tokens, found, label_list_at = _scan(expr)

    def op(index: int, text: str) -> bool:
        return _is_op(tokens, index, text)

    groups = []
    for keyword, open_, close in label_list_at:
        if tokens[keyword][1].lower() != "by":
            continue
        labels_ = tuple(t for k, t in tokens[open_ + 1 : close] if k == "ident")
        if op(keyword - 1, ")"):  # sum(expr) by (labels)
            body = (_opening(tokens, keyword - 1), keyword - 1)
        elif op(close + 1, "("):  # sum by (labels) (expr)
            body = (close + 1, _closing(tokens, close + 1))
        else:
            raise ValueError(f"cannot find what `by {labels_}` aggregates in {expr!r}")
        inside = tokens[body[0] : body[1] + 1]
        metrics = frozenset(
            s.metric for at, s in found if body[0] <= at <= body[1] and s.metric is not None
        )
        opaque = any(
            k == "ident" and (t in _LABEL_MAKERS or t.lower() in ("group_left", "group_right"))
            for k, t in inside
        ) or any(":" in m for m in metrics)
        groups.append(Grouping(labels_, metrics, opaque))
    return groups


def metric_names(expr: str) -> set[str]:
    """Every rollgraph metric name ``expr`` refers to (every name containing
    ``rollgraph``), as written: ``_total``, ``_bucket`` and the like kept, recording-rule
    names (with ``:``, such as ``workflow:rollgraph_runs:rate5m``) included. Label names,
    function names, strings and Grafana variables are not metric names."""
    return {s.metric for s in selectors(expr) if s.metric is not None and "rollgraph" in s.metric}
