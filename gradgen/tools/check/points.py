"""Where `gradgen check` evaluates a function: choosing and binding points.

Contract.  A point is a tuple of the function's own arguments in order.
They come from the user (`--at name=value,...`, repeatable: `parse_at`
reads one, `bind` orders it and names what is unknown or missing), else
from the function's `example` plus `n` random points drawn uniformly in
[-2, 2] (seeded, so reproducible) and kept only where the engine returns
finite numbers -- the simple way to stay inside every op's domain (log of a
positive, no 1/0).  `format_point` writes a point back as `--at` text that
`parse_at` reads to the same floats.

A function with data arrays gets data sets instead (`data_sets`): its
example, then `n` random ones shaped like it; random data set k depends
only on the seed and k, so `--seed S --points k` shows it again.

Every problem with the user's points is a one-line `GradgenError` naming
the function's file and line.
"""

from __future__ import annotations

import random
import re

import numpy as np

from gradgen.errors import GradgenError
from gradgen.export import example_of
from gradgen.tools.check.layout import Layout, arg_names, elements, example_dict, signature, where
from gradgen.tools.check.oracles import engine_grad, finite

RANDOM_LOW, RANDOM_HIGH = -2.0, 2.0
TRIES_PER_POINT = 100

_PAIR = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(\S+?)\s*")


def parse_at(text: str) -> dict[str, float]:
    """`"x1=2,x2=0"` -> {"x1": 2.0, "x2": 0.0}; a `GradgenError` for anything else."""
    hint = "expected NAME=NUMBER pairs separated by commas, e.g. --at x1=2,x2=-0.5"
    values: dict[str, float] = {}
    for part in text.split(","):
        m = _PAIR.fullmatch(part)
        if m is None:
            raise GradgenError(f"bad --at {text!r}: {part.strip()!r} is not NAME=NUMBER; {hint}")
        name, number = m.groups()
        try:
            value = float(number)
        except ValueError:
            raise GradgenError(f"bad --at {text!r}: {number!r} is not a number; {hint}") from None
        if name in values:
            raise GradgenError(f"bad --at {text!r}: {name} is given twice")
        values[name] = value
    return values


def bind(fn, values: dict[str, float], what: str = "--at") -> tuple[float, ...]:
    """`values` as a tuple in `fn`'s argument order; unknown or missing names are errors."""
    names = arg_names(fn)
    unknown = [k for k in values if k not in names]
    missing = [k for k in names if k not in values]
    if unknown or missing:
        problems = []
        if unknown:
            problems.append(f"{signature(fn)} has no argument {', '.join(unknown)}")
        if missing:
            problems.append(f"no value for {', '.join(missing)}")
        raise GradgenError(f"{what}: {'; '.join(problems)}; give every argument once, as NAME=NUMBER", *where(fn))
    return tuple(float(values[k]) for k in names)


def fits(fn, values: dict) -> bool:
    """Whether an `--at` point names exactly `fn`'s arguments."""
    return set(values) == set(arg_names(fn))


def example_point(fn) -> tuple[float, ...] | None:
    """`fn`'s `@gradgen.export(example=...)` point in argument order, or None."""
    ex = example_of(fn)
    if ex is None:
        return None
    if isinstance(ex, dict):
        return bind(fn, ex, "the export's example")
    ex = tuple(ex)
    if len(ex) != len(arg_names(fn)):
        raise GradgenError(
            f"the export's example has {len(ex)} values but {signature(fn)} takes {len(arg_names(fn))}", *where(fn)
        )
    return tuple(float(v) for v in ex)


def format_point(fn, xs) -> str:
    """A point as `--at` syntax that `parse_at` reads back: `repr(float(x))` (`nan`, `inf` included)."""
    return ",".join(f"{k}={float(x)!r}" for k, x in zip(arg_names(fn), xs))


def random_points(fn, n: int, seed: int, layout: Layout | None = None, reference=None):
    """Up to `n` points in [-2, 2]^k where the engine's value and gradient are finite; (points, tries).
    `reference`: the oracle that must give them (default `engine_grad`; the user's backward() for a
    learner's own Value class)."""
    rng = random.Random(seed)
    k = len(arg_names(fn))
    points, tries = [], 0
    while len(points) < n and tries < TRIES_PER_POINT * n:
        tries += 1
        xs = tuple(rng.uniform(RANDOM_LOW, RANDOM_HIGH) for _ in range(k))
        try:
            value, grads = (reference or engine_grad)(fn, xs, layout)
        except Exception:  # outside the domain: log(-1), 1/0, overflow
            continue
        if finite(value) and all(finite(g) for _, g in elements(layout or Layout.plain(fn), grads)):
            points.append(xs)
    return points, tries


def points_for(fn, at: list[dict] | None, n_random: int, seed: int, layout: Layout | None = None, reference=None):
    """(points, labels, notes) for `fn`: the --at points, or the example plus random ones."""
    if at:
        return [bind(fn, values) for values in at], ["--at"] * len(at), []
    points, labels, notes = [], [], []
    ex = example_point(fn)
    if ex is not None:
        points.append(ex)
        labels.append("example")
    if n_random > 0:
        found, tries = random_points(fn, n_random, seed, layout, reference)
        points += found
        labels += ["random"] * len(found)
        if len(found) < n_random:
            notes.append(
                f"found {len(found)} of {n_random} random points in [-2, 2] where the engine gives "
                f"finite numbers ({tries} tries); give points with --at"
            )
    return points, labels, notes


def data_sets(fn, layout: Layout, n: int, seed: int):
    """(data sets, labels, descriptions) for a function with data arrays: its example, then `n`
    random ones shaped like it (standard normal arrays, scalars in [-2, 2]); random data set k is
    drawn from (seed, k) alone, so `--seed S --points k` shows it again."""
    ex = example_dict(fn)
    own = arg_names(fn)
    sets, labels, texts = [], [], []
    if all(k in ex for k in own):
        sets.append(tuple(np.asarray(ex[k], dtype=np.float64) if k in layout.data else float(ex[k]) for k in own))
        labels.append("example")
        texts.append("the export's example data")
    for k in range(1, n + 1):
        rng = np.random.default_rng([seed, k])
        draw = [rng.standard_normal(np.shape(ex[a])) if a in layout.data else float(rng.uniform(-2, 2)) for a in own]
        sets.append(tuple(draw))
        labels.append("random")
        texts.append(f"random data set {k} of --seed {seed} (rerun with --seed {seed} --points {k} to see it again)")
    return sets, labels, texts
