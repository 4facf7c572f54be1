"""Golden text: the IR of every example, before and after differentiation and the passes.

tests/golden/<stem>.ir.txt           `gradgen ir examples/<stem>.py`
tests/golden/<stem>.grad-opt.ir.txt  `gradgen ir examples/<stem>.py --grad --optimized`

The emitted code's golden files are the modules in generated/ (test_examples.py
checks they are what `gradgen compile` writes now).  Every snapshot is paired
with a numeric check, so a reviewed diff is also a checked one: the IR
interpreter on the snapshotted graph, and the generated module, equal the
interpreted engine at the function's example point.

Accept new output (then review `git diff tests/golden` like code):

    GRADGEN_ACCEPT=1 .venv/bin/python -m pytest tests/test_golden.py
"""

from __future__ import annotations

import importlib.util
import inspect
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gradgen import Value
from gradgen.api import lower
from gradgen.export import example_of
from gradgen.ir.interp import evaluate
from gradgen.frontend.loader import load_model
from support import is_array_function

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden"
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
ACCEPT = os.environ.get("GRADGEN_ACCEPT") == "1"
ACCEPT_COMMAND = "GRADGEN_ACCEPT=1 .venv/bin/python -m pytest tests/test_golden.py"

# suffix -> (extra `gradgen ir` flags, the sentence that opens the file)
VARIANTS = {
    "ir": (
        (),
        "The traced forward graph, before any pass: one node per operation the model performed.",
    ),
    "grad-opt": (
        ("--grad", "--optimized"),
        "Forward + backward after fold, cse and dce: what the generated <f>_grad computes.",
    ),
}
CASES = [(p, v) for p in EXAMPLES for v in VARIANTS]
IDS = [f"{p.stem}.{v}" for p, v in CASES]


def golden_path(model: Path, variant: str) -> Path:
    return GOLDEN / f"{model.stem}.{variant}.txt"


def command(model: Path, variant: str) -> list[str]:
    return ["ir", str(model.relative_to(ROOT)), *VARIANTS[variant][0]]


def header(model: Path, variant: str) -> str:
    return f"# gradgen {' '.join(command(model, variant))}\n# {VARIANTS[variant][1]}\n"


def strip_header(text: str) -> str:
    lines = text.splitlines(keepends=True)
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "".join(lines)


def current_output(model: Path, variant: str) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "gradgen", *command(model, variant)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("model,variant", CASES, ids=IDS)
def test_ir_matches_golden(model, variant):
    """`gradgen ir` prints exactly the reviewed snapshot."""
    path = golden_path(model, variant)
    got = current_output(model, variant)
    if ACCEPT:
        path.parent.mkdir(exist_ok=True)
        path.write_text(header(model, variant) + got, encoding="utf-8")
        return
    assert (
        path.exists()
    ), f"no golden file {path.relative_to(ROOT)}; create it with: {ACCEPT_COMMAND}"
    want = strip_header(path.read_text(encoding="utf-8"))
    assert got == want, (
        f"`gradgen {' '.join(command(model, variant))}` differs from {path.relative_to(ROOT)}; "
        f"if the change is intended, accept it with: {ACCEPT_COMMAND}"
    )


def test_no_orphan_golden_files():
    """Every golden file belongs to an example (stale ones are removed on accept)."""
    expected = {golden_path(m, v).name for m, v in CASES} | {"README.md"}
    orphans = (
        sorted(p.name for p in GOLDEN.iterdir() if p.name not in expected)
        if GOLDEN.exists()
        else []
    )
    if ACCEPT:
        for name in orphans:
            (GOLDEN / name).unlink()
        return
    assert (
        not orphans
    ), f"golden files without an example: {orphans}; remove them with: {ACCEPT_COMMAND}"


# -- the numeric half of each snapshot -----------------------------------------------------


def example_point(fn) -> tuple[float, ...]:
    ex = example_of(fn)
    assert ex is not None, f"{fn.__name__} has no example point"
    if isinstance(ex, dict):
        return tuple(float(ex[p]) for p in inspect.signature(fn).parameters)
    return tuple(float(v) for v in ex)


def engine(fn, point):
    leaves = [Value(v) for v in point]
    out = fn(*leaves)
    out.backward()
    return out.data, tuple(v.grad for v in leaves)


def close(a: float, b: float) -> bool:
    return a == b or math.isclose(a, b, rel_tol=1e-12)


def functions(model: Path):
    _, fns = load_model(str(model))
    return fns


@pytest.mark.parametrize("model", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_ir_snapshots_compute_like_the_engine(model):
    """Interpreting the snapshotted graphs gives the engine's value (bit for bit) and gradients."""
    for fn in functions(model):
        if is_array_function(fn):
            continue  # MLPs on batches: test_mlp.py and test_demos.py compare them with the engine
        point = example_point(fn)
        value, grads = engine(fn, point)
        ir = lower(fn, check=True)  # the verifier runs after every pass
        assert evaluate(ir.forward, point)["value"] == value, fn.__name__
        assert evaluate(ir.forward_opt, point)["value"] == value, fn.__name__
        out = evaluate(ir.grad_opt, point)
        assert out["value"] == value, fn.__name__
        got = [v for role, v in out.items() if role.startswith("grad:")]
        assert [r for r in out if r.startswith("grad:")] == [
            f"grad:{p}" for p in inspect.signature(fn).parameters
        ]
        assert all(close(a, b) for a, b in zip(got, grads, strict=True)), (
            fn.__name__,
            got,
            grads,
        )


@pytest.mark.parametrize("model", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_generated_module_computes_like_the_ir(model):
    """The emitted-code snapshot (generated/<stem>.py) computes exactly what its IR does, and the engine's numbers."""
    spec = importlib.util.spec_from_file_location(
        f"golden_generated_{model.stem}", ROOT / "generated" / model.name
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for fn in functions(model):
        if is_array_function(fn):
            continue  # MLPs on batches: test_mlp.py and test_demos.py compare them with the engine
        point = example_point(fn)
        value, grads = engine(fn, point)
        got_value, got_grads = getattr(module, fn.__name__ + "_grad")(*point)
        assert got_value == value and getattr(module, fn.__name__)(*point) == value
        assert all(close(a, b) for a, b in zip(got_grads, grads, strict=True)), (
            fn.__name__,
            got_grads,
            grads,
        )
        # the emitter writes one IR node per operation: no rounding of its own
        ir = lower(fn)
        out = evaluate(ir.grad_opt, point)
        assert list(got_grads) == [
            v for role, v in out.items() if role.startswith("grad:")
        ]
