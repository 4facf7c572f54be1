"""`gradgen check`: is the compiled gradient right?  Compare it three ways, at several points.

Contract.  For each exported function `f` of a model file, `check_model`
evaluates the compiled `f` and `f_grad` (compiled in memory, or loaded from
an existing generated module with `module=`) at a list of points and
compares the value and every gradient with

* the interpreted engine: `f` called on `gradgen.Value`s, then `backward()`;
* PyTorch float64: `f` called on 0-d tensors, then `torch.autograd.grad`
  (skipped, with a note, when torch is missing or cannot run `f`, and for
  functions with module parameters or data arrays);
* central finite differences of the compiled forward `f` (see `slope`):
  one per scalar argument for a function of scalars, else one along a
  random direction through every differentiable input (parameter arrays and
  scalar arguments) at once.

How the compiled functions are called comes from their signature (`Layout`):
the parameter arrays of the model's `gradgen.nn` modules first (`W0, b0,
...`, the values `gradgen.params.read` gives), then the function's own
arguments.  Gradients come back in the same order: every element of every
parameter array is compared with the engine's `.grad` (`params.read_grads`),
every scalar argument's with its leaf's `.grad`; data arrays have none.

Two numbers agree when `|a - b| <= atol + rtol * max(|a|, |b|)` (the same
NaN or infinity on both sides agrees).  Defaults: `RTOL`/`ATOL` for the
engine and torch, the looser `FD_RTOL`/`FD_ATOL` for finite differences,
whose tolerance also includes the finite difference's error estimate.

Kinks.  Where a finite difference disagrees and its one-sided differences
disagree with each other beyond their error estimates, the step straddles a
point where `f` has no derivative (relu at 0).  The compiled derivative then
passes if it matches either one-sided difference; if both one-sided
differences are clean (the kink is at the point itself), f has no derivative
there to compare with and the output is not compared; otherwise it is
compared with the clean side.  Each case gets a note naming point and output.

Points: the user's (`--at name=value,...`, repeatable); else the function's
`example` plus `n` random points drawn uniformly in [-2, 2] (seeded, so
reproducible) and kept only where the engine returns finite numbers -- the
simple way to stay inside every op's domain (log of a positive, no 1/0).
A function with data arrays gets data sets instead: its example, then `n`
random ones shaped like it (random data set k depends only on the seed and k).

The result is a `FunctionReport` per function, one `Row` per comparison
with its worst absolute and relative error and where it occurred;
`format_report` prints it as a table.  A function fails when a row fails or
when no point could be checked.  Nothing is written.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import math
import numbers
import os
import random
import re
from dataclasses import dataclass, field

import numpy as np

from gradgen.errors import GradgenError
from gradgen.export import example_of

RTOL, ATOL = 1e-9, 1e-12  # compiled vs engine, compiled vs torch
FD_RTOL, FD_ATOL = 1e-5, 1e-7  # compiled vs central finite differences
FD_STEP = 1e-6
RANDOM_LOW, RANDOM_HIGH = -2.0, 2.0
TRIES_PER_POINT = 100
CLEAN = 1e-3  # a one-sided difference is clean when its estimate is under CLEAN * the kink's jump

# -- numbers ---------------------------------------------------------------------


def real(x) -> float | None:
    """`x` as a float if it is a real number (Python's or NumPy's, ints and bools too), else None."""
    if isinstance(x, (numbers.Real, np.bool_)):
        return float(x)
    if isinstance(x, np.ndarray) and x.shape == () and np.isrealobj(x) and x.dtype != object:
        return float(x)
    return None


def _what(x) -> str:
    """What a non-real result is, for a note."""
    if isinstance(x, (complex, np.complexfloating)):
        return "a complex number"
    return f"a {type(x).__name__}, not a number"


def _finite(x) -> bool:
    r = real(x)
    return r is not None and math.isfinite(r)


# -- points --------------------------------------------------------------------

_PAIR = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(\S+?)\s*")


def parse_at(text: str) -> dict[str, float]:
    """`"x1=2,x2=0"` -> {"x1": 2.0, "x2": 0.0}; a `GradgenError` for anything else."""
    hint = "expected NAME=NUMBER pairs separated by commas, e.g. --at x1=2,x2=-0.5"
    values: dict[str, float] = {}
    for part in text.split(","):
        m = _PAIR.fullmatch(part)
        if m is None:
            raise GradgenError(f"bad --at {text!r}: {part.strip()!r} is not NAME=NUMBER; {hint}")
        name, number = m.groups()
        try:
            value = float(number)
        except ValueError:
            raise GradgenError(f"bad --at {text!r}: {number!r} is not a number; {hint}") from None
        if name in values:
            raise GradgenError(f"bad --at {text!r}: {name} is given twice")
        values[name] = value
    return values


def arg_names(fn) -> list[str]:
    return list(inspect.signature(fn).parameters)


def where(fn) -> tuple[str, int]:
    """(file, line) of `fn`'s definition, for error messages."""
    return fn.__code__.co_filename, fn.__code__.co_firstlineno


def signature(fn) -> str:
    return f"{fn.__name__}({', '.join(arg_names(fn))})"


def bind(fn, values: dict[str, float], what: str = "--at") -> tuple[float, ...]:
    """`values` as a tuple in `fn`'s argument order; unknown or missing names are errors."""
    names = arg_names(fn)
    unknown = [k for k in values if k not in names]
    missing = [k for k in names if k not in values]
    if unknown or missing:
        problems = []
        if unknown:
            problems.append(f"{signature(fn)} has no argument {', '.join(unknown)}")
        if missing:
            problems.append(f"no value for {', '.join(missing)}")
        raise GradgenError(f"{what}: {'; '.join(problems)}; give every argument once, as NAME=NUMBER", *where(fn))
    return tuple(float(values[k]) for k in names)


def _example_dict(fn) -> dict:
    """`fn`'s `@gradgen.export(example=...)` by argument name ({} if none)."""
    ex = example_of(fn)
    if ex is None:
        return {}
    return dict(ex) if isinstance(ex, dict) else dict(zip(arg_names(fn), ex))


def example_point(fn) -> tuple[float, ...] | None:
    """`fn`'s `@gradgen.export(example=...)` point in argument order, or None."""
    ex = example_of(fn)
    if ex is None:
        return None
    if isinstance(ex, dict):
        return bind(fn, ex, "the export's example")
    ex = tuple(ex)
    if len(ex) != len(arg_names(fn)):
        raise GradgenError(
            f"the export's example has {len(ex)} values but {signature(fn)} takes {len(arg_names(fn))}", *where(fn)
        )
    return tuple(float(v) for v in ex)


def format_point(fn, xs) -> str:
    """A point as `--at` syntax that `parse_at` reads back: `repr(float(x))` (`nan`, `inf` included)."""
    return ",".join(f"{k}={float(x)!r}" for k, x in zip(arg_names(fn), xs))


def random_points(fn, n: int, seed: int, layout: Layout | None = None) -> tuple[list[tuple[float, ...]], int]:
    """Up to `n` points in [-2, 2]^k where the engine's value and gradient are finite; (points, tries)."""
    rng = random.Random(seed)
    k = len(arg_names(fn))
    points, tries = [], 0
    while len(points) < n and tries < TRIES_PER_POINT * n:
        tries += 1
        xs = tuple(rng.uniform(RANDOM_LOW, RANDOM_HIGH) for _ in range(k))
        try:
            value, grads = engine_grad(fn, xs, layout)
        except Exception:  # outside the domain: log(-1), 1/0, overflow
            continue
        if _finite(value) and all(_finite(g) for _, g in _elements(layout or Layout.plain(fn), grads)):
            points.append(xs)
    return points, tries


def data_sets(fn, layout: Layout, n: int, seed: int):
    """(data sets, labels, descriptions) for a function with data arrays: its example, then `n`
    random ones shaped like it (standard normal arrays, scalars in [-2, 2]); random data set k is
    drawn from (seed, k) alone, so `--seed S --points k` shows it again."""
    ex = _example_dict(fn)
    own = arg_names(fn)
    sets, labels, texts = [], [], []
    if all(k in ex for k in own):
        sets.append(tuple(np.asarray(ex[k], dtype=np.float64) if k in layout.data else float(ex[k]) for k in own))
        labels.append("example")
        texts.append("the export's example data")
    for k in range(1, n + 1):
        rng = np.random.default_rng([seed, k])
        draw = [rng.standard_normal(np.shape(ex[a])) if a in layout.data else float(rng.uniform(-2, 2)) for a in own]
        sets.append(tuple(draw))
        labels.append("random")
        texts.append(f"random data set {k} of --seed {seed} (rerun with --seed {seed} --points {k} to see it again)")
    return sets, labels, texts


# -- how the compiled functions are called ---------------------------------------


@dataclass
class Layout:
    """The compiled `f(*params, *own)`: parameter arrays first (in the compiled order), then the
    function's own arguments, of which `data` are arrays (no gradient) and the rest scalars."""

    own: list[str]
    params: list[str] = field(default_factory=list)
    arrays: dict = field(default_factory=dict)  # {param name: its current value}
    modules: list = field(default_factory=list)  # [(array-name prefix, module)]
    data: list[str] = field(default_factory=list)

    @classmethod
    def plain(cls, fn) -> Layout:
        return cls(arg_names(fn))

    @property
    def scalars(self) -> list[str]:
        return [k for k in self.own if k not in self.data]

    @property
    def is_plain(self) -> bool:
        """Only scalar arguments, no parameters: torch can run it and each argument gets a difference."""
        return not self.params and not self.data

    def call(self, compiled, xs, ps=None):
        ps = [self.arrays[k] for k in self.params] if ps is None else ps
        return compiled(*ps, *xs)


def layout_of(fn, compiled, module_path: str | None = None) -> Layout:
    """Read the call from `compiled`'s signature: the names before `fn`'s own arguments are the
    parameter arrays of the model's nn modules (`gradgen.params.read`, prefixes as the tracer gives)."""
    from gradgen import params as params_mod
    from gradgen.export import params_of
    from gradgen.frontend.trace import _modules

    modules = _modules(fn, params_of(fn))[0]
    arrays = {}
    for prefix, m in modules:
        try:
            arrays.update(params_mod.read(m, prefix))
        except ValueError:  # a module whose parameters do not group into arrays: not an input
            continue
    own = arg_names(fn)
    names = list(inspect.signature(compiled).parameters)
    params = names[: len(names) - len(own)]
    unknown = [k for k in params if k not in arrays]
    if names[len(params) :] != own or unknown:
        raise GradgenError(
            f"the module's {compiled.__name__}({', '.join(names)}) does not take the parameters and "
            f"arguments of {signature(fn)}; regenerate it with gradgen compile",
            module_path or where(fn)[0],
        )
    ex = _example_dict(fn)
    data = [k for k in own if k in ex and np.ndim(ex[k]) > 0]
    return Layout(own, params, {k: arrays[k] for k in params}, modules, data)


def _output(k: str, index: tuple) -> str:
    return f"d/d{k}{list(index)}" if index else f"d/d{k}"


def _elements(layout: Layout, grads) -> list[tuple[str, object]]:
    """[(output, number)]: every element of every parameter gradient, then each scalar argument's."""
    names = layout.params + layout.scalars
    grads = tuple(grads)
    if len(grads) != len(names):
        raise ValueError(f"{len(grads)} gradients for {len(names)} inputs ({', '.join(names)})")
    out = []
    for k, g in zip(names, grads):
        if k not in layout.arrays:
            out.append((f"d/d{k}", g))
            continue
        shape = np.shape(layout.arrays[k])
        if np.shape(g) != shape:
            raise ValueError(f"d/d{k} has shape {np.shape(g)}, not {shape}")
        g = np.asarray(g)
        out += [(_output(k, idx), g[idx].item()) for idx in np.ndindex(shape)]
    return out


# -- the four ways to compute a gradient ----------------------------------------


def engine_grad(fn, xs, layout: Layout | None = None):
    """(value, grads) from the interpreted engine: `fn` on `Value`s, then `backward()`.

    The grads are in the compiled order: each parameter array (from the
    modules' `.grad`s) then each scalar argument; data arrays are passed as
    they are and get none."""
    from gradgen import params as params_mod
    from gradgen.engine import Value

    layout = layout or Layout.plain(fn)
    for _, m in layout.modules:
        m.zero_grad()
    leaves, args = {}, []
    for k, x in zip(layout.own, xs):
        if k in layout.data:
            args.append(x)
        else:
            leaves[k] = Value(x, label=k)
            args.append(leaves[k])
    out = fn(*args)
    if not isinstance(out, Value):  # a constant function
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


# -- comparing -------------------------------------------------------------------


@dataclass
class Row:
    """One comparison over all points: its worst errors and where they occurred."""

    comparison: str
    rtol: float
    atol: float
    max_abs: float = 0.0
    max_rel: float = 0.0
    worst: tuple[float, str, int] | None = None  # (err / tolerance, output, point index)
    failed: bool = False
    compared: int = 0
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None
    slack: str = ""  # what else the tolerance allows, for the table

    def error(self, a, b, slack: float = 0.0) -> tuple[float, float, float]:
        """(absolute error, relative error, error / tolerance) of `a` against `b`."""
        ra, rb = real(a), real(b)
        if ra is None or rb is None:  # a complex result: equal or infinitely wrong
            ra, rb = (0.0, 0.0) if a == b else (math.inf, 0.0)
        scale = max(abs(ra), abs(rb))
        if ra == rb or (math.isnan(ra) and math.isnan(rb)):
            err = rel = 0.0
        else:
            err = abs(ra - rb)
            err = math.inf if math.isnan(err) else err
            rel = err / scale if 0 < scale < math.inf else math.inf
        tolerance = self.atol + self.rtol * scale + slack if math.isfinite(scale) else self.atol
        tolerance = tolerance if math.isfinite(tolerance) else self.atol  # no estimate: strict
        ratio = err / tolerance if tolerance > 0 else (math.inf if err else 0.0)
        return err, rel, ratio

    def agrees(self, a, b, slack: float = 0.0) -> bool:
        return self.error(a, b, slack)[2] <= 1.0

    def add(self, a, b, output: str, point: int, slack: float = 0.0) -> None:
        """Compare `a` (compiled) with `b` (the reference, good to about `slack`) for `output` at `point`."""
        self.compared += 1
        err, rel, ratio = self.error(a, b, slack)
        self.max_abs = max(self.max_abs, err)
        self.max_rel = max(self.max_rel, rel)
        if self.worst is None or ratio > self.worst[0]:
            self.worst = (ratio, output, point)
        if ratio > 1.0:
            self.failed = True

    def fail(self, output: str, point: int, note: str | None = None) -> None:
        """The compiled side raised: a failure with no number to show."""
        self.failed = True
        self.max_abs = self.max_rel = math.inf
        if self.worst is None or self.worst[0] != math.inf:
            self.worst = (math.inf, output, point)
        if note is not None:
            self.notes.append(note)

    @property
    def status(self) -> str:
        if self.skipped is not None or (self.compared == 0 and not self.failed):
            return "SKIP"
        return "FAIL" if self.failed else "PASS"


def _g(x: float) -> str:
    return f"{x:.6g}"


def add_fd(row: Row, a, d: Slope, output: str, point: int) -> None:
    """Compare a compiled derivative `a` with the finite differences `d`, minding kinks.

    Where the central difference disagrees and the one-sided ones disagree
    with each other beyond their estimates, the step straddles a kink.  A
    one-sided difference whose stencil holds no kink is "clean" (its estimate
    is under `CLEAN` times the jump between the two, or within the
    tolerance: a kink at distance d inside the step h makes it about
    2 * jump * d / h, curvature about f'' * h); the compiled derivative
    passes if it matches a clean one.  If both are clean, the kink is at the
    point and f has no derivative there: nothing to compare (the engine and
    torch rows still judge the engine's convention, relu'(0) = 0).  If one
    is, f is differentiable at the point and that side's slope is its
    derivative: compared with it.
    """
    if row.agrees(a, d.central, d.error) or real(a) is None:
        row.add(a, d.central, output, point, slack=d.error)
        return
    if row.agrees(d.left, d.right, d.left_error + d.right_error):  # no kink: a wrong derivative
        row.add(a, d.central, output, point, slack=d.error)
        return
    kink = f"p{point}: {output} at a kink (one-sided slopes {_g(d.left)} and {_g(d.right)})"
    jump = abs(d.left - d.right)
    sides = [(d.left, d.left_error), (d.right, d.right_error)]
    clean = [(b, e) for b, e in sides if e <= max(CLEAN * jump, row.atol + row.rtol * abs(b))]
    for b, e in clean:
        if row.agrees(a, b, e):
            row.add(a, b, output, point, slack=e)
            row.notes.append(f"{kink}: compared with the one-sided difference it matches")
            return
    if len(clean) == 2:
        row.notes.append(
            f"{kink}: f has no derivative there and the compiled {_g(real(a))} matches neither slope "
            "(the engine takes relu'(0) = 0): not compared with finite differences"
        )
        return
    b, e = clean[0] if clean else (d.central, d.error)
    row.add(a, b, output, point, slack=e)
    row.notes.append(f"{kink}: compared with the one-sided difference {_g(b)} on the side without the kink")


@dataclass
class FunctionReport:
    name: str
    signature: str
    points: list[tuple]
    labels: list[str]  # where each point came from: "--at", "example", "random"
    rows: list[Row]
    notes: list[str]
    point_text: list[str]  # how to see each point again: an `--at` or a data set's seed
    skip: str | None = None  # why the function was not checked at all (not a failure)
    unit: str = "point"  # or "data set"

    @property
    def failed(self) -> bool:
        return self.skip is None and (not self.points or any(r.status == "FAIL" for r in self.rows))


@dataclass
class Tolerances:
    rtol: float = RTOL
    atol: float = ATOL
    fd_rtol: float = FD_RTOL
    fd_atol: float = FD_ATOL


def _short_error(e: BaseException) -> str:
    text = " ".join(str(e).split())
    if len(text) > 100:
        text = text[:97] + "..."
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _direction_rng(seed: int, xs) -> np.random.Generator:
    """The random direction at a point depends on the seed and the point (or data set) alone,
    so a point pasted back with --at gets the same direction."""
    digest = hashlib.sha256(b"".join(np.asarray(x, dtype=np.float64).tobytes() for x in xs)).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:16], "little")])


def _fd_direction(row: Row, f, layout: Layout, xs, elements, p: int, rng) -> None:
    """<gradient, t> vs a central difference of compiled `f` along a random `t` through every
    parameter array and scalar argument at once."""
    ps = [layout.arrays[k] for k in layout.params]
    tp = [rng.standard_normal(np.shape(a)) for a in ps]
    ts = {k: float(rng.standard_normal()) for k in layout.scalars}
    t = [v for a in tp for v in np.ravel(a)] + [ts[k] for k in layout.scalars]
    if not t:
        return
    compiled = sum(real(g) * ti for (_, g), ti in zip(elements, t))

    def g(s):
        moved = [x + s * ts[k] if k in ts else x for k, x in zip(layout.own, xs)]
        return layout.call(f, moved, [a + s * d for a, d in zip(ps, tp)]), s

    add_fd(row, compiled, slope(g, FD_STEP), "direction", p)


def check_function(
    fn,
    f,
    f_grad,
    points,
    labels,
    tol: Tolerances,
    use_torch: bool,
    layout: Layout | None = None,
    seed: int = 0,
    texts: list[str] | None = None,
) -> FunctionReport:
    """Compare compiled `f`/`f_grad` with the engine, torch and finite differences at `points`
    (`texts`: how to see each point again; by default its `--at`)."""
    layout = layout or Layout.plain(fn)
    texts = texts or [f"--at {format_point(fn, xs)}" for xs in points]
    engine = Row("compiled vs engine", tol.rtol, tol.atol)
    torch_row = Row("compiled vs torch", tol.rtol, tol.atol)
    fd = Row("compiled vs finite diff", tol.fd_rtol, tol.fd_atol, slack=" + its error estimate")
    notes: list[str] = []
    if not layout.is_plain:
        torch_row.skipped = (
            "PyTorch: not used for functions with module parameters or data arrays "
            "(tests/test_mlp.py compares MLPs with torch)"
        )
    elif not use_torch:
        torch_row.skipped = "PyTorch not installed: skipped"
    kept, kept_labels, kept_texts = [], [], []
    for xs, label, text in zip(points, labels, texts):
        p = len(kept)
        what = text if layout.data else f"{label} point {text}"
        try:
            ref_value, ref_grads = engine_grad(fn, xs, layout)
            ref = _elements(layout, ref_grads)
        except Exception as e:
            notes.append(f"{what} skipped: the engine raised {_short_error(e)}")
            continue
        odd = [v for v in (ref_value, *(g for _, g in ref)) if real(v) is None]
        if odd:
            notes.append(f"{what} skipped: the engine gives {_what(odd[0])} there")
            continue
        kept.append(xs)
        kept_labels.append(label)
        kept_texts.append(text)
        try:
            value = layout.call(f, xs)
            g_value, grads = layout.call(f_grad, xs)
            mine = _elements(layout, grads)
        except Exception as e:
            for row in (engine, torch_row, fd):
                row.fail("value", p)
            notes.append(f"p{p}: compiled code raised {_short_error(e)}")
            continue
        engine.add(value, ref_value, f"value of {fn.__name__}", p)
        engine.add(g_value, ref_value, f"value of {fn.__name__}_grad", p)
        for (out, a), (_, b) in zip(mine, ref):
            engine.add(a, b, out, p)
        if torch_row.skipped is None:
            try:
                t_value, t_grads = torch_grad(fn, xs)
            except Exception as e:
                torch_row.skipped = f"PyTorch cannot run {fn.__name__} on tensors ({_short_error(e)}): skipped"
            else:
                for (out, a), b in zip([("value", g_value)] + mine, (t_value, *t_grads)):
                    torch_row.add(a, b, out, p)
        try:
            if layout.is_plain:
                for (out, a), d in zip(mine, fd_grad(f, xs)):
                    add_fd(fd, a, d, out, p)
            else:
                _fd_direction(fd, f, layout, xs, mine, p, _direction_rng(seed, xs))
        except Exception as e:
            fd.notes.append(f"p{p}: no finite difference ({_short_error(e)} next to the point)")
    rows = [engine, torch_row, fd]
    for row in rows:
        if row.skipped is not None:
            notes.append(row.skipped)
        notes.extend(row.notes)
    sig = signature(fn) + (f" with parameters {', '.join(layout.params)}" if layout.params else "")
    return FunctionReport(fn.__name__, sig, kept, kept_labels, rows, notes, kept_texts)


# -- array functions (MLPs on batches) ----------------------------------------------


def is_array_function(fn) -> bool:
    """A function with an array `example` (data arrays), or with `params=` modules in its export."""
    from gradgen.export import params_of
    from gradgen.frontend.trace import _modules

    ex = example_of(fn)
    values = ex.values() if isinstance(ex, dict) else (ex or ())
    if any(np.ndim(v) > 0 for v in values):
        return True
    return bool(_modules(fn, params_of(fn))[0]) and params_of(fn) is not None


def check_array_function(fn, compiled, layout: Layout, n_points: int, seed: int, tol: Tolerances) -> FunctionReport:
    """`check_function` on data sets (`data_sets`): the example's, then `n_points` random ones."""
    f = getattr(compiled, fn.__name__, None)
    f_grad = getattr(compiled, fn.__name__ + "_grad", None)
    sets, labels, texts = data_sets(fn, layout, n_points, seed)
    report = check_function(fn, f, f_grad, sets, labels, tol, False, layout, seed, texts)
    report.unit = "data set"
    return report


# -- models and modules ------------------------------------------------------------


def load_module_file(path: str):
    """Import an existing generated module (as `gradgen check --module` does)."""
    from gradgen.api import load_source

    if not os.path.isfile(path):
        raise GradgenError("no such module file; give the path of a module gradgen compile wrote", path)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as e:
        raise GradgenError(f"cannot read the module: {e}", path) from e
    try:
        return load_source(text, os.path.splitext(os.path.basename(path))[0])
    except SyntaxError as e:
        raise GradgenError(f"syntax error in the module: {e.msg}", path, e.lineno) from e
    except Exception as e:
        raise GradgenError(f"importing the module raised {_short_error(e)}", path) from e


def select(fns, function: str | None, path: str):
    if function is None:
        return fns
    chosen = [f for f in fns if f.__name__ == function]
    if not chosen:
        have = ", ".join(f.__name__ for f in fns)
        raise GradgenError(f"no exported function named {function!r} (the model exports {have})", path)
    return chosen


def points_for(fn, at: list[dict] | None, n_random: int, seed: int, layout: Layout | None = None):
    """(points, labels, notes) for `fn`: the --at points, or the example plus random ones."""
    if at:
        return [bind(fn, values) for values in at], ["--at"] * len(at), []
    points, labels, notes = [], [], []
    ex = example_point(fn)
    if ex is not None:
        points.append(ex)
        labels.append("example")
    if n_random > 0:
        found, tries = random_points(fn, n_random, seed, layout)
        points += found
        labels += ["random"] * len(found)
        if len(found) < n_random:
            notes.append(
                f"found {len(found)} of {n_random} random points in [-2, 2] where the engine gives "
                f"finite numbers ({tries} tries); give points with --at"
            )
    return points, labels, notes


def _fits(fn, values: dict) -> bool:
    return set(values) == set(arg_names(fn))


def check_model(
    path: str,
    module: str | None = None,
    at: list[dict] | None = None,
    n_random: int = 5,
    seed: int = 0,
    function: str | None = None,
    tol: Tolerances | None = None,
) -> list[FunctionReport]:
    """Check every exported function of the model file `path` (or just `function`)."""
    from gradgen.api import compile_function
    from gradgen.frontend.loader import load_model

    tol = tol or Tolerances()
    for option, value in vars(tol).items():
        if not value >= 0:
            raise GradgenError(f"--{option.replace('_', '-')} must be a number >= 0, not {value!r}")
    _, fns = load_model(path)
    fns = select(fns, function, path)
    if at and len(fns) > 1:
        for values in at:  # with several functions, each point goes to the ones it names
            if not any(_fits(fn, values) for fn in fns):
                sigs = "; ".join(signature(fn) for fn in fns)
                given = ",".join(values)
                raise GradgenError(f"--at {given} names the arguments of none of {sigs}; use --function NAME", path)
    compiled = load_module_file(module) if module else compile_function(*fns).module
    use_torch = torch_available()
    reports = []
    for fn in fns:
        f = getattr(compiled, fn.__name__, None)
        f_grad = getattr(compiled, fn.__name__ + "_grad", None)
        if f is None:
            raise GradgenError(
                f"the module has no function {fn.__name__}; regenerate it with gradgen compile {path}", module
            )
        layout = layout_of(fn, f, module)
        mine = [v for v in at if len(fns) == 1 or _fits(fn, v)] if at else None
        if layout.data and f_grad is None:  # gradgen.each: nothing to differentiate
            reports.append(
                FunctionReport(fn.__name__, signature(fn), [], [], [], [], [], "per-example values: no gradient")
            )
            continue
        if f_grad is None:
            raise GradgenError(
                f"the module has no function {fn.__name__}_grad; regenerate it with gradgen compile {path}", module
            )
        if layout.data and mine:
            raise GradgenError(
                f"--at gives numbers, but {', '.join(layout.data)} of {signature(fn)} "
                f"{'is an array' if len(layout.data) == 1 else 'are arrays'}: it is checked on data sets; "
                "choose them with --points N and --seed S instead",
                *where(fn),
            )
        if at and not mine:  # the --at points are for other functions
            reports.append(
                FunctionReport(fn.__name__, signature(fn), [], [], [], [], [], "no --at point names its arguments")
            )
            continue
        if layout.data:
            reports.append(check_array_function(fn, compiled, layout, n_random, seed, tol))
            continue
        points, labels, notes = points_for(fn, mine, n_random, seed, layout)
        report = check_function(fn, f, f_grad, points, labels, tol, use_torch, layout, seed)
        report.notes[:0] = notes
        reports.append(report)
    return reports


# -- the table ----------------------------------------------------------------------


def _num(x: float) -> str:
    return "0" if x == 0 else f"{x:.1e}"


def format_report(r: FunctionReport) -> str:
    """The table for one function: a row per comparison, then the points the rows name."""
    n = len(r.points)
    head = f"{r.signature}: {n} {r.unit}{'s' * (n != 1)}"
    kinds = [k for k in ("--at", "example", "random") if k in r.labels]
    if kinds:
        head += " (" + ", ".join(f"{r.labels.count(k)} {k}" for k in kinds) + ")"
    if r.skip is not None:
        return f"{r.signature}: skipped: {r.skip}"
    lines = [head]
    if not r.points:
        lines.append(f"  FAIL: nothing checked: no usable {r.unit}; give one with --at")
        lines += [f"  note: {n}" for n in r.notes]
        return "\n".join(lines)
    table = [("comparison", "max abs err", "max rel err", "worst at", "result", "tolerance")]
    shown: list[int] = []
    for row in r.rows:
        if row.status == "SKIP":
            table.append((row.comparison, "-", "-", "-", "SKIP", ""))
            continue
        at = "-"
        if row.worst is not None and row.worst[0] > 0:
            _, output, p = row.worst
            at = f"{output} at p{p}"
            shown.append(p)
        tolerance = f"rtol {row.rtol:g} atol {row.atol:g}{row.slack}"
        table.append((row.comparison, _num(row.max_abs), _num(row.max_rel), at, row.status, tolerance))
    widths = [max(len(t[c]) for t in table) for c in range(6)]
    for t in table:
        cells = [t[0].ljust(widths[0]), t[1].rjust(widths[1]), t[2].rjust(widths[2])]
        cells += [t[3].ljust(widths[3]), t[4].ljust(widths[4]), t[5]]
        lines.append(("  " + "  ".join(cells)).rstrip())
    shown += [int(m[1]) for m in (re.match(r"p(\d+): ", n) for n in r.notes) if m]  # points the notes name
    for p in sorted(set(shown)):
        lines.append(f"  p{p} ({r.labels[p]}): {r.point_text[p]}")
    lines += [f"  note: {n}" for n in r.notes]
    return "\n".join(lines)


def summary(reports: list[FunctionReport]) -> str:
    """The last lines: one per failed comparison, then the verdict."""
    lines = []
    for r in reports:
        if r.failed and not r.points:
            lines.append(f"FAIL {r.name}: no {r.unit} to check at")
        for row in r.rows:
            if row.status == "FAIL":
                _, output, p = row.worst
                lines.append(
                    f"FAIL {r.name}: {row.comparison}: {output} at p{p} is off by {_num(row.max_abs)} "
                    f"(rtol {row.rtol:g}, atol {row.atol:g}{row.slack})"
                )
    bad = [r.name for r in reports if r.failed]
    n = sum(r.skip is None for r in reports)
    if bad:
        lines.append(f"check FAILED for {', '.join(bad)} ({len(bad)} of {n} function{'s' * (n != 1)})")
    else:
        lines.append(f"check passed: {n} function{'s' * (n != 1)}")
    return "\n".join(lines)
