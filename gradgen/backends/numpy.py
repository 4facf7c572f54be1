"""The NumPy dialect of the emitter: array graphs -> float64 NumPy code.

Elementwise ops print as NumPy ufuncs (`np.maximum(z0, 0.0)`, `np.tanh`),
`matmul` as `@`, `transpose` as `.T`, `elem` as indexing (`z2[:, 0]`: a
batched array keeps its batch axis), `sum` as `x.sum(axis=...)`,
`expand` as `x[:, None]`, `batch` as `B` (set by the prologue from the
data), `bcast` as `np.full` / `np.broadcast_to(...).copy()`, and `pack` as
`np.array([...])` / `np.stack` when its pieces fill the array in order,
else the `_pack` helper.

Every value has the IR's float dtype and shape: a value of shape `()` is a
float (a Python float or `np.float64`, never a 0-d array or a bool), so a
scalar node is spelled with the scalar dialect's formats (`math.exp(b)`,
`float(x > 0.0)`, the exact engine functions) and no array syntax is
applied to it (`expand` of a scalar is `np.array(x, ndmin=1)`); `step` on an array is
a float mask, `(x > 0.0).astype(float)`.

The prologue checks every argument: an array argument must be a NumPy
array of its compiled shape (`B` is read from the data) whose dtype is a
real number type; one that is not float64 (float32, an int array) is
converted to float64, so values and gradients always come back float64;
anything else (a list, a torch tensor, a bool, complex or object array,
a wrong shape) is a `ValueError` naming the argument.  A scalar argument
is converted with `float()`.  The fast path is one combined condition.
"""

from __future__ import annotations

import itertools

from gradgen.backends.python import ATOM, MUL, Dialect, Format, FORMATS as SCALAR_FORMATS
from gradgen.ir.ops import OPS, Op
from gradgen.ir.shapes import batched



def spelling(op: Op) -> Format | None:
    """How this backend writes `op`: its registry entry's "numpy" spelling."""
    return OPS[op].spell.get("numpy")


FORMATS = {op: spelling(op) for op in Op if spelling(op) is not None}
HELPERS = {op: f.helper for op, f in FORMATS.items() if f.helper}
FRESH = frozenset(op for op in Op if OPS[op].fresh)  # results that may be updated in place


def shape_text(shape) -> str:
    dims = [str(d) for d in shape]
    return f"({dims[0]},)" if len(dims) == 1 else "(" + ", ".join(dims) + ")"


def _axes(axes) -> str:
    return str(axes[0]) if len(axes) == 1 else "(" + ", ".join(map(str, axes)) + ")"


def _index(n, nodes) -> str:
    x = nodes[n.args[0]]
    parts = ([":"] if batched(x.shape) else []) + [str(i) for i in n.attr]
    return ", ".join(parts)


# ops whose NumPy spelling would give a 0-d array, a bool or an ulp-different float on a
# scalar: a scalar node is written the scalar way (math.exp, float(x > 0.0))
SCALAR_SPELLED = frozenset(op for op in SCALAR_FORMATS if op in FORMATS and FORMATS[op] != SCALAR_FORMATS[op])


def special(n, operand, nodes, line=None):
    op = n.op

    def inlined(i):
        return line is not None and not line[i]

    if op in SCALAR_SPELLED and not n.shape:
        # a float in, a float out: the engine's own functions (math.exp, float(x > 0.0))
        f = SCALAR_FORMATS[op]
        text = f.template.format(*(operand(a, need) for a, need in zip(n.args, f.operand_prec)))
        return text, f.prec, f.helper
    if op is Op.BATCH:
        return "B", ATOM, None
    if op is Op.ELEM:
        return f"{operand(n.args[0], ATOM)}[{_index(n, nodes)}]", ATOM, None
    if op is Op.SUM:
        x = nodes[n.args[0]]
        if not n.attr:  # over no axes: the value itself (a copy, since a sum may be updated in place)
            return (operand(n.args[0], 0), 0, None) if not x.shape else (f"{operand(n.args[0], ATOM)}.copy()", ATOM, None)
        whole = tuple(n.attr) == tuple(range(len(x.shape)))
        if whole and x.op is Op.MUL and inlined(x.id) and all(nodes[a].shape == x.shape for a in x.args):
            # sum(a * b) over everything: one dot product, no temporary
            a, b = x.args
            return f"np.vdot({operand(a, 0)}, {operand(b, 0)})", ATOM, None
        if whole:
            return f"{operand(n.args[0], ATOM)}.sum()", ATOM, None
        return f"{operand(n.args[0], ATOM)}.sum(axis={_axes(n.attr)})", ATOM, None
    if op is Op.EXPAND:
        if not nodes[n.args[0]].shape:  # a float has no axes to index: an array of shape (1,), (1, 1), ...
            return f"np.array({operand(n.args[0], 0)}, ndmin={len(n.shape)})", ATOM, None
        parts = ["None" if k in n.attr else ":" for k in range(len(n.shape))]
        while parts and parts[-1] == ":":
            parts.pop()
        return f"{operand(n.args[0], ATOM)}[{', '.join(parts)}]", ATOM, None
    if op is Op.BCAST:
        if not n.shape:  # () -> (): the float itself
            return operand(n.args[0], 0), 0, None
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
        reserved=frozenset({"B", "_pack", "_np_sigmoid", "_check_args", "_sigmoid"}),
    )


def is_array_graph(graph) -> bool:
    return any(n.shape or n.op in (Op.ELEM, Op.PACK, Op.MATMUL, Op.BATCH) for n in graph.nodes)


PACK_HELPER = '''def _pack(shape, batched, indices, *pieces):
    """Zeros of `shape` plus each piece at its index (after the batch axis if batched); overlapping pieces add."""
    out = np.zeros(shape)
    lead = (slice(None),) if batched else ()
    for index, piece in zip(indices, pieces):
        out[lead + index] += piece
    return out
'''

CHECK_ARGS_HELPER = '''def _check_args(fname, names, args, shapes, data):
    """The arguments as float64 arrays (and floats), or a ValueError naming the first that cannot be.

    Called only when the prologue's fast check fails.  An array argument must be a
    NumPy array of its compiled shape with a real dtype; float32, int, ... arrays are
    converted to float64.  A scalar argument (shape ()) must be a real number.
    """
    out = []
    batch = None  # (B, the argument it was read from)
    for name, x, shape in zip(names, args, shapes):
        if shape == ():
            a = np.asarray(x)
            if a.dtype.kind not in "fiu" or a.ndim:
                what = f"an array of shape {a.shape}" if a.ndim else type(x).__name__
                raise ValueError(f"{fname}: {name} must be a number (a float), got {what}")
            out.append(float(x))
            continue
        show = "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"  # (B, 2)
        want = f"a float64 NumPy array of shape {show}"
        if not isinstance(x, np.ndarray):
            what = f"{type(x).__module__}.{type(x).__name__}".removeprefix("builtins.")
            raise ValueError(f"{fname}: {name} must be {want}, got {what} (convert it with np.asarray)")
        if x.dtype.kind not in "fiu":
            raise ValueError(f"{fname}: {name} must be {want}, got an array of dtype {x.dtype}")
        got = x.shape
        if shape[:1] == ("B",):
            if not got:
                raise ValueError(f"{fname}: {name} must be {want}, got a 0-d array")
            batch = batch or (got[0], name)
            if got[0] == 0:
                raise ValueError(f"{fname}: {name} has no rows: a batch needs at least one example")
            if got != (batch[0],) + shape[1:]:
                raise ValueError(
                    f"{fname}: {name} has shape {got}, but {fname} takes {show} with B = "
                    f"{batch[0]} (the rows of {batch[1]}): every batched array has one row per example"
                )
        elif got != shape:
            fixed = " (the batch size is fixed by the traced example: use gradgen.mean for any batch size)"
            raise ValueError(
                f"{fname}: {name} has shape {got}, but {fname} was compiled for {show}"
                + (fixed if name in data else "")
            )
        # float32, int, ...: computed in float64 (a float64 array is passed as it is)
        out.append(np.asarray(x, dtype=np.float64))
    return tuple(out)
'''


def prologue(graph, fname: str):
    """Lines that read `B`, check every argument, and convert what is not float64 (see _check_args)."""
    checked = [graph.nodes[i] for i in graph.inputs]
    arrays = [n for n in checked if n.shape]

    def lines(names):
        if not arrays:
            return []
        named = {i: nm for i, nm in zip(graph.inputs, names)}
        out = ["    try:  # a list, a tensor or a scalar where an array belongs fails here too"]
        first_batched = next((n for n in arrays if batched(n.shape)), None)
        if first_batched is not None:
            out.append(f"        B = {named[first_batched.id]}.shape[0]")
        for n in checked:
            if not n.shape:
                out.append(f"        {named[n.id]} = float({named[n.id]})")
        conds = [f"{named[n.id]}.shape != {shape_text(n.shape)}" for n in arrays]
        if first_batched is not None:
            conds.append("B == 0")
        conds += [f"{named[n.id]}.dtype != np.float64" for n in arrays]
        data = [repr(named[n.id]) for n in arrays if n.origin is not None and n.origin.kind == "arg"]
        every = [named[n.id] for n in checked]
        shapes = [shape_text(tuple(repr(d) if d == "B" else d for d in n.shape)) if n.shape else "()" for n in checked]
        call = (
            f"_check_args({fname!r}, {_tuple([repr(x) for x in every])}, {_tuple(every)}, "
            f"{_tuple(shapes)}, {_tuple(data)})"
        )
        out.append(f"        bad = {' or '.join(conds)}")  # black wraps it
        out.append("    except (AttributeError, IndexError, TypeError, ValueError):")
        out.append("        bad = True")
        out.append("    if bad:")
        out.append(f"        {', '.join(every)}{',' if len(every) == 1 else ''} = {call}")
        return out

    return lines


def _tuple(items) -> str:
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
