"""Grading the learner's own engine: is *your* `backward()` right?

Contract.  For an exported function written with a foreign micrograd-style
Value class (micrograd's package, the lecture's class typed in the model
file, a fork: `frontend.engines.is_foreign_value`), `gradgen check` takes
the user's own `backward()` as the reference and grades it:

* `find_engine(fn)` -> `Engine` or None: the class (from the foreign Values
  among the function's parameters and referenced globals, else a Value-like
  class in the model's globals) and the modules holding its Values
  (`(array-name prefix, module)`, named the way `gradgen.params` names them).
* `engine_layout(fn, engine, compiled)`: the `Layout` of the compiled call
  (or, with no compiled code, every parameter array in order).
* `user_grad(engine)` -> an oracle like `oracles.engine_grad`: `fn` on the
  user's Values (scalar arguments wrapped in their class), then their
  `backward()`, the `.grad`s read in the compiled order.
* `grade(...)` -> three `Row`s beside the compiled ones: "your backward() vs
  torch" (float64 autograd, plain functions), "your backward() vs finite
  diff" (central differences of the user's own forward: per scalar
  argument, or along one random direction through parameters and scalars)
  and "your backward() per op", plus one-line verdicts.

* `check_foreign(...)` -> the `FunctionReport`: the compiled rows with the
  user's backward() as their reference (when gradgen compiles the model),
  then the rows above; the check fails on any failed row or verdict.

The per-op row and its verdicts come from `opgrade` (each op's forward and
`_backward` alone, against the op's local derivative).
"""

from __future__ import annotations

import inspect
import types
from dataclasses import dataclass, field

import numpy as np

from gradgen.frontend.engines import is_foreign_value
from gradgen.ir.ops import Op  # noqa: F401  (tests name ops through this module)
from gradgen.tools.check.opgrade import OP_ATOL, OP_RTOL, OpGrade, grade_graph, place
from gradgen.tools.check.layout import Layout, arg_names, elements, example_dict
from gradgen.tools.check.oracles import (
    direction_rng,
    fd_grad,
    real,
    slope,
    FD_STEP,
)
from gradgen.tools.check.report import Row, add_fd, add_torch, short_error

# -- finding the engine ----------------------------------------------------------------


@dataclass
class Engine:
    """The learner's Value class and the modules (or global Values) that hold its parameters."""

    cls: type
    modules: list = field(default_factory=list)  # [(array-name prefix, module)]

    @property
    def name(self) -> str:
        """Where the class is defined (file:line), else its module and name."""
        try:
            return place(inspect.getsourcefile(self.cls), inspect.getsourcelines(self.cls)[1])
        except (OSError, TypeError):
            return f"{self.cls.__module__}.{self.cls.__qualname__}"


def _names_used(code) -> set[str]:
    names = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            names |= _names_used(c)
    return names


def _value_like_class(x) -> bool:
    from gradgen.engine import Value

    if not isinstance(x, type) or x is Value or issubclass(x, Value):
        return False
    if not callable(getattr(x, "backward", None)):
        return False
    try:
        return is_foreign_value(x(1.0))
    except Exception:
        return False


def find_engine(fn) -> Engine | None:
    """The learner's engine for `fn`: None when `fn` is written with gradgen's own Value."""
    from gradgen import params as params_mod
    from gradgen.export import params_of

    given = params_of(fn)
    if given is not None:
        candidates = [(f"m{k}", m) for k, m in enumerate(given if isinstance(given, (list, tuple)) else [given])]
        names = {id(v): k for k, v in fn.__globals__.items()}
        candidates = [(names.get(id(m), k), m) for k, m in candidates]
    else:
        used = _names_used(fn.__code__)
        candidates = [(k, v) for k, v in fn.__globals__.items() if k in used]
    cls, modules, scalars, seen = None, [], {}, set()
    for k, v in candidates:
        if id(v) in seen or isinstance(v, (type, types.ModuleType, types.FunctionType, str, bytes, int, float)):
            continue
        seen.add(id(v))
        if is_foreign_value(v):
            scalars[k] = v
            cls = cls or type(v)
            continue
        try:
            found = [x for _, x in params_mod.named_values(v) if is_foreign_value(x)]
        except Exception:
            continue
        if found:
            modules.append((k, v))
            cls = cls or type(found[0])
    if scalars:
        modules.append(("", scalars))  # global Values: each an array of its own name
    if cls is None:
        classes = [v for v in fn.__globals__.values() if _value_like_class(v)]
        classes.sort(key=lambda c: c.__module__ != fn.__module__)  # the model file's own class first
        if not classes:
            return None
        cls = classes[0]
    if len(modules) == 1 and modules[0][0]:
        modules = [("", modules[0][1])]
    else:
        modules = [(f"{k}_" if k else "", m) for k, m in modules]
    return Engine(cls, modules)


def _arrays(engine: Engine) -> dict:
    """{array name: params.ParamArray} of the engine's modules."""
    from gradgen import params as params_mod

    out = {}
    for prefix, m in engine.modules:
        for a in params_mod.arrays(m, prefix):
            out[a.name] = a
    return out


def engine_layout(fn, engine: Engine, compiled=None) -> Layout:
    """The compiled call's layout (parameter arrays named before `fn`'s own arguments), or every
    parameter array in order when there is no compiled function."""
    arrays = {k: np.array([float(v.data) for v in a.values]).reshape(a.shape) for k, a in _arrays(engine).items()}
    own = arg_names(fn)
    if compiled is not None:
        names = list(inspect.signature(compiled).parameters)
        params = names[: len(names) - len(own)]
    else:
        params = list(arrays)
    ex = example_dict(fn)
    data = [k for k in own if k in ex and np.ndim(ex[k]) > 0]
    return Layout(
        own,
        params,
        {k: arrays[k] for k in params if k in arrays},
        list(engine.modules),
        data,
    )


# -- the user's backward() as an oracle -----------------------------------------------


def _run(fn, engine: Engine, layout: Layout, xs):
    """(output, {scalar argument: its Value}): `fn` on the user's Values."""
    for a in _arrays(engine).values():
        for v in a.values:
            v.grad = 0.0
    leaves, args = {}, []
    for k, x in zip(layout.own, xs):
        if k in layout.data:
            args.append(x)
        else:
            leaves[k] = engine.cls(float(x))
            args.append(leaves[k])
    from gradgen.batch import rows_as_numbers

    with rows_as_numbers():  # gradgen.mean/each hand rows of numbers: the learner's code wraps them
        return fn(*args), leaves


def user_grad(engine: Engine):
    """An oracle (fn, xs, layout) -> (value, grads): the user's forward and `backward()`."""

    def oracle(fn, xs, layout: Layout | None = None):
        layout = layout or Layout.plain(fn)
        out, leaves = _run(fn, engine, layout, xs)
        arrays = _arrays(engine)
        if not is_foreign_value(out):  # a constant function
            zeros = tuple(np.zeros(np.shape(layout.arrays.get(k, 0.0))) for k in layout.params)
            return out, zeros + tuple(0.0 for _ in leaves)
        out.backward()
        grads = []
        for k in layout.params:
            if k not in arrays:
                raise ValueError(f"the compiled code takes {k}, which no module of the model holds")
            a = arrays[k]
            grads.append(np.array([float(v.grad) for v in a.values]).reshape(a.shape))
        return out.data, tuple(grads) + tuple(leaves[k].grad for k in layout.scalars)

    return oracle


# -- the rows -------------------------------------------------------------------------


def _forward(fn, engine: Engine, layout: Layout):
    """The user's forward as a float function of the scalar arguments and a parameter move."""
    arrays = _arrays(engine)

    def run(xs, move=None):
        saved = []
        if move:
            for k, t in move.items():
                for v, d in zip(arrays[k].values, np.ravel(t)):
                    saved.append((v, v.data))
                    v.data = v.data + d
        try:
            out, _ = _run(fn, engine, layout, xs)
        finally:
            for v, data in saved:
                v.data = data
        return float(out.data) if is_foreign_value(out) else float(out)

    return run


def grade(fn, engine: Engine, layout: Layout, points, tol, use_torch: bool, seed: int = 0):
    """(rows, verdicts, notes): the user's backward() against torch, finite differences of their
    own forward, and op by op (see the module's contract)."""
    oracle = user_grad(engine)
    forward = _forward(fn, engine, layout)
    torch_row = Row("your backward() vs torch", tol.rtol, tol.atol)
    fd = Row(
        "your backward() vs finite diff",
        tol.fd_rtol,
        tol.fd_atol,
        slack=" + its error estimate",
    )
    ops = OpGrade(Row("your backward() per op", OP_RTOL, OP_ATOL))
    notes: list[str] = []
    if not layout.is_plain:
        torch_row.skipped = "PyTorch: not used for your backward() with module parameters or data arrays"
    elif not use_torch:
        torch_row.skipped = "PyTorch not installed: skipped"
    names = list(layout.params) + list(layout.scalars)
    for p, xs in enumerate(points):
        try:
            value, grads = oracle(fn, xs, layout)
            mine = elements(layout, grads)
        except Exception as e:
            notes.append(f"p{p}: your backward() raised {short_error(e)}")
            for row in (torch_row, fd):
                row.fail("value", p)
            continue
        add_torch(torch_row, fn, xs, value, mine, p)
        try:
            if layout.is_plain:
                for (out, a), d in zip(mine, fd_grad(lambda *ys: forward(ys), xs)):
                    add_fd(fd, a, d, out, p)
            elif names:
                rng = direction_rng(seed, xs)
                tp = {k: rng.standard_normal(np.shape(layout.arrays[k])) for k in layout.params}
                ts = {k: float(rng.standard_normal()) for k in layout.scalars}
                t = [v for k in layout.params for v in np.ravel(tp[k])] + [ts[k] for k in layout.scalars]
                along = sum(real(gv) * ti for (_, gv), ti in zip(mine, t))

                def g(s):
                    moved = [x + s * ts[k] if k in ts else x for k, x in zip(layout.own, xs)]
                    return forward(moved, {k: s * d for k, d in tp.items()}), s

                add_fd(fd, along, slope(g, FD_STEP), "direction", p)
        except Exception as e:
            fd.notes.append(f"p{p}: no finite difference ({short_error(e)} next to the point)")
        try:
            out, _ = _run(fn, engine, layout, xs)
            if is_foreign_value(out):
                grade_graph(out, engine.cls, p, ops)
        except Exception as e:
            notes.append(f"p{p}: grading the ops skipped: {short_error(e)}")
    verdicts = []
    for op, (text, label, _) in sorted(ops.verdicts.items(), key=lambda item: item[1][2]):
        bad, total = ops.bad.get(op, [1, 1])
        verdicts.append(f"{text} [{bad} of {total} graded {op.value} node{'s' * (total != 1)} wrong]")
    rows = [torch_row, fd, ops.row]
    for row in rows:
        if row.skipped is not None:
            notes.append(row.skipped)
        notes.extend(n.replace("the compiled ", "your backward()'s ") for n in row.notes)  # add_fd's words
    return rows, verdicts, notes + ops.notes


# -- one function ----------------------------------------------------------------------


def check_foreign(fn, engine: Engine, compiled, at, n_random: int, seed: int, tol, use_torch, note=None):
    """A function written with the learner's own Value class (`engine`): the compiled rows against
    their backward() (when there is compiled code), then their backward() graded (`grade`)."""
    from gradgen.errors import GradgenError
    from gradgen.tools.check import check_function
    from gradgen.tools.check.layout import signature, where
    from gradgen.tools.check.points import data_sets, format_point, points_for
    from gradgen.tools.check.report import FunctionReport

    f = getattr(compiled, fn.__name__, None) if compiled is not None else None
    f_grad = getattr(compiled, fn.__name__ + "_grad", None) if compiled is not None else None
    layout = engine_layout(fn, engine, f)
    reference = user_grad(engine)
    if layout.data:
        if at:
            raise GradgenError(
                f"--at gives numbers, but {', '.join(layout.data)} of {signature(fn)} are arrays: it is "
                "checked on data sets; choose them with --points N and --seed S instead",
                *where(fn),
            )
        points, labels, texts = data_sets(fn, layout, n_random, seed)
        notes = []
        if (f is not None and f_grad is None) or (f is None and points and _per_example(fn, engine, layout, points[0])):
            return FunctionReport(fn.__name__, signature(fn), [], [], [], [], [], "per-example values: no gradient")
    else:
        points, labels, notes = points_for(fn, at, n_random, seed, layout, reference)
        texts = [f"--at {format_point(fn, xs)}" for xs in points]
    name = "your backward()"
    if f is not None and f_grad is not None:
        report = check_function(fn, f, f_grad, points, labels, tol, use_torch, layout, seed, texts, reference, name)
    else:
        kept, why = [], [note or f"compiled rows skipped: the module has no {fn.__name__}_grad"]
        for xs, label, text in zip(points, labels, texts):
            try:
                value, grads = reference(fn, xs, layout)
                good = all(real(v) is not None for v in (value, *(g for _, g in elements(layout, grads))))
            except Exception as e:
                why.append(
                    f"{text if layout.data else label + ' point ' + text} skipped: {name} raised {short_error(e)}"
                )
                continue
            if good:
                kept.append((xs, label, text))
        xs_, labels_, texts_ = ([k[i] for k in kept] for i in range(3))
        report = FunctionReport(fn.__name__, signature(fn), xs_, labels_, [], why, texts_)
    report.notes[:0] = notes
    rows, verdicts, more = grade(fn, engine, layout, report.points, tol, use_torch, seed)
    report.rows += rows
    report.notes += more
    report.verdicts += verdicts
    report.signature += f" on your {engine.cls.__name__} class ({engine.name})"
    if layout.data:
        report.unit = "data set"
    return report


def _per_example(fn, engine: Engine, layout: Layout, xs) -> bool:
    """`fn` returns a list of values (`gradgen.each`): nothing to differentiate."""
    try:
        out, _ = _run(fn, engine, layout, xs)
    except Exception:
        return False
    return isinstance(out, (list, tuple, np.ndarray))
