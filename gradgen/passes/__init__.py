"""Graph -> Graph passes and the ordered pipeline.

`optimize` runs fold -> cse -> dce until the graph stops changing, and
records (pass, nodes before, nodes after, seconds) for `--report`.  Each
round starts with `fixed.at_fixed_point`, one sweep that proves the three
passes would change nothing (recorded as the pass "fixed"); only a graph it
cannot vouch for goes through them (with `max_rounds=1` the round runs
without it).  With
`check=True` (the tests) the verifier runs after every pass.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from gradgen.ir.graph import Graph
from gradgen.ir.verify import verify
from gradgen.passes.cse import cse
from gradgen.passes.dce import dce
from gradgen.passes.fixed import at_fixed_point
from gradgen.passes.fold import fold

PIPELINE = (("fold", fold), ("cse", cse), ("dce", dce))


@dataclass(frozen=True)
class PassStat:
    graph: str
    name: str
    before: int
    after: int
    seconds: float


def optimize(graph: Graph, check: bool = False, stats: list | None = None, max_rounds: int = 8) -> Graph:
    for round_ in range(max_rounds):
        t0 = time.perf_counter()
        # what fold, cse and dce would each find, in one sweep; not before a single round (the
        # scalar trace of a model that is re-rolled next): there it saves at most that round,
        # and on a graph the round changes it is one sweep more
        if (round_ or max_rounds > 1) and at_fixed_point(graph):
            if stats is not None:
                n = len(graph.nodes)
                stats.append(PassStat(graph.name, "fixed", n, n, time.perf_counter() - t0))
            if check:
                verify(graph)
            break
        start = graph
        for name, fn in PIPELINE:
            t0 = time.perf_counter()
            before = len(graph.nodes)
            graph = fn(graph)
            if stats is not None:
                stats.append(PassStat(graph.name, name, before, len(graph.nodes), time.perf_counter() - t0))
            if check:
                verify(graph)
        if graph is start or graph == start:  # a fixed point (a rewrite can keep the node count)
            break
    return graph


__all__ = ["optimize", "fold", "cse", "dce", "at_fixed_point", "PIPELINE", "PassStat"]
