"""Whole programs, three ways: compiled module vs interpreted engine vs PyTorch float64.

For every exported function of every model in examples/:

* the compiled module (`gradgen.compile_file`) must equal the interpreted
  engine (`gradgen.Value` + `.backward()`) bit for bit, or to 1e-12 relative
  where the two sum a gradient's contributions in a different order;
* both must equal PyTorch float64 (`torch.autograd.grad` on the same Python
  function) to 1e-9 relative;

at the function's `example` point and at a few seeded random points inside
its domain.  The lecture's and micrograd's published numbers are oracles.

Also here: generated/ is exactly what compiling examples/ gives now, and black
leaves every emitted module unchanged -- including benchmarks/decay_loop.py's,
which is long enough that the module writer skips black, so this test is what
keeps it black-clean.
"""

from __future__ import annotations

import difflib
import inspect
import math
import random
import subprocess
import sys
import types
from pathlib import Path

import black
import pytest
import torch

import gradgen
from gradgen import Value
from gradgen.export import example_of
from gradgen.frontend.loader import load_model
from support import is_array_function

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
DECAY = ROOT / "benchmarks" / "decay_loop.py"

ENGINE_REL = 1e-12
TORCH_REL = 1e-9
N_RANDOM = 4


# -- the models ---------------------------------------------------------------------


def _exported(path: Path):
    _, fns = load_model(str(path))
    return fns


# array functions (MLPs on batches) are compared three ways in test_mlp.py and test_demos.py
CASES = [(path.stem, fn.__name__) for path in EXAMPLES for fn in _exported(path) if not is_array_function(fn)]


def test_every_example_has_cases():
    """Every file in examples/ exports at least one function, and each scalar one is covered below."""
    assert EXAMPLES, "examples/ is empty"
    stems = {stem for stem, _ in CASES}
    scalar = {p.stem for p in EXAMPLES if any(not is_array_function(f) for f in _exported(p))}
    assert stems == scalar


# Per-argument sampling domains, where the default [-3, 3] is not in the
# function's domain (log and fractional powers need positive arguments).
def _nonzero(lo, hi):
    return lambda rng: rng.choice((-1.0, 1.0)) * rng.uniform(lo, hi)


DOMAINS = {
    ("powers", "x"): lambda rng: rng.uniform(0.1, 3.0),  # x**0.5, 1 / x
    ("softplus_ratio", "y"): _nonzero(0.25, 3.0),  # sp / y
}


def params(fn) -> list[str]:
    return list(inspect.signature(fn).parameters)


def example_point(fn) -> tuple[float, ...]:
    ex = example_of(fn)
    assert ex is not None, f"{fn.__name__} has no example point"
    if isinstance(ex, dict):
        return tuple(float(ex[p]) for p in params(fn))
    return tuple(float(v) for v in ex)


def random_points(stem: str, fn) -> list[tuple[float, ...]]:
    rng = random.Random(f"{stem}.{fn.__name__}")  # str seeds are stable across runs
    points = []
    for _ in range(N_RANDOM):
        point = []
        for p in params(fn):
            draw = DOMAINS.get((fn.__name__, p), lambda r: r.uniform(-3.0, 3.0))
            point.append(draw(rng))
        points.append(tuple(point))
    return points


# -- the three ways -------------------------------------------------------------------


def engine(fn, point):
    leaves = [Value(float(v)) for v in point]
    out = fn(*leaves)
    out.backward()
    return out.data, tuple(v.grad for v in leaves)


def pytorch(fn, point):
    xs = [
        torch.tensor(float(v), dtype=torch.float64, requires_grad=True) for v in point
    ]
    out = fn(*xs)
    grads = torch.autograd.grad(out, xs, allow_unused=True)
    return out.item(), tuple(0.0 if g is None else g.item() for g in grads)


def same(a: float, b: float, rel: float, abs_: float = 0.0) -> bool:
    """Equal bit for bit (NaN == NaN), or within `rel` relative / `abs_` absolute."""
    if a == b or (math.isnan(a) and math.isnan(b)):
        return True
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def assert_same(got, want, rel: float, abs_: float = 0.0, what: str = ""):
    (gv, gg), (wv, wg) = got, want
    assert len(gg) == len(wg), f"{what}: {len(gg)} gradients, expected {len(wg)}"
    assert same(gv, wv, rel, abs_), f"{what}: value {gv!r} != {wv!r}"
    for k, (a, b) in enumerate(zip(gg, wg)):
        assert same(a, b, rel, abs_), f"{what}: gradient {k} {a!r} != {b!r}"


# -- fixtures -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def compiled():
    """stem -> (compiled module, {name: model function}); each example compiled once."""
    out = {}
    for path in EXAMPLES:
        mod = gradgen.compile_file(str(path))
        out[path.stem] = (mod, {f.__name__: f for f in _exported(path)})
    return out


@pytest.fixture(scope="module")
def decay_source():
    """The emitted text of benchmarks/decay_loop.py (~5 s of trace+emit, done once)."""
    from gradgen.api import build_source

    _, fns = load_model(str(DECAY))
    text, irs, stats, seconds = build_source(
        fns, str(DECAY.relative_to(ROOT)), "generated"
    )
    return text, fns[0]


# -- three-way comparisons ---------------------------------------------------------


@pytest.mark.parametrize("stem,name", CASES, ids=[f"{s}.{n}" for s, n in CASES])
def test_compiled_equals_engine_and_torch(compiled, stem, name):
    """f_grad == engine (1e-12) == torch (1e-9) at the example point and random in-domain points."""
    mod, fns = compiled[stem]
    fn = fns[name]
    f, f_grad = getattr(mod, name), getattr(mod, name + "_grad")
    points = [example_point(fn)] + random_points(stem, fn)
    for point in points:
        where = f"{name}{point}"
        want = engine(fn, point)
        got = f_grad(*point)
        assert_same(got, want, ENGINE_REL, what=f"compiled vs engine at {where}")
        assert same(f(*point), want[0], ENGINE_REL), f"{name} (forward only) at {where}"
        # torch sums and rounds in its own order: compare relatively, with a floor for exact zeros
        assert_same(
            got,
            pytorch(fn, point),
            TORCH_REL,
            1e-12,
            what=f"compiled vs torch at {where}",
        )


@pytest.mark.parametrize("stem,name", CASES, ids=[f"{s}.{n}" for s, n in CASES])
def test_forward_value_is_bit_exact(compiled, stem, name):
    """The forward value has no accumulation to reorder: compiled and engine agree bit for bit."""
    mod, fns = compiled[stem]
    fn = fns[name]
    for point in [example_point(fn)] + random_points(stem, fn):
        want = engine(fn, point)[0]
        assert getattr(mod, name)(*point) == want
        assert getattr(mod, name + "_grad")(*point)[0] == want


# -- oracles ------------------------------------------------------------------------

LECTURE_F32_B = (
    6.881373405456543  # the lecture's PyTorch cell rounded b through float32
)
LECTURE_F64_B = 6.8813735870195432


def _neuron(compiled):
    mod, fns = compiled["neuron"]
    return mod, fns["neuron"]


def test_lecture_neuron_float32_b(compiled):
    """The lecture's PyTorch printout: o and the gradients, b rounded through float32."""
    mod, fn = _neuron(compiled)
    point = (2.0, 0.0, -3.0, 1.0, LECTURE_F32_B)  # x1, x2, w1, w2, b
    want_o = 0.7071066904050358
    want = dict(
        x1=-1.5000003851533106, x2=0.5000001283844369, w1=1.0000002567688737, w2=0.0
    )
    for label, (o, grads) in (
        ("compiled", mod.neuron_grad(*point)),
        ("engine", engine(fn, point)),
    ):
        assert math.isclose(o, want_o, rel_tol=1e-12), label
        g = dict(zip(params(fn), grads))
        for k, v in want.items():
            assert math.isclose(
                g[k], v, rel_tol=1e-12, abs_tol=1e-12
            ), f"{label}: d(o)/d({k}) = {g[k]!r}"
        # dn/db = 1, so the gradient of b is d(o)/d(n) = the gradient of x2 (x2 multiplies w2 = 1)
        assert math.isclose(g["b"], 0.5000001283844369, rel_tol=1e-12), label


def test_lecture_neuron_float64_b(compiled):
    """With b kept in float64, o is 1/sqrt(2) to the last digit the lecture shows."""
    mod, fn = _neuron(compiled)
    point = (2.0, 0.0, -3.0, 1.0, LECTURE_F64_B)
    for o in (mod.neuron(*point), mod.neuron_grad(*point)[0], engine(fn, point)[0]):
        assert o == 0.7071067811865477
        assert math.isclose(o, 1 / math.sqrt(2), rel_tol=1e-15)


def test_micrograd_more_ops_oracle(compiled):
    """micrograd's README: g = 24.7041, dg/da = 138.8338, dg/db = 645.5773 at a=-4, b=2."""
    mod, fns = compiled["micrograd_tests"]
    want = (24.70408163265306, (138.83381924198252, 645.5772594752186))
    for label, got in (
        ("compiled", mod.more_ops_grad(-4.0, 2.0)),
        ("engine", engine(fns["more_ops"], (-4.0, 2.0))),
    ):
        assert_same(got, want, 1e-12, what=label)
    assert math.isclose(mod.more_ops(-4.0, 2.0), want[0], rel_tol=1e-12)


def test_micrograd_sanity_check_oracle(compiled):
    """micrograd's test_sanity_check: y = -20 and dy/dx = 46 at x = -4."""
    mod, fns = compiled["micrograd_tests"]
    for got in (mod.sanity_check_grad(-4.0), engine(fns["sanity_check"], (-4.0,))):
        assert got == (-20.0, (46.0,))


# -- generated/ and black -------------------------------------------------------------


def test_generated_modules_are_up_to_date():
    """`gradgen compile examples/*.py -o generated --check` exits 0: generated/ is what examples/ compile to."""
    models = [str(p.relative_to(ROOT)) for p in EXAMPLES]
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "gradgen",
            "compile",
            *models,
            "-o",
            "generated",
            "--check",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_example_has_a_generated_module():
    """generated/ holds one module per example, and nothing else."""
    gen = sorted(
        p.name for p in (ROOT / "generated").glob("*.py") if p.name != "__init__.py"
    )
    assert gen == [p.name for p in EXAMPLES]


def assert_black_clean(src: str, name: str) -> None:
    formatted = black.format_str(src, mode=black.Mode())
    if formatted != src:
        diff = difflib.unified_diff(
            src.splitlines(), formatted.splitlines(), name, "black", lineterm="", n=1
        )
        pytest.fail(f"black changes {name}:\n" + "\n".join(list(diff)[:20]))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_emitted_module_is_black_clean(compiled, path):
    """Black leaves the emitted module unchanged (so `black --check generated/` passes)."""
    assert_black_clean(
        compiled[path.stem][0].source, f"the module compiled from {path.name}"
    )


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_checked_in_module_is_black_clean(path):
    """The module in generated/ is black-clean too."""
    assert_black_clean(
        (ROOT / "generated" / path.name).read_text(encoding="utf-8"),
        f"generated/{path.name}",
    )


def test_decay_loop_module_is_black_clean(decay_source):
    """Black leaves the 20,000-line decay_loop module unchanged, though the writer skips black for it."""
    text, _ = decay_source
    assert text.count("\n") > 4000  # the path that skips black
    assert_black_clean(text, "the decay_loop module")


def test_decay_loop_module_computes_like_the_engine(decay_source):
    """The long chain compiles to code that equals the engine at its example point."""
    text, fn = decay_source
    module = types.ModuleType("decay_loop_compiled")
    exec(compile(text, "<decay_loop>", "exec"), module.__dict__)
    point = example_point(fn)
    want = engine(fn, point)
    assert_same(module.decay_grad(*point), want, ENGINE_REL, what="decay_grad")
    assert module.decay(*point) == want[0]
