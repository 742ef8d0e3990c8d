"""Define-time figures of ``benchmarks.engine``: a workflow from YAML text, checks included.

- ``define_ms_1000_nodes_yaml``: ``engine.define`` on the 1,000-node chain/diamond mix written as
  YAML text, so parsing, the source map and every check are in the figure;
- ``define_ms_1000_chain_reversed`` and ``define_ms_10000_chain_reversed``: a chain declared
  tail first, whose names sort against the data flow (the order that made the topological sort
  quadratic and the cycle search deep), from YAML text;
- ``define_chain_10x_ratio``: the 10,000-node chain's time over the 1,000-node one's, measured
  in the same rounds; linear work makes it about 10.

Times are the process's CPU time: a definition is single-threaded CPU work, and on a shared
machine wall time adds whatever else ran meanwhile. Each timing ends with a collection of the
youngest generation, so the garbage collector's work that ``engine.define`` defers (it pauses the
collector) is counted, not left to the next caller.
"""

from __future__ import annotations

import gc
import statistics
import time
from typing import Any

import yaml

import engine
from benchmarks._common import generated_definition, rollgraph_definition

__all__ = ["define_figures", "reversed_chain_definition"]


def reversed_chain_definition(n_nodes: int, prefix: str = "c") -> dict[str, Any]:
    """A chain of ``n_nodes`` declared from its tail to its head, named so that sorted names
    run from the tail too: the declared order and the name order are both against the flow."""
    width = len(str(n_nodes - 1))

    def name(position: int) -> str:  # position 0 is the head, which reads the workflow input
        return f"{prefix}{n_nodes - 1 - position:0{width}d}"

    deps = {name(pos): (name(pos - 1),) if pos else () for pos in range(n_nodes - 1, -1, -1)}
    definition = rollgraph_definition(deps)
    definition["outputs"] = {"result": f"${{{name(n_nodes - 1)}.out}}"}
    return definition


def _define_ms(text: str, kinds: engine.NodeKinds, n_nodes: int) -> float:
    limits = engine.Limits(max_nodes=max(n_nodes, 1_000), max_edges=max(2 * n_nodes, 10_000))
    gc.collect()
    start = time.process_time()
    wf = engine.define(text, kinds=kinds, providers=[], limits=limits)
    gc.collect(0)
    elapsed = (time.process_time() - start) * 1e3
    if len(wf.nodes) != n_nodes:
        raise RuntimeError(f"the definition has {len(wf.nodes)} nodes, not {n_nodes}")
    return elapsed


def _yaml(definition: dict[str, Any]) -> str:
    return yaml.safe_dump(definition, sort_keys=False)


def define_figures(kinds: engine.NodeKinds, reps: int, rounds: int) -> dict[str, float]:
    """Medians of ``reps`` definitions of the 1,000-node mix, and of ``rounds`` interleaved
    rounds of the two reversed chains (each with its own node names, so no cache built by an
    earlier ``define`` makes a later one cheaper)."""
    mix = []
    for rep in range(reps):
        mix.append(_define_ms(_yaml(generated_definition(1000, prefix=f"y{rep}_")), kinds, 1000))
    small: list[float] = []
    large: list[float] = []
    ratios: list[float] = []
    for rnd in range(rounds):
        small_ms = statistics.median(
            _define_ms(_yaml(reversed_chain_definition(1000, f"s{rnd}_{i}_")), kinds, 1000)
            for i in range(3)
        )
        large_ms = _define_ms(_yaml(reversed_chain_definition(10_000, f"l{rnd}_")), kinds, 10_000)
        small.append(small_ms)
        large.append(large_ms)
        ratios.append(large_ms / small_ms)
    return {
        "define_ms_1000_nodes_yaml": statistics.median(mix),
        "define_ms_1000_chain_reversed": statistics.median(small),
        "define_ms_10000_chain_reversed": statistics.median(large),
        "define_chain_10x_ratio": statistics.median(ratios),
    }
