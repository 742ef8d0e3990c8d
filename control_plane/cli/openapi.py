"""Print the server's OpenAPI document as JSON (sorted keys, stable across runs): the input of the
console's generated TypeScript client (``make console``; ``tests/test_console_client.py`` fails
when the committed copy differs from what the app describes).

    python -m control_plane.cli.openapi --output console/openapi.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["main", "openapi_document", "openapi_text"]


def openapi_document() -> dict[str, Any]:
    from control_plane.app import create_app  # the app pulls in everything: only when asked
    from control_plane.settings import Settings

    # Default settings: the document does not depend on where the store is.
    return create_app(Settings()).openapi()


def openapi_text() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m control_plane.cli.openapi")
    parser.add_argument("--output", type=Path, help="write here (only if changed); else stdout")
    args = parser.parse_args(argv)
    text = openapi_text()
    if args.output is None:
        sys.stdout.write(text)
    elif not args.output.is_file() or args.output.read_text(encoding="utf-8") != text:
        args.output.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
