"""Refuse randomness drawn while a model is traced.

A trace runs the model once; a number drawn from `random` or `np.random`
during that run (a dropout mask, noise) would be frozen into the generated
module as a constant, so every call of the compiled code would reuse the
same draw.  gradgen refuses that with the model line, and says to pass the
random numbers in as arguments instead.

Detection is cheap and always on: `snapshot()` records the state of every
generator the model can reach -- Python's global `random`, NumPy's legacy
global `np.random`, and the `random.Random`, `np.random.RandomState` and
`np.random.Generator` objects among the model function's globals -- and
`changed()` compares after the trace.  Only when something changed does
`locate()` run the model once more under a line tracer that compares the
states at every model line, to find the first line that draws (the slow
path is the error path).  A generator created
inside the model and used there (`np.random.default_rng(0)`) has no state
to compare before the trace, and is not detected.
"""

from __future__ import annotations

import copy
import os
import random
import sys

import numpy as np

_RANDOM_FILE = os.path.abspath(random.__file__)
_NUMPY_DIR = os.path.dirname(os.path.abspath(np.__file__)) + os.sep
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # gradgen/
_GENERATORS = (random.Random, np.random.RandomState, np.random.Generator, np.random.BitGenerator)


def _raw(gen):
    if isinstance(gen, random.Random):
        return gen.getstate()
    if isinstance(gen, np.random.RandomState):
        return gen.get_state()
    bits = gen.bit_generator if isinstance(gen, np.random.Generator) else gen
    return copy.deepcopy(bits.state)


def _frozen(state):
    """A state made comparable with ==: arrays become bytes, dicts sorted tuples."""
    if isinstance(state, np.ndarray):
        return (state.dtype.str, state.tobytes())
    if isinstance(state, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in state.items()))
    if isinstance(state, (tuple, list)):
        return tuple(_frozen(v) for v in state)
    return state


def _sources(namespace: dict) -> list[tuple[str, object]]:
    """(description, generator) for each generator the model can reach, in a fixed order."""
    found = [("random", random._inst), ("np.random", np.random.mtrand._rand)]
    seen = {id(g) for _, g in found}
    for name, value in namespace.items():
        if isinstance(value, _GENERATORS) and id(value) not in seen:
            seen.add(id(value))
            found.append((name, value))
    return found


def snapshot(namespace: dict) -> list[tuple[str, object, object]]:
    """The state of every reachable generator: (description, generator, raw state)."""
    return [(name, gen, _raw(gen)) for name, gen in _sources(namespace)]


def changed(before) -> str | None:
    """The description of the first generator whose state differs from `before`, or None."""
    for name, gen, state in before:
        if _frozen(_raw(gen)) != _frozen(state):
            return name
    return None


def restore(before) -> None:
    """Put every generator back as it was (a refused compile changes nothing)."""
    for _, gen, state in before:
        if isinstance(gen, random.Random):
            gen.setstate(state)
        elif isinstance(gen, np.random.RandomState):
            gen.set_state(state)
        else:
            bits = gen.bit_generator if isinstance(gen, np.random.Generator) else gen
            bits.state = copy.deepcopy(state)


def _outside(filename: str) -> bool:
    """A file of the model's: not gradgen, random.py or NumPy."""
    path = os.path.abspath(filename)
    return not (path == _RANDOM_FILE or path.startswith((_NUMPY_DIR, _PACKAGE_DIR)))


def locate(run, before) -> tuple[str, int] | None:
    """(file, line) of the first model line after which a generator's state differs from `before`.

    `run()` runs the model again from the state `before` (restored first); a
    line tracer compares the states at every model line, so the culprit is the
    model line that ran last before the change, whatever it called.
    """
    restore(before)
    hit: list = []
    last: list = [None]

    def local(frame, event, arg):
        if hit:
            return None
        if event in ("line", "return"):
            if changed(before) is not None:
                here = (frame.f_code.co_filename, frame.f_lineno)
                hit.append(here if event == "return" or last[0] is None else last[0])
                return None
            if event == "line":
                last[0] = (frame.f_code.co_filename, frame.f_lineno)
        return local

    def global_(frame, event, arg):
        return local if not hit and _outside(frame.f_code.co_filename) else None

    old = sys.gettrace()
    sys.settrace(global_)
    try:
        run()
    except BaseException:  # noqa: BLE001 -- the first run got this far; only the location matters
        pass
    finally:
        sys.settrace(old)
    return hit[0] if hit else None
