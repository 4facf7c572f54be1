"""The torch backend (`--backend torch`) against the same oracles as the NumPy one.

* every scalar example (the lecture neuron, micrograd's tests, ...): both backends'
  `f` and `f_grad` equal the interpreted engine to 1e-12 relative (torch on 0-d tensors);
* moons (`loss_grad`, `scores`) and a wider MLP with a softmax cross-entropy: both
  backends equal a hand-written PyTorch float64 model (torch.autograd.grad) to 1e-12
  relative, and each other;
* the emitted torch module imports torch only, is black-clean, deterministic across
  processes, hard-codes no device, and checks its arguments (shapes, dtypes) with
  one-line errors naming the argument.
"""

from __future__ import annotations

import ast
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import gradgen
from gradgen.backends.module import format_source
from gradgen.frontend.loader import load_model
from gradgen import params as params_mod
from test_examples import CASES, EXAMPLES, engine, example_point, random_points

ROOT = Path(__file__).resolve().parents[1]
REL = 1e-12
BACKENDS = ["numpy", "torch"]


def close(got, want, rel=REL, abs_=1e-14) -> bool:
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    return got.shape == want.shape and bool(np.allclose(got, want, rtol=rel, atol=abs_))


def as_numpy(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


@pytest.fixture(scope="module")
def compiled():
    """(stem, backend) -> (compiled module, {name: model function})."""
    out = {}
    for path in EXAMPLES:
        _, fns = load_model(str(path))
        for b in BACKENDS:
            out[path.stem, b] = (gradgen.compile_file(str(path), backend=b), {f.__name__: f for f in fns})
    return out


# -- scalar functions: 0-d tensors in and out ---------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("stem,name", CASES, ids=[f"{s}.{n}" for s, n in CASES])
def test_scalar_functions_equal_the_engine(compiled, backend, stem, name):
    mod, fns = compiled[stem, backend]
    fn = fns[name]
    f, f_grad = getattr(mod, name), getattr(mod, name + "_grad")
    for point in [example_point(fn)] + random_points(stem, fn):
        value, grads = engine(fn, point)
        args = [torch.tensor(v, dtype=torch.float64) for v in point] if backend == "torch" else point
        got_value, got_grads = f_grad(*args)
        if backend == "torch":
            assert isinstance(got_value, torch.Tensor) and got_value.dtype == torch.float64
            assert all(isinstance(g, torch.Tensor) and g.shape == () for g in got_grads)
        assert close(as_numpy(got_value), value), (name, point)
        assert close(as_numpy(f(*args)), value), (name, point)
        assert close([as_numpy(g) for g in got_grads], grads), (name, point)


def test_torch_scalar_function_takes_plain_numbers(compiled):
    """Floats are made 0-d float64 tensors: neuron_grad(2.0, ...) works and returns tensors."""
    mod, _ = compiled["neuron", "torch"]
    value, grads = mod.neuron_grad(2.0, 0.0, -3.0, 1.0, 6.881373587019543)
    assert isinstance(value, torch.Tensor) and value.item() == pytest.approx(0.7071067811865476, rel=1e-12)
    assert [round(g.item(), 12) for g in grads] == [-1.5, 0.5, 1.0, 0.0, 0.5]  # the lecture's numbers


# -- arrays: moons and a wider MLP vs hand-written PyTorch ----------------------------------


def torch_mlp(ps: dict, X, n_layers: int):
    h = X
    for l in range(n_layers):
        h = h @ ps[f"W{l}"].T + ps[f"b{l}"]
        if l < n_layers - 1:
            h = torch.relu(h)
    return h


def moons_loss(ps, X, y):
    score = torch_mlp(ps, X, 3)[:, 0]
    data_loss = torch.relu(1 + -y * score).mean()
    return data_loss + 1e-4 * sum((p * p).sum() for p in ps.values())


def moons_point(B=7, seed=0):
    sys.path.insert(0, str(ROOT / "examples"))
    import moons  # noqa: E402

    ps = params_mod.read(moons.model)
    rng = np.random.default_rng(seed)
    ps = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in ps.items()}
    X = rng.standard_normal((B, 2))
    y = np.where(rng.standard_normal(B) > 0, 1.0, -1.0)
    return ps, X, y


def torch_oracle(loss, ps: dict, *data):
    ts = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in ps.items()}
    out = loss(ts, *(torch.tensor(d, dtype=torch.float64) for d in data))
    grads = torch.autograd.grad(out, list(ts.values()))
    return out.item(), [g.numpy() for g in grads]


def call(fn, backend, *arrays):
    if backend == "torch":
        arrays = [torch.tensor(a, dtype=torch.float64) for a in arrays]
    return fn(*arrays)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("B", [1, 7])
def test_moons_equals_torch(compiled, backend, B):
    mod, _ = compiled["moons", backend]
    ps, X, y = moons_point(B)
    want_value, want_grads = torch_oracle(moons_loss, ps, X, y)
    value, grads = call(mod.loss_grad, backend, *ps.values(), X, y)
    assert close(as_numpy(value), want_value)
    assert close(as_numpy(call(mod.loss, backend, *ps.values(), X, y)), want_value)
    for g, w in zip(grads, want_grads):
        assert close(as_numpy(g), w)
    with torch.no_grad():
        want_scores = torch_mlp({k: torch.tensor(v) for k, v in ps.items()}, torch.tensor(X), 3)[:, 0].numpy()
    assert close(as_numpy(call(mod.scores, backend, *ps.values(), X)), want_scores)


WIDE = """
import random
import numpy as np
import gradgen
from gradgen import nn

random.seed(0)
model = nn.MLP(12, [24, 16, 5])


def ce(x, onehot):
    logits = model(x)
    s = sum(z.exp() for z in logits)
    return s.log() - sum(t * z for t, z in zip(onehot, logits))


@gradgen.export(example=dict(X=np.zeros((1, 12)), Y=np.zeros((1, 5))))
def loss(X, Y):
    return gradgen.mean(ce, X, Y)
"""


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    path = tmp_path_factory.mktemp("wide") / "wide_model.py"
    path.write_text(WIDE)
    mods = {b: gradgen.compile_file(str(path), backend=b) for b in BACKENDS}
    ns: dict = {}
    exec(compile(WIDE, str(path), "exec"), ns)
    return mods, params_mod.read(ns["model"])


def wide_loss(ps, X, Y):
    z = torch_mlp(ps, X, 3)
    return (torch.logsumexp(z, dim=1) - (Y * z).sum(dim=1)).mean()


@pytest.mark.parametrize("backend", BACKENDS)
def test_wide_mlp_equals_torch(wide, backend):
    mods, ps = wide
    rng = np.random.default_rng(1)
    X = rng.standard_normal((9, 12))
    Y = np.eye(5)[rng.integers(0, 5, 9)]
    want_value, want_grads = torch_oracle(wide_loss, ps, X, Y)
    value, grads = call(mods[backend].loss_grad, backend, *ps.values(), X, Y)
    assert close(as_numpy(value), want_value)
    assert len(grads) == len(want_grads)
    for g, w in zip(grads, want_grads):
        assert close(as_numpy(g), w)


def test_backends_agree_line_for_line(compiled):
    """The torch module is the NumPy module in torch spellings: the same statements, names and comments."""
    np_text = compiled["moons", "numpy"][0].source
    t_text = compiled["moons", "torch"][0].source

    def lhs_and_comments(text):
        body = text.split("\ndef loss_grad(")[1].split("    # forward\n")[1].split("\n\n\n")[0]
        out = []
        for ln in body.splitlines():
            code, _, comment = ln.partition("#")  # a comment too long to share its line goes above it
            out += [code.split(" = ")[0].split(" += ")[0].strip()] if code.strip() else []
            out += [comment.strip()] if comment else []
        return sorted(out)

    assert lhs_and_comments(np_text) == lhs_and_comments(t_text)


# -- the module itself -------------------------------------------------------------------


def test_torch_module_imports_torch_only_and_is_black_clean(compiled):
    for path in EXAMPLES:
        text = compiled[path.stem, "torch"][0].source
        tree = ast.parse(text)
        imports = [ast.unparse(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        assert imports == ["import torch"], path
        assert format_source(text, force=True) == text, path
        assert "cuda" not in text and "'cpu'" not in text and '"cpu"' not in text, path


def test_torch_module_is_deterministic_and_names_its_backend(tmp_path):
    outs = []
    for seed in ("1", "2"):
        out = tmp_path / seed / "out"  # the same depth and name: the same header
        env = {**os.environ, "PYTHONHASHSEED": seed}
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "gradgen",
                "compile",
                "examples/moons.py",
                "-o",
                str(out),
                "--backend",
                "torch",
                "-q",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode == 0, r.stderr
        outs.append((out / "moons.py").read_bytes())
    assert outs[0] == outs[1]
    assert b" --backend torch\n" in outs[0].split(b'"""')[0]


# -- arguments --------------------------------------------------------------------------


def test_torch_arguments_are_checked(compiled):
    mod, _ = compiled["moons", "torch"]
    ps, X, y = moons_point(3)
    ts = [torch.tensor(v) for v in ps.values()]
    Xt, yt = torch.tensor(X), torch.tensor(y)
    with pytest.raises(
        ValueError, match=r"^loss_grad: X must be a float64 torch tensor of shape \(B, 2\), got numpy.ndarray"
    ):
        mod.loss_grad(*ts, X, yt)
    with pytest.raises(
        ValueError, match=r"^loss_grad: W0 has shape \(2, 16\), but loss_grad was compiled for \(16, 2\)$"
    ):
        mod.loss_grad(ts[0].T, *ts[1:], Xt, yt)
    with pytest.raises(ValueError, match=r"^loss: y has shape \(2,\), but loss takes \(B,\) with B = 3"):
        mod.loss(*ts, Xt, yt[:2])
    with pytest.raises(ValueError, match=r"^loss: X has no rows"):
        mod.loss(*ts, Xt[:0], yt[:0])
    with pytest.raises(
        ValueError, match=r"^loss: y must be a float64 torch tensor of shape \(B,\), got a tensor of dtype torch.bool"
    ):
        mod.loss(*ts, Xt, yt > 0)
    # float32 and int tensors are computed in float64
    want = mod.loss(*ts, Xt, yt)
    got = mod.loss(*[t.float() for t in ts], Xt.float(), yt.to(torch.int64))
    assert got.dtype == torch.float64
    assert got.item() == pytest.approx(
        mod.loss(*[t.float().double() for t in ts], Xt.float().double(), yt).item(), rel=1e-15
    )
    assert want.item() == pytest.approx(got.item(), rel=1e-5)


def test_unknown_backend_is_one_line(tmp_path, capsys):
    from gradgen.cli import main

    with pytest.raises(SystemExit):
        main(["compile", "examples/neuron.py", "-o", str(tmp_path), "--backend", "jax"])
    with pytest.raises(gradgen.GradgenError, match="unknown backend 'jax'"):
        gradgen.compile_file(str(ROOT / "examples" / "neuron.py"), backend="jax")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_tensors_in_give_cuda_tensors_out(compiled):
    mod, _ = compiled["moons", "torch"]
    ps, X, y = moons_point(5)
    dev = torch.device("cuda")
    args = [torch.tensor(a, device=dev) for a in [*ps.values(), X, y]]
    value, grads = mod.loss_grad(*args)
    assert value.device.type == "cuda" and all(g.device.type == "cuda" for g in grads)
    want_value, want_grads = torch_oracle(moons_loss, ps, X, y)
    assert close(value.item(), want_value)
    for g, w in zip(grads, want_grads):
        assert close(g.cpu().numpy(), w)


def test_torch_scalar_argument_as_a_tensor_of_any_real_dtype(compiled):
    """A scalar argument may be a 0-d tensor of any real dtype (made float64); a tensor of another shape
    is a ValueError naming it (it used to be an IndexError from the check itself)."""
    mod, _ = compiled["neuron", "torch"]
    want = mod.neuron(2.0, 0.0, -3.0, 1.0, 6.881373587019543)
    x1s = (torch.tensor(2.0), torch.tensor(2), torch.tensor(2.0, dtype=torch.float64))
    for x1 in x1s:
        got = mod.neuron(x1, 0.0, -3.0, 1.0, 6.881373587019543)
        assert got.dtype == torch.float64 and got.item() == pytest.approx(want.item(), rel=1e-7)
    with pytest.raises(ValueError) as e:
        mod.neuron_grad(torch.ones(3), 0.0, -3.0, 1.0, 6.881373587019543)
    assert str(e.value) == "neuron_grad: x1 has shape (3,), but neuron_grad was compiled for ()"
