"""Array arguments: `ArrayArg`, and `gradgen.mean` / `gradgen.each` over a batch axis.

An argument whose `example` is an array (`example_shapes` reads them) is
traced as an `ArrayArg`: indexing and iterating it gives traced elements
(`elem X [b, i]`), so micrograd's `[list(map(Value, row)) for row in X]`
traces (`Value(t)` of a traced `t` is `t`), fixed to the example's shape.

`gradgen.mean(fn, X, y)` (`batch_mean`) instead makes the first axis of `X`
and `y` a batch axis of unknown size `B`: `fn` is traced once on one
symbolic example (its values have shape `(B,)`), and the mean is `sum over
the batch * (1.0 / B)`, the engine's `sum(losses) * (1.0 / len(losses))`.
`gradgen.each` (`batch_each`) is the same without the mean.  An array is
either indexed directly or batched, never both, and a function has one
batch axis.
"""

from __future__ import annotations

import numbers
from dataclasses import replace

import numpy as np

from gradgen.errors import GradgenError
from gradgen.frontend.naming import def_line
from gradgen.frontend.tracer import Tracer, _Trace
from gradgen.ir.ops import Op
from gradgen.ir.shapes import BATCH


class ArrayArg:
    """A traced array argument (or a row of one): index or iterate it to get traced elements."""

    __slots__ = ("_trace", "_id", "_name", "_shape", "_prefix")

    def __init__(self, trace: _Trace, nid: int, name: str, shape: tuple, prefix: tuple = ()):
        self._trace, self._id, self._name, self._shape, self._prefix = trace, nid, name, shape, prefix

    @property
    def shape(self) -> tuple:
        return self._shape[len(self._prefix) :]

    def _plain(self, what: str) -> None:
        if self._id in self._trace.batched:
            raise self._trace.fail(
                f"{what} of {self._name}, which is passed to gradgen.mean: inside the batch its size "
                "is unknown; use the per-example arguments gradgen.mean gives the function"
            )
        self._trace.plain_used.add(self._id)

    def __len__(self) -> int:
        self._plain("len()")
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __getitem__(self, key):
        keys = key if isinstance(key, tuple) else (key,)
        self._plain("indexing")
        index = list(self._prefix)
        for k in keys:
            axis = len(index)
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
                raise self._trace.fail(
                    f"{self._name} can only be indexed with integers (got {type(k).__name__}); "
                    "slices and arrays of indices are not traced: loop over the elements"
                )
            if axis >= len(self._shape):
                raise self._trace.fail(f"too many indices for {self._name} of shape {self._shape}")
            n = self._shape[axis]
            if not -n <= k < n:
                raise self._trace.fail(f"index {k} is out of range for axis {axis} of {self._name} (size {n})")
            index.append(int(k) % n)
        index = tuple(index)
        if len(index) == len(self._shape):
            return Tracer(self._trace, self._trace.elem(self._id, index))
        return ArrayArg(self._trace, self._id, self._name, self._shape, index)

    def _refuse(self, what):
        raise self._trace.fail(
            f"{what} of the array argument {self._name}: the compiler sees its elements only; "
            "index it or loop over it"
        )

    def __array__(self, *args, **kwargs):
        self._refuse("using it as a NumPy array")

    def __bool__(self):
        self._refuse("bool()")

    def __repr__(self):
        return f"ArrayArg({self._name}, shape={self.shape})"


def batch_mean(fn, arrays) -> Tracer:
    """`gradgen.mean(fn, *arrays)` inside a trace (see `gradgen.batch.mean`)."""
    result = batch_each(fn, arrays, "gradgen.mean")
    t = result._trace
    loc = t.loc()
    total = t.b.add(Op.SUM, (result._id,), (0,), loc=loc)
    inv = t.b.add(Op.DIV, (t.b.const(1.0), t.b.add(Op.BATCH, (), loc=loc)), loc=loc)
    return Tracer(t, t.b.add(Op.MUL, (total, inv), loc=loc))


def batch_each(fn, arrays, what: str = "gradgen.each") -> Tracer:
    """`fn` traced once on a symbolic example of the batched `arrays`: a Tracer of shape (B,)."""
    t = next(a._trace for a in arrays if isinstance(a, ArrayArg))
    examples = []
    for a in arrays:
        if not isinstance(a, ArrayArg) or a._trace is not t or a._prefix:
            raise t.fail(
                f"{what} needs whole array arguments of the exported function "
                "(each with an array `example`), all batched along their first axis"
            )
        if a._id in t.plain_used:
            raise t.fail(f"{a._name} is indexed directly and also passed to {what}; use one or the other")
        rows = a._shape[0]
        if t.batch_rows is None:
            t.batch_rows = (rows, a._name)
        elif rows != t.batch_rows[0]:
            raise t.fail(
                f"{what} over {a._name} ({rows} rows in the example) and {t.batch_rows[1]} "
                f"({t.batch_rows[0]} rows): a function has one batch axis, shared by every "
                "gradgen.mean/each; give the batches the same size, or compile one function per batch"
            )
        if a._id not in t.batched:
            t.batched.add(a._id)
            t.b.nodes[a._id] = replace(t.b.nodes[a._id], shape=(BATCH,) + tuple(a._shape[1:]))
        examples.append(_example(t, a._id, tuple(a._shape[1:]), ()))
    result = fn(*examples)
    if not isinstance(result, Tracer) or result._trace is not t:
        raise t.fail(
            f"the function given to {what} returned {type(result).__name__}; "
            "it must return one Value computed from its example"
        )
    if t.b.nodes[result._id].shape != (BATCH,):
        raise t.fail(f"the function given to {what} returned a Value that does not depend on its example")
    return result


def _example(t: _Trace, array: int, shape: tuple, index: tuple):
    """One example of a batched array: a Tracer (scalar rows) or nested lists of them."""
    if len(index) == len(shape):
        return Tracer(t, t.elem(array, index) if index else array)
    return [_example(t, array, shape, index + (k,)) for k in range(shape[len(index)])]


def example_shapes(fn, names: list[str], example, file: str) -> dict[str, tuple]:
    """{argument: shape} for the arguments whose example is an array."""
    if example is None:
        return {}
    where = (file, def_line(fn))
    if isinstance(example, dict):
        items = example
        unknown = [str(k) for k in items if k not in names]
        if unknown:
            raise GradgenError(
                f"the example names {', '.join(unknown)}, which {fn.__name__}({', '.join(names)}) "
                "does not take; name the function's arguments",
                *where,
            )
    elif isinstance(example, (list, tuple)):
        if len(example) != len(names):
            raise GradgenError(
                f"the example has {len(example)} values but {fn.__name__}({', '.join(names)}) takes "
                f"{len(names)}; give one per argument (or a dict by name)",
                *where,
            )
        items = dict(zip(names, example))
    else:
        raise GradgenError(
            f"the example must be a dict by argument name or a sequence of values, not {type(example).__name__}",
            *where,
        )
    shapes = {}
    for k, v in items.items():
        if isinstance(v, numbers.Real) and not isinstance(v, bool):
            continue
        if not isinstance(v, (list, tuple, np.ndarray)):
            raise GradgenError(
                f"the example for {k} is a {type(v).__name__}; give a number, or an array for an array argument",
                *where,
            )
        try:
            shape = np.shape(v)
        except Exception:
            shape = ()
        if shape == () or 0 in shape:
            if not isinstance(v, (list, tuple, np.ndarray)):
                continue
            raise GradgenError(f"the example for {k} is an empty array; give at least one element", file, def_line(fn))
        shapes[k] = tuple(int(d) for d in shape)
    return shapes
