"""The references `gradgen check` compares compiled gradients with.

Contract.  Each oracle computes (value, gradients) of the user's function
at a point without the compiled code, or differences of the compiled
forward:

* `engine_grad`: `fn` called on `gradgen.Value`s (on the learner's own
  class where `engine.find_engine` finds one), then `backward()`; the
  gradients in the compiled order (`Layout`): each parameter array (the
  modules' `.grad`s) then each scalar argument; data arrays get none.
* `torch_grad`: `fn` called on 0-d float64 tensors (whose `+=` rebinds, as
  it does for `Value`s), then `torch.autograd.grad`; scalar functions only.
* `slope` / `fd_grad` / `fd_direction`: central finite differences of the
  compiled forward (per scalar argument, or along one random direction
  through every differentiable input), and the one-sided ones the kink
  logic needs (`report.add_fd`), each with an error estimate.

`real` says what counts as a number here (Python's or NumPy's reals, ints
and bools included); anything else is reported, never compared as a float.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import numbers
from dataclasses import dataclass

import numpy as np

from gradgen.tools.check.layout import Layout

FD_STEP = 1e-6

# -- numbers ---------------------------------------------------------------------


def real(x) -> float | None:
    """`x` as a float if it is a real number (Python's or NumPy's, ints and bools too), else None."""
    if isinstance(x, (numbers.Real, np.bool_)):
        return float(x)
    if isinstance(x, np.ndarray) and x.shape == () and np.isrealobj(x) and x.dtype != object:
        return float(x)
    return None


def describe(x) -> str:
    """What a non-real result is, for a note."""
    if isinstance(x, (complex, np.complexfloating)):
        return "a complex number"
    return f"a {type(x).__name__}, not a number"


def finite(x) -> bool:
    r = real(x)
    return r is not None and math.isfinite(r)


# -- the engine -------------------------------------------------------------------


def engine_grad(fn, xs, layout: Layout | None = None):
    """(value, grads) from the interpreted engine: `fn` on `Value`s, then `backward()`.

    The grads are in the compiled order: each parameter array (from the
    modules' `.grad`s) then each scalar argument; data arrays are passed as
    they are and get none."""
    from gradgen import params as params_mod
    from gradgen.engine import Value
    from gradgen.tools.check.engine import find_engine  # (engine.py imports this module)

    layout = layout or Layout.plain(fn)
    engine = find_engine(fn)  # the user's own engine (micrograd's, the lecture's), if any
    own = engine.cls if engine is not None else None
    for _, m in layout.modules:
        for _, p in params_mod.named_values(m):
            p.grad = 0.0  # (zero_grad(), which the lecture's classes do not have)
    leaves, args = {}, []
    for k, x in zip(layout.own, xs):
        if k in layout.data:
            args.append(x)
        else:
            leaves[k] = Value(x, label=k) if own is None else own(x)
            args.append(leaves[k])
    out = fn(*args)
    if not isinstance(out, own or Value):  # a constant function
        zeros = tuple(np.zeros(np.shape(layout.arrays[k])) for k in layout.params)
        return out, zeros + tuple(0.0 for _ in leaves)
    out.backward()
    grads = {}
    for prefix, m in layout.modules:
        try:
            grads.update(params_mod.read_grads(m, prefix))
        except ValueError:
            continue
    return out.data, tuple(grads[k] for k in layout.params) + tuple(leaves[k].grad for k in layout.scalars)


# -- PyTorch float64 ----------------------------------------------------------------


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


_TORCH_TENSOR = None


def _torch_tensor_type():
    """A Tensor subclass whose `+=` etc. rebind instead of mutating, as they do for `Value`s."""
    global _TORCH_TENSOR
    if _TORCH_TENSOR is None:
        import torch

        class ValueLikeTensor(torch.Tensor):
            def __iadd__(self, other):
                return self + other

            def __isub__(self, other):
                return self - other

            def __imul__(self, other):
                return self * other

            def __itruediv__(self, other):
                return self / other

            def __ipow__(self, other):
                return self**other

        _TORCH_TENSOR = ValueLikeTensor
    return _TORCH_TENSOR


def torch_grad(fn, xs):
    """(value, grads) from PyTorch float64 autograd, `fn` called on 0-d tensors."""
    import torch

    cls = _torch_tensor_type()
    leaves = [torch.tensor(x, dtype=torch.float64).as_subclass(cls).requires_grad_() for x in xs]
    out = fn(*leaves)
    if not isinstance(out, torch.Tensor):
        if real(out) is not None:
            return float(out), tuple(0.0 for _ in xs)
        raise TypeError(f"returned {type(out).__name__}, not a tensor")
    if out.dtype != torch.float64 or out.numel() != 1:
        raise TypeError(f"returned a {out.dtype} tensor of shape {tuple(out.shape)}, not a float64 scalar")
    if not out.requires_grad:
        return out.item(), tuple(0.0 for _ in xs)
    grads = torch.autograd.grad(out, leaves, allow_unused=True)
    return out.item(), tuple(0.0 if g is None else g.item() for g in grads)


# -- finite differences ---------------------------------------------------------------


@dataclass(frozen=True)
class Slope:
    """Finite differences of a function along one direction, each with an error estimate:
    twice the largest change when the step is doubled or halved."""

    central: float
    error: float
    left: float  # (f(x) - f(x - h)) / h
    left_error: float
    right: float  # (f(x + h) - f(x)) / h
    right_error: float


def slope(g, h: float) -> Slope:
    """Differences of `g` at 0 with step `h`; `g(s)` gives (f at step s from the point, s as represented).

    The estimates are large where rounding dominates (a value computed in
    thousands of steps: the differences are noise) or next to a kink, and
    tiny otherwise, so a wrong derivative still stands out.
    """
    seen: dict[float, tuple[float, float]] = {}

    def at(s):
        if s not in seen:
            seen[s] = g(s)
        return seen[s]

    def central(s):
        (fa, sa), (fb, sb) = at(s), at(-s)
        return (fa - fb) / (sa - sb)  # divide by the step as represented

    def left(s):
        (f0, s0), (fb, sb) = at(0.0), at(-s)
        return (f0 - fb) / (s0 - sb)

    def right(s):
        (fa, sa), (f0, s0) = at(s), at(0.0)
        return (fa - f0) / (sa - s0)

    def estimated(d):
        v = d(h)
        return v, 2 * max(abs(v - d(2 * h)), abs(v - d(h / 2)))

    return Slope(*estimated(central), *estimated(left), *estimated(right))


def fd_grad(f, xs) -> tuple[Slope, ...]:
    """A `Slope` per argument of `f` at `xs`, step `h = FD_STEP * max(1, |x|)`."""
    out = []
    for i, x in enumerate(xs):

        def g(s, i=i, x=x):
            moved = list(xs)
            moved[i] = x + s
            return f(*moved), moved[i] - x

        out.append(slope(g, FD_STEP * max(1.0, abs(x))))
    return tuple(out)


def direction_rng(seed: int, xs) -> np.random.Generator:
    """The random direction at a point depends on the seed and the point (or data set) alone,
    so a point pasted back with --at gets the same direction."""
    digest = hashlib.sha256(b"".join(np.asarray(x, dtype=np.float64).tobytes() for x in xs)).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:16], "little")])


def fd_direction(f, layout: Layout, xs, mine, rng) -> tuple[float, Slope] | None:
    """(<gradient, t>, slope): the compiled gradient `mine` (`elements` pairs) along a random
    direction `t` through every parameter array and scalar argument at once, and a central
    difference of compiled `f` along `t`; None if there is nothing to move."""
    ps = [layout.arrays[k] for k in layout.params]
    tp = [rng.standard_normal(np.shape(a)) for a in ps]
    ts = {k: float(rng.standard_normal()) for k in layout.scalars}
    t = [v for a in tp for v in np.ravel(a)] + [ts[k] for k in layout.scalars]
    if not t:
        return None
    compiled = sum(real(g) * ti for (_, g), ti in zip(mine, t))

    def g(s):
        moved = [x + s * ts[k] if k in ts else x for k, x in zip(layout.own, xs)]
        return layout.call(f, moved, [a + s * d for a, d in zip(ps, tp)]), s

    return compiled, slope(g, FD_STEP)
