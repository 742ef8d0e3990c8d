"""``python -m control_plane.cli``: the ``rollgraph`` command."""

import sys

from control_plane.cli.main import main

sys.exit(main())
