"""What the demo is made of: its two scenarios (:data:`SCENARIOS`), each a candidate, an
experiment file, how the simulated users behave and the ending it must reach; :class:`Ending`,
how a scenario did end; and :class:`DemoError`, what any part of the demo raises for the person
running it to read.

The other modules of the package import from here; this one imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["BASELINE_FILE", "EXAMPLES", "SCENARIOS", "DemoError", "Ending", "Scenario"]

# demos/ is not in the wheel: it runs from a clone, where examples/ is beside it.
EXAMPLES: Final = Path(__file__).resolve().parents[2] / "examples" / "product-video"
BASELINE_FILE: Final = "v3.2.yaml"


@dataclass(frozen=True)
class Scenario:
    """One experiment of the demo and the ending it should reach.

    ``conversion`` is how the simulated users behave: the chance that a user served by the
    ``baseline`` or the ``candidate`` converts (a failed run never does). ``watch`` is the metric
    each batch line shows: the one the decision turns on."""

    title: str
    about: str
    candidate_file: str
    experiment_file: str
    conversion: dict[str, float]
    watch: str
    expected: str  # the experiment's final status: "rolled_back" | "promoted"


# Why these numbers end as intended. Both experiments use sequential (always-valid) tests, read
# after every batch, with at least 30 runs per arm before any decision. Simulated 1,000 times each
# under the same rules (analysis.decide), both ended as intended every time:
# * rollback: success ~93 % against ~100 % is a 6- to 7-point drop; the one-sided confidence
#   sequence excludes "no worse" after some 150-400 candidate runs, mostly at the 50 % step,
#   after about 800 users (99 % within 1,100). Users who get a video convert alike on both
#   versions, so the primary metric stays inconclusive and the rollback is the guardrail's
#   alone; a failed run bills less, so cost falls and its guardrail holds.
# * promotion: 32 % against 20 % converted is +60 %; the two-sided sequence excludes 0 after
#   some 300-700 runs per arm, so the experiment promotes at its last step, after about 1,000
#   users (99 % within 1,900). Model calls are retried, so neither version fails, and the larger
#   writer's tokens add well under 1 % to a run's cost (8 s of video is $0.40): no guardrail
#   blocks it.
# Smaller effects would be as real but take more users than a demo should.
SCENARIOS: Final = (
    Scenario(
        title="a candidate worse on one guardrail",
        about="v3.2 with retries turned off: about 6 % of its runs fail (v3.2: almost none)",
        candidate_file="v3.2-noretry.yaml",
        experiment_file="noretry.yaml",
        conversion={"baseline": 0.20, "candidate": 0.20},
        watch="success",
        expected="rolled_back",
    ),
    Scenario(
        title="a better candidate",
        about="v3.2 with the larger writer: richer scripts, more users convert, same cost",
        candidate_file="v3.2-writer-large.yaml",
        experiment_file="writer-large.yaml",
        conversion={"baseline": 0.20, "candidate": 0.32},
        watch="converted",
        expected="promoted",
    ),
)


class DemoError(Exception):
    """Something the person running the demo should read, without a traceback."""


@dataclass(frozen=True)
class Ending:
    """How one scenario ended: the experiment's status and the label before and after."""

    scenario: Scenario
    experiment_id: int
    status: str
    users: int
    baseline: str
    candidate: str
    label_before: str | None
    label_after: str | None

    @property
    def as_intended(self) -> bool:
        """The status the scenario expects, with the label where that status should leave it
        (and where it was before: a label that was not on the baseline proves nothing)."""
        if self.status != self.scenario.expected:
            return False
        # A promotion moves the label to the candidate; a rollback leaves it on the baseline.
        wanted = self.candidate if self.status == "promoted" else self.baseline
        return self.label_before == self.baseline and self.label_after == wanted
