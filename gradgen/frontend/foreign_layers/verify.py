"""A layer's first call, run for real: is the graph it built the pattern, with the same data?

    first_call(state, orig, neuron, w, b, x, key, place, frame) -> (out, Seen or None)

The first call of each key (`recognise.key`) on each layer, in each run,
runs the user's code; the graph it builds must be exactly
`act(((b + w0*x0) + w1*x1) + ...)` over those very Value objects (the
weights, the bias, the inputs given), every intermediate Value made by that
call, the products and sums on one line, nothing stored on the neuron, and
the emulated data (`state._data`) must equal the real one to the replay's
tolerance.  A `Seen` (what the call built) says later calls may be emulated;
None marks the key as not the pattern (its calls then run as written).
"""

from __future__ import annotations

from gradgen.frontend.engines import is_engine_value, parse_op
from gradgen.ir.ops import Op

ACTS = {Op.RELU, Op.TANH}  # the activations whose scalar path re-rolls to the same module (tested)


class Seen:
    """What a verified call built: its activation op, the lines of its sums and activation (or
    whether they are the caller's line), and the names its own code gave its output."""

    __slots__ = ("act", "z_loc", "h_loc", "z_here", "h_here", "name", "helper")

    def __init__(self, act, z_loc, h_loc):
        self.act, self.z_loc, self.h_loc = act, z_loc, h_loc
        self.z_here = self.h_here = False
        self.name = self.helper = None


def first_call(state, orig, neuron, w, b, x, key, place, frame):
    """(the real output, its `Seen` when later calls on the key may be emulated, else None)."""
    from gradgen.frontend.foreign import RTOL

    run = state.run
    before = _attrs(neuron)
    start = len(run.keep)
    out = state.plain(orig, neuron, (x,), {})
    state.checked.add((key, place[3]))
    seen = _match(run, out, w, b, x, start) if _attrs(neuron) == before else None
    if seen is not None:
        want = state._data(place, x, seen.act)
        got = float(out.data)
        if not abs(want - got) <= RTOL * max(1.0, abs(want), abs(got)):
            seen = None
    if seen is None:
        state.verified[key] = None
        return out, None
    seen.name, seen.helper = run.names.get(id(out)), run.helper_names.get(id(out))  # (from its own code)
    caller = run._loc(frame)
    seen.z_here = seen.z_loc == caller
    seen.h_here = seen.h_loc == caller
    old = state.verified.get(key)
    if old is not None and (old.act, old.z_here, old.h_here) != (seen.act, seen.z_here, seen.h_here):
        state.verified[key] = None  # the same code built another graph on another layer
        return out, None
    state.verified[key] = seen
    return out, seen


def _attrs(neuron) -> list:
    return [(k, id(v), len(v) if isinstance(v, list) else None) for k, v in vars(neuron).items()]


def _match(run, out, w, b, x, start: int):
    """A `Seen` when `out` is exactly act(((b + w0*x0) + w1*x1) + ...) made from `start` on, else None."""
    made = run.made

    def fresh(v):
        m = made.get(id(v))
        return m is not None and m[0] >= start and m[1] is not None

    def op_of(v):
        p = parse_op(getattr(v, "_op", None))
        return None if p is None or p[1] is not None else p[0]

    if not is_engine_value(out) or not fresh(out):
        return None
    act, h_loc, v = None, None, out
    if op_of(v) in ACTS:
        kids = made[id(v)][1]
        if len(kids) != 1:
            return None
        act, h_loc, v = op_of(v), made[id(v)][2], kids[0]
    z_loc = made[id(v)][2] if fresh(v) else None
    for i in range(len(w) - 1, -1, -1):
        if not fresh(v) or op_of(v) is not Op.ADD or made[id(v)][2] != z_loc:
            return None
        kids = made[id(v)][1]
        if len(kids) != 2:
            return None
        s, m = kids
        if not fresh(m) or op_of(m) is not Op.MUL or made[id(m)][2] != z_loc:
            return None
        if len(made[id(m)][1]) != 2:
            return None
        mw, mx = made[id(m)][1]
        if mw is not w[i] or not _is_input(run, mx, x[i], start):
            return None
        v = s
    if v is not b:
        return None
    return Seen(act, z_loc, h_loc)


def _is_input(run, child, given, start: int) -> bool:
    """`child` is the input `given`: the Value itself, or the leaf the engine wrapped a float in."""
    if child is given:
        return True
    if is_engine_value(given):
        return False
    m = run.made.get(id(child))
    return m is not None and m[0] >= start and not child._prev and child.data is given
