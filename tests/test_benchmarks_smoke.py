"""The engine benchmark runs end to end and prints one JSON object with every figure.

Only the shape is checked: tests never assert on wall-clock time, so the targets may be either way.
"""

from __future__ import annotations

import pytest

from tests.bench import assert_positive, run_benchmark

NUMBERS = [
    "overhead_us_per_node",
    "asyncio_us_per_node",
    "langgraph_us_per_node",
    "durable_us_per_node",
    "langgraph_sqlite_us_per_node",
    "langgraph_sqlite_normal_us_per_node",
    "parallel_efficiency",
    "parallel_efficiency_layered_baseline",
    "ragged_efficiency",
    "ragged_efficiency_layered_baseline",
    "parallel_efficiency_dataflow_baseline",
    "ragged_efficiency_dataflow_baseline",
    "validate_ms_1000_nodes",
    "define_ms_1000_nodes_yaml",
    "define_ms_1000_chain_reversed",
    "define_ms_10000_chain_reversed",
    "define_chain_10x_ratio",
    "overhead_vs_asyncio",
    "langgraph_vs_overhead",
    "langgraph_sqlite_vs_durable",
    "langgraph_sqlite_normal_vs_durable",
    "budget_overhead_us_per_node",
    "budget_overhead_vs_none",
]
TARGETS = {
    "overhead_within_3x_asyncio",
    "overhead_10x_below_langgraph",
    "durable_5x_below_langgraph_sqlite",
    "parallel_efficiency_le_1_05",
    "ragged_efficiency_le_1_05",
    "validate_under_50ms",
    "define_yaml_under_150ms",
    "define_10000_chain_under_10x",
    "budget_overhead_within_1_1x",
}


@pytest.mark.slow
def test_engine_benchmark_prints_one_json_object_with_every_figure() -> None:
    result = run_benchmark("engine")
    assert_positive(result, NUMBERS)
    assert set(result["targets"]) == TARGETS
    assert all(isinstance(ok, bool) for ok in result["targets"].values())
    machine = result["machine"]
    assert set(machine) == {"cores", "python", "langgraph"}
    assert machine["cores"] >= 1
    assert machine["python"].count(".") == 2
    assert isinstance(machine["langgraph"], str)
    assert machine["langgraph"]
    assert result["notes"]
