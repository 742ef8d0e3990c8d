"""Experiments: versions of one workflow compared on live traffic, with per-arm statistics."""

from control_plane.experiments.schemas import ExperimentCreate, ExperimentPublic

__all__ = ["ExperimentCreate", "ExperimentPublic"]
