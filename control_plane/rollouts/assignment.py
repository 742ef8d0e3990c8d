"""Sticky assignment of units (users) to versions: the rule behind rollouts and experiments.

Everything here is a pure function of (salt, unit id, allocation), so every replica, after every
restart, sends the same user to the same version with no shared state.

The rule, exactly (``assignment_cases.json`` next to this file pins it with worked examples):

* ``bucket = mmh3_x86_32(utf8(salt + ":" + unit_id), seed=0) % 10_000`` (hash read as unsigned).
* Cumulative candidate shares are rounded to the nearest whole bucket (0.01 % resolution, halves
  rounded up): ``edge_i = floor((share_1 + … + share_i) * 10_000 + 0.5)``. Rounding the cumulative
  sums rather than each share keeps the rollout total equal to the rounded sum of the shares.
  ``T = edge_n`` is the rollout size. A share far below 0.01 % may get no bucket at all.
* The unit is in the rollout iff ``bucket < T``; otherwise it gets the baseline.
* In the rollout, ``arm_bucket = mmh3_x86_32(utf8(salt + ":arm:" + unit_id), seed=0) % 10_000``
  picks candidate ``i`` iff ``edge_{i-1} * 10_000 // T <= arm_bucket < edge_i * 10_000 // T``:
  the candidates' cumulative shares normalised to the rollout. A second, separate hash keeps
  "in the rollout" and "which arm" uncorrelated.

Because the rollout range always starts at bucket 0, raising the total share only adds units to
the rollout; with a single candidate that is the whole story (10 % → 20 % keeps the first 10 %).
With several candidates, changing their relative weights moves the arm boundaries, so some
units in the rollout may switch from one candidate to another (never back to the baseline).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Literal

import mmh3

__all__ = [
    "BUCKETS",
    "Allocation",
    "Arm",
    "Assignment",
    "Reason",
    "arm_bucket_of",
    "assign",
    "assignment_cases",
    "bucket_of",
    "in_rollout",
    "share_to_buckets",
]

BUCKETS = 10_000
Reason = Literal["baseline", "candidate", "random"]
# Float sums such as 0.1 + 0.2 + 0.7 land a hair above 1; that is not a real over-allocation.
_SUM_TOLERANCE = 1e-9
_hash = mmh3.hash  # bound once: the hot path is one hash plus a few integer operations


def share_to_buckets(share: float) -> int:
    """A fraction of traffic as a whole number of buckets, to the nearest bucket (halves up)."""
    return min(BUCKETS, max(0, math.floor(share * BUCKETS + 0.5)))


def bucket_of(salt: str, unit_id: str) -> int:
    """The rollout bucket of a unit: murmur3 x86_32 of UTF-8 ``salt:unit_id``, seed 0, unsigned."""
    return _hash(f"{salt}:{unit_id}", 0, False) % BUCKETS


def arm_bucket_of(salt: str, unit_id: str) -> int:
    """The bucket that picks the candidate: the same hash over ``salt:arm:unit_id``."""
    return _hash(f"{salt}:arm:{unit_id}", 0, False) % BUCKETS


@dataclass(frozen=True, slots=True)
class Arm:
    """A candidate version and the fraction (0..1) of all units it should receive."""

    version: str
    share: float

    def __post_init__(self) -> None:
        if not isinstance(self.version, str) or not self.version:
            raise ValueError(f"arm version must be a non-empty string, got {self.version!r}")
        # `not 0 <= share <= 1` also rejects NaN; bool is an int but never a meaningful share.
        if isinstance(self.share, bool) or not isinstance(self.share, int | float):
            raise ValueError(f"share of {self.version!r} must be a number, got {self.share!r}")
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(
                f"share of {self.version!r} must be between 0 and 1 (a fraction, not a "
                f"percentage), got {self.share!r}"
            )


@dataclass(frozen=True, slots=True)
class Assignment:
    """The version a unit gets, why, and its rollout bucket (record all three in the trace)."""

    version: str
    reason: Reason
    bucket: int


@dataclass(frozen=True)
class Allocation:
    """A salt, a baseline version and candidates; traffic the candidates don't take is baseline.

    Thresholds are computed once here so that :func:`assign` is one or two hashes and a lookup:
    build an Allocation when its configuration changes and reuse it (``dataclasses.replace``
    gives the ramped copy). The memos are shared by threads; a race only builds an equal object.
    """

    salt: str
    baseline: str
    candidates: tuple[Arm, ...] = ()
    # Derived, so not part of identity or repr. Building a frozen dataclass costs ~10 hashes, so
    # answers are memoised lazily, in two tables:
    # * `_hot`: everything the common path of assign() reads, in one tuple (one attribute load
    #   beats several): the hash prefix and the answer of each bucket the first hash alone
    #   decides: every bucket with at most one candidate, the baseline buckets otherwise.
    # * `_arms`, read only past a `_hot` miss: the arm hash prefix, the arm of each arm bucket
    #   (empty when no second hash is needed), the number of candidates, and the answers of the
    #   rollout buckets of several candidates, at bucket * n + arm.
    _rollout: int = field(init=False, repr=False, compare=False)
    _hot: tuple[str, list[Assignment | None]] = field(init=False, repr=False, compare=False)
    _arms: tuple[str, tuple[int, ...], int, list[Assignment | None]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not isinstance(self.salt, str):
            raise ValueError(f"salt must be a string, got {self.salt!r}")
        if not isinstance(self.baseline, str) or not self.baseline:
            raise ValueError(f"baseline must be a non-empty version string, got {self.baseline!r}")
        candidates = tuple(self.candidates)  # accept any sequence, store a hashable tuple
        object.__setattr__(self, "candidates", candidates)
        seen: set[str] = set()
        for arm in candidates:
            if not isinstance(arm, Arm):
                raise ValueError(f"candidates must be Arm objects, got {arm!r}")
            if arm.version == self.baseline:
                raise ValueError(f"baseline {arm.version!r} is also listed as a candidate")
            if arm.version in seen:
                raise ValueError(f"candidate {arm.version!r} is listed more than once")
            seen.add(arm.version)
        total = math.fsum(arm.share for arm in candidates)
        if total > 1.0 + _SUM_TOLERANCE:
            shares = ", ".join(f"{a.version}={a.share:g}" for a in candidates)
            raise ValueError(f"candidate shares sum to {total:g} > 1 ({shares})")
        edges, running = [], 0.0
        for arm in candidates:
            running += arm.share
            edges.append(share_to_buckets(running))
        rollout = edges[-1] if edges else 0
        arm_of: tuple[int, ...] = ()
        arm_memo: list[Assignment | None] = []
        if len(candidates) > 1 and rollout:
            # Arm i owns arm buckets [edge_{i-1} * 10_000 // T, edge_i * 10_000 // T).
            lows = [0] + [e * BUCKETS // rollout for e in edges]
            table: list[int] = []
            for i in range(len(edges)):
                table += [i] * (lows[i + 1] - lows[i])
            arm_of = tuple(table)
            arm_memo = [None] * (rollout * len(candidates))
        object.__setattr__(self, "_rollout", rollout)
        object.__setattr__(self, "_hot", (f"{self.salt}:", [None] * BUCKETS))
        object.__setattr__(self, "_arms", (f"{self.salt}:arm:", arm_of, len(candidates), arm_memo))

    @property
    def rollout_buckets(self) -> int:
        """How many of the 10,000 buckets are in the rollout (the rounded total share)."""
        return self._rollout

    def _build(self, bucket: int, arm: int, reason: Reason | None) -> Assignment:
        """The answer for a bucket and arm; sticky ones (no reason) go where assign() looks."""
        if bucket >= self._rollout:
            result = Assignment(self.baseline, reason or "baseline", bucket)
        else:
            result = Assignment(self.candidates[arm].version, reason or "candidate", bucket)
        if reason is None:  # only sticky answers are memoised; random ones are rare
            _, arm_of, n, arm_memo = self._arms
            if arm_of and bucket < self._rollout:
                arm_memo[bucket * n + arm] = result
            else:
                self._hot[1][bucket] = result
        return result

    def _random(self, rng: random.Random | None) -> Assignment:
        """A unit with no id: random buckets, so the configured split but reason ``"random"``."""
        draw = rng.randrange if rng is not None else random.randrange
        bucket, arm_bucket = draw(BUCKETS), draw(BUCKETS)
        arm_of = self._arms[1]
        arm = arm_of[arm_bucket] if bucket < self._rollout and arm_of else 0
        return self._build(bucket, arm, "random")


def in_rollout(allocation: Allocation, unit_id: str) -> bool:
    """Whether the unit falls in the rollout range (any candidate), before choosing the arm."""
    return bucket_of(allocation.salt, unit_id) < allocation._rollout


def assign(
    allocation: Allocation, unit_id: str | None, *, rng: random.Random | None = None
) -> Assignment:
    """The version for ``unit_id`` under ``allocation``; sticky for the same salt and unit id.

    The empty string is a unit id like any other. ``None`` means the caller has no unit id: the
    unit gets a random bucket (from ``rng``, or the ``random`` module) and reason ``"random"``, so
    it is still split in the configured proportions but not sticky; record that in the trace.
    """
    if unit_id is None:
        # In a method because every local variable of assign() costs each call (frame set-up).
        return allocation._random(rng)
    # Hot path, kept to one hash, one modulo and one list lookup because a router decision is
    # benchmarked against one bare mmh3 call (benchmarks/http.py): every step past those is work
    # the bare call does not do. The bytes hashed are exactly those of bucket_of / arm_bucket_of
    # (prefixes are precomputed).
    prefix, memo = allocation._hot
    bucket = _hash(prefix + unit_id, 0, False) % BUCKETS
    cached = memo[bucket]
    if cached is not None:
        return cached
    # Not memoised by bucket: a rollout bucket of several candidates (the second hash picks the
    # arm, memoised by bucket and arm; inline rather than in a method, which would add a call to
    # every such decision), or a bucket not seen yet.
    arm_prefix, arm_of, n, arm_memo = allocation._arms
    if arm_of and bucket < allocation._rollout:
        arm = arm_of[_hash(arm_prefix + unit_id, 0, False) % BUCKETS]
        cached = arm_memo[bucket * n + arm]
        return cached if cached is not None else allocation._build(bucket, arm, None)
    return allocation._build(bucket, 0, None)


def assignment_cases() -> list[dict[str, object]]:
    """The worked examples published in ``assignment_cases.json`` (deterministic)."""
    allocations = [
        Allocation("wf-product-video", "v3.2", (Arm("v3.3", 0.0),)),
        Allocation("wf-product-video", "v3.2", (Arm("v3.3", 0.1),)),
        Allocation("exp-tone", "control", (Arm("warm", 0.5),)),
        Allocation("exp-all-in", "v1", (Arm("v2", 1.0),)),
        Allocation("exp-two", "base", (Arm("cand-a", 0.2), Arm("cand-b", 0.3))),
        Allocation("exp-three", "base", (Arm("x", 0.0125), Arm("y", 0.3), Arm("z", 0.6875))),
    ]
    special = ["", "ünïcødé-ユーザー-🙂", "user@example.com", "id-" + "0123456789" * 30]
    cases: list[dict[str, object]] = []
    for alloc in allocations:
        # Ordinary ids until there are 10 and every reachable version has appeared twice.
        reachable = {a.version for a in alloc.candidates if a.share > 0}
        need = dict.fromkeys(
            reachable | ({alloc.baseline} if alloc._rollout < BUCKETS else set()), 2
        )
        ids = list(special)
        for unit in (f"user-{i}" for i in range(100_000)):
            if len(ids) >= 10 and not any(need.values()):
                break
            version = assign(alloc, unit).version
            if len(ids) < 10 or need[version]:
                ids.append(unit)
                need[version] = max(0, need[version] - 1)
        for unit in ids:
            result = assign(alloc, unit)
            arms = [{"version": a.version, "share": a.share} for a in alloc.candidates]
            cases.append(
                {"salt": alloc.salt, "unit_id": unit, "baseline": alloc.baseline,
                 "candidates": arms, "bucket": bucket_of(alloc.salt, unit),
                 "arm_bucket": arm_bucket_of(alloc.salt, unit), "version": result.version,
                 "reason": result.reason}
            )  # fmt: skip
    return cases


if __name__ == "__main__":  # python -m control_plane.rollouts.assignment --write-cases [PATH]
    import argparse
    import json
    from pathlib import Path

    default = Path(__file__).with_name("assignment_cases.json")
    parser = argparse.ArgumentParser(description="Regenerate the published assignment cases.")
    parser.add_argument("--write-cases", nargs="?", const=default, type=Path, required=True)
    path: Path = parser.parse_args().write_cases
    text = json.dumps(assignment_cases(), indent=2, sort_keys=True, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {path}")
