"""`@gradgen.export`: mark a model-file function for compilation.

The decorator returns the function itself, so it stays an ordinary callable
that runs on `Value`s, floats or torch tensors.  `example=` optionally gives
a point (a dict or a sequence, one entry per argument) that `check`, `graph`
and the docs use by default; an entry that is an array (a list of lists, a
NumPy array) makes that argument an array argument of that shape (its first
axis becomes the batch axis if the function passes it to `gradgen.mean`).

`params=` names the modules whose parameters become array arguments (a
module or a list of them); by default, every `gradgen.nn` module among the
model file's globals whose parameters the function uses.
"""

from __future__ import annotations

from dataclasses import dataclass

ATTR = "__gradgen_export__"


@dataclass(frozen=True)
class ExportInfo:
    example: tuple | dict | None = None
    params: object = None
    step: object = None  # an optimizer from gradgen.optim (sgd(), adam(), ...): emit <name>_step
    hessian: bool = False  # emit <name>_hessian (functions of scalars)
    hvp: bool = False  # emit <name>_hvp
    jvp: bool = False  # emit <name>_jvp (forward mode)


def export(fn=None, *, example=None, params=None, step=None, hessian=False, hvp=False, jvp=False):
    """Mark `fn` for `gradgen compile`; usable as `@export` or `@export(example=..., params=...)`."""

    def mark(f):
        setattr(f, ATTR, ExportInfo(example, params, step, bool(hessian), bool(hvp), bool(jvp)))
        return f

    return mark(fn) if fn is not None else mark


def is_exported(obj) -> bool:
    return callable(obj) and isinstance(getattr(obj, ATTR, None), ExportInfo)


def example_of(fn):
    info = getattr(fn, ATTR, None)
    return None if info is None else info.example


def params_of(fn):
    info = getattr(fn, ATTR, None)
    return None if info is None else info.params


def info_of(fn) -> ExportInfo:
    """The export's settings (defaults for an unmarked function)."""
    info = getattr(fn, ATTR, None)
    return info if isinstance(info, ExportInfo) else ExportInfo()
