"""The numba backend's SGD step against the NumPy backend's and the best hand-written NumPy step.

    .venv/bin/python benchmarks/bench_numba.py [--only moons|wide] [--rounds 7] [--threads N]
        [--sweep [--widths 16 64 128]]

Rows (one process, interleaved in a new seeded order each round, parameters reset
outside the timer; medians of per-step times, and each row's ratio to the best hand
NumPy step as the median over rounds of the two times in the same round):

* hand NumPy (best): `HandStep` (benchmarks/peers.py, shared with bench_mlp.py): flat parameter and gradient buffers
  (each layer's arrays are views into them), every product and activation written
  into preallocated arrays with `out=`, the L2 term one `np.vdot`, and one fused
  update of the flat buffer;
* gradgen numpy `loss_step`: `gradgen compile MODEL` (the NumPy backend), the parameters
  views into one buffer as `gradgen.params.read` returns them (the step's fast path:
  preallocated arrays, one fused update; gradgen.backends.lean);
* gradgen numpy, separate arrays: the same with one array per parameter (the plain step:
  `loss_grad`, then one update per array);
* gradgen numba `loss_step`: `gradgen compile MODEL --backend numba`, one call a step;
* gradgen numba `loss_train`: the same module, all the batch's steps in one call
  (per-step time = the call's time / steps);
* JAX jit (asynchronous; and 100 steps in one `lax.fori_loop`), if jax is installed.

Workloads: moons (examples/moons.py: B=100, 2-16-16-1, SVM + 1e-4 * L2) and wide
(benchmarks/wide_mlp.py with `step=gradgen.sgd()`: 784-128-64-10, B=256, softmax
cross-entropy).  `--sweep`: the 2-H-H-1 SVM model for B in 1..10,000 (H=16) and H in
--widths (B=100): the numba step's ratio to the NumPy backend's step.  The compiled
modules are cached under --cache (keyed by the model's text, gradgen's source and the backend).
Before timing, every row's losses over 3 steps are checked against the NumPy
backend's (relative 1e-9).  BLAS threads stay warm: each row runs a few untimed
steps right before its timed batch.  `--threads N` fixes every BLAS pool (NumPy's
OpenBLAS and SciPy's, which numba's products call) and XLA's at N threads: with each
library's default, two OpenBLAS pools and XLA's spin against each other on a loaded
2-core machine and the rows slow down by turns.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from peers import HandStep, jax_step_and_train  # noqa: E402  (shared with bench_mlp.py)

GRADGEN = [sys.executable, "-m", "gradgen"]
# the compiler's own text: a module compiled by another gradgen is compiled again
GRADGEN_SOURCE = b"".join(p.read_bytes() for p in sorted((ROOT / "gradgen").rglob("*.py")))


SVM_MODEL = '''import random

import numpy as np

import gradgen
from gradgen import nn

random.seed(0)
model = nn.MLP(2, [{H}, {H}, 1])


def svm_loss(x, yi):
    return (1 + -yi * model(x)).relu()


@gradgen.export(example=dict(X=np.zeros((1, 2)), y=np.zeros(1)), step=gradgen.sgd())
def loss(X, y):
    return gradgen.mean(svm_loss, X, y) + 1e-4 * sum(p * p for p in model.parameters())
'''


def compiled(model_text: str, stem: str, backend: str, cache: Path):
    """The module `gradgen compile` writes for this model text and backend (cached)."""
    key = hashlib.sha256(model_text.encode() + GRADGEN_SOURCE).hexdigest()[:12]
    d = cache / f"{stem}-{key}"
    src, out = d / f"{stem}.py", d / backend / f"{stem}.py"
    if not out.exists():
        d.mkdir(parents=True, exist_ok=True)
        src.write_text(model_text)
        t0 = time.perf_counter()
        subprocess.run(GRADGEN + ["compile", str(src), "-o", str(d / backend), "--backend", backend, "--quiet"], check=True)
        print(f"  (compiled {stem} --backend {backend} in {time.perf_counter() - t0:.1f} s)", flush=True)
    spec = importlib.util.spec_from_file_location(f"{stem}_{backend}_{key}", out)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod, src


def model_params(src: Path):
    sys.path.insert(0, str(ROOT))
    import gradgen
    from gradgen.frontend.loader import load_model

    module, _ = load_model(str(src))
    return [a.copy() for a in gradgen.params.read(module.model).values()]


def peers(np_mod, nb_mod, params, X, y, loss):
    """name -> (run(ps, lrs) -> losses, fresh(base) -> ps)."""
    hand = HandStep(params, X.shape[0], loss)

    def hand_run(ps, lrs):
        return [hand.step(X, y, lr) for lr in lrs]

    def hand_fresh(base):
        hand.set(base)
        return None

    def copies(base):
        return [a.copy() for a in base]

    def flat(base):  # views into one buffer, as gradgen.params.read returns them
        from gradgen.params import flat

        return flat(base)

    np_step = lambda ps, lrs: [np_mod.loss_step(*ps, X, y, lr) for lr in lrs]  # noqa: E731
    out = {
        "hand NumPy (best)": (hand_run, hand_fresh),
        "gradgen numpy loss_step": (np_step, flat),
        "gradgen numpy, separate arrays": (np_step, copies),
        "gradgen numba loss_step": (lambda ps, lrs: [nb_mod.loss_step(*ps, X, y, lr) for lr in lrs], copies),
        "gradgen numba loss_train": (lambda ps, lrs: nb_mod.loss_train(*ps, X, y, lrs), copies),
    }
    out.update(jax_peers(params, X, y, loss))
    return out


def jax_peers(params, X, y, loss):
    try:
        import jax
    except ImportError:
        return {}
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    def f(ps, X, y):
        h = X
        for k in range(0, len(ps) - 2, 2):
            h = jnp.maximum(h @ ps[k].T + ps[k + 1], 0.0)
        z = h @ ps[-2].T + ps[-1]
        if loss == "svm":
            return jnp.maximum(1.0 - y * z[:, 0], 0.0).mean() + 1e-4 * sum(jnp.vdot(p, p) for p in ps)
        return (jnp.log(jnp.exp(z).sum(axis=1)) - (y * z).sum(axis=1)).mean()

    step, train = jax_step_and_train(jax, f, X, y)

    def run_async(ps, lrs):
        vs = []
        for lr in lrs:
            ps[:], v = step(ps, lr)
            vs.append(v)
        jax.block_until_ready(ps)
        return [float(v) for v in vs]

    def run_loop(ps, lrs):
        ps[:], vs = train(ps, jnp.asarray(lrs))
        return list(np.asarray(vs))

    fresh = lambda base: [jnp.asarray(a) for a in base]  # noqa: E731
    return {"JAX jit (asynchronous)": (run_async, fresh), "JAX jit fori_loop": (run_loop, fresh)}


def check(rows, base, np_mod, X, y, lrs):
    want = np_mod.loss_train(*[a.copy() for a in base], X, y, list(lrs[:3]))
    for name, (run, fresh) in rows.items():
        ps = fresh(base)
        got = np.asarray(run(ps, lrs[:3]), dtype=float)
        err = float(np.max(np.abs(got - want) / np.abs(want)))
        assert np.all(np.isfinite(want)), "the NumPy backend's losses are not finite"
        assert err < 1e-9, f"{name}: losses differ from the NumPy backend's by {err:.1e}"


def measure(rows, base, lrs, rounds, warm=3):
    times = {k: [] for k in rows}
    ratios = {k: [] for k in rows}
    rng = random.Random(0)
    for _ in range(rounds):
        order = list(rows)
        rng.shuffle(order)
        got = {}
        for name in order:
            run, fresh = rows[name]
            ps = fresh(base)
            run(ps, lrs[:warm])  # BLAS threads (and caches) warm, untimed
            ps = fresh(base)
            t0 = time.perf_counter()
            run(ps, lrs)
            got[name] = (time.perf_counter() - t0) / len(lrs) * 1e6
        for name in rows:
            times[name].append(got[name])
            ratios[name].append(got[name] / got["hand NumPy (best)"])
    return {k: (statistics.median(times[k]), statistics.median(ratios[k])) for k in rows}


def table(title, result):
    print(f"\n{title}")
    print(f"  {'row':<28} {'us/step':>9} {'x hand':>7}")
    for name, (t, r) in result.items():
        print(f"  {name:<28} {t:9.1f} {r:7.2f}")


def moons_data(B, seed=1337):
    if B == 100 and seed == 1337:
        sys.path.insert(0, str(ROOT / "examples"))
        import moons

        return moons.make_data()
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((B, 2))
    return X, np.where(X[:, 0] * X[:, 1] > 0, 1.0, -1.0)


def run_moons(args):
    text = (ROOT / "examples" / "moons.py").read_text()
    np_mod, src = compiled(text, "moons", "numpy", args.cache)
    nb_mod, _ = compiled(text, "moons", "numba", args.cache)
    base = model_params(src)
    X, y = moons_data(100)
    lrs = np.array([1.0 - 0.9 * k / 100 for k in range(100)])
    rows = peers(np_mod, nb_mod, base, X, y, "svm")
    check(rows, base, np_mod, X, y, lrs)
    res = measure(rows, base, lrs, args.rounds)
    table("moons: B=100, 2-16-16-1, SVM + L2, 100 steps (micrograd's schedule)", res)
    return res


def run_wide(args):
    text = (ROOT / "benchmarks" / "wide_mlp.py").read_text()
    text = text.replace("Y=np.zeros((1, 10))))", "Y=np.zeros((1, 10))), step=gradgen.sgd())")
    np_mod, src = compiled(text, "wide_mlp", "numpy", args.cache)
    nb_mod, _ = compiled(text, "wide_mlp", "numba", args.cache)
    base = model_params(src)
    rs = np.random.RandomState(0)  # bench_mlp.py's batch: exp() of the logits stays finite
    X = rs.uniform(0.0, 0.1, (256, 784))
    Y = np.eye(10)[rs.randint(0, 10, 256)]
    lrs = np.full(10, 0.1)
    rows = peers(np_mod, nb_mod, base, X, Y, "ce")
    check(rows, base, np_mod, X, Y, lrs)
    res = measure(rows, base, lrs, args.rounds)
    table("wide: B=256, 784-128-64-10, softmax cross-entropy, 10 steps of lr 0.1", res)
    return res


def run_sweep(args):
    print("\nsweep: 2-H-H-1 SVM + L2; numba loss_step and loss_train / NumPy backend loss_step")
    print(f"  {'H':>5} {'B':>6} {'numpy us':>9} {'numba step':>11} {'numba train':>12}")
    configs = [(16, B) for B in (1, 10, 100, 1000, 10000)] + [(H, 100) for H in args.widths if H != 16]
    for H, B in configs:
        text = SVM_MODEL.format(H=H)
        np_mod, src = compiled(text, f"svm{H}", "numpy", args.cache)
        nb_mod, _ = compiled(text, f"svm{H}", "numba", args.cache)
        base = model_params(src)
        X, y = moons_data(B, seed=H)
        steps = max(5, min(100, 200000 // (B * H)))
        lrs = np.full(steps, 0.01)
        rows = peers(np_mod, nb_mod, base, X, y, "svm")
        rows = {k: v for k, v in rows.items() if "JAX" not in k}
        check(rows, base, np_mod, X, y, lrs)
        res = measure(rows, base, lrs, max(3, args.rounds // 2))
        t = res["gradgen numpy loss_step"][0]
        print(
            f"  {H:5d} {B:6d} {t:9.1f} {res['gradgen numba loss_step'][0] / t:11.2f}"
            f" {res['gradgen numba loss_train'][0] / t:12.2f}",
            flush=True,
        )


def limit_threads(n):
    """Every BLAS pool (NumPy's OpenBLAS, and SciPy's, which numba's products call) and XLA's to n
    threads: two pools spinning on a loaded 2-core machine make every row slow by turns."""
    if n is None:
        print("threads: each library's default")
        return
    os.environ["XLA_FLAGS"] = f"--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads={n}"
    import scipy.linalg.cython_blas  # noqa: F401  (numba's BLAS: loaded now, so that it is limited too)
    from threadpoolctl import threadpool_limits

    LIMITS.append(threadpool_limits(limits=n))
    print(f"threads: {n} (BLAS pools and XLA)")


LIMITS: list = []  # threadpoolctl's limits, kept for the run


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("moons", "wide"))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--sweep", action="store_true", help="B from 1 to 10,000 and hidden widths --widths")
    ap.add_argument("--widths", type=int, nargs="+", default=[16, 64, 128])
    ap.add_argument(
        "--threads", type=int, help="BLAS threads of every library (and XLA's), fixed; default: their own choice"
    )
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "gradgen-bench-numba")
    args = ap.parse_args()
    limit_threads(args.threads)
    try:
        import jax  # noqa: F401
    except ImportError:
        print("(jax is not installed: no JAX rows)")
    if args.only in (None, "moons"):
        res = run_moons(args)
        r = res["gradgen numba loss_step"][1]
        rt = res["gradgen numba loss_train"][1]
        print(f"  target: numba <= 0.5x hand: loss_step {r:.2f}, loss_train {rt:.2f}")
    if args.only in (None, "wide"):
        res = run_wide(args)
        r = min(res["gradgen numba loss_step"][1], res["gradgen numba loss_train"][1])
        print(f"  target: numba <= 0.85x hand: {r:.2f} {'PASS' if r <= 0.85 else 'FAIL'}")
    if args.sweep:
        run_sweep(args)


if __name__ == "__main__":
    main()
