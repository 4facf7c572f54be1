"""Shapes of IR values: tuples of ints, with the symbolic batch size "B" first.

A scalar is `()`.  A value computed per example of a batch has the batch
axis first: `("B",)` for a per-example scalar, `("B", 16)` for a
per-example vector.  Only axis 0 can be "B"; "B" is one unknown size, the
same for the whole graph (the generated code reads it from the data).

Each op's shape rule is named by its registry entry (`OPS[op].shape`, in
`gradgen.ir.ops`): the elementwise ops broadcast like NumPy (`elementwise`),
the array ops have the rules below.  `infer(op, arg_shapes, attr)` applies
it; the builder calls it for every node it adds, so every graph carries
consistent shapes and the verifier can check them.
"""

from __future__ import annotations

BATCH = "B"
Shape = tuple


class ShapeError(ValueError):
    pass


def batched(shape: Shape) -> bool:
    return len(shape) > 0 and shape[0] == BATCH


def inner(shape: Shape) -> Shape:
    """The non-batch axes."""
    return shape[1:] if batched(shape) else shape


def size(shape: Shape) -> int:
    n = 1
    for d in inner(shape):
        n *= d
    return n


def broadcast(*shapes: Shape) -> Shape:
    """NumPy's broadcasting (right-aligned; a dim of 1 stretches)."""
    nd = max((len(s) for s in shapes), default=0)
    out = []
    for k in range(nd):
        dims = {s[len(s) - nd + k] for s in shapes if len(s) - nd + k >= 0}
        dims.discard(1)
        if len(dims) > 1:
            raise ShapeError(f"shapes {' and '.join(map(show, shapes))} do not broadcast")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def show(shape: Shape) -> str:
    if len(shape) == 1:
        return f"({shape[0]},)"
    return "(" + ", ".join(str(d) for d in shape) + ")"


# -- the shape rules the registry names: (argument shapes, attribute) -> shape ----------


def elementwise(args: list[Shape], attr) -> Shape:
    return broadcast(*args) if len(args) > 1 else args[0]


def scalar(args: list[Shape], attr) -> Shape:
    return ()  # const, batch; an input without an explicit shape is a scalar


def elem(args: list[Shape], attr) -> Shape:
    (x,) = args
    lead = 1 if batched(x) else 0
    if len(attr) > len(x) - lead:
        raise ShapeError(f"index {attr} into shape {show(x)}")
    return x[:lead] + x[lead + len(attr) :]


def pack(args: list[Shape], attr) -> Shape:
    is_batched, shape, _ = attr
    return ((BATCH,) if is_batched else ()) + tuple(shape)


def sum_(args: list[Shape], attr) -> Shape:
    (x,) = args
    return tuple(d for k, d in enumerate(x) if k not in attr)


def expand(args: list[Shape], attr) -> Shape:
    (x,) = args
    out, it = [], iter(x)
    for k in range(len(x) + len(attr)):
        out.append(1 if k in attr else next(it))
    return tuple(out)


def bcast(args: list[Shape], attr) -> Shape:
    return tuple(attr)


def matmul(args: list[Shape], attr) -> Shape:
    a, b = args
    if not (1 <= len(a) <= 2 and 1 <= len(b) <= 2):
        raise ShapeError(f"matmul needs 1-D or 2-D operands, got {show(a)} @ {show(b)}")
    if a[-1] != b[0]:
        raise ShapeError(f"matmul: inner sizes differ in {show(a)} @ {show(b)}")
    return a[:-1] + b[1:]


def transpose(args: list[Shape], attr) -> Shape:
    (x,) = args
    if len(x) != 2:
        raise ShapeError(f"transpose needs a 2-D operand, got {show(x)}")
    return (x[1], x[0])


def infer(op, args: list[Shape], attr) -> Shape:
    """The shape of `op` applied to arguments of shapes `args` (its registry entry's rule)."""
    return _ops.OPS[op].shape(args, attr)


# last: gradgen.ir.ops names the rules above (either module may be imported first)
from gradgen.ir import ops as _ops  # noqa: E402
