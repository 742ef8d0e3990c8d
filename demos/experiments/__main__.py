"""``python -m demos.experiments``: ``make demo``'s two experiments (see the package)."""

import sys

from demos.experiments.main import main

sys.exit(main())
