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
    data flow would otherwise recurse a thousand calls deep and exhaust Python's stack."""
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []
    seen: set[frozenset[str]] = set()

    def record(dep: str) -> None:
        cycle = stack[stack.index(dep) :]
        if frozenset(cycle) not in seen:
            seen.add(frozenset(cycle))
            # In data-flow order, starting at the smallest name, so it reads the same
            # whichever node the search entered the cycle by.
            flow = list(reversed(cycle))
            start = flow.index(min(flow))
            flow = flow[start:] + flow[:start]
            cycles.append([*flow, flow[0]])

    for root in sorted(deps):
        if root in state:
            continue
        state[root] = 1
        stack.append(root)
        pending: list[Iterator[str]] = [iter(sorted(deps.get(root, ())))]
        while pending:
            for dep in pending[-1]:
                if dep not in deps:
                    continue
                if state.get(dep) == 1:
                    record(dep)
                elif dep not in state:
                    state[dep] = 1
                    stack.append(dep)
                    pending.append(iter(sorted(deps.get(dep, ()))))
                    break
            else:
                pending.pop()
                state[stack.pop()] = 2
    return cycles


def topological_order(deps: Mapping[str, AbstractSet[str]], declared: list[str]) -> list[str]:
    """Nodes after everything they read; ties keep their declared order.

    Nodes on a cycle never become placeable and are left out, so a caller orders only a graph
    that ``find_cycles`` has passed.
    """
    order: list[str] = []
    placed: set[str] = set()
    pending = list(declared)
    while pending:
        rest = []
        for node in pending:
            if deps[node] <= placed:
                order.append(node)
                placed.add(node)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            break
        pending = rest
    return order


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
