"""Model fallbacks at run time: the node's model, then each of its ``fallback_models`` in order.

A model is tried under the node's retry policy; only when it has failed for good on a retryable
error (a timeout, a rate limit, a server error: the kind of failure another model may not share)
does the step move on to the next model, again under the same policy, since a rate limit on the
fallback is as transient as one on the primary. A non-retryable error (a bad input, a refusal)
ends the step at once: another model would be billed for the same mistake.

Each model's turn is admitted against the run's budget with that model's own estimate, so a run
stops (``budget_exceeded``) before a fallback it cannot afford rather than after. Every call is
recorded in the step's ``meta.model_attempts`` (model, attempt, status, error, cost) and the model
that answered in ``meta.served_by``; both go into the step cache with the outputs, so a resumed run
reports them without calling (or billing) anything again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from engine.errors import NodeError, StepFailed
from engine.node_kinds import NodeResult
from engine.trace import StepTrace

__all__ = ["ModelChain", "call_models"]

Checked = tuple[NodeResult, dict[str, Any]]  # what a kind returned, and its checked outputs


class ModelChain:
    """The models one step may call, in order, and what each call did."""

    __slots__ = ("log", "models")

    def __init__(self, primary: str, fallbacks: tuple[str, ...]) -> None:
        # A primary read from a reference may turn out to be one of the fallbacks at run time.
        self.models = (primary, *(m for m in fallbacks if m != primary))
        self.log: list[dict[str, Any]] = []

    def failed(self, model: str, attempt: int, error: NodeError) -> None:
        self.log.append(
            {
                "model": model,
                "attempt": attempt,
                "status": "failed",
                "error": str(error),
                "error_code": error.code,
                "cost_usd": 0.0,  # a provider raises instead of billing; see NodeError
            }
        )

    def succeeded(self, model: str, attempt: int, cost: float) -> None:
        entry = {"model": model, "attempt": attempt, "status": "succeeded", "cost_usd": cost}
        self.log.append(entry)

    def refused(self, model: str, error: NodeError) -> None:
        entry = {"model": model, "attempt": 0, "status": error.code, "error": str(error)}
        self.log.append({**entry, "error_code": error.code, "cost_usd": 0.0})

    def exhausted(self, last: NodeError) -> StepFailed:
        counts: dict[str, int] = {}
        errors: dict[str, str] = {}
        for entry in self.log:
            counts[entry["model"]] = counts.get(entry["model"], 0) + 1
            errors[entry["model"]] = entry.get("error") or ""
        tried = "; ".join(f"{m}: {errors[m]} ({_attempts(counts[m])})" for m in counts)
        error = NodeError(
            f"every model failed ({len(counts)} models, {_attempts(self.calls)}): {tried}",
            retryable=last.retryable,
            code=last.code,
        )
        return StepFailed(error, self.calls)

    @property
    def calls(self) -> int:
        """How many times a model was called (a turn the budget refused made no call)."""
        return sum(1 for entry in self.log if entry["attempt"])


def _attempts(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"


async def call_models(
    chain: ModelChain,
    step: StepTrace,
    params: dict[str, Any],
    call: Callable[[dict[str, Any]], Awaitable[Checked]],
    admit: Callable[[dict[str, Any]], None] | None = None,
    settle: Callable[[float, Mapping[str, float] | None], None] | None = None,
) -> Checked:
    """Call each model of ``chain`` in turn until one answers; ``call`` runs one model under the
    retry policy (recording its failed attempts in ``chain``), ``admit`` and ``settle`` reserve
    and bill the run's budget. Raises ``StepFailed`` with every attempt in the trace."""
    last: NodeError | None = None
    for index, model in enumerate(chain.models):
        turn = params if index == 0 else {**params, "model": model}
        try:
            if admit is not None:
                try:
                    admit(turn)
                except StepFailed as refused:
                    chain.refused(model, refused.error)
                    raise
            billed = 0.0
            usage: Mapping[str, float] | None = None
            try:
                result, outputs = await call(turn)
                billed, usage = result.cost_usd, result.usage
            finally:
                if settle is not None:
                    settle(billed, usage)
        except StepFailed as failed:
            # A budget refusal is not retryable either: the run stops before the next model.
            if not failed.error.retryable:
                step.add_meta({"model_attempts": chain.log})
                raise StepFailed(failed.error, chain.calls) from None
            last = failed.error
            continue
        chain.succeeded(model, step.attempts, billed)
        step.attempts = chain.calls
        result.meta = {**result.meta, "served_by": model, "model_attempts": chain.log}
        return result, outputs
    assert last is not None  # the chain holds at least the primary
    step.add_meta({"model_attempts": chain.log})
    raise chain.exhausted(last)
