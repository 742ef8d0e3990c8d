"""The console under ``/console``: its hashed assets cached for good, ``index.html`` for every
other path (the app routes on the client) and never cached, so a new build is picked up on the
next load while the assets it names stay valid.

The built files live in the package (``control_plane/console_dist``, built by ``make console``
from ``console/``), so an installed wheel serves the console without Node.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

__all__ = ["CONSOLE_DIST", "IMMUTABLE", "NOT_BUILT", "console_built", "router"]

CONSOLE_DIST: Final = Path(__file__).resolve().parent.parent / "console_dist"
# Vite names every file under assets/ by its content hash: a name never changes meaning.
IMMUTABLE: Final = "public, max-age=31536000, immutable"
_REVALIDATE: Final = "no-cache"
_VENDOR: Final = "public, max-age=86400"  # the docs' libraries: versioned with the build
NOT_BUILT: Final = (
    "The console is not built: run `make console` in a rollgraph checkout (needs Node 20 and "
    "npm), or install a rollgraph wheel, which ships it built."
)

router = APIRouter(include_in_schema=False)


def console_built(dist: Path = CONSOLE_DIST) -> bool:
    return (dist / "index.html").is_file()


def _index() -> Response:
    index = CONSOLE_DIST / "index.html"
    if not index.is_file():
        return HTMLResponse(f"<!doctype html><title>rollgraph</title><p>{NOT_BUILT}</p>", 404)
    return FileResponse(index, media_type="text/html", headers={"Cache-Control": _REVALIDATE})


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/console", status_code=307)


@router.get("/console")
def console_index() -> Response:
    return _index()


@router.get("/console/{path:path}")
def console_file(path: str) -> Response:
    target = (CONSOLE_DIST / path).resolve()
    # Only files inside the build; `..` or a symlink out of it is a client route like any other.
    if path and target.is_relative_to(CONSOLE_DIST) and target.is_file():
        if path.startswith("assets/"):
            cache = IMMUTABLE
        elif path.startswith("vendor/"):
            cache = _VENDOR
        else:
            cache = _REVALIDATE
        return FileResponse(target, headers={"Cache-Control": cache})
    if path.startswith(("assets/", "vendor/")):
        # A missing asset is a 404, never the index page parsed as a script.
        return Response("not found", status_code=404, media_type="text/plain")
    return _index()
