"""What an exported function takes, read before it is traced: its arguments and its modules.

    arguments(fn, file)  -> [(name, default or inspect.Parameter.empty)]
    modules_of(fn)       -> ([FoundModule(name, prefix, module)], eager)

Arguments: positional parameters only; a default is kept (the compiled
functions take it too) when it is a number, as a float; anything else is
refused at the `def` line.

Modules: the objects whose parameters may appear in the trace: a
`gradgen.nn` Module, or an instance of any class whose attributes (objects,
lists, dicts) hold gradgen Values (`is_module`; `gradgen.params` groups
their Values into arrays).  With `params=` (the export's, or given),
exactly those, and all their arrays become inputs (`eager`); else every
module among the model file's globals and the function's closure
variables, each contributing its arrays only if the function uses one of
its parameters.  An object whose Values all belong to modules already
found (a trainer holding the model) is not one more module.  A module is
named after its global (`model`; `m0`, `m1`, ... for a `params=` module no
global names); its arrays are prefixed with
`name_` when there are several modules, and not at all for one
(`gradgen.params.read(module, prefix)` reads them).
"""

from __future__ import annotations

import inspect
import numbers
from dataclasses import dataclass

from gradgen.errors import GradgenError
from gradgen.frontend.naming import def_line


@dataclass(frozen=True)
class FoundModule:
    name: str  # the model file's global that holds it ("model"), or m0, m1, ...
    prefix: str  # of its parameter arrays' names: "" for the only module, else "model_"
    module: object  # the gradgen.nn Module


_EXPORTED = object()  # modules_of's default: the params= of fn's @gradgen.export


def modules_of(fn, params=_EXPORTED) -> tuple[list[FoundModule], bool]:
    """The modules whose parameters may appear in `fn`'s trace, and whether all are inputs."""
    from gradgen.export import params_of

    if params is _EXPORTED:
        params = params_of(fn)
    named, seen = [], set()
    for k, v in _candidates(fn):
        if id(v) not in seen and is_module(v):  # one module under two names counts once
            seen.add(id(v))
            named.append((k, v))
    named = _owners(named)
    if params is None:
        found, eager = named, False
    else:
        many = isinstance(params, (list, tuple)) and params and all(is_module(m) for m in params)
        mods = list(params) if many else [params]  # (a list of Values is one module)
        for m in mods:
            if not _holds_values(m):
                raise GradgenError(
                    f"params= of {fn.__name__} must be a module (an object whose attributes hold "
                    f"gradgen Values) or a list of them; this {type(m).__name__} holds no Values",
                    fn.__code__.co_filename,
                    def_line(fn),
                )
        mods = list({id(m): m for m in mods}.values())
        names = {id(v): k for k, v in reversed(named)}
        found = [(names.get(id(m), f"m{k}"), m) for k, m in enumerate(mods)]
        eager = True
    if len(found) == 1:
        return [FoundModule(found[0][0], "", found[0][1])], eager
    return [FoundModule(k, f"{k}_", m) for k, m in found], eager


def _candidates(fn):
    """(name, object) of the model file's globals, then `fn`'s closure variables."""
    yield from list(fn.__globals__.items())
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
        try:
            yield name, cell.cell_contents
        except ValueError:  # an empty cell
            continue


def is_module(x) -> bool:
    """A gradgen.nn Module, or an instance of a user's class whose attributes hold gradgen Values."""
    from gradgen.nn import Module

    if isinstance(x, Module):
        return True
    if isinstance(x, (list, tuple, dict, type)) or not hasattr(x, "__dict__"):
        return False
    if type(x).__module__ in ("builtins", "numpy"):  # functions, modules, arrays
        return False
    return _holds_values(x)


def _holds_values(x) -> bool:
    from gradgen.engine import Value
    from gradgen.params import _walk

    return any(isinstance(v, Value) for _, v in _walk(x))


def _owners(named):
    """Drop an object (not a gradgen.nn Module: those are kept, as they always were) whose
    Values all belong to Modules or objects found before it (a trainer holding the model)."""
    from gradgen.nn import Module
    from gradgen.params import named_values

    ordered = [m for m in named if isinstance(m[1], Module)] + [m for m in named if not isinstance(m[1], Module)]
    owned, keep = set(), set()
    for k, m in ordered:
        ids = {id(v) for _, v in named_values(m)}
        if ids - owned or isinstance(m, Module):
            keep.add(id(m))
            owned |= ids
    return [(k, m) for k, m in named if id(m) in keep]


def arguments(fn, file: str) -> list[tuple[str, object]]:
    """[(argument, default or inspect.Parameter.empty)] of an exported function.

    A default is kept (the compiled functions take it too) when it is a
    number; anything else is refused: it would be a configuration switch,
    and the compiled module cannot take a different one.
    """
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as e:
        raise GradgenError(f"cannot read the signature of {fn.__name__}: {e}", file)
    out = []
    for p in sig.parameters.values():
        if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            raise GradgenError(
                f"exported function {fn.__name__} has a {p.kind.description} parameter "
                f"({p.name}); gradgen needs a fixed list of scalar arguments",
                file,
                def_line(fn),
            )
        default = p.default
        if default is not p.empty:
            if isinstance(default, bool) or not isinstance(default, numbers.Real):
                raise GradgenError(
                    f"argument {p.name} of {fn.__name__} has a default of type {type(default).__name__}; "
                    "a compiled argument is a number: give a number as the default, or make the "
                    "setting a module-level constant",
                    file,
                    def_line(fn),
                )
            default = float(default)
        out.append((p.name, default))
    return out

