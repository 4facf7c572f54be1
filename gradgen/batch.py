"""`gradgen.mean(fn, *arrays)` and `gradgen.each(fn, *arrays)`: per-example functions over a batch.

Interpreted (arrays of numbers), it is exactly the loop micrograd's demo
writes by hand:

    losses = [fn(*example) for example in zip(*arrays)]
    return sum(losses) * (1.0 / len(losses))

where an example's row of a 2-D array is a list of `Value`s and an element
of a 1-D array is one `Value`.  Traced (array arguments of an exported
function), `fn` is traced once on a symbolic example and the arrays' first
axis becomes a batch axis: the compiled function takes any batch size.

`each` is the same without the mean: a list of per-example `Value`s when
interpreted, one array of shape (B,) when compiled (predictions, say).  A
function that returns it compiles to a forward function only.
"""

from __future__ import annotations

import numpy as np

from gradgen.engine import Value


def _example(row):
    if np.ndim(row) == 0:
        return Value(float(row))
    return [_example(x) for x in row]


def mean(fn, *arrays):
    """Mean of `fn(example)` over the examples (rows) of `arrays`."""
    from gradgen.trace import ArrayArg, batch_mean

    if not arrays:
        raise TypeError("gradgen.mean(fn, *arrays) needs at least one array")
    if any(isinstance(a, ArrayArg) for a in arrays):
        return batch_mean(fn, arrays)
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"gradgen.mean: the arrays have different lengths {[len(a) for a in arrays]}")
    if n == 0:
        raise ValueError("gradgen.mean of an empty batch")
    losses = [fn(*(_example(a[b]) for a in arrays)) for b in range(n)]
    return sum(losses) * (1.0 / len(losses))


def each(fn, *arrays):
    """`[fn(example) for example in the rows of arrays]`; traced, a per-example array."""
    from gradgen.trace import ArrayArg, batch_each

    if not arrays:
        raise TypeError("gradgen.each(fn, *arrays) needs at least one array")
    if any(isinstance(a, ArrayArg) for a in arrays):
        return batch_each(fn, arrays)
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"gradgen.each: the arrays have different lengths {[len(a) for a in arrays]}")
    return [fn(*(_example(a[b]) for a in arrays)) for b in range(n)]
