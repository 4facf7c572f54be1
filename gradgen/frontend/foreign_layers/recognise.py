"""Recognising a foreign engine's neurons by their structure, not by names.

    neurons(found)      -> {id(object): (object, weights attribute, bias attribute)}
    key(neuron, orig, wname, bname, nin) -> what a verified first call vouches for, or None
    reads_data(cls)     -> True when a function of the class names `data` (never emulated)

A neuron-like object is one among the model's attributes holding exactly one
list of engine Values of one class (its weights, whatever the attribute is
called) and exactly one engine Value (its bias), with a `__call__`.  Whether
its weights and bias are row j of one `W` and `b[j]` is `places`' question.
"""

from __future__ import annotations

from gradgen.frontend import layers as nn_layers
from gradgen.frontend.engines import is_engine_value

_SIMPLE = (bool, int, float, str, type(None))
_MAX_OBJECTS = 1_000_000


def neurons(found) -> dict:
    """id(object) -> (object, weights attribute, bias attribute) of the neuron-like objects of
    `found`'s modules (none when the layer path is off)."""
    return _neurons([m.module for m in found]) if nn_layers.ENABLED else {}


def _neurons(modules) -> dict:
    """id(object) -> (object, weights attribute, bias attribute) of the neuron-like objects reachable."""
    from gradgen.params import _NOT_MODULES, _children

    out, seen = {}, set()
    stack = list(reversed(modules))
    while stack and len(seen) < _MAX_OBJECTS:
        x = stack.pop()
        if id(x) in seen or is_engine_value(x) or isinstance(x, (str, bytes, int, float, type, _NOT_MODULES)):
            continue
        seen.add(id(x))
        if isinstance(x, (list, tuple)):
            if x and is_engine_value(x[0]):
                continue  # a list of Values: parameters, not modules
            stack.extend(reversed(x))
            continue
        if isinstance(x, dict):
            stack.extend(reversed([v for _, v in _children(x)]))
            continue
        if not hasattr(x, "__dict__"):
            continue
        kids = _children(x)
        lists = [k for k, v in kids if isinstance(v, list) and len(v) > 1 and _values(v)]
        single = [k for k, v in kids if is_engine_value(v)]
        if len(lists) == 1 and len(single) == 1 and callable(getattr(type(x), "__call__", None)):
            out[id(x)] = (x, lists[0], single[0])
            continue
        stack.extend(reversed([v for _, v in kids]))
    return out


def _values(xs: list) -> bool:
    """A list of engine Values of one class."""
    first = type(xs[0])
    return is_engine_value(xs[0]) and all(type(x) is first for x in xs)


def key(neuron, orig, wname: str, bname: str, nin: int):
    """(class, function, input size, the neuron's other plain attributes), or None when one is not plain."""
    rest = []
    for k, v in vars(neuron).items():
        if k in (wname, bname):
            continue
        if not isinstance(v, _SIMPLE):
            return None
        rest.append((k, type(v), v))
    return (type(neuron), orig, nin, tuple(rest))


def reads_data(cls) -> bool:
    """Does a function of `cls` (or of a base) name `data`: a branch on the numbers, maybe.
    (Methods, static and class methods, properties, decorated functions' originals, nested code.)"""
    codes = []
    for k in cls.__mro__:
        if k is object:
            continue
        for f in vars(k).values():
            for g in (f, getattr(f, "__func__", None), getattr(f, "fget", None), getattr(f, "fset", None)):
                for _ in range(8):  # (a decorator's chain of __wrapped__, bounded)
                    if g is None:
                        break
                    if hasattr(g, "__code__"):
                        codes.append(g.__code__)
                    g = getattr(g, "__wrapped__", None)
    while codes:
        code = codes.pop()
        if "data" in code.co_names:
            return True
        codes.extend(c for c in code.co_consts if hasattr(c, "co_names"))
    return False
