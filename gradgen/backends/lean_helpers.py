"""The lean step's module-level helpers (gradgen.backends.lean), as source text: `_flat`
finds the one float64 buffer the parameters are views into, `_scratch` makes the arrays a
step writes into, once per batch size."""

FLAT_HELPER = '''def _flat(table, *arrays, _seen={}):
    """The float64 buffer the arrays are consecutive views into, in order and of the shapes in
    `table` ("W0:16,2 b0:16 ..."; gradgen.params.read's layout), or None.  A layout once found
    is kept with the arrays (so their ids stay theirs)."""
    hit = _seen.get(tuple(map(id, arrays)))
    if hit is not None:  # the same arrays (a .shape or .dtype set in place is not seen)
        return hit[0]
    base = getattr(arrays[0], "base", None)
    if not (type(base) is np.ndarray and base.ndim == 1 and base.dtype == np.float64):
        return None
    if not (base.flags.c_contiguous and base.flags.writeable):
        return None
    at = base.__array_interface__["data"][0]
    for a, spec in zip(arrays, table.split()):
        shape = tuple(int(d) for d in spec.partition(":")[2].split(",") if d)
        if not (type(a) is np.ndarray and a.base is base and a.shape == shape):
            return None
        if not (a.dtype == np.float64 and a.flags.c_contiguous):
            return None
        if a.__array_interface__["data"][0] != at:
            return None
        at += a.nbytes
    if at != base.__array_interface__["data"][0] + base.nbytes:
        return None
    if len(_seen) > 16:
        _seen.clear()
    _seen[tuple(map(id, arrays))] = (base, arrays)
    return base
'''

SCRATCH_HELPER = '''def _scratch(cache, B, table):
    """The arrays a step writes into, made once per batch size B and kept in `cache`: one per
    "name:dims" in `table` ("B" is B; ":bool" a mask, ":ones" filled with ones), then after
    "; " the gradients, views into one flat buffer, which comes last."""
    if len(cache) > 8:
        cache.clear()  # a few batch sizes at a time
    arrays, _, grads = table.partition("; ")
    out = []
    for a in arrays.split():
        _, dims, *kind = a.split(":")
        shape = tuple(B if d == "B" else int(d) for d in dims.split(",") if d)
        dtype = bool if kind == ["bool"] else float
        out.append(np.ones(shape) if kind == ["ones"] else np.empty(shape, dtype))
    shapes = [tuple(int(d) for d in a.split(":")[1].split(",")) for a in grads.split()]
    flat, k = np.zeros(sum(int(np.prod(s)) for s in shapes)), 0
    for s in shapes:
        out.append(flat[k : k + int(np.prod(s))].reshape(s))
        k += int(np.prod(s))
    cache[B] = out + [flat]
    return cache[B]
'''
