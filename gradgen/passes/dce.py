"""Dead-code elimination: keep the inputs and what the outputs need.

This is what makes gradients nobody asked for free: `f` (forward only) is
the forward graph after DCE, and backward nodes that feed no output vanish.
"""

from __future__ import annotations

from gradgen.ir.graph import Graph, rebuild


def live(graph: Graph) -> list[bool]:
    keep = [False] * len(graph.nodes)
    for i in graph.inputs:
        keep[i] = True
    stack = [i for _, i in graph.outputs]
    while stack:
        i = stack.pop()
        if not keep[i]:
            keep[i] = True
            stack.extend(graph.nodes[i].args)
    return keep


def dce(graph: Graph) -> Graph:
    keep = live(graph)
    if all(keep):
        return graph  # nothing is dead: the same graph
    return rebuild(graph, keep=keep)
