"""Dead-code elimination: keep the inputs and what the outputs need.

This is what makes gradients nobody asked for free: `f` (forward only) is
the forward graph after DCE, and backward nodes that feed no output vanish.
"""

from __future__ import annotations

from gradgen.ir.graph import Graph, rebuild


def live(graph: Graph) -> list[bool]:
    """keep[i]: node i is an input or feeds an output.  One sweep from the last node back
    (arguments precede their users, so a node's users are all decided before it)."""
    keep = [False] * len(graph.nodes)
    for i in graph.inputs:
        keep[i] = True
    for _, i in graph.outputs:
        keep[i] = True
    for n in reversed(graph.nodes):
        if keep[n.id]:
            for a in n.args:
                keep[a] = True
    return keep


def dce(graph: Graph) -> Graph:
    keep = live(graph)
    if all(keep):
        return graph  # nothing is dead: the same graph
    return rebuild(graph, keep=keep)
