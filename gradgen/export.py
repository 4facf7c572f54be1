"""`@gradgen.export`: mark a model-file function for compilation.

The decorator returns the function itself, so it stays an ordinary callable
that runs on `Value`s, floats or torch tensors.  `example=` optionally gives
a point (a dict or a sequence of floats, one per argument) that `check`,
`graph` and the docs use by default.
"""

from __future__ import annotations

from dataclasses import dataclass

ATTR = "__gradgen_export__"


@dataclass(frozen=True)
class ExportInfo:
    example: tuple[float, ...] | dict | None = None


def export(fn=None, *, example=None):
    """Mark `fn` for `gradgen compile`; usable as `@export` or `@export(example=...)`."""

    def mark(f):
        setattr(f, ATTR, ExportInfo(example=example))
        return f

    return mark(fn) if fn is not None else mark


def is_exported(obj) -> bool:
    return callable(obj) and isinstance(getattr(obj, ATTR, None), ExportInfo)


def example_of(fn):
    info = getattr(fn, ATTR, None)
    return None if info is None else info.example
