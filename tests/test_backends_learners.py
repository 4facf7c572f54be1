"""Every backend computes the same numbers on every model we have: the examples and the learners' models.

Each model file is compiled with each backend; every exported function (and its gradient
function) is called at one random point built from its Signature (parameter and data arrays
of their shapes with B = 3, positive scalars), and each backend's value and gradients must equal
the NumPy backend's to 1e-12 relative.  The NumPy backend itself is checked against the engine,
torch and finite differences elsewhere (tests/test_learners.py, test_examples.py, test_mlp.py);
this file extends those oracles to the torch backend across every model shape we know.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import gradgen

ROOT = Path(__file__).resolve().parents[1]
MODELS = sorted((ROOT / "examples").glob("*.py")) + sorted((ROOT / "tests" / "learners").glob("*.py"))
BACKENDS = ("numpy", "torch")


@pytest.fixture(scope="module")
def compiled():
    cache = {}

    def get(path: Path, backend: str):
        if (path, backend) not in cache:
            cache[path, backend] = gradgen.compile_file(str(path), backend=backend)
        return cache[path, backend]

    return get


def point(sig, rng):
    """One argument per Signature input: arrays of their shapes (B = 3), scalars in [0.5, 1.5]."""
    out = []
    for i in sig.inputs:
        shape = tuple(3 if d == "B" else d for d in i.shape)
        out.append(rng.uniform(0.5, 1.5) if not shape else rng.standard_normal(shape))
    return out


def as_backend(args, backend):
    if backend == "numpy":
        return args
    return [torch.tensor(a, dtype=torch.float64) for a in args]


def numbers(x):
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, (tuple, list)):
        return [numbers(v) for v in x]
    return np.asarray(x, dtype=float)


def same(a, b) -> bool:
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-12, atol=1e-14, equal_nan=True))


@pytest.mark.parametrize("path", MODELS, ids=[f"{p.parent.name}/{p.stem}" for p in MODELS])
def test_torch_backend_equals_numpy_backend(compiled, path):
    ref = compiled(path, "numpy")
    mod = compiled(path, "torch")
    rng = np.random.default_rng(7)
    assert ref.functions, path
    for ir in ref.functions:
        args = point(ir.signature, rng)
        names = [ir.name] + ([ir.name + "_grad"] if ir.grad_opt is not None else [])
        for name in names:
            want = numbers(getattr(ref, name)(*as_backend(args, "numpy")))
            got = numbers(getattr(mod, name)(*as_backend(args, "torch")))
            assert same(got, want), f"{path.name}: {name}: torch {got} vs numpy {want}"
