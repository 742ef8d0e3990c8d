"""Statistics for experiments: pure functions over per-arm sufficient statistics.

Nothing here touches the store, the engine or HTTP: the control plane aggregates each arm's runs
into ``MeanStats``/``ProportionStats`` (count, sum, sum of squares; successes) and calls
``decide``. Modules, one concept each:

- ``stats``: the sufficient statistics; ``effects``: absolute and relative (delta method)
  effects; ``comparison``: the ``Comparison`` result shared by every test;
- ``significance``: fixed-horizon Welch t and two-proportion z tests;
- ``sequential``: asymptotic confidence sequences (always-valid p-values, peeking allowed);
- ``srm``: sample ratio mismatch; ``multiple``: Holm; ``power``: runs needed for an MDE;
- ``spec``, ``outcome``, ``rules``, ``decision``: the experiment, its verdict, the rule ladder,
  and ``decide``; ``wording``: how numbers read in the verdict's sentences.
"""

from analysis.comparison import Alternative, Comparison, Scale
from analysis.decision import Decision, MetricResult, Reason, decide
from analysis.multiple import HolmResult, holm
from analysis.power import SampleSize, runs_for_mean, runs_for_proportion
from analysis.sequential import rho_for_runs, sequential_test
from analysis.significance import fixed_test, two_proportion_z_test, welch_t_test
from analysis.spec import ArmSpec, ExperimentSpec, Guardrail, MetricSpec, PrimaryMetric
from analysis.srm import SRMResult, srm_check
from analysis.stats import ArmData, MeanStats, MetricStats, ProportionStats

__all__ = [
    "Alternative",
    "ArmData",
    "ArmSpec",
    "Comparison",
    "Decision",
    "ExperimentSpec",
    "Guardrail",
    "HolmResult",
    "MeanStats",
    "MetricResult",
    "MetricSpec",
    "MetricStats",
    "PrimaryMetric",
    "ProportionStats",
    "Reason",
    "SRMResult",
    "SampleSize",
    "Scale",
    "decide",
    "fixed_test",
    "holm",
    "rho_for_runs",
    "runs_for_mean",
    "runs_for_proportion",
    "sequential_test",
    "srm_check",
    "two_proportion_z_test",
    "welch_t_test",
]
