"""Statistics for experiments: pure functions over per-arm sufficient statistics.

Nothing here touches the store, the engine or HTTP: the control plane aggregates each arm's runs
into ``MeanStats``/``ProportionStats`` (count, mean and M2, built from sums, shifted sums or
moments; successes) and calls ``decide``. Modules, one concept each:

- ``stats``: the sufficient statistics; ``effects``: absolute and relative (delta method)
  effects; ``comparison``: the ``Comparison`` result shared by every test;
- ``significance``: fixed-horizon Welch t and two-proportion z tests;
- ``sequential``: asymptotic confidence sequences (always-valid p-values, peeking allowed);
- ``degenerate``: where the normal approximation breaks (too few events, Agresti–Caffo for
  empty cells, Student's pooled variance, Fisher's exact test);
- ``srm``: sample ratio mismatch (chi-square); ``srm_sequential``: the always-valid
  Dirichlet-multinomial test of the same; ``multiple``: Holm and Benjamini–Hochberg;
  ``power``: runs needed for an MDE;
- ``spec``, ``outcome``, ``rules``, ``decision``: the experiment, its verdict, the rule ladder,
  and ``decide``; ``wording``: how numbers read in the verdict's sentences.
"""

from analysis.comparison import Alternative, Comparison, Scale
from analysis.decision import Decision, MetricResult, Reason, decide
from analysis.multiple import (
    Correction,
    HolmResult,
    MultipleTestResult,
    adjust,
    benjamini_hochberg,
    holm,
)
from analysis.power import SampleSize, runs_for_mean, runs_for_proportion
from analysis.sequential import rho_for_runs, sequential_test
from analysis.significance import fixed_test, two_proportion_z_test, welch_t_test
from analysis.spec import ArmSpec, ExperimentSpec, Guardrail, MetricSpec, PrimaryMetric
from analysis.srm import SRMResult, srm_check
from analysis.srm_sequential import sequential_srm_check, sequential_srm_steps
from analysis.stats import ArmData, MeanStats, MetricStats, ProportionStats

__all__ = [
    "Alternative",
    "ArmData",
    "ArmSpec",
    "Comparison",
    "Correction",
    "Decision",
    "ExperimentSpec",
    "Guardrail",
    "HolmResult",
    "MeanStats",
    "MetricResult",
    "MetricSpec",
    "MetricStats",
    "MultipleTestResult",
    "PrimaryMetric",
    "ProportionStats",
    "Reason",
    "SRMResult",
    "SampleSize",
    "Scale",
    "adjust",
    "benjamini_hochberg",
    "decide",
    "fixed_test",
    "holm",
    "rho_for_runs",
    "runs_for_mean",
    "runs_for_proportion",
    "sequential_srm_check",
    "sequential_srm_steps",
    "sequential_test",
    "srm_check",
    "two_proportion_z_test",
    "welch_t_test",
]
