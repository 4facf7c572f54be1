"""`gradgen check` rows for the second-order functions (`export(hvp=, hessian=, jvp=)`).

Contract.  `second_rows(fn, compiled, layout, points, tol, use_torch, seed)`
gives, for each second-order function the export asks for, one `Row` per
oracle over the function's checked points:

* `hessian vs torch` / `hvp vs torch` / `jvp vs torch`: PyTorch float64
  (`torch.autograd.functional.hessian`, `hvp`, `jvp`) on `fn` called with
  0-d tensors -- functions of scalars only, like the gradient's torch row;
* `hessian vs finite diff of grad`: central differences of the compiled
  `f_grad` along each argument (column j of H);
* `hvp vs finite diff of grad`: central differences of `f_grad` along a
  random `v` through every differentiable input (arrays too);
* `jvp vs finite diff`: central differences of the compiled `f` along a
  random tangent.

A difference's slack is its error estimate: twice the change when the step
is halved.  Tolerances are the finite-difference ones (`--fd-rtol`,
`--fd-atol`) and the torch ones (`--rtol`, `--atol`).
"""

from __future__ import annotations

import numpy as np

from gradgen.export import info_of
from gradgen.tools.check.layout import Layout
from gradgen.tools.check.oracles import _torch_tensor_type
from gradgen.tools.check.report import Row, short_error

STEP = 1e-5


def _flat(xs) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(x, dtype=float)) for x in xs]) if len(xs) else np.zeros(0)


def _direction(layout: Layout, xs, rng) -> list:
    """A random direction through every differentiable input: each parameter array, then each scalar."""
    out = [rng.normal(size=np.shape(layout.arrays[k])) for k in layout.params]
    return out + [float(rng.normal()) for k in layout.scalars]


def _moved(layout: Layout, xs, v, s):
    """(params, own arguments) at the point moved by s * v."""
    ps = [layout.arrays[k] + s * d for k, d in zip(layout.params, v)]
    scal = dict(zip(layout.scalars, v[len(layout.params) :]))
    own = [x + s * scal[k] if k in scal else x for k, x in zip(layout.own, xs)]
    return ps, own


def _central(g, h=STEP):
    """(central difference of the vector function g(s) at 0, its error estimate per element)."""
    d1 = (np.asarray(g(h)) - np.asarray(g(-h))) / (2 * h)
    d2 = (np.asarray(g(h / 2)) - np.asarray(g(-h / 2))) / h
    return d2, 2 * np.abs(d2 - d1)


def _add_all(row: Row, got, want, label, p, slack=None):
    got, want = np.ravel(np.asarray(got, dtype=float)), np.ravel(np.asarray(want, dtype=float))
    for i, (a, b) in enumerate(zip(got, want)):
        row.add(float(a), float(b), f"{label}[{i}]", p, float(slack[i]) if slack is not None else 0.0)


def _torch_fn(fn):
    cls = _torch_tensor_type()
    return lambda *t: fn(*[a.as_subclass(cls) for a in t])


def second_rows(fn, compiled, layout: Layout, points, tol, use_torch: bool, seed: int = 0) -> tuple[list, list]:
    """(rows, notes) for `fn`'s second-order functions at `points` (see the module docstring)."""
    info = info_of(fn)
    kinds = [k for k in ("hessian", "hvp", "jvp") if getattr(info, k)]
    rows, notes = [], []
    if not kinds:
        return rows, notes
    name = fn.__name__
    f, f_grad = getattr(compiled, name), getattr(compiled, name + "_grad")
    torch_ok = use_torch and layout.is_plain
    rng = np.random.default_rng(seed + 13)
    for kind in kinds:
        g = getattr(compiled, f"{name}_{kind}", None)
        fd_name = "finite diff" if kind == "jvp" else "finite diff of grad"
        fd = Row(f"{kind} vs {fd_name}", tol.fd_rtol, tol.fd_atol, slack=" + its error estimate")
        tr = Row(f"{kind} vs torch", tol.rtol, tol.atol)
        if g is None:
            fd.skipped = tr.skipped = f"the module has no {name}_{kind}: regenerate it with gradgen compile"
            rows += [tr, fd]
            continue
        if not torch_ok:
            tr.skipped = f"PyTorch: {kind} checked for functions of scalars only"
        for p, xs in enumerate(points):
            ps = [layout.arrays[k] for k in layout.params]
            try:
                if kind == "hessian":
                    _, _, H = layout.call(g, xs)
                    for j, k in enumerate(layout.scalars):
                        e = [0.0] * len(layout.scalars)
                        e[j] = 1.0
                        col, err = _central(lambda s: _flat(layout.call(f_grad, _moved(layout, xs, e, s)[1])[1]))
                        _add_all(fd, [row[j] for row in H], col, f"d2/d{k}", p, err)
                    if torch_ok:
                        T = _torch_hessian(fn, xs)
                        _add_all(tr, H, T, "H", p)
                    continue
                v = _direction(layout, xs, rng)
                out = g(*ps, *xs, *v)
                if kind == "hvp":
                    col, err = _central(lambda s: _flat(layout.call(f_grad, *_moved_rev(layout, xs, v, s))[1]))
                    _add_all(fd, _flat(out[2]), col, "Hv", p, err)
                    if torch_ok:
                        _add_all(tr, _flat(out[2]), _torch_hvp(fn, xs, v), "Hv", p)
                else:
                    d, err = _central(lambda s: [layout.call(f, *_moved_rev(layout, xs, v, s))])
                    _add_all(fd, [out[1]], d, "jvp", p, err)
                    if torch_ok:
                        _add_all(tr, [out[1]], [_torch_jvp(fn, xs, v)], "jvp", p)
            except Exception as e:  # the compiled side or an oracle raised
                fd.fail(kind, p, f"p{p}: {name}_{kind} check raised {short_error(e)}")
        rows += [tr, fd]
    for row in rows:
        if row.skipped is not None and "regenerate" in row.skipped:
            notes.append(row.skipped)  # (the torch row's skips: the gradient's torch row says why)
        notes.extend(row.notes)
    return rows, notes


def _moved_rev(layout, xs, v, s):
    """(own arguments, params) at the point moved by s * v, in `Layout.call`'s order."""
    ps, own = _moved(layout, xs, v, s)
    return own, ps


def _tensors(xs):
    import torch

    return tuple(torch.tensor(float(x), dtype=torch.float64) for x in xs)


def _torch_hessian(fn, xs):
    import torch

    H = torch.autograd.functional.hessian(_torch_fn(fn), _tensors(xs))
    return [[float(h) for h in row] for row in H]


def _torch_hvp(fn, xs, v):
    import torch

    _, hv = torch.autograd.functional.hvp(_torch_fn(fn), _tensors(xs), _tensors(v))
    return [float(h) for h in hv]


def _torch_jvp(fn, xs, v):
    import torch

    _, jv = torch.autograd.functional.jvp(_torch_fn(fn), _tensors(xs), _tensors(v))
    return float(jv)
