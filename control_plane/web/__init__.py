"""What the server serves to browsers: the console (a built single-page app) under ``/console``
and the interactive API docs from local assets, so neither needs the internet."""

from control_plane.web.console import CONSOLE_DIST, console_built
from control_plane.web.console import router as console_router
from control_plane.web.docs import router as docs_router

__all__ = ["CONSOLE_DIST", "console_built", "console_router", "docs_router"]
