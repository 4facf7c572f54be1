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

from contextlib import contextmanager

import numpy as np

from gradgen.engine import Value

_NUMBERS = []  # non-empty inside `rows_as_numbers()`


@contextmanager
def rows_as_numbers():
    """Interpreted rows of plain floats instead of `Value`s, as a learner's own engine expects
    (micrograd's demo wraps each row itself: `list(map(Value, x))`); `gradgen check` grading it."""
    _NUMBERS.append(True)
    try:
        yield
    finally:
        _NUMBERS.pop()


def _example(row):
    if np.ndim(row) == 0:
        return float(row) if _NUMBERS else Value(float(row))
    return [_example(x) for x in row]


def _numbers(row):
    if np.ndim(row) == 0:
        return float(row)
    return [_numbers(x) for x in row]


def _rows(what: str, fn, arrays):
    """`fn` on every example of `arrays`, interpreted; or None when `arrays` are being traced."""
    from gradgen.frontend.arrays import ArrayArg

    if not arrays:
        raise TypeError(f"gradgen.{what}(fn, *arrays) needs at least one array")
    if any(isinstance(a, ArrayArg) for a in arrays):
        return None
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"gradgen.{what}: the arrays have different lengths {[len(a) for a in arrays]}")
    from gradgen.frontend import foreign

    example = _numbers if foreign.wants(fn) else _example  # a foreign engine wraps numbers itself
    return [fn(*(example(a[b]) for a in arrays)) for b in range(n)]


def mean(fn, *arrays):
    """Mean of `fn(example)` over the examples (rows) of `arrays`."""
    from gradgen.frontend import foreign
    from gradgen.frontend.arrays import batch_mean

    if foreign.active() is not None:  # compiling a foreign engine's function
        return foreign.active().batch("mean", fn, arrays, mean=True)
    losses = _rows("mean", fn, arrays)
    if losses is None:
        return batch_mean(fn, arrays)
    if not losses:
        raise ValueError("gradgen.mean of an empty batch")
    return sum(losses) * (1.0 / len(losses))


def each(fn, *arrays):
    """`[fn(example) for example in the rows of arrays]`; traced, a per-example array."""
    from gradgen.frontend import foreign
    from gradgen.frontend.arrays import batch_each

    if foreign.active() is not None:
        return foreign.active().batch("each", fn, arrays, mean=False)
    values = _rows("each", fn, arrays)
    return batch_each(fn, arrays) if values is None else values
