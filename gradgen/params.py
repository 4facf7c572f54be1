"""A model's parameters as NumPy arrays, grouped per layer.

`gradgen.nn` names each parameter (`layers.0.neurons.3.w.1`); `arrays(model)`
groups them into one array per layer and kind, the way hand-written NumPy
would hold them:

    layers.{l}.neurons.{j}.w.{k}  ->  W{l}[j, k]     shape (nout, nin)
    layers.{l}.neurons.{j}.b      ->  b{l}[j]        shape (nout,)
    neurons.{j}.w.{k}, neurons.{j}.b (a Layer)  ->  W[j, k], b[j]
    w.{k}, b (a Neuron)                          ->  w[k], b (a scalar)

The same structure anywhere in a path keeps its layout, named after the
attributes above it, and any other path's trailing numbers are indexes:

    fc1.neurons.{j}.w.{k} (a Layer in attribute fc1)  ->  fc1_W[j, k]
    blocks.{i}.fc1.neurons.{j}.b (a list of blocks)    ->  blocks{i}_fc1_b[j]
    W1.{j}.{k} (a list of lists of Values)             ->  W1[j, k]
    bo (a Value)                                       ->  bo (a scalar)

A group that does not fill a box (ragged lists, a list with a float in it)
splits along its first index (`ws0`, `ws1`); two parameters on one element
raise `GroupingError` naming both paths.

The parameters come from `model.named_parameters()` when the model has it
(gradgen.nn); for any other module (micrograd's own `nn.Module`, the
lecture's classes, a user's class) from its structure: `named_values(model)`
walks its attributes (objects, lists, tuples, dicts) for engine Values
(`gradgen.frontend.engines.is_engine_value`), giving each its attribute
path, in `model.parameters()` order when the model has that method.  These
are the names of the compiled functions' parameter arguments, and

    read(model)          -> {"W0": array, "b0": array, ...}   (copies of .data: views into one buffer)
    write(model, arrays)  # puts arrays back into the Values' .data
    read_grads(model)    -> the same layout, from each Value's .grad

move numbers between the interpreted engine and a compiled module, so a
training loop can switch between them in one line.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import operator
import re
import types
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from gradgen.errors import GradgenError

# gradgen.nn's structure, wherever it sits in a path: a Layer's neurons are rows of one matrix
_NN = (
    (re.compile(r"(^|\.)layers\.(\d+)\.neurons\.(\d+)\.w\.(\d+)$"), r"\1W\2.\3.\4"),
    (re.compile(r"(^|\.)layers\.(\d+)\.neurons\.(\d+)\.b$"), r"\1b\2.\3"),
    (re.compile(r"(^|\.)neurons\.(\d+)\.w\.(\d+)$"), r"\1W.\2.\3"),
    (re.compile(r"(^|\.)neurons\.(\d+)\.b$"), r"\1b.\2"),
)


class GroupingError(GradgenError, ValueError):
    """No array layout for a module's parameters (one line, saying what to rename)."""


@dataclass(frozen=True)
class ParamArray:
    name: str
    shape: tuple[int, ...]
    values: tuple  # the Value objects, in C order of `shape`
    layer: object = field(default=None, compare=False)  # the layer whose neurons these are (`_mlp_arrays`), if any

    @functools.cached_property
    def index_of(self) -> dict:
        """id(Value) -> its index into the array (a Value held twice: its last place)."""
        return dict(zip(map(id, self.values), itertools.product(*(range(d) for d in self.shape))))


def _place(name: str) -> tuple[str, tuple[int, ...]]:
    """(array name, index) of the parameter at path `name` (see the module docstring)."""
    for pattern, repl in _NN:
        name, hit = pattern.subn(repl, name)
        if hit:
            break
    segs = name.split(".")
    k = len(segs)
    while k > 0 and segs[k - 1].isdigit():
        k -= 1
    head: list[str] = []
    for seg in segs[:k]:  # blocks.0.fc1 -> blocks0_fc1: a numeric segment joins the name before it
        if seg.isdigit() and head:
            head[-1] += seg
        else:
            head.append(re.sub(r"\W", "_", seg))
    array = "_".join(head) or "p"
    if not array.isidentifier():
        array = "p_" + array
    return array, tuple(int(i) for i in segs[k:])


def named_values(model) -> list[tuple[str, object]]:
    """[(dotted path, Value)] of `model`'s parameters: `named_parameters()`, else its structure.

    The structural walk visits attributes in definition order, list and tuple
    items in order, dict items in insertion order (string keys only), nested
    objects by their own attributes, each object once; every engine Value it
    reaches is a parameter, once, under the first path that reaches it.  When
    the model has `parameters()`, that list decides which Values and in what
    order (a Value no path reaches is `p<k>`, its position).
    """
    if callable(getattr(model, "named_parameters", None)):
        return list(model.named_parameters())
    found = _walk(model)
    params = getattr(model, "parameters", None)
    if not callable(params):
        return found
    path = {}
    for name, v in found:
        path.setdefault(id(v), name)
    out, seen = [], set()
    for k, v in enumerate(params()):
        if id(v) not in seen:
            seen.add(id(v))
            out.append((path.get(id(v), f"p{k}"), v))
    return out


_MAX_DEPTH = 32
_NOT_MODULES = (types.FunctionType, types.MethodType, types.BuiltinFunctionType, types.ModuleType, np.ndarray)


def _walk(root) -> list[tuple[str, object]]:
    """(path, Value) for every engine Value reachable from `root`'s attributes (iteratively)."""
    from gradgen.frontend.engines import is_engine_value

    out, seen_values, seen_objects = [], set(), {id(root)}
    stack = [(name, v, 0) for name, v in reversed(list(_children(root)))]
    while stack:
        path, x, depth = stack.pop()
        if is_engine_value(x):
            if id(x) not in seen_values:
                seen_values.add(id(x))
                out.append((path, x))
            continue
        if depth >= _MAX_DEPTH or id(x) in seen_objects or isinstance(x, (str, bytes, int, float, type)):
            continue
        if not isinstance(x, (list, tuple, dict)) and not hasattr(x, "__dict__"):
            continue
        if isinstance(x, _NOT_MODULES):
            continue
        seen_objects.add(id(x))
        kids = list(_children(x))
        stack.extend((f"{path}.{name}", v, depth + 1) for name, v in reversed(kids))
    return out


def _children(x):
    """(name, child) of a container or object, in order."""
    if isinstance(x, (list, tuple)):
        return [(str(i), v) for i, v in enumerate(x)]
    if isinstance(x, dict):
        return [(k, v) for k, v in x.items() if isinstance(k, str) and k.isidentifier()]
    try:
        attrs = vars(x)
    except TypeError:
        return []
    return [(k, v) for k, v in attrs.items() if not k.startswith("__")]


_CACHES: list[dict] = []  # while `cached()` runs: (id(model), prefix) -> (model, its arrays)


@contextlib.contextmanager
def cached():
    """Within it, `arrays(model, prefix)` is computed once per model and prefix (a trace: the
    model does not change while it runs, and a wide MLP's layout takes seconds)."""
    _CACHES.append({})
    try:
        yield
    finally:
        _CACHES.pop()


def arrays(model, prefix: str = "") -> list[ParamArray]:
    """The parameter arrays of `model` (see `named_values`), in parameter order.

    A group whose indices do not fill a box (a ragged list of lists, a list
    with a non-Value in it) is split along its first index: `ws.1.0` joins
    `ws1[0]`.  Two parameters at one array element are refused (GroupingError).
    """
    if not _CACHES:
        return _arrays(model, prefix)
    hit = _CACHES[-1].get((id(model), prefix))
    if hit is None or hit[0] is not model:
        hit = _CACHES[-1][(id(model), prefix)] = (model, _arrays(model, prefix))
    return hit[1]


def _arrays(model, prefix: str) -> list[ParamArray]:
    fast = _mlp_arrays(model, prefix)
    if fast is not None:
        return fast
    groups: dict[str, dict[tuple, list]] = {}
    for pname, value in named_values(model):
        array, index = _place(pname)
        groups.setdefault(prefix + array, {}).setdefault(index, []).append((pname, value))
    out: list[ParamArray] = []
    taken: dict[str, str] = {}  # array name -> a parameter path in it
    pending = list(groups.items())[::-1]
    while pending:
        name, cells = pending.pop()
        for index, found in cells.items():
            if len(found) > 1:
                raise _clash(found[0][0], found[1][0], name, index)
        shape = _box(cells)
        if shape is None:  # ragged: one array per first index, in order
            parts: dict[str, dict] = {}
            for index, found in cells.items():
                parts.setdefault(f"{name}{index[0]}" if index else name, {})[index[1:]] = found
            pending.extend(reversed(list(parts.items())))
            continue
        first = next(iter(cells.values()))[0][0]
        if name in taken:
            raise _clash(taken[name], first, name, None)
        taken[name] = first
        order = sorted(cells)
        values = tuple(cells[i][0][1] for i in order)
        out.append(ParamArray(name, shape, values))
    return out


def _box(cells) -> tuple[int, ...] | None:
    """The shape whose every index `cells` holds exactly, or None."""
    ranks = {len(i) for i in cells}
    if len(ranks) != 1:
        return None
    shape = tuple(max(i[k] for i in cells) + 1 for k in range(ranks.pop()))
    return shape if len(cells) == int(np.prod(shape, dtype=int)) else None


def _clash(path_a: str, path_b: str, array: str, index) -> GroupingError:
    at = f"{array}[{', '.join(map(str, index))}]" if index else array
    return GroupingError(
        f"parameters {path_a} and {path_b} both become the parameter array {at}; "
        "rename one of the attributes that hold them"
    )


def _mlp_arrays(model, prefix: str) -> list[ParamArray] | None:
    """The layout of an MLP or Layer read off its layers and neurons, without making and parsing
    one name per parameter: per layer `l`, W{l} (nout, nin) of the neurons' `w` rows and b{l}
    (nout,) of their `b` (a lone Layer's: W, b), as the names would give (`_NN`).  Which models
    it trusts is the policy's (`_NN_MLP`, `_FOREIGN_MLP`); None for any other model."""
    for policy in (_NN_MLP, _FOREIGN_MLP):
        layers = policy.layers(model)
        if layers is not None:
            break
    else:
        return None
    out = []
    for suffix, layer, neurons in layers:
        if not neurons or not all(map(policy.neuron, neurons)):
            return None
        nin = len(neurons[0].w)
        if nin == 0 or any(len(n.w) != nin for n in neurons):
            return None
        w = tuple(v for n in neurons for v in n.w)
        b = tuple(n.b for n in neurons)
        for name, values, shape in ((f"W{suffix}", w, (len(neurons), nin)), (f"b{suffix}", b, (len(neurons),))):
            out.append(ParamArray(prefix + name, shape, values, layer))
    return out if policy.whole(model, layers) else None


@dataclass(frozen=True)
class _MLPPolicy:
    """Which MLPs `_mlp_arrays` reads off their structure (the rest go through the names)."""

    layers: Callable  # model -> [(array-name suffix, layer, its neurons)], or None: not this kind
    neuron: Callable  # neuron -> whether it is one of this kind's
    whole: Callable  # (model, layers) -> whether the names would give this layout (the values as read)


def _nn_layers(model):
    from gradgen import nn

    if type(model) is nn.MLP and all(type(layer) is nn.Layer for layer in model.layers):
        return [(str(i), layer, layer.neurons) for i, layer in enumerate(model.layers)]
    if type(model) is nn.Layer:
        return [("", model, model.neurons)]
    return None


def _nn_neuron(n) -> bool:
    from gradgen import nn

    return type(n) is nn.Neuron


# a plain `gradgen.nn` MLP or Layer of plain Neurons: `named_parameters()` gives this layout
_NN_MLP = _MLPPolicy(_nn_layers, _nn_neuron, lambda model, layers: True)

_PLAIN = (bool, int, float, str, type(None))


def _holds(x, name: str):
    """The list `x.name` when it is `x`'s only non-plain attribute, else None."""
    attrs = getattr(x, "__dict__", None)
    if not isinstance(attrs, dict) or not isinstance(attrs.get(name), list):
        return None
    if any(not isinstance(v, _PLAIN) for k, v in attrs.items() if k != name and not k.startswith("__")):
        return None
    return attrs[name]


def _foreign_layers(model):
    if callable(getattr(model, "named_parameters", None)) or not hasattr(model, "__dict__"):
        return None
    if _holds(model, "layers") is not None:
        layers = [(str(i), layer, _holds(layer, "neurons")) for i, layer in enumerate(model.layers)]
    else:
        layers = [("", model, _holds(model, "neurons"))]
    return layers if layers and all(ns for _, _, ns in layers) else None


def _foreign_neuron(n) -> bool:
    """A list `w` (not empty), then a `b`, other attributes plain (the walk meets w, then b)."""
    attrs = getattr(n, "__dict__", None)
    if not isinstance(attrs, dict) or not isinstance(attrs.get("w"), list) or not attrs["w"]:
        return False
    names = [k for k in attrs if not k.startswith("__")]
    if "b" not in names or names.index("b") < names.index("w"):
        return False  # no bias, or the walk would meet b first (another order)
    return all(isinstance(attrs[k], _PLAIN) for k in names if k not in ("w", "b"))


def _foreign_whole(model, layers) -> bool:
    """Values of one engine class, each held once, in `parameters()` order when the model has it."""
    from gradgen.frontend.engines import is_engine_value

    order = [v for _, _, neurons in layers for n in neurons for v in n.w + [n.b]]
    kind = type(layers[0][2][0].b)
    if not is_engine_value(layers[0][2][0].b) or any(type(v) is not kind for v in order):
        return False
    if len(set(map(id, order))) != len(order):
        return False  # a Value held twice: the names decide
    params = getattr(model, "parameters", None)
    if callable(params):
        given = list(params())
        if len(given) != len(order) or not all(map(operator.is_, given, order)):
            return False
    return True


# a micrograd-shaped foreign MLP or Layer (micrograd's own, the lecture's classes): `layers` of
# `neurons`, each a list `w` of Values and a Value `b`, other attributes plain, `parameters()` in order
_FOREIGN_MLP = _MLPPolicy(_foreign_layers, _foreign_neuron, _foreign_whole)


def read(model, prefix: str = "") -> dict[str, np.ndarray]:
    """{array name: float64 array of the parameters' current .data}, each a view into one
    flat buffer in this order (`flat`'s layout: a compiled `<name>_step` updates them in one
    operation)."""
    layout = arrays(model, prefix)
    return dict(zip((a.name for a in layout), flat([[float(v.data) for v in a.values] for a in layout], layout)))


def flat(arrays_, layout=None) -> list[np.ndarray]:
    """Copies of `arrays_` (a sequence or a dict's values) as consecutive views into one new
    float64 buffer, in order: the layout `read` returns, which a compiled NumPy
    `<name>_step` updates with one operation (see docs/step.md)."""
    items = list(arrays_.values() if isinstance(arrays_, dict) else arrays_)
    shapes = [a.shape for a in layout] if layout is not None else [np.shape(x) for x in items]
    buf = np.concatenate([np.asarray(x, dtype=np.float64).ravel() for x in items]) if items else np.zeros(0)
    out, k = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        out.append(buf[k : k + size].reshape(shape))
        k += size
    return out


def read_grads(model, prefix: str = "") -> dict[str, np.ndarray]:
    """{array name: float64 array of the parameters' .grad} (after `backward()`)."""
    return {
        a.name: np.array([float(v.grad) for v in a.values], dtype=np.float64).reshape(a.shape)
        for a in arrays(model, prefix)
    }


def write(model, values, prefix: str = "") -> None:
    """Set each parameter's .data from `values`: a dict by array name, or a sequence in `read` order."""
    layout = arrays(model, prefix)
    if not isinstance(values, dict):
        values = list(values)
        if len(values) != len(layout):
            raise ValueError(f"expected {len(layout)} arrays ({', '.join(a.name for a in layout)}), got {len(values)}")
        values = {a.name: v for a, v in zip(layout, values)}
    for a in layout:
        if a.name not in values:
            raise ValueError(f"no array for parameter {a.name}")
        arr = np.asarray(values[a.name], dtype=np.float64)
        if arr.shape != a.shape:
            raise ValueError(f"parameter {a.name} has shape {a.shape}, got an array of shape {arr.shape}")
        for v, x in zip(a.values, arr.reshape(-1).tolist()):
            v.data = x
