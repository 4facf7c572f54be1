"""`gradgen check`: is the compiled gradient right?  Compare it three ways, at several points.

Contract.  For each exported function `f` of a model file, `check_model`
evaluates the compiled `f` and `f_grad` (compiled in memory, or loaded from
an existing generated module with `module=`) at a list of points and
compares the value and every gradient with

* the interpreted engine: `f` called on `gradgen.Value`s, then `backward()`;
* PyTorch float64: `f` called on 0-d tensors, then `torch.autograd.grad`
  (skipped, with a note, when torch is missing or cannot run `f`);
* central finite differences of the compiled forward `f`, with step
  `h = 1e-6 * max(1, |x|)`, and an estimate of their own error (see `fd_grad`).

Two numbers agree when `|a - b| <= atol + rtol * max(|a|, |b|)` (the same
NaN or infinity on both sides agrees).  Defaults: `RTOL`/`ATOL` for the
engine and torch, the looser `FD_RTOL`/`FD_ATOL` for finite differences,
whose tolerance also includes the finite difference's error estimate.

Points: the user's (`--at name=value,...`, repeatable); else the function's
`example` plus `n` random points drawn uniformly in [-2, 2] (seeded, so
reproducible) and kept only where the engine returns finite numbers -- the
simple way to stay inside every op's domain (log of a positive, no 1/0).

The result is a `FunctionReport` per function, one `Row` per comparison
with its worst absolute and relative error and where it occurred;
`format_report` prints it as a table.  A function fails when a row fails or
when no point could be checked.  Nothing is written.
"""

from __future__ import annotations

import importlib.util
import inspect
import math

import numpy as np
import os
import random
import re
from dataclasses import dataclass, field

from gradgen.errors import GradgenError
from gradgen.export import example_of

RTOL, ATOL = 1e-9, 1e-12  # compiled vs engine, compiled vs torch
FD_RTOL, FD_ATOL = 1e-5, 1e-7  # compiled vs central finite differences
FD_STEP = 1e-6
RANDOM_LOW, RANDOM_HIGH = -2.0, 2.0
TRIES_PER_POINT = 100

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
    """A point as `--at` syntax, so it can be pasted back."""
    return ",".join(f"{k}={x!r}" for k, x in zip(arg_names(fn), xs))


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def random_points(fn, n: int, seed: int) -> tuple[list[tuple[float, ...]], int]:
    """Up to `n` points in [-2, 2]^k where the engine's value and gradient are finite; (points, tries)."""
    rng = random.Random(seed)
    k = len(arg_names(fn))
    points, tries = [], 0
    while len(points) < n and tries < TRIES_PER_POINT * n:
        tries += 1
        xs = tuple(rng.uniform(RANDOM_LOW, RANDOM_HIGH) for _ in range(k))
        try:
            value, grads = engine_grad(fn, xs)
        except Exception:  # outside the domain: log(-1), 1/0, overflow
            continue
        if _finite(value) and all(_finite(g) for g in grads):
            points.append(xs)
    return points, tries


# -- the four ways to compute a gradient ----------------------------------------


def engine_grad(fn, xs):
    """(value, grads) from the interpreted engine: `fn` on `Value`s, then `backward()`."""
    from gradgen.engine import Value

    leaves = [Value(x, label=k) for k, x in zip(arg_names(fn), xs)]
    out = fn(*leaves)
    if not isinstance(out, Value):  # a constant function
        return float(out), tuple(0.0 for _ in xs)
    out.backward()
    return out.data, tuple(v.grad for v in leaves)


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
        if isinstance(out, (int, float)):
            return float(out), tuple(0.0 for _ in xs)
        raise TypeError(f"returned {type(out).__name__}, not a tensor")
    if out.dtype != torch.float64 or out.numel() != 1:
        raise TypeError(f"returned a {out.dtype} tensor of shape {tuple(out.shape)}, not a float64 scalar")
    if not out.requires_grad:
        return out.item(), tuple(0.0 for _ in xs)
    grads = torch.autograd.grad(out, leaves, allow_unused=True)
    return out.item(), tuple(0.0 if g is None else g.item() for g in grads)


def _central(f, xs, i: int, h: float) -> float:
    up, down = list(xs), list(xs)
    up[i], down[i] = xs[i] + h, xs[i] - h
    return (f(*up) - f(*down)) / (up[i] - down[i])  # divide by the step as represented


def fd_grad(f, xs) -> tuple[tuple[float, float], ...]:
    """(gradient, error estimate) per argument by central differences of `f` at `xs`.

    The step is `h = FD_STEP * max(1, |x|)`; the estimate is twice the largest
    change when the step is doubled or halved.  It is large where rounding
    dominates (a value computed in thousands of steps: the differences are
    noise) or near a kink, and tiny otherwise, so a wrong derivative still
    stands out.
    """
    out = []
    for i, x in enumerate(xs):
        h = FD_STEP * max(1.0, abs(x))
        d = _central(f, xs, i, h)
        change = max(abs(d - _central(f, xs, i, 2 * h)), abs(d - _central(f, xs, i, h / 2)))
        out.append((d, 2 * change))
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

    def add(self, a: float, b: float, output: str, point: int, slack: float = 0.0) -> None:
        """Compare `a` (compiled) with `b` (the reference, good to about `slack`) for `output` at `point`."""
        self.compared += 1
        if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):  # a complex result
            a, b = (0.0, 0.0) if a == b else (math.inf, 0.0)
        scale = max(abs(a), abs(b))
        if a == b or (math.isnan(a) and math.isnan(b)):
            err = rel = 0.0
        else:
            err = abs(a - b)
            err = math.inf if math.isnan(err) else err
            rel = err / scale if 0 < scale < math.inf else math.inf
        tolerance = self.atol + self.rtol * scale + slack if math.isfinite(scale) else self.atol
        tolerance = tolerance if math.isfinite(tolerance) else self.atol  # no estimate: strict
        ratio = err / tolerance if tolerance > 0 else (math.inf if err else 0.0)
        self.max_abs = max(self.max_abs, err)
        self.max_rel = max(self.max_rel, rel)
        if self.worst is None or ratio > self.worst[0]:
            self.worst = (ratio, output, point)
        if ratio > 1.0:
            self.failed = True

    def fail(self, output: str, point: int, note: str) -> None:
        """The compiled side raised: a failure with no number to show."""
        self.failed = True
        self.max_abs = self.max_rel = math.inf
        if self.worst is None or self.worst[0] != math.inf:
            self.worst = (math.inf, output, point)
        self.notes.append(note)

    @property
    def status(self) -> str:
        if self.skipped is not None:
            return "SKIP"
        return "FAIL" if self.failed else "PASS"


@dataclass
class FunctionReport:
    name: str
    signature: str
    points: list[tuple[float, ...]]
    labels: list[str]  # where each point came from: "--at", "example", "random"
    rows: list[Row]
    notes: list[str]
    point_text: list[str]
    skip: str | None = None  # why the function was not checked at all (not a failure)

    @property
    def failed(self) -> bool:
        return self.skip is None and (not self.points or any(r.failed for r in self.rows))


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


def check_function(fn, f, f_grad, points, labels, tol: Tolerances, use_torch: bool) -> FunctionReport:
    """Compare compiled `f`/`f_grad` with the engine, torch and finite differences at `points`."""
    names = arg_names(fn)
    outputs = ["value"] + [f"d/d{k}" for k in names]
    engine = Row("compiled vs engine", tol.rtol, tol.atol)
    torch_row = Row("compiled vs torch", tol.rtol, tol.atol)
    fd = Row("compiled vs finite diff", tol.fd_rtol, tol.fd_atol, slack=" + its error estimate")
    notes: list[str] = []
    if not use_torch:
        torch_row.skipped = "PyTorch not installed: skipped"
    kept, kept_labels = [], []
    for xs, label in zip(points, labels):
        p = len(kept)
        try:
            ref_value, ref_grads = engine_grad(fn, xs)
        except Exception as e:
            notes.append(f"{label} point {format_point(fn, xs)} skipped: the engine raised {_short_error(e)}")
            continue
        if not all(isinstance(v, (int, float)) for v in (ref_value, *ref_grads)):
            notes.append(f"{label} point {format_point(fn, xs)} skipped: the engine gives a complex number there")
            continue
        kept.append(xs)
        kept_labels.append(label)
        try:
            value = f(*xs)
            g_value, grads = f_grad(*xs)
        except Exception as e:
            for row in (engine, torch_row, fd):
                row.fail("value", p, f"p{p}: compiled code raised {_short_error(e)}")
            continue
        engine.add(value, ref_value, f"value of {fn.__name__}", p)
        engine.add(g_value, ref_value, f"value of {fn.__name__}_grad", p)
        for out, a, b in zip(outputs[1:], grads, ref_grads):
            engine.add(a, b, out, p)
        if torch_row.skipped is None:
            try:
                t_value, t_grads = torch_grad(fn, xs)
            except Exception as e:
                torch_row.skipped = f"PyTorch cannot run {fn.__name__} on tensors ({_short_error(e)}): skipped"
            else:
                for out, a, b in zip(outputs, (g_value, *grads), (t_value, *t_grads)):
                    torch_row.add(a, b, out, p)
        try:
            fd_grads = fd_grad(f, xs)
        except Exception as e:
            fd.notes.append(f"p{p}: no finite difference ({_short_error(e)} next to the point)")
        else:
            for out, a, (b, error) in zip(outputs[1:], grads, fd_grads):
                fd.add(a, b, out, p, slack=error)
    rows = [engine, torch_row, fd]
    for row in rows:
        if row.skipped is not None:
            notes.append(row.skipped)
        notes.extend(row.notes)
    point_text = [format_point(fn, xs) for xs in kept]
    return FunctionReport(fn.__name__, signature(fn), kept, kept_labels, rows, notes, point_text)


# -- array functions (MLPs on batches) ----------------------------------------------


def is_array_function(fn) -> bool:
    """A function with an array `example` (data arrays), or that uses nn-module parameters."""
    from gradgen.trace import _modules
    from gradgen.export import params_of

    ex = example_of(fn)
    values = ex.values() if isinstance(ex, dict) else (ex or ())
    if any(np.ndim(v) > 0 for v in values):
        return True
    return bool(_modules(fn, params_of(fn))[0]) and params_of(fn) is not None


def check_array_function(fn, compiled, n_points: int, seed: int, tol: Tolerances) -> FunctionReport:
    """Compiled `f_grad` vs the engine (every gradient element) and vs finite differences along
    random directions, at `n_points` random data sets shaped like the example (parameters as
    they are in the model).  PyTorch is not used here: tests/test_mlp.py rebuilds MLPs in torch."""
    from gradgen import params as params_mod
    from gradgen.export import params_of
    from gradgen.trace import _modules

    f = getattr(compiled, fn.__name__, None)
    f_grad = getattr(compiled, fn.__name__ + "_grad", None)
    names = arg_names(fn)
    ex = example_of(fn)
    ex = ex if isinstance(ex, dict) else dict(zip(names, ex or ()))
    modules = _modules(fn, params_of(fn))[0]
    arrays = {}
    for prefix, m in modules:
        arrays.update(params_mod.read(m, prefix))
    if f_grad is None:  # a per-example function (gradgen.each): nothing to differentiate
        return FunctionReport(fn.__name__, signature(fn), [], [], [], [], [], "per-example values: no gradient")
    wanted = list(inspect.signature(f_grad).parameters)
    params = [k for k in wanted if k in arrays]
    engine = Row("compiled vs engine", tol.rtol, tol.atol)
    fd = Row("compiled vs finite diff", tol.fd_rtol, tol.fd_atol, slack=" + its error estimate")
    torch_row = Row("compiled vs torch", tol.rtol, tol.atol)
    torch_row.skipped = "PyTorch: not used for array functions (tests/test_mlp.py compares MLPs with torch)"
    rng = np.random.default_rng(seed)
    points, labels, texts, notes = [], [], [], [torch_row.skipped]
    for p in range(n_points):
        data = [np.asarray(rng.standard_normal(np.shape(ex[k]))) if np.ndim(ex[k]) else float(rng.uniform(-2, 2)) for k in names]
        ps = [arrays[k] for k in params]
        try:
            value, grads = f_grad(*ps, *data)
        except Exception as e:
            engine.fail("value", p, f"p{p}: compiled code raised {_short_error(e)}")
            continue
        for prefix, m in modules:
            m.zero_grad()
        try:
            out = fn(*data)
            out.backward()
        except Exception as e:
            notes.append(f"data set {p} skipped: the engine raised {_short_error(e)}")
            continue
        ref = {}
        for prefix, m in modules:
            ref.update(params_mod.read_grads(m, prefix))
        engine.add(float(value), out.data, f"value of {fn.__name__}", p)
        for k, g in zip(params, grads):
            for idx in np.ndindex(np.shape(g)):
                engine.add(float(np.asarray(g)[idx]), float(ref[k][idx]), f"d/d{k}{list(idx)}", p)
        # one direction through all parameters at once: <grad, t> vs a central difference
        ts = [rng.standard_normal(np.shape(a)) for a in ps]
        slope = sum(float(np.sum(np.asarray(g) * t)) for g, t in zip(grads, ts))

        def along(h):
            return (f(*[a + h * t for a, t in zip(ps, ts)], *data) - f(*[a - h * t for a, t in zip(ps, ts)], *data)) / (2 * h)

        d1, d2 = along(1e-6), along(2e-6)
        fd.add(slope, d1, "direction", p, slack=2 * abs(d1 - d2))
        points.append(tuple(data))
        labels.append("random")
        texts.append("data seed %d set %d" % (seed, p))
    return FunctionReport(fn.__name__, signature(fn), points, labels, [engine, torch_row, fd], notes, texts)


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


def points_for(fn, at: list[dict] | None, n_random: int, seed: int):
    """(points, labels, notes) for `fn`: the --at points, or the example plus random ones."""
    if at:
        return [bind(fn, values) for values in at], ["--at"] * len(at), []
    points, labels, notes = [], [], []
    ex = example_point(fn)
    if ex is not None:
        points.append(ex)
        labels.append("example")
    if n_random > 0:
        found, tries = random_points(fn, n_random, seed)
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
    from gradgen.loader import load_model

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
        if is_array_function(fn):
            reports.append(check_array_function(fn, compiled, max(1, n_random), seed, tol))
            continue
        mine = [v for v in at if len(fns) == 1 or _fits(fn, v)] if at else None
        if at and not mine:  # the --at points are for other functions
            reports.append(
                FunctionReport(fn.__name__, signature(fn), [], [], [], [], [], "no --at point names its arguments")
            )
            continue
        f = getattr(compiled, fn.__name__, None)
        f_grad = getattr(compiled, fn.__name__ + "_grad", None)
        if f is None or f_grad is None:
            missing = fn.__name__ if f is None else fn.__name__ + "_grad"
            raise GradgenError(
                f"the module has no function {missing}; regenerate it with gradgen compile {path}", module
            )
        points, labels, notes = points_for(fn, mine, n_random, seed)
        report = check_function(fn, f, f_grad, points, labels, tol, use_torch)
        report.notes[:0] = notes
        reports.append(report)
    return reports


# -- the table ----------------------------------------------------------------------


def _num(x: float) -> str:
    return "0" if x == 0 else f"{x:.1e}"


def format_report(r: FunctionReport) -> str:
    """The table for one function: a row per comparison, then the points the rows name."""
    head = f"{r.signature}: {len(r.points)} point{'s' * (len(r.points) != 1)}"
    kinds = [k for k in ("--at", "example", "random") if k in r.labels]
    if kinds:
        head += " (" + ", ".join(f"{r.labels.count(k)} {k}" for k in kinds) + ")"
    if r.skip is not None:
        return f"{r.signature}: skipped: {r.skip}"
    lines = [head]
    if not r.points:
        lines.append("  FAIL: nothing checked: no usable point; give one with --at")
        lines += [f"  note: {n}" for n in r.notes]
        return "\n".join(lines)
    table = [("comparison", "max abs err", "max rel err", "worst at", "result", "tolerance")]
    shown: list[int] = []
    for row in r.rows:
        if row.skipped is not None:
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
    for p in sorted(set(shown)):
        lines.append(f"  p{p} ({r.labels[p]}): --at {r.point_text[p]}")
    lines += [f"  note: {n}" for n in r.notes]
    return "\n".join(lines)


def summary(reports: list[FunctionReport]) -> str:
    """The last lines: one per failed comparison, then the verdict."""
    lines = []
    for r in reports:
        if r.failed and not r.points:
            lines.append(f"FAIL {r.name}: no point to check at")
        for row in r.rows:
            if row.failed:
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
