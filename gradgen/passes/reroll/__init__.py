"""Re-rolling: scalar repetition -> array operations (an SLP vectoriser for traces).

A scalar trace of an MLP repeats one small subgraph per neuron, per weight
and (in micrograd's plain batch loop) per example.  The leaves say where
they came from -- `elem W0 (j, k)`, `elem X (b, k)` -- so the repetition is
visible in the indices.  This pass walks the graph in waves: a node is
ready when its arguments are resolved, each resolved value being a node
built in the new graph (`Built`), an `Element` (array, index) of an array
built so far, or a `Product` term `a * c` that waits for the sum chain it
feeds.  Ready nodes become candidates (`Elementwise`, `DotRow`) grouped by
what they compute:

* **packs**: the same elementwise op over elements at the same index of the
  same arrays (NumPy broadcasting allowed), covering every index once ->
  one elementwise array op (`relu(z0)`, `W0 * W0`);
* **dot rows**: a sum chain `b[j] + sum_k P[j, k] * v[k]` over one weight
  matrix `P` and one vector `v`, for every row j -> `v @ P.T + b`
  (a one-row `P` too: `z2 = h1 @ W2.T + b2` of shape (B, 1), whose one output
  is read as the column `z2[:, 0]`, or `z2.T[0]` over stacked examples);
* **mixed rows**: a sum chain over several weights, `b[j] + sum_k Wx[j, k] x[k]
  + sum_i Wh[j, i] h[i]` (an RNN step), splits into one dot row per weight ->
  `x @ Wx_T + h @ Wh_T + b`; a vector `V[lead, k]` with leading axes whose
  rows come one slice at a time (`X[:, t]`, step by step) is that slice;
* **readouts**: `c + sum_k w[k] * V[lead, k]` over a 1-D weight `w` ->
  `(V[lead] * w).sum(axis=-1) + c`;
* **reductions**: a sum chain over every element of an array -> `sum`
  (the plain loop's `sum(losses)`, the L2 term `sum(p * p)`).

What cannot be grouped -- a pack that misses indices, a chain that mixes
arrays -- falls back to correct per-element code (`elem` reads, scalar ops;
a dot row over part of a matrix becomes `v @ P[j]`), and each fallback is
recorded with its model line and reason for `gradgen compile --report`.
The arrays built are named by the rules of `gradgen.passes.layer_names`
(`z0`, `h0`, ...).
Element order of sums changes (BLAS, pairwise sums), so re-rolled code
matches the engine to rounding, not bit for bit.
"""

from __future__ import annotations

from gradgen.ir.graph import Graph
from gradgen.ir.ops import Op
from gradgen.passes.reroll.values import Fallback
from gradgen.passes.reroll.walk import _Reroll

__all__ = ["Fallback", "reroll"]


def reroll(graph: Graph, fallbacks: list | None = None) -> Graph:
    """Re-roll `graph`'s scalar repetition into array ops; append fallbacks to `fallbacks`."""
    if not any(n.op is Op.ELEM for n in graph.nodes):
        return graph  # nothing came from an array: scalar code stays as it is
    r = _Reroll(graph)
    out = r.run()
    if fallbacks is not None:
        fallbacks.extend(r.fallbacks)
    return out
