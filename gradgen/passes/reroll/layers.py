"""What the re-rolling pass does with the array ops of the trace-time layer path.

`gradgen.frontend.layers` records a layer called on a full row as

    t = transpose W;  m = matmul V t;  z = add m b;  h = act z;  elem h (j,) ...

Re-rolling builds these exactly when, and as, it would have built the arrays
of the scalar trace, so the module is byte for byte the scalar path's:

* `t` and `m` wait (`Waiting`: no node yet) for the `add`, which joins the
  wave's groups like a dot row and builds `z0 = V @ W0.T + b0` in one go
  (named by `gradgen.passes.layer_names`);
* the activation joins them as a pack would (`h0 = relu(z0)`);
* each `elem h (j,)` is at once an `Element` of the array built, keeping the
  model's name for it (`score = model(x)`) and the layer's line.

`find` recognises the pattern in the graph (transpose of a parameter input,
used only by such matmuls -- several when one layer is called on several rows
and CSE shared the transpose -- each used only by its add); anything else is
re-rolled as before.
"""

from __future__ import annotations

from dataclasses import dataclass

from gradgen.ir.graph import Node
from gradgen.ir.ops import Op
from gradgen.passes import layer_names
from gradgen.passes.reroll.values import Built, Candidate, Element


@dataclass(frozen=True, slots=True)
class Waiting:
    """A layer's transpose or matmul: built with the layer's `add`."""

    node: Node


@dataclass(frozen=True, slots=True)
class LayerOp:
    """A layer's `add` (z) or activation (h), built in its wave's group phase."""

    node: Node


def find(g, users) -> dict[int, str]:
    """{node id: "t", "m", "z" or "h"} for the layer path's nodes in `g`."""
    out: dict[int, str] = {}
    for n in g.nodes:
        if n.op is not Op.TRANSPOSE or g[n.args[0]].op is not Op.INPUT or not users[n.id]:
            continue
        layers = [_layer(g, users, m, n.id) for m in users[n.id]]  # one per call of the layer (CSE
        if any(z is None for z in layers):  # shares the transpose of calls on several rows)
            continue
        out[n.id] = "t"
        for m, z in zip(users[n.id], layers):
            out[m], out[z] = "m", "z"
            for u in users[z]:
                if g[u].op in layer_names.ACTIVATIONS:
                    out[u] = "h"
    return out


def _layer(g, users, m: int, t: int) -> int | None:
    """The `add` of `matmul V t` (its one user, adding a parameter input), or None."""
    mm = g[m]
    if mm.op is not Op.MATMUL or mm.args[1] != t or len(users[m]) != 1:
        return None
    z = g[users[m][0]]
    if z.op is not Op.ADD or z.args[0] != m or g[z.args[1]].op is not Op.INPUT:
        return None
    return z.id


def classify(r, n, vals):
    """What a layer node stands for (a `Waiting` value or a `LayerOp` candidate), or None."""
    kind = r.layer_nodes.get(n.id)
    if kind is None:
        return None
    if kind == "m":
        return Waiting(n)
    if kind == "h" and not isinstance(vals[0], Built):
        return None
    return Candidate(("layer", n.id), (), LayerOp(n))


def build(r, op: LayerOp) -> None:
    """Build a layer's `z = V @ W.T + b` (or its activation) and resolve the elements read from it."""
    n, g, b = op.node, r.g, r.b
    if r.layer_nodes[n.id] == "z":
        m = g[n.args[0]]
        t = g[m.args[1]]
        weight = r.val[t.args[0]].node
        w = b.add(Op.TRANSPOSE, (weight,), loc=n.loc)
        out = b.add(Op.MATMUL, (r.node(r.val[m.args[0]]), w), loc=n.loc)
        out = b.add(Op.ADD, (out, r.broadcast_arg(r.node(r.val[n.args[1]]), 1)), loc=n.loc)
        suffix = layer_names.layer_suffix(r.name(weight))
        if suffix is not None:
            r.hint[out] = suffix
            b.set_meta(out, name=layer_names.preactivation(suffix))
    else:
        z = r.val[n.args[0]].node
        out = b.add(n.op, (z,), n.attr, loc=n.loc)
        if z in r.hint:
            r.hint[out] = r.hint[z]
            b.set_meta(out, name=layer_names.activation(n.op, r.hint[out]))
    r.val[n.id] = Built(out)
    for u in r.users_of[n.id]:
        e = g[u]
        if e.op is Op.ELEM:
            r.val[u] = Element(out, e.attr)
            if e.name is not None:
                r._elem_meta.setdefault((out, e.attr), (e.name, n.loc))
