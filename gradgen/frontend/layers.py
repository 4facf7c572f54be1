"""The trace-time array path: a `gradgen.nn.Layer` called on a whole row records array ops.

Traced element by element, a 784-128 layer is 100,352 multiply-adds that the
re-rolling pass (`gradgen.passes.reroll`) then groups back into one matrix
product.  When a `Layer` is called inside a trace on a full row of one array
-- `x[k]` is `elem V (k,)` of a `V` of shape `(n,)` or `(B, n)`, for every
`k` once (an example row of `gradgen.mean`, or the previous layer's output)
-- and its neurons' parameters are exactly the rows of one weight array `W`
and one bias array `b` (the layout of `gradgen.params`), `call` records
instead what re-rolling would have built:

    z = V @ W.T + b        (transpose, matmul, add)
    h = relu(z) / tanh(z)  (when the neurons are nonlinear)

and returns the elements `h[j]` (`elem h (j,)`), which the next layer, or
the user's own code, uses like any traced value.  The re-rolling pass
treats these nodes (`gradgen.passes.reroll.layers`): the layer arrays keep
their layer names (`z0`, `h0`), and the elements stay elements, so the
emitted module is byte for byte the one the scalar path gives.

Anything else -- a partial row, scalars the model computed one by one, a
row of stacked examples (`X[i]` of a plain array argument: re-rolling turns
those into one batch), a Neuron subclass, parameters outside the layout --
returns None, and the layer runs its neurons on scalars as before.

`ENABLED` switches the path (the environment's `GRADGEN_LAYERS=0` turns it
off at import), for comparing the two paths and for the benchmarks.
"""

from __future__ import annotations

import os

from gradgen import engine
from gradgen.ir.ops import Op
from gradgen.ir.shapes import BATCH

ENABLED = os.environ.get("GRADGEN_LAYERS", "1") != "0"

_ACTS = {"relu": Op.RELU, "tanh": Op.TANH}


def call(layer, x) -> list | None:
    """The traced outputs of `layer(x)` as array ops, or None (the scalar path)."""
    if not ENABLED or not engine.TRACING[0]:
        return None
    from gradgen.frontend.arrays import ArrayArg
    from gradgen.frontend.tracer import _ACTIVE, Tracer

    if not _ACTIVE:
        return None
    t = _ACTIVE[-1]
    if isinstance(x, ArrayArg) and x._trace is t and not x._prefix and len(x._shape) == 1:
        nin = x._shape[0]
        vector = x._id  # a vector argument as a whole (marked as indexed, as iterating it would)
    elif isinstance(x, (list, tuple)):
        nin, vector = len(x), _row(t, x, Tracer)
    else:
        return None
    if vector is None or nin < 2:
        return None
    arrays = _weights(t, layer, nin)
    if arrays is None:
        return None
    W, b, act = arrays
    if isinstance(x, ArrayArg):
        x._plain("indexing")
    loc = t.loc()
    add = t.b.add
    z = add(Op.ADD, (add(Op.MATMUL, (vector, add(Op.TRANSPOSE, (W,), loc=loc)), loc=loc), b), loc=loc)
    out = z if act is None else add(act, (z,), loc=loc)
    return [Tracer(t, t.elem(out, (j,))) for j in range(len(layer.neurons))]


def _row(t, x, Tracer) -> int | None:
    """The array `V` when `x` is `[elem V (0,), elem V (1,), ...]` over all of V's last axis."""
    first = x[0]
    if not isinstance(first, Tracer) or first._trace is not t:
        return None
    node = t.b.nodes[first._id]
    if node.op is not Op.ELEM or node.attr != (0,):
        return None
    V = node.args[0]
    shape = t.b.nodes[V].shape
    if shape not in ((len(x),), (BATCH, len(x))):
        return None
    elems = t._elems
    for k, xk in enumerate(x):
        if not isinstance(xk, Tracer) or xk._trace is not t or elems.get((V, (k,))) != xk._id:
            return None
    return V


def _weights(t, layer, nin: int):
    """(W input, b input, activation op or None) when the layer's neurons are the rows of one
    parameter array W (nout, nin) and one b (nout,), all plain `gradgen.nn.Neuron`s alike."""
    from gradgen.nn import Neuron

    neurons = layer.neurons
    n0 = neurons[0]
    if any(type(n) is not Neuron or n.nonlin != n0.nonlin or n.act != n0.act for n in neurons):
        return None
    if any(len(n.w) != nin for n in neurons):
        return None
    place = _place_of(t, n0.w[0], n0.b)
    if place is None:
        return None
    m, Wa, ba = place
    # the rows of W and b in C order, one Value each: tuples of Values compare by identity
    if Wa.shape != (len(neurons), nin) or ba.shape != (len(neurons),):
        return None
    made_here = Wa.layer is layer and ba.layer is layer  # the layout was read off these neurons
    if not made_here and (
        Wa.values != tuple(w for n in neurons for w in n.w) or ba.values != tuple(n.b for n in neurons)
    ):
        return None
    inputs = t._module_inputs(m)
    W, b = inputs[Wa.name], inputs[ba.name]
    return W, b, _ACTS[n0.act] if n0.nonlin else None


def _place_of(t, w, b):
    """(module no, W's ParamArray, b's) when `w` is W[0, 0] and `b` is b[0] of one module's arrays
    (the first module holding `w`, as the tracer's lookup takes it), else None."""
    for m, layout in enumerate(t.layouts):
        W = next((a for a in layout if a.values and a.values[0] is w), None)
        W = W or next((a for a in layout if id(w) in a.index_of), None)
        if W is None:
            continue
        B = next((a for a in layout if a.values and a.values[0] is b), None)
        if W.values[0] is not w or B is None or len(W.shape) != 2 or len(B.shape) != 1:
            return None
        return m, W, B
    return None
