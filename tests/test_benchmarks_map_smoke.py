"""The map benchmark (``python -m benchmarks.map --json``) runs tiny and prints one JSON object
with a map element's overhead against a plain node's; the figures are the benchmark's to
measure, never asserted on here."""

from __future__ import annotations

from tests.bench import assert_positive, run_benchmark


def test_map_benchmark_prints_the_element_overhead_against_a_node() -> None:
    result = run_benchmark("map", quick=True, timeout=120)
    assert_positive(
        result,
        (
            "map_us_per_item",
            "node_us_per_node",
            "sim_us_per_call",
            "map_cached_us_per_item",
            "node_cached_us_per_node",
            "map_item_overhead_vs_node",
            "map_item_overhead_vs_node_cached",
        ),
    )
    assert set(result["targets"]) == {"map_item_overhead_within_2x_node"}
    assert result["machine"]["cores"] >= 1
