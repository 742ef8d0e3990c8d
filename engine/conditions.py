"""The ``when`` language: comparisons over typed references, parsed by hand and never evaluated
as code.

```text
condition  := or
or         := and ("or" and)*
and        := not ("and" not)*
not        := "not" not | comparison
comparison := operand (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not in") operand)?
operand    := ${ref} | "text" | 'text' | number | true | false | null | [literal, ...] | ( or )
```

A condition is type-checked when defined against the declared types of what it reads (a text
never equals a number, booleans have no order, ``and`` takes booleans), then compiled into
closures over a run's scope. Text and nesting are bounded before anything recursive runs, so
hostile input (deep parentheses, megabytes of text, ``nan``) is a problem, never a crash. A json
value is only known when it arrives: comparing it with the wrong type fails the step then.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, Final, NamedTuple

from engine.comparisons import (
    BOOLEAN,
    ConditionError,
    comparable_families,
    contains,
    equal,
    family,
    literal_type,
    ordering,
)
from engine.refs import INPUTS, ITEM, Ref, Resolver, compile_value, parse_ref
from engine.types import ValueType

__all__ = [
    "MAX_CONDITION_CHARS",
    "MAX_CONDITION_DEPTH",
    "ConditionError",
    "compile_condition",
]

MAX_CONDITION_CHARS: Final = 2000
MAX_CONDITION_DEPTH: Final = 32
_JSON: Final = ValueType("json")
_ORDER_OPS: Final = frozenset({"<", "<=", ">", ">="})
_TOKEN_RE: Final = re.compile(
    r"""\s*(?:
    (?P<ref>\$\{[^}]*\})
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<num>-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
  | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,)
  | (?P<word>[A-Za-z_]\w*)
  )""",
    re.VERBOSE,
)
_SIMPLE_RE: Final = re.compile(r"\s*(not\s+)?(\$\{[^}]*\})\s*\Z")
_ESCAPES: Final = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "t": "\t"}
_WORDS: Final = {"true": True, "false": False, "null": None}

RefTyper = Callable[[Ref], ValueType | None]
Problems = list[tuple[str, str]]


class _Token(NamedTuple):  # a named tuple: a condition makes a few per character it has
    kind: str  # ref, str, num, op, word, end
    text: str
    pos: int


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    end = len(text.rstrip())
    while pos < end:
        match = _TOKEN_RE.match(text, pos)
        if match is None or match.lastgroup is None:
            near = text[pos : pos + 12].strip()
            raise ConditionError(f"unexpected {near!r} at character {pos + 1}")
        start = match.start(match.lastgroup)
        out.append(_Token(match.lastgroup, match.group(match.lastgroup), start))
        pos = match.end()
    out.extend([_Token("end", "", len(text))] * 2)  # the parser peeks one past a token
    return out


def _unquote(token: str) -> str:
    body = token[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1]  # the token pattern guarantees a character follows
            if nxt not in _ESCAPES:
                raise ConditionError(f"unknown escape \\{nxt} in {token[:40]}")
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _number(token: str) -> int | float:
    if re.fullmatch(r"-?[0-9]+", token):
        return int(token)
    value = float(token)
    if not math.isfinite(value):
        raise ConditionError(f"{token} is not a finite number")
    return value


# it, and how a message names it.
_Operand = tuple[ValueType | None, Resolver, str]


class _Parser:
    """Recursive descent; every recursion passes through ``_not`` or ``_operand``, which count
    the depth, so the Python stack never holds more than a few frames per nesting level."""

    def __init__(self, text: str, ref_type: RefTyper, deps: set[str]) -> None:
        self.tokens = _tokens(text)
        self.index = 0
        self.depth = 0
        self.ref_type = ref_type
        self.deps = deps
        self.problems: Problems = []

    # -- tokens -------------------------------------------------------------------------------
    def peek(self, offset: int = 0) -> _Token:
        return self.tokens[self.index + offset]  # the end token repeats: never out of range

    def take(self) -> _Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def expect(self, text: str) -> None:
        token = self.take()
        if token.text != text:
            found = repr(token.text) if token.kind != "end" else "the end"
            raise ConditionError(f"expected {text!r} at character {token.pos + 1}, found {found}")

    def is_word(self, word: str, offset: int = 0) -> bool:
        token = self.tokens[self.index + offset]
        return token.text == word and token.kind == "word"

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_CONDITION_DEPTH:
            raise ConditionError(f"nested more than {MAX_CONDITION_DEPTH} levels deep")

    # -- grammar ------------------------------------------------------------------------------
    def condition(self) -> Resolver:
        vtype, resolve, name = self._or()
        token = self.peek()
        if token.kind != "end":
            raise ConditionError(f"unexpected {token.text!r} at character {token.pos + 1}")
        return self._as_boolean(vtype, resolve, name)

    def flag(self, ref_text: str, *, negated: bool) -> Resolver:
        """``${ref}`` or ``not ${ref}``, as ``condition`` would read it."""
        resolve = self._as_boolean(*self._reference(_Token("ref", ref_text, 0)))
        return (lambda s: not resolve(s)) if negated else resolve

    def _or(self) -> _Operand:
        return self._chain("or", self._and)

    def _and(self) -> _Operand:
        return self._chain("and", self._not)

    def _chain(self, word: str, part: Callable[[], _Operand]) -> _Operand:
        first = part()
        if not self.is_word(word):
            return first
        parts = [self._as_boolean(*first)]
        names = [first[2]]
        while self.is_word(word):
            self.take()
            operand = part()
            parts.append(self._as_boolean(*operand))
            names.append(operand[2])
        items = tuple(parts)
        if word == "and":
            return BOOLEAN, lambda s: all(p(s) for p in items), " and ".join(names)
        return BOOLEAN, lambda s: any(p(s) for p in items), " or ".join(names)

    def _not(self) -> _Operand:
        if self.is_word("not") and not self.is_word("in", 1):
            self.take()
            self.nest()
            vtype, resolve, name = self._not()
            self.depth -= 1
            inner = self._as_boolean(vtype, resolve, name)
            return BOOLEAN, lambda s: not inner(s), f"not {name}"
        return self._comparison()

    def _comparison(self) -> _Operand:
        left = self._operand()
        token = self.peek()
        if token.kind == "op" and token.text in {"==", "!=", "<", "<=", ">", ">="}:
            self.take()
            return self._compare(token.text, left, self._operand())
        if self.is_word("in") or (self.is_word("not") and self.is_word("in", 1)):
            negate = self.take().text == "not"
            if negate:
                self.take()
            return self._membership(left, self._operand(), negate)
        return left

    def _operand(self) -> _Operand:
        token = self.take()
        if token.kind == "ref":
            return self._reference(token)
        if token.kind == "str":
            text = _unquote(token.text)
            return _literal(text, repr(text))
        if token.kind == "num":
            return _literal(_number(token.text), token.text)
        if token.kind == "word" and token.text in _WORDS:
            return _literal(_WORDS[token.text], token.text)
        if token.text == "(":
            self.nest()
            inner = self._or()
            self.expect(")")
            self.depth -= 1
            return inner
        if token.text == "[":
            return self._list(token)
        if token.kind == "end":
            raise ConditionError("the condition ends where a value was expected")
        hint = ""
        if token.kind == "word":
            hint = ' (text is quoted: "..."; NaN and infinity are not numbers here)'
        raise ConditionError(f"unexpected {token.text!r} at character {token.pos + 1}{hint}")

    def _list(self, opening: _Token) -> _Operand:
        values: list[Any] = []
        while self.peek().text != "]":
            if values:
                self.expect(",")
            token = self.take()
            if token.kind == "str":
                values.append(_unquote(token.text))
            elif token.kind == "num":
                values.append(_number(token.text))
            elif token.kind == "word" and token.text in _WORDS:
                values.append(_WORDS[token.text])
            else:
                raise ConditionError(
                    f"the list at character {opening.pos + 1} holds literals only; "
                    f"found {token.text or 'the end'!r} at character {token.pos + 1}"
                )
        self.take()
        families = {family(literal_type(v)) for v in values} - {"null"}
        item = _JSON
        if len(families) == 1:
            item = {"number": ValueType("number"), "text": ValueType("text")}.get(
                next(iter(families)), BOOLEAN
            )
        frozen = tuple(values)
        return ValueType("list", item), lambda s: list(frozen), "[...]"

    def _reference(self, token: _Token) -> _Operand:
        try:
            ref = parse_ref(token.text[2:-1].strip())
        except ValueError as exc:
            raise ConditionError(str(exc)) from None
        if ref.source not in {INPUTS, ITEM}:
            self.deps.add(ref.source)
        resolve = compile_value(str(ref))
        assert resolve is not None  # a whole reference always compiles to a look-up
        return self.ref_type(ref), resolve, str(ref)

    # -- types --------------------------------------------------------------------------------
    def _as_boolean(self, vtype: ValueType | None, resolve: Resolver, name: str) -> Resolver:
        if vtype is not None and vtype.name not in {"boolean", "json"}:
            self.problems.append(
                ("type_mismatch", f"{name} is {vtype}, not a boolean; compare it (== != < ...)")
            )
        if vtype is not None and vtype.name == "boolean":
            return resolve
        return lambda s: bool(resolve(s))  # json: its truth, as `when: ${api.body.ok}` always was

    def _compare(self, op: str, left: _Operand, right: _Operand) -> _Operand:
        (ltype, lget, lname), (rtype, rget, rname) = left, right
        name = f"{lname} {op} {rname}"
        if ltype is not None and rtype is not None:
            lf, rf = family(ltype), family(rtype)
            if op in _ORDER_OPS:
                if "boolean" in (lf, rf):
                    self._mismatch(f"{name}: booleans have no order; use == or !=")
                elif not ({lf, rf} <= {"number", "json"} or {lf, rf} <= {"text", "json"}):
                    self._mismatch(f"{name}: cannot order {ltype} against {rtype}")
            elif not comparable_families(lf, rf):
                self._mismatch(f"{name}: {ltype} is never equal to {rtype}")
        if op in _ORDER_OPS:
            return BOOLEAN, ordering(op, lget, rget, name), name
        if op == "==":
            return BOOLEAN, lambda s: equal(lget(s), rget(s)), name
        return BOOLEAN, lambda s: not equal(lget(s), rget(s)), name

    def _membership(self, left: _Operand, right: _Operand, negate: bool) -> _Operand:
        (ltype, lget, lname), (rtype, rget, rname) = left, right
        name = f"{lname} {'not in' if negate else 'in'} {rname}"
        if ltype is not None and rtype is not None:
            lf = family(ltype)
            if rtype.item is not None:
                if not comparable_families(lf, family(rtype.item)):
                    self._mismatch(f"{name}: {ltype} is never an element of {rtype}")
            elif rtype.name == "text":
                if lf not in {"text", "json"}:
                    self._mismatch(f"{name}: only text is found in text, not {ltype}")
            elif rtype.name != "json":
                self._mismatch(f"{name}: `in` needs a list or text on its right, not {rtype}")

        def member(s: Any) -> bool:
            return contains(lget(s), rget(s), name) != negate

        return BOOLEAN, member, name

    def _mismatch(self, message: str) -> None:
        self.problems.append(("type_mismatch", message))


def _literal(value: Any, name: str) -> _Operand:
    return literal_type(value), lambda scope: value, name


def compile_condition(
    text: str, ref_type: RefTyper, deps: set[str]
) -> tuple[Resolver | None, Problems]:
    """A condition as a resolver of its truth, or ``None``, with its problems as
    ``(code, message)``. ``ref_type`` types a reference (recording its own problems, with
    suggestions); every node a condition reads is added to ``deps``."""
    if len(text) > MAX_CONDITION_CHARS:
        message = (
            f"a condition is {len(text):,} characters, over the limit of {MAX_CONDITION_CHARS:,}"
        )
        return None, [("bad_when", message)]
    if not text.strip():
        return None, [("bad_when", 'an empty condition; write e.g. "${node.flag}"')]
    try:
        simple = _SIMPLE_RE.match(text)
        if simple is not None:  # most conditions are one flag: skip the tokenizer and grammar
            parser = _Parser("", ref_type, deps)
            resolve = parser.flag(simple.group(2), negated=simple.group(1) is not None)
        else:
            parser = _Parser(text, ref_type, deps)
            resolve = parser.condition()
    except ConditionError as exc:
        return None, [("bad_when", str(exc))]
    return resolve, parser.problems
