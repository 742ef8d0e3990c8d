"""Graph checks on a workflow's dependencies: cycles, a run order, reachability, consumers.

Every function takes the dependency map ``node → the nodes it reads`` as plain names, so each
can be reasoned about without the rest of a workflow. Cycles and reachability ignore names that
are not keys of the map (references to undeclared nodes, reported by the type checks); ordering
and consumers expect a graph that has passed every check.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet

__all__ = ["consumers_of", "find_cycles", "reaching", "topological_order"]


def find_cycles(deps: Mapping[str, AbstractSet[str]]) -> list[list[str]]:
    """Every elementary cycle reached by a depth-first search, each reported once.

    The search keeps its own stack: a chain of a thousand nodes whose names sort against the
    data flow would otherwise recurse a thousand calls deep and exhaust Python's stack. Each
    node on the stack knows its position, so closing a cycle costs its length, not the depth."""
    done: set[str] = set()
    position: dict[str, int] = {}  # node → its index in ``stack`` while it is on it
    stack: list[str] = []
    cycles: list[list[str]] = []
    seen: set[frozenset[str]] = set()

    def record(dep: str) -> None:
        cycle = stack[position[dep] :]
        if frozenset(cycle) not in seen:
            seen.add(frozenset(cycle))
            # In data-flow order, starting at the smallest name, so it reads the same
            # whichever node the search entered the cycle by.
            flow = list(reversed(cycle))
            start = flow.index(min(flow))
            flow = flow[start:] + flow[:start]
            cycles.append([*flow, flow[0]])

    for root in sorted(deps):
        if root in done:
            continue
        position[root] = 0
        stack.append(root)
        pending: list[Iterator[str]] = [iter(sorted(deps[root]))]
        while pending:
            for dep in pending[-1]:
                if dep not in deps or dep in done:
                    continue
                if dep in position:
                    record(dep)
                else:
                    position[dep] = len(stack)
                    stack.append(dep)
                    pending.append(iter(sorted(deps[dep])))
                    break
            else:
                pending.pop()
                node = stack.pop()
                del position[node]
                done.add(node)
    return cycles


def topological_order(deps: Mapping[str, AbstractSet[str]], declared: list[str]) -> list[str]:
    """Nodes after everything they read; ties keep their declared order.

    The order is that of sweeping the declared list again and again, placing each node whose
    dependencies are all placed, but computed in one pass over nodes and edges (Kahn's
    algorithm): a node's sweep is the latest of its dependencies' sweeps, one later for a
    dependency declared after it. Sweeping itself is quadratic when nodes are declared against
    the flow (a reversed chain needs a sweep per node).

    Nodes on a cycle, or reading one or an undeclared name, never become placeable and are left
    out, so a caller orders only a graph that ``find_cycles`` has passed.
    """
    index = {node: i for i, node in enumerate(declared)}
    waiting = {node: len(deps[node]) for node in declared}
    readers: dict[str, list[str]] = {node: [] for node in declared}
    for node in declared:
        for dep in deps[node]:
            if dep in readers:
                readers[dep].append(node)
    sweep: dict[str, int] = {}
    ready = [node for node in declared if not waiting[node]]
    for node in ready:  # grows while it is walked: each node is appended once, when placeable
        at = index[node]
        sweep[node] = max((sweep[d] + (index[d] > at) for d in deps[node]), default=0)
        for reader in readers[node]:
            waiting[reader] -= 1
            if not waiting[reader]:
                ready.append(reader)
    sweeps: list[list[str]] = [[] for _ in range(max(sweep.values(), default=-1) + 1)]
    for node in declared:
        if node in sweep:
            sweeps[sweep[node]].append(node)
    return [node for nodes in sweeps for node in nodes]


def reaching(deps: Mapping[str, AbstractSet[str]], targets: Iterable[str]) -> set[str]:
    """The nodes whose results flow into ``targets``, the targets included."""
    found: set[str] = set()
    frontier = [t for t in targets if t in deps]
    while frontier:
        node = frontier.pop()
        if node in found:
            continue
        found.add(node)
        frontier.extend(d for d in deps[node] if d in deps)
    return found


def consumers_of(order: Sequence[str], deps: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """Each node's consumers (the nodes that read it), listed in ``order``."""
    consumers: dict[str, list[str]] = {node: [] for node in deps}
    for node in order:
        for dep in deps[node]:
            consumers[dep].append(node)
    return consumers
