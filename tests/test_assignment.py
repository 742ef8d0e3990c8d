"""The sticky assignment rule: published cases, ramp monotonicity, balance and independence.

The statistical tests use fixed ids (``user-0`` … ``user-99999``), so they are deterministic: a
p-value that passes today passes forever, and any change to the hashing shows up as a change here
and in ``assignment_cases.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from collections import Counter
from pathlib import Path
from typing import Any

import mmh3
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from control_plane.rollouts.assignment import (
    BUCKETS,
    Allocation,
    Arm,
    Assignment,
    arm_bucket_of,
    assign,
    assignment_cases,
    bucket_of,
    in_rollout,
    share_to_buckets,
)

CASES_PATH = (
    Path(__file__).resolve().parents[1] / "control_plane" / "rollouts" / "assignment_cases.json"
)
CASES: list[dict[str, Any]] = json.loads(CASES_PATH.read_text(encoding="utf-8"))
N = 100_000
IDS = [f"user-{i}" for i in range(N)]


def _allocation(case: dict[str, Any]) -> Allocation:
    arms = tuple(Arm(c["version"], c["share"]) for c in case["candidates"])
    return Allocation(case["salt"], case["baseline"], arms)


def _shares(alloc: Allocation, ids: list[str] = IDS) -> dict[str, float]:
    counts = Counter(assign(alloc, unit).version for unit in ids)
    return {version: n / len(ids) for version, n in counts.items()}


# --- the published cases ---


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['salt']}/{c['unit_id'][:16]!r}")
def test_published_case_reproduces(case: dict[str, Any]) -> None:
    alloc = _allocation(case)
    assert bucket_of(case["salt"], case["unit_id"]) == case["bucket"]
    assert arm_bucket_of(case["salt"], case["unit_id"]) == case["arm_bucket"]
    result = assign(alloc, case["unit_id"])
    assert result == Assignment(case["version"], case["reason"], case["bucket"])
    assert assign(alloc, case["unit_id"]) == result  # sticky, also through the memo


def test_published_cases_match_the_generator_and_cover_the_spec() -> None:
    # The file is exactly what `python -m control_plane.rollouts.assignment --write-cases` writes.
    assert assignment_cases() == CASES
    text = json.dumps(CASES, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert CASES_PATH.read_text(encoding="utf-8") == text
    assert len(CASES) >= 60
    totals = {round(sum(c["share"] for c in case["candidates"]), 6) for case in CASES}
    assert {0.0, 0.1, 0.5, 1.0} <= totals
    assert {len(case["candidates"]) for case in CASES} >= {1, 2, 3}
    units = {case["unit_id"] for case in CASES}
    assert "" in units
    assert any(not u.isascii() for u in units)
    assert any(len(u) > 200 for u in units)
    assert {case["reason"] for case in CASES} == {"baseline", "candidate"}


def test_buckets_match_an_independent_mmh3_computation() -> None:
    # Computed here straight from mmh3 over the documented bytes, not through the router.
    for case in CASES:
        key = (case["salt"] + ":" + case["unit_id"]).encode("utf-8")
        arm_key = (case["salt"] + ":arm:" + case["unit_id"]).encode("utf-8")
        assert mmh3.hash(key, seed=0, signed=False) % 10_000 == case["bucket"]
        assert mmh3.hash(arm_key, seed=0, signed=False) % 10_000 == case["arm_bucket"]
    # And through a from-scratch MurmurHash3 x86_32, so the rule is pinned even if mmh3 changed.
    for case in CASES[::7]:
        key = (case["salt"] + ":" + case["unit_id"]).encode("utf-8")
        assert _murmur3_32(key) % 10_000 == case["bucket"]


def _murmur3_32(data: bytes, seed: int = 0) -> int:
    """Reference MurmurHash3 x86_32 (Austin Appleby), unsigned result."""
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF
    h = seed

    def rotl(x: int, r: int) -> int:
        return ((x << r) | (x >> (32 - r))) & mask

    tail_start = len(data) - len(data) % 4
    for i in range(0, tail_start, 4):
        k = (int.from_bytes(data[i : i + 4], "little") * c1) & mask
        h ^= (rotl(k, 15) * c2) & mask
        h = (rotl(h, 13) * 5 + 0xE6546B64) & mask
    tail = data[tail_start:]
    if tail:
        k = (int.from_bytes(tail, "little") * c1) & mask
        h ^= (rotl(k, 15) * c2) & mask
    h ^= len(data)
    h = ((h ^ (h >> 16)) * 0x85EBCA6B) & mask
    h = ((h ^ (h >> 13)) * 0xC2B2AE35) & mask
    return h ^ (h >> 16)


def test_single_candidate_rule_by_hand() -> None:
    # Rollout range is [0, T): compare against the documented rule without the router.
    alloc = Allocation("wf", "v1", (Arm("v2", 0.1),))
    assert alloc.rollout_buckets == 1000
    for unit in IDS[:2000]:
        bucket = mmh3.hash(f"wf:{unit}", seed=0, signed=False) % 10_000
        expected = "v2" if bucket < 1000 else "v1"
        assert assign(alloc, unit).version == expected
        assert in_rollout(alloc, unit) is (bucket < 1000)


def test_several_candidates_rule_by_hand() -> None:
    # 10 % / 30 %: T = 4000, arm edges normalised to the rollout are 2500 and 10_000.
    alloc = Allocation("wf", "v1", (Arm("a", 0.1), Arm("b", 0.3)))
    assert alloc.rollout_buckets == 4000
    for unit in IDS[:3000]:
        bucket = mmh3.hash(f"wf:{unit}", seed=0, signed=False) % 10_000
        arm_bucket = mmh3.hash(f"wf:arm:{unit}", seed=0, signed=False) % 10_000
        expected = "v1" if bucket >= 4000 else ("a" if arm_bucket < 2500 else "b")
        assert assign(alloc, unit) == Assignment(
            expected, "baseline" if expected == "v1" else "candidate", bucket
        )


def _by_the_rule(alloc: Allocation, unit: str) -> Assignment:
    """The documented rule from scratch (module docstring of the router), no router code."""
    edges, running = [], 0.0
    for arm in alloc.candidates:
        running += arm.share
        edges.append(min(10_000, max(0, math.floor(running * 10_000 + 0.5))))
    rollout = edges[-1] if edges else 0
    bucket = mmh3.hash(f"{alloc.salt}:{unit}", 0, False) % 10_000
    if bucket >= rollout:
        return Assignment(alloc.baseline, "baseline", bucket)
    arm_bucket = mmh3.hash(f"{alloc.salt}:arm:{unit}", 0, False) % 10_000
    lows = [0] + [edge * 10_000 // rollout for edge in edges]
    index = next(i for i in range(len(edges)) if lows[i] <= arm_bucket < lows[i + 1])
    return Assignment(alloc.candidates[index].version, "candidate", bucket)


@pytest.mark.parametrize(
    "candidates",
    [
        (),
        (Arm("v2", 0.0),),
        (Arm("v2", 0.1),),
        (Arm("v2", 1.0),),
        (Arm("a", 0.0), Arm("b", 0.0)),
        (Arm("a", 0.1), Arm("b", 0.3)),
        (Arm("a", 0.00004), Arm("b", 0.5), Arm("c", 0.2)),
        (Arm("a", 0.2), Arm("b", 0.3), Arm("c", 0.5)),
    ],
)
def test_memoised_and_first_answers_follow_the_rule(candidates: tuple[Arm, ...]) -> None:
    # assign() answers from a per-bucket memo when it can and computes otherwise (first sight of
    # a bucket; the arm hash of several candidates): both must give the rule's answer. Each id is
    # asked twice, so the first call mostly takes the computing path and the second the memo.
    alloc = Allocation("exp-memo", "v1", candidates)
    for unit in IDS[:6000]:
        expected = _by_the_rule(alloc, unit)
        first = assign(alloc, unit)
        assert first == expected, unit
        again = assign(alloc, unit)
        assert again == expected, unit
        assert again is first  # memoised, so a repeat decision builds nothing


@settings(max_examples=150, deadline=None)
@given(
    salt=st.text(max_size=20),
    shares=st.lists(st.floats(0.0, 0.25, allow_nan=False), max_size=4),
    units=st.lists(st.text(max_size=40), min_size=1, max_size=30),
)
def test_assign_matches_the_rule_from_scratch(
    salt: str, shares: list[float], units: list[str]
) -> None:
    alloc = Allocation(salt, "base", tuple(Arm(f"v{i}", s) for i, s in enumerate(shares)))
    for unit in units + units:  # the repeat goes through the memo
        assert assign(alloc, unit) == _by_the_rule(alloc, unit)


def test_ramping_with_dataclasses_replace_recomputes_thresholds() -> None:
    ten = Allocation("wf", "v1", (Arm("v2", 0.1),))
    twenty = dataclasses.replace(ten, candidates=(Arm("v2", 0.2),))
    assert (ten.rollout_buckets, twenty.rollout_buckets) == (1000, 2000)
    moved = [u for u in IDS[:5000] if assign(ten, u).version != assign(twenty, u).version]
    assert moved
    assert all(assign(twenty, u).version == "v2" for u in moved)


# --- ramps ---

shares = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(
    salt=st.text(max_size=20), units=st.lists(st.text(max_size=40), max_size=20), p=shares, q=shares
)
def test_ramping_a_single_candidate_only_adds_users(
    salt: str, units: list[str], p: float, q: float
) -> None:
    low, high = sorted((p, q))
    before = Allocation(salt, "base", (Arm("cand", low),))
    after = Allocation(salt, "base", (Arm("cand", high),))
    for unit in units:
        if assign(before, unit).version == "cand":
            assert assign(after, unit).version == "cand"
        if assign(after, unit).version == "base":
            assert assign(before, unit).version == "base"


@settings(max_examples=100, deadline=None)
@given(
    salt=st.text(max_size=20),
    units=st.lists(st.text(max_size=40), max_size=20),
    a=st.floats(0.0, 0.5),
    b=st.floats(0.0, 0.5),
    grow=st.floats(0.0, 1.0),
)
def test_growing_several_candidates_never_sends_rollout_users_back_to_baseline(
    salt: str, units: list[str], a: float, b: float, grow: float
) -> None:
    # Relative weights may change (so units may switch candidate), but the rollout only grows.
    before = Allocation(salt, "base", (Arm("x", a), Arm("y", b)))
    after = Allocation(salt, "base", (Arm("x", a + grow * (0.5 - a)), Arm("y", b)))
    for unit in units:
        if in_rollout(before, unit):
            assert in_rollout(after, unit)
            assert assign(after, unit).reason == "candidate"


def test_share_rounding_is_to_the_nearest_bucket() -> None:
    assert share_to_buckets(0.1) == 1000
    assert share_to_buckets(0.12344) == 1234
    assert share_to_buckets(0.12346) == 1235
    assert share_to_buckets(0.00004) == 0
    assert share_to_buckets(1.0) == BUCKETS
    # Cumulative rounding: three thirds fill the whole range, no bucket is lost.
    third = Allocation("s", "b", tuple(Arm(v, 1 / 3) for v in "xyz"))
    assert third.rollout_buckets == BUCKETS


# --- balance and independence (deterministic ids, fixed p-values) ---


@pytest.mark.parametrize(
    ("candidates", "baseline_share"),
    [
        ((Arm("v2", 0.1),), 0.9),
        ((Arm("v2", 0.5),), 0.5),
        ((Arm("a", 0.2), Arm("b", 0.3), Arm("c", 0.5)), 0.0),
        ((Arm("a", 0.05), Arm("b", 0.15)), 0.8),
    ],
)
def test_observed_shares_match_configured_shares(
    candidates: tuple[Arm, ...], baseline_share: float
) -> None:
    observed = _shares(Allocation("exp-balance", "v1", candidates))
    expected = {arm.version: arm.share for arm in candidates}
    if baseline_share:
        expected["v1"] = baseline_share
    assert set(observed) == set(expected)
    for version, share in expected.items():
        assert abs(observed[version] - share) <= 0.005, (version, observed[version], share)


def test_buckets_are_uniform() -> None:
    buckets = np.array([bucket_of("exp-uniform", unit) for unit in IDS])
    counts = np.bincount(buckets // 100, minlength=100)
    assert stats.chisquare(counts).pvalue > 0.001
    arm_counts = np.bincount(np.array([arm_bucket_of("exp-uniform", u) for u in IDS]) // 100)
    assert stats.chisquare(arm_counts).pvalue > 0.001


def test_two_salts_are_independent() -> None:
    a = Allocation("exp-a", "v1", (Arm("v2", 0.3),))
    b = Allocation("exp-b", "v1", (Arm("v2", 0.3),))
    table = np.zeros((2, 2))
    for unit in IDS:
        table[int(in_rollout(a, unit)), int(in_rollout(b, unit))] += 1
    assert stats.chi2_contingency(table).pvalue > 0.001


def test_being_in_the_rollout_is_independent_of_the_arm() -> None:
    # The arm hash is computed for everyone, so the split can be compared in and out of rollout.
    alloc = Allocation("exp-arms", "v1", (Arm("x", 0.1), Arm("y", 0.1), Arm("z", 0.2)))
    table = np.zeros((2, 3))
    thresholds = [2500, 5000, 10_000]  # x, y, z edges normalised to the 40 % rollout
    for unit in IDS:
        arm = next(i for i, t in enumerate(thresholds) if arm_bucket_of("exp-arms", unit) < t)
        table[int(in_rollout(alloc, unit)), arm] += 1
    assert stats.chi2_contingency(table).pvalue > 0.001


# --- invalid allocations and unit ids ---


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Arm("v2", -0.1), "between 0 and 1"),
        (lambda: Arm("v2", 10), "between 0 and 1"),
        (lambda: Arm("v2", float("nan")), "between 0 and 1"),
        (lambda: Arm("v2", True), "must be a number"),
        (lambda: Arm("", 0.1), "non-empty"),
        (lambda: Allocation("s", "v1", (Arm("v2", 0.6), Arm("v3", 0.5))), "sum to 1.1 > 1"),
        (lambda: Allocation("s", "v1", (Arm("v2", 0.1), Arm("v2", 0.2))), "more than once"),
        (lambda: Allocation("s", "v1", (Arm("v1", 0.1),)), "also listed as a candidate"),
        (lambda: Allocation("s", "", (Arm("v2", 0.1),)), "baseline must be"),
        (lambda: Allocation("s", "v1", ("v2",)), "must be Arm objects"),  # type: ignore[arg-type]
    ],
)
def test_invalid_allocations_raise_a_clear_value_error(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_float_noise_in_shares_summing_to_one_is_accepted() -> None:
    alloc = Allocation("s", "v1", [Arm("a", 0.1), Arm("b", 0.2), Arm("c", 0.7)])  # type: ignore[arg-type]
    assert alloc.candidates == (Arm("a", 0.1), Arm("b", 0.2), Arm("c", 0.7))
    assert alloc.rollout_buckets == BUCKETS
    assert {assign(alloc, unit).reason for unit in IDS[:500]} == {"candidate"}


def test_no_unit_id_gets_a_random_bucket_with_reason_random() -> None:
    alloc = Allocation("s", "v1", (Arm("v2", 0.5), Arm("v3", 0.2)))
    results = [assign(alloc, None, rng=random.Random(7)) for _ in range(3)]
    assert results[0] == results[1] == results[2]  # same seed, same draw
    draws = [assign(alloc, None, rng=random.Random(seed)) for seed in range(3000)]
    assert {r.reason for r in draws} == {"random"}
    counts = Counter(r.version for r in draws)
    assert set(counts) == {"v1", "v2", "v3"}
    assert abs(counts["v2"] / 3000 - 0.5) < 0.05
    assert assign(alloc, None).reason == "random"  # default: the random module


def test_empty_string_is_a_unit_id_not_a_missing_one() -> None:
    alloc = Allocation("s", "v1", (Arm("v2", 0.5),))
    assert assign(alloc, "").reason in {"baseline", "candidate"}
    assert assign(alloc, "").bucket == bucket_of("s", "")


def test_allocations_compare_and_hash_by_their_configuration() -> None:
    a = Allocation("s", "v1", (Arm("v2", 0.5),))
    b = Allocation("s", "v1", (Arm("v2", 0.5),))
    assign(a, "user-1")  # filling a's memo must not change equality
    assert a == b
    assert hash(a) == hash(b)
    assert "_hot" not in repr(a)
