"""The HTTP layer: app factory, dependencies, error rendering, middleware."""

from control_plane.api.app import create_app

__all__ = ["create_app"]
