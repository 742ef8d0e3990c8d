"""The README's fenced blocks and the commands in them, as ``tests/test_readme.py`` and
``tests/test_readme_commands.py`` read them: one parser, so a block the tests do not know about
cannot slip past both."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "README",
    "ROOT",
    "Block",
    "Command",
    "blocks",
    "commands",
    "inline_make_targets",
    "inline_modules",
    "marker",
    "prose",
]

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SHELL = ("sh", "bash", "console", "shell")
_FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```$", re.M | re.S)
_MARKER = re.compile(r"^# readme: (.+)$", re.M)


@dataclass(frozen=True)
class Block:
    """One fenced block: its language, its text and the README line of its first text line."""

    lang: str
    text: str
    line: int

    def where(self) -> str:
        return f"README.md:{self.line} ({self.lang or 'no language'})"


@dataclass(frozen=True)
class Command:
    """One command line of a shell block (or a ``$ ...`` line of a ``text`` block), its comment
    dropped, with its README line."""

    text: str
    line: int


def blocks(text: str | None = None) -> list[Block]:
    """Every fenced block of the README, in order."""
    source = README.read_text(encoding="utf-8") if text is None else text
    return [
        Block(match.group(1), match.group(2), source.count("\n", 0, match.start(2)) + 1)
        for match in _FENCE.finditer(source)
    ]


def marker(block: Block) -> str | None:
    """The block's ``# readme: ...`` marker comment, if it has one."""
    found = _MARKER.search(block.text)
    return found.group(1).strip() if found else None


def commands(block: Block) -> list[Command]:
    """The commands of a shell block: each line that is not blank, not only a comment and not
    indented (an indented line continues the comment above it); a ``text`` block's commands are
    its ``$ `` lines (the rest is their output)."""
    found = []
    for offset, raw in enumerate(block.text.splitlines()):
        if block.lang in SHELL:
            if raw[:1].isspace() or raw.lstrip().startswith("#"):
                continue
            command = _strip_comment(raw)
        elif raw.startswith("$ "):
            command = _strip_comment(raw[2:])
        else:
            continue
        if command:
            found.append(Command(command, block.line + offset))
    return found


def _strip_comment(line: str) -> str:
    """The line without its trailing ``  # comment`` (a ``#`` inside quotes is kept)."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].strip()
    return line.strip()


def prose(text: str | None = None) -> str:
    """The README (or ``text``) without its fenced blocks."""
    return _FENCE.sub("", README.read_text(encoding="utf-8") if text is None else text)


def inline_make_targets(text: str | None = None) -> set[str]:
    """Every ``make TARGET`` the README's prose mentions in backticks."""
    source = prose(text)
    return set(re.findall(r"`make ([a-z][\w-]*)[^`]*`", source))


def inline_modules(text: str | None = None) -> set[str]:
    """Every module of a ``python -m MODULE`` the README's prose mentions in backticks."""
    source = prose(text)
    return set(re.findall(r"`python -m ([\w.]+)[^`]*`", source))
