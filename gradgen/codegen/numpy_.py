"""The NumPy dialect of the emitter: array graphs -> float64 NumPy code.

Elementwise ops print as NumPy ufuncs (`np.maximum(z0, 0.0)`, `np.tanh`),
`matmul` as `@`, `transpose` as `.T`, `elem` as indexing (`z2[:, 0]`: a
batched array keeps its batch axis), `sum` as `np.sum(x, axis=...)`,
`expand` as `x[:, None]`, `batch` as `B` (set by the prologue from the
data), `bcast` as `np.full` / `np.broadcast_to(...).copy()`, and `pack` as
`np.array([...])` / `np.stack` when its pieces fill the array in order,
else the `_pack` helper.  The prologue checks every array argument's shape
and reads `B`, so a wrong shape is a clear `ValueError`, never a wrong
answer.
"""

from __future__ import annotations

import itertools

from gradgen.codegen.scalar import ATOM, MUL, Dialect, Format, FORMATS as SCALAR_FORMATS
from gradgen.ir.ops import Op
from gradgen.ir.shapes import batched

FORMATS = {
    **SCALAR_FORMATS,
    Op.EXP: Format("np.exp({0})", ATOM, (0,)),
    Op.LOG: Format("np.log({0})", ATOM, (0,)),
    Op.TANH: Format("np.tanh({0})", ATOM, (0,)),
    Op.RELU: Format("np.maximum({0}, 0.0)", ATOM, (0,)),
    Op.SIGMOID: Format("_np_sigmoid({0})", ATOM, (0,)),
    Op.STEP: Format("({0} > 0.0)", ATOM, (0,)),
    Op.MATMUL: Format("{0} @ {1}", MUL, (MUL, MUL + 1)),
    Op.TRANSPOSE: Format("{0}.T", ATOM, (ATOM,)),
}
HELPERS = {Op.SIGMOID: "_np_sigmoid"}
FRESH = frozenset(
    {Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.NEG, Op.POW, Op.EXP, Op.LOG, Op.TANH, Op.RELU, Op.SIGMOID, Op.MATMUL}
    | {Op.SUM, Op.PACK, Op.BCAST}
)


def shape_text(shape) -> str:
    dims = [str(d) for d in shape]
    return f"({dims[0]},)" if len(dims) == 1 else "(" + ", ".join(dims) + ")"


def _axes(axes) -> str:
    return str(axes[0]) if len(axes) == 1 else "(" + ", ".join(map(str, axes)) + ")"


def _index(n, nodes) -> str:
    x = nodes[n.args[0]]
    parts = ([":"] if batched(x.shape) else []) + [str(i) for i in n.attr]
    return ", ".join(parts)


def special(n, operand, nodes, line=None):
    op = n.op

    def inlined(i):
        return line is not None and not line[i]

    if op is Op.BATCH:
        return "B", ATOM, None
    if op is Op.ELEM:
        return f"{operand(n.args[0], ATOM)}[{_index(n, nodes)}]", ATOM, None
    if op is Op.SUM:
        x = nodes[n.args[0]]
        whole = tuple(n.attr) == tuple(range(len(x.shape)))
        if whole and x.op is Op.MUL and inlined(x.id) and all(nodes[a].shape == x.shape for a in x.args):
            # sum(a * b) over everything: one dot product, no temporary
            a, b = x.args
            return f"np.vdot({operand(a, 0)}, {operand(b, 0)})", ATOM, None
        if whole:
            return f"{operand(n.args[0], ATOM)}.sum()", ATOM, None
        return f"{operand(n.args[0], ATOM)}.sum(axis={_axes(n.attr)})", ATOM, None
    if op is Op.EXPAND:
        parts = ["None" if k in n.attr else ":" for k in range(len(n.shape))]
        while parts and parts[-1] == ":":
            parts.pop()
        return f"{operand(n.args[0], ATOM)}[{', '.join(parts)}]", ATOM, None
    if op is Op.BCAST:
        if not nodes[n.args[0]].shape:
            return f"np.full({shape_text(n.shape)}, {operand(n.args[0], 0)})", ATOM, None
        return f"np.broadcast_to({operand(n.args[0], 0)}, {shape_text(n.shape)}).copy()", ATOM, None
    if op is Op.PACK:
        return _pack(n, [operand(a, 0) for a in n.args])
    return None


def _pack(n, pieces):
    is_batched, shape, indices = n.attr
    k = len(indices[0]) if indices else 0
    grid = list(itertools.product(*(range(d) for d in shape[:k])))
    if k and list(indices) == grid and all(len(i) == k for i in indices):
        if is_batched and k == 1:
            return f"np.stack([{', '.join(pieces)}], axis=1)", ATOM, None
        if not is_batched:
            return f"np.array({_nested(pieces, shape[:k])})", ATOM, None
    idx = "(" + ", ".join(shape_text(i) if i else "()" for i in indices) + ("," if len(indices) == 1 else "") + ")"
    lead = "(B,) + " if is_batched else ""
    return f"_pack({lead}{shape_text(shape)}, {is_batched}, {idx}, {', '.join(pieces)})", ATOM, "_pack"


def _nested(items: list[str], dims) -> str:
    if len(dims) == 1:
        return "[" + ", ".join(items) + "]"
    step = len(items) // dims[0]
    return "[" + ", ".join(_nested(items[i * step : (i + 1) * step], dims[1:]) for i in range(dims[0])) + "]"


def dialect(graph) -> Dialect:
    nodes = graph.nodes
    return Dialect(
        FORMATS,
        HELPERS,
        special=lambda n, operand, line: special(n, operand, nodes, line),
        inplace_ok=FRESH,
        reserved=frozenset({"B", "_pack", "_np_sigmoid", "_shape_error"}),
    )


def is_array_graph(graph) -> bool:
    return any(n.shape or n.op in (Op.ELEM, Op.PACK, Op.MATMUL, Op.BATCH) for n in graph.nodes)


PACK_HELPER = '''def _pack(shape, batched, indices, *pieces):
    """An array of zeros of `shape` with each piece at its index (after the batch axis if batched)."""
    out = np.zeros(shape)
    lead = (slice(None),) if batched else ()
    for index, piece in zip(indices, pieces):
        out[lead + index] = piece
    return out
'''

SHAPE_ERROR_HELPER = '''def _shape_error(fname, names, arrays, shapes, data):
    """Raise a ValueError naming the first argument whose shape is not the compiled one."""
    batch = None  # (B, the argument it was read from)
    for name, array, shape in zip(names, arrays, shapes):
        got = getattr(array, "shape", None)
        if got is None or (shape[:1] == ("B",) and not got):
            raise ValueError(f"{fname}: {name} must be a NumPy array of shape {shape}, not {type(array).__name__}")
        want = shape
        if shape[:1] == ("B",) and got:
            batch = batch or (got[0], name)
            if got[0] == 0:
                raise ValueError(f"{fname}: {name} has no rows: a batch needs at least one example")
            want = (batch[0],) + shape[1:]
        if got != want:
            if shape[:1] == ("B",):
                raise ValueError(
                    f"{fname}: {name} has shape {got}, but {fname} takes {shape} with B = "
                    f"{batch[0]} (the rows of {batch[1]}): every batched array has one row per example"
                )
            fixed = " (the batch size is fixed by the traced example: use gradgen.mean for any batch size)"
            raise ValueError(
                f"{fname}: {name} has shape {got}, but {fname} was compiled for {shape}"
                + (fixed if name in data else "")
            )
    raise ValueError(f"{fname}: an argument has the wrong shape")
'''


def prologue(graph, fname: str):
    """Lines that read `B` and check the shapes of the array arguments."""
    arrays = [graph.nodes[i] for i in graph.inputs if graph.nodes[i].shape]

    def lines(names):
        if not arrays:
            return []
        named = {i: nm for i, nm in zip(graph.inputs, names)}
        out = ["    try:  # a list or a scalar where an array belongs is a shape error too"]
        first_batched = next((n for n in arrays if batched(n.shape)), None)
        if first_batched is not None:
            out.append(f"        B = {named[first_batched.id]}.shape[0]")
        conds = [f"{named[n.id]}.shape != {shape_text(n.shape)}" for n in arrays]
        data = [repr(named[n.id]) for n in arrays if n.origin is not None and n.origin.kind == "arg"]
        call = (
            f"_shape_error({fname!r}, {_tuple([repr(named[n.id]) for n in arrays])}, "
            f"{_tuple([named[n.id] for n in arrays])}, "
            f"{_tuple([shape_text(tuple(repr(d) if d == 'B' else d for d in n.shape)) for n in arrays])}, "
            f"{_tuple(data)})"
        )
        if first_batched is not None:
            conds.append("B == 0")
        out.append(f"        bad = {' or '.join(conds)}")  # black wraps it
        out.append("    except (AttributeError, IndexError):")
        out.append("        bad = True")
        out.append("    if bad:")
        out.append(f"        {call}")
        return out

    return lines


def _tuple(items) -> str:
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
