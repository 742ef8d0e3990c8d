"""Built-in node kinds. Importing this package registers them in the default kinds."""

from engine.kinds import http, map, media, models, switch, template

__all__ = ["http", "map", "media", "models", "switch", "template"]
