"""Define-time checks of a model node's ``fallback_models``.

``fallback_models: [sim/video-hq, sim/video-fast]`` names the models a node falls back to, in
order, when its own model fails for good on a retryable error (``engine.model_chain`` runs them).
Entries are written exactly as the node's ``with.model`` is (``provider/model``), so switching a
model between the primary and a fallback is moving a line, and one check (``Checker.check_model``)
decides whether either can do the kind's task. Entries are literals: a reference would leave the
list unchecked until run time, which is what defining a workflow is meant to prevent.

Problems, each located at ``nodes.NODE.fallback_models[i]`` and naming the node and the entry:
a kind that calls no model, more than ``MAX_FALLBACK_MODELS`` entries, an entry repeated or equal
to the node's own model, and an unknown or unfitting model (``bad_model``).
"""

from __future__ import annotations

import dataclasses
from typing import Final

from engine.node_kinds import NodeKind
from engine.spec import NodeSpec
from engine.typecheck import Checker

__all__ = ["BAD_FALLBACK", "MAX_FALLBACK_MODELS", "check_fallback_models"]

BAD_FALLBACK: Final = "bad_fallback"
# Each fallback may retry under the node's policy: eight models of three attempts is already a
# step of 27 calls, more than any outage is worth waiting through.
MAX_FALLBACK_MODELS: Final = 8


def check_fallback_models(
    checker: Checker, node_id: str, node: NodeSpec, kind: NodeKind, loc: str
) -> None:
    """Record every problem of ``node``'s ``fallback_models`` in ``checker``."""
    models = node.fallback_models
    if not models:
        return
    where = f"{loc}.fallback_models"
    if kind.provider_task is None:
        checker.error(
            BAD_FALLBACK,
            where,
            f"node {node_id!r} uses {kind.name}, which calls no model; only model kinds "
            "(those with a `model` parameter) can name fallback_models",
        )
        return
    if len(models) > MAX_FALLBACK_MODELS:
        checker.error(
            BAD_FALLBACK,
            where,
            f"node {node_id!r} names {len(models)} fallback models, more than the limit of "
            f"{MAX_FALLBACK_MODELS}",
        )
    primary = node.with_.get("model")
    seen: set[str] = set()
    for index, model in enumerate(models):
        at = f"{where}[{index}]"
        if "${" in model:
            message = "is a reference; fallback models are written literally (provider/model)"
            checker.error(BAD_FALLBACK, at, _about(node_id, model, message))
        elif model == primary:
            message = "is the node's own model; name only other models"
            checker.error(BAD_FALLBACK, at, _about(node_id, model, message))
        elif model in seen:
            checker.error(BAD_FALLBACK, at, _about(node_id, model, "is named twice"))
        else:
            _check_model(checker, node_id, kind, model, at)
        seen.add(model)


def _about(node_id: str, model: str, message: str) -> str:
    return f"node {node_id!r}: fallback model {model!r} {message}"


def _check_model(checker: Checker, node_id: str, kind: NodeKind, model: str, at: str) -> None:
    # The shared check words its messages for `with.model`; say which node and entry they are.
    first = len(checker.problems)
    checker.check_model(kind, model, at)
    for index in range(first, len(checker.problems)):
        problem = checker.problems[index]
        message = f"node {node_id!r}: fallback model {model!r}: {problem.message}"
        checker.problems[index] = dataclasses.replace(problem, message=message)
