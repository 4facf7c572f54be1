"""Graph -> Graph passes and the ordered pipeline.

`optimize` runs fold -> cse -> dce until the graph stops changing, and
records (pass, nodes before, nodes after, seconds) for `--report`.  With
`check=True` (the tests) the verifier runs after every pass.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from gradgen.ir.graph import Graph
from gradgen.ir.verify import verify
from gradgen.passes.cse import cse
from gradgen.passes.dce import dce
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
    for _ in range(max_rounds):
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


__all__ = ["optimize", "fold", "cse", "dce", "PIPELINE", "PassStat"]
