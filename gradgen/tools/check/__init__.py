"""`gradgen check`: is the compiled gradient right?  Compare it three ways, at several points.

Contract.  For each exported function `f` of a model file, `check_model`
evaluates the compiled `f` and `f_grad` (compiled in memory, or loaded from
an existing generated module with `module=`) at a list of points and
compares the value and every gradient with

* the interpreted engine: `f` called on `gradgen.Value`s, then `backward()`;
* PyTorch float64: `f` called on 0-d tensors, then `torch.autograd.grad`
  (skipped, with a note, when torch is missing or cannot run `f`, and for
  functions with module parameters or data arrays);
* central finite differences of the compiled forward `f`: one per scalar
  argument for a function of scalars, else one along a random direction
  through every differentiable input (parameter arrays and scalar
  arguments) at once.

For a function written with the learner's own micrograd-style Value class
(`engine.find_engine`: micrograd's package, the lecture's class in the model
file), the reference is the user's own `backward()` ("compiled vs your
backward()"), and their backward() is graded beside it: against torch,
finite differences of their forward, and op by op (a wrong `_backward` is a
verdict naming the op and its file:line, and fails the check).  Models
gradgen cannot compile still get those rows.

The result is a `FunctionReport` per function, one `Row` per comparison
with its worst absolute and relative error and where it occurred;
`format_report` prints it as a table.  A function fails when a row fails or
when no point could be checked.  Nothing is written.

The package, one job per module (each states its own contract):

* `layout`  -- how the compiled functions are called (`Layout`, `layout_of`:
  parameter arrays first, then the function's own arguments);
* `points`  -- choosing and binding points (`--at`, the example, random
  points in the engine's domain, data sets for array functions);
* `oracles` -- the references: engine, torch float64, finite differences;
* `report`  -- rows and tolerances, kinks (`add_fd`), the printed table;
* `engine`  -- a learner's own Value class (micrograd's, the lecture's): their
  backward() as the reference, graded against torch, finite differences and
  op by op;
* `opgrade` -- that class op by op (each `_backward` alone; file:line verdicts);
* `second`  -- the rows for exported hessian, hvp and jvp functions;
* this module -- the driver that runs them per function, and the names
  `gradgen.cli`, `gradgen.tools.draw` and the tests use.
"""

from __future__ import annotations

import os

from gradgen.errors import GradgenError
from gradgen.tools.check.engine import Engine, check_foreign, engine_layout, find_engine, grade, user_grad
from gradgen.tools.check.layout import (
    Layout,
    arg_names,
    elements,
    example_dict,
    is_array_function,
    layout_of,
    modules_of,
    signature,
    where,
)
from gradgen.tools.check.oracles import (
    FD_STEP,
    Slope,
    direction_rng,
    engine_grad,
    fd_direction,
    fd_grad,
    finite,
    real,
    slope,
    torch_available,
    torch_grad,
    describe,
)
from gradgen.tools.check.points import (
    RANDOM_HIGH,
    RANDOM_LOW,
    TRIES_PER_POINT,
    bind,
    data_sets,
    example_point,
    fits,
    format_point,
    parse_at,
    points_for,
    random_points,
)
from gradgen.tools.check.second import second_rows
from gradgen.tools.check.report import (
    ATOL,
    CLEAN,
    FD_ATOL,
    FD_RTOL,
    RTOL,
    FunctionReport,
    Row,
    Tolerances,
    add_fd,
    add_torch,
    format_report,
    short_error,
    summary,
)

__all__ = [
    "ATOL",
    "CLEAN",
    "FD_ATOL",
    "FD_RTOL",
    "FD_STEP",
    "RANDOM_HIGH",
    "RANDOM_LOW",
    "RTOL",
    "TRIES_PER_POINT",
    "FunctionReport",
    "Layout",
    "Row",
    "Slope",
    "Tolerances",
    "add_fd",
    "arg_names",
    "bind",
    "check_array_function",
    "check_foreign",
    "Engine",
    "engine_layout",
    "find_engine",
    "grade",
    "user_grad",
    "check_function",
    "check_model",
    "data_sets",
    "describe",
    "direction_rng",
    "elements",
    "engine_grad",
    "example_dict",
    "example_point",
    "fd_direction",
    "fd_grad",
    "finite",
    "fits",
    "format_point",
    "format_report",
    "is_array_function",
    "layout_of",
    "load_module_file",
    "modules_of",
    "parse_at",
    "points_for",
    "random_points",
    "real",
    "select",
    "short_error",
    "signature",
    "slope",
    "summary",
    "torch_available",
    "torch_grad",
    "where",
]

# `check_model` and `check_function` look `torch_available` and `torch_grad` up in this module,
# so a test (or a user) can replace them here.

# -- one function -------------------------------------------------------------------


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
    reference=None,
    reference_name: str = "engine",
) -> FunctionReport:
    """Compare compiled `f`/`f_grad` with the engine, torch and finite differences at `points`
    (`texts`: how to see each point again; by default its `--at`).  `reference`: an oracle in
    place of `engine_grad` (the user's own backward(), `engine.user_grad`), named `reference_name`."""
    layout = layout or Layout.plain(fn)
    texts = texts or [f"--at {format_point(fn, xs)}" for xs in points]
    engine = Row(f"compiled vs {reference_name}", tol.rtol, tol.atol)
    who = "the engine" if reference is None else reference_name
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
            ref_value, ref_grads = (reference or engine_grad)(fn, xs, layout)
            ref = elements(layout, ref_grads)
        except Exception as e:
            notes.append(f"{what} skipped: {who} raised {short_error(e)}")
            continue
        odd = [v for v in (ref_value, *(g for _, g in ref)) if real(v) is None]
        if odd:
            notes.append(f"{what} skipped: {who} gives {describe(odd[0])} there")
            continue
        kept.append(xs)
        kept_labels.append(label)
        kept_texts.append(text)
        try:
            value = layout.call(f, xs)
            g_value, grads = layout.call(f_grad, xs)
            mine = elements(layout, grads)
        except Exception as e:
            for row in (engine, torch_row, fd):
                row.fail("value", p)
            notes.append(f"p{p}: compiled code raised {short_error(e)}")
            continue
        engine.add(value, ref_value, f"value of {fn.__name__}", p)
        engine.add(g_value, ref_value, f"value of {fn.__name__}_grad", p)
        for (out, a), (_, b) in zip(mine, ref):
            engine.add(a, b, out, p)
        add_torch(torch_row, fn, xs, g_value, mine, p, grad=torch_grad)
        try:
            if layout.is_plain:
                for (out, a), d in zip(mine, fd_grad(f, xs)):
                    add_fd(fd, a, d, out, p)
            else:
                along = fd_direction(f, layout, xs, mine, direction_rng(seed, xs))
                if along is not None:
                    add_fd(fd, along[0], along[1], "direction", p)
        except Exception as e:
            fd.notes.append(f"p{p}: no finite difference ({short_error(e)} next to the point)")
    rows = [engine, torch_row, fd]
    for row in rows:
        if row.skipped is not None:
            notes.append(row.skipped)
        notes.extend(row.notes)
    sig = signature(fn) + (f" with parameters {', '.join(layout.params)}" if layout.params else "")
    return FunctionReport(fn.__name__, sig, kept, kept_labels, rows, notes, kept_texts)


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
        raise GradgenError(f"importing the module raised {short_error(e)}", path) from e


def select(fns, function: str | None, path: str):
    if function is None:
        return fns
    chosen = [f for f in fns if f.__name__ == function]
    if not chosen:
        have = ", ".join(f.__name__ for f in fns)
        raise GradgenError(f"no exported function named {function!r} (the model exports {have})", path)
    return chosen


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
            if not any(fits(fn, values) for fn in fns):
                sigs = "; ".join(signature(fn) for fn in fns)
                given = ",".join(values)
                raise GradgenError(f"--at {given} names the arguments of none of {sigs}; use --function NAME", path)
    engines = {fn.__name__: find_engine(fn) for fn in fns}
    compiled, alone = None, {}
    try:
        compiled = load_module_file(module) if module else compile_function(*fns).module
    except GradgenError:  # a learner's engine is still graded: each function compiled on its own
        if module or not any(engines.values()):
            raise
        for fn in fns:
            try:
                alone[fn.__name__] = (compile_function(fn).module, None)
            except GradgenError as e:
                if engines[fn.__name__] is None:
                    raise
                alone[fn.__name__] = (None, f"compiled rows skipped: gradgen compile refused {fn.__name__} ({e})")
    use_torch = torch_available()
    reports = []
    for fn in fns:
        compiled = alone[fn.__name__][0] if fn.__name__ in alone else compiled
        if engines[fn.__name__] is not None:  # the learner's own Value class: their backward() graded
            mine = [v for v in at if len(fns) == 1 or fits(fn, v)] if at else None
            if at and not mine:
                reports.append(
                    FunctionReport(fn.__name__, signature(fn), [], [], [], [], [], "no --at point names its arguments")
                )
                continue
            note = alone.get(fn.__name__, (None, None))[1]
            eng = engines[fn.__name__]
            reports.append(check_foreign(fn, eng, compiled, mine, n_random, seed, tol, use_torch, note))
            continue
        f = getattr(compiled, fn.__name__, None)
        f_grad = getattr(compiled, fn.__name__ + "_grad", None)
        if f is None:
            raise GradgenError(
                f"the module has no function {fn.__name__}; regenerate it with gradgen compile {path}", module
            )
        layout = layout_of(fn, f, module)
        mine = [v for v in at if len(fns) == 1 or fits(fn, v)] if at else None
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
            report = check_array_function(fn, compiled, layout, n_random, seed, tol)
        else:
            points, labels, notes = points_for(fn, mine, n_random, seed, layout)
            report = check_function(fn, f, f_grad, points, labels, tol, use_torch, layout, seed)
            report.notes[:0] = notes
        rows, notes = second_rows(fn, compiled, layout, report.points, tol, use_torch, seed)  # hvp, hessian, jvp
        report.rows += rows
        report.notes += notes
        reports.append(report)
    return reports
