"""Which requests a label's shadow candidate mirrors: sticky by user, under a salt of its own.

The rule is the router's (``assignment``), with the shadow's own salt and its own prefix:
``bucket = mmh3_x86_32(utf8(salt + ":shadow:" + unit_id), seed=0) % 10_000`` and the request is
mirrored iff ``bucket < round(percent / 100 * 10_000)``. A salt drawn for the shadow alone makes
the mirrored users independent of who is in a rollout or an experiment arm: shadowing 10 % of a
label mirrors about 10 % of each arm, so the comparison sees every served version. A request
with no user id is mirrored at random in the same proportion (as the router does).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import mmh3

from control_plane.rollouts.assignment import BUCKETS, share_to_buckets

__all__ = ["ShadowData", "shadow_bucket_of", "shadowed"]


def shadow_bucket_of(salt: str, unit_id: str) -> int:
    """A unit's shadow bucket: murmur3 x86_32 of ``salt:shadow:unit_id``, seed 0, unsigned."""
    return mmh3.hash(f"{salt}:shadow:{unit_id}", 0, False) % BUCKETS


@dataclass(frozen=True, slots=True)
class ShadowData:
    """What a run needs of a label's shadow candidate (a detached copy: cached with the route)."""

    version: str
    digest: str
    definition: str
    percent: float
    max_cost_usd_per_hour: float
    salt: str
    buckets: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "buckets", share_to_buckets(self.percent / 100))


def shadowed(shadow: ShadowData, unit_id: str | None, *, rng: random.Random | None = None) -> bool:
    """Whether a request of ``unit_id`` is mirrored to the shadow candidate (sticky per unit)."""
    if unit_id is None:
        draw = rng.randrange if rng is not None else random.randrange
        return draw(BUCKETS) < shadow.buckets
    return shadow_bucket_of(shadow.salt, unit_id) < shadow.buckets
