"""``make demo``: two experiments on simulated users, from the first batch to their ending.

    python -m demos.experiments               # the server at ROLLGRAPH_URL, or its own
    python -m demos.experiments --own-server  # its own even when a server answers

Both run on the ``demo`` label of product-video, so ``prod`` (v3.2 with v3.3 at 10 %, as ``make
run`` sets it up) is never touched and the demo can run again and again on the same server:

1. **rollback**: ``v3.2-noretry`` (v3.2 with retries turned off) fails about 6 % of its runs,
   where v3.2's retries leave almost no failure. The experiment ramps it 10 → 25 → 50 % while
   the evidence on the ``success`` guardrail builds up, until the regression is significant and
   the experiment rolls itself back; the label stays on v3.2.
2. **promotion**: ``v3.2-writer-large`` (the larger writer) converts 32 % of its users where
   v3.2 converts 20 %, fails as rarely and costs about the same; at the last ramp step the gain
   is significant and the experiment moves the label to it (``auto_promote``).

Each batch, new users run the workflow through the label (the experiment assigns each one an
arm) and report whether they converted; then ``POST /v1/experiments/{id}/evaluate`` applies the
experiment's rules at once, rather than at the background evaluator's next tick, so the demo is
fast and each line shows what one decision saw. The versions and experiments are example files:
``examples/product-video/v3.2-*.yaml`` and ``examples/product-video/experiments/``.

The users are the demo's own seeded draws (``--seed``): the prompt each sends and whether it
converts. The server draws the rest (the experiment's assignment salt, the run ids that seed the
simulator), so the counts differ from one demo to the next; the endings do not (see
``SCENARIOS`` for why).

When nothing answers at ``ROLLGRAPH_URL`` (default http://127.0.0.1:8000) the demo starts its
own server in this process, on a free loopback port, with a temporary SQLite database and a
simulator that does not sleep, and stops it at the end. Against another server it uses
``ROLLGRAPH_API_KEY`` (default: the development admin key). Exit status 0 when both scenarios
end as intended, 1 otherwise.

The modules: ``scenarios`` (the two scenarios, :class:`Ending`, :class:`DemoError`), ``users``
(the simulated users and their batches), ``servers`` (the server at ``ROLLGRAPH_URL`` or the
demo's own), ``drive`` (one scenario through the public client), ``report`` (what is printed
about it) and ``main`` (the command line).
"""

from demos.experiments.drive import run_scenario
from demos.experiments.main import main
from demos.experiments.scenarios import SCENARIOS, Ending, Scenario
from demos.experiments.servers import own_server

__all__ = ["SCENARIOS", "Ending", "Scenario", "main", "own_server", "run_scenario"]
