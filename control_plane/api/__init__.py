"""The web kit every resource's routes use: dependency aliases, error rendering, middleware and
path parameters. It knows no domain; the app (``control_plane.app``) assembles the routes."""
