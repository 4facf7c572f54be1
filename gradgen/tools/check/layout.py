"""How `gradgen check` calls a compiled function: its `Layout`.

Contract.  A compiled `f` is called `f(*params, *own)`: the parameter arrays
of the model's `gradgen.nn` modules first (`W0, b0, ...`, in the compiled
order, with the values `gradgen.params.read` gives), then the function's own
arguments, of which the data arrays (`data`) have no gradient and the rest
are scalars.  `f_grad` returns the gradients in the same order: every
parameter array, then every scalar argument.

`layout_of` is the one place that derives this from the compiled function's
Python signature and the model's modules; when the front end's `Signature`
(carried as `FunctionIR.signature`) reaches compiled modules it replaces the
body of `layout_of` and nothing else.  `elements` flattens gradients into
the `(output, number)` pairs every comparison works on.

Also here: the facts about a user's function the other modules share
(`arg_names`, `signature`, `where`, `example_dict`, `is_array_function`).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import numpy as np

from gradgen.errors import GradgenError
from gradgen.export import example_of, params_of


def arg_names(fn) -> list[str]:
    return list(inspect.signature(fn).parameters)


def where(fn) -> tuple[str, int]:
    """(file, line) of `fn`'s definition, for error messages."""
    return fn.__code__.co_filename, fn.__code__.co_firstlineno


def signature(fn) -> str:
    return f"{fn.__name__}({', '.join(arg_names(fn))})"


def example_dict(fn) -> dict:
    """`fn`'s `@gradgen.export(example=...)` by argument name ({} if none)."""
    ex = example_of(fn)
    if ex is None:
        return {}
    return dict(ex) if isinstance(ex, dict) else dict(zip(arg_names(fn), ex))


def modules_of(fn) -> list:
    """[(array-name prefix, module)]: the model's `gradgen.nn` modules `fn` may read, named as the
    tracer names their parameter arrays.  The one place this package asks the front end."""
    from gradgen.frontend import foreign
    from gradgen.frontend.discovery import modules_of as found

    if foreign.wants(fn, params_of(fn)):  # a foreign engine's modules (micrograd's MLP, ...)
        return [(m.prefix, m.module) for m in foreign.modules(fn, params_of(fn))[0]]
    return [(m.prefix, m.module) for m in found(fn, params_of(fn))[0]]


def is_array_function(fn) -> bool:
    """A function with an array `example` (data arrays), or with `params=` modules in its export."""
    ex = example_of(fn)
    values = ex.values() if isinstance(ex, dict) else (ex or ())
    if any(np.ndim(v) > 0 for v in values):
        return True
    return bool(modules_of(fn)) and params_of(fn) is not None


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

    modules = modules_of(fn)
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
    ex = example_dict(fn)
    data = [k for k in own if k in ex and np.ndim(ex[k]) > 0]
    return Layout(own, params, {k: arrays[k] for k in params}, modules, data)


def _output(k: str, index: tuple) -> str:
    return f"d/d{k}{list(index)}" if index else f"d/d{k}"


def elements(layout: Layout, grads) -> list[tuple[str, object]]:
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
