"""Online evaluators: scores of succeeded runs, recorded as their outcomes after the answer."""
