"""The NumPy backend's SGD step, call by call, against the best hand-written NumPy step.

    .venv/bin/python benchmarks/bench_lean.py [--only moons|wide] [--calls 3000]
    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_lean.py   # one BLAS thread

Rows: `HandStep` (benchmarks/bench_numba.py, verbatim: flat buffers, `out=`, one fused
update), gradgen's `loss_step` with the parameters as views into one buffer (what
`gradgen.params.read` returns: the lean step of gradgen/backends/lean.py), and the same
`loss_step` with one array per parameter (the plain step: `loss_grad`, then one update
per array).  The three are called in turn, one step each, the order rotating every
call, and the table gives each row's median per-call time and its ratio to the hand
step's median: on a loaded machine a preempted call moves a median little, where a
batch of 100 steps (bench_numba.py's rounds) takes the whole preemption.  The modules
are compiled fresh into a temporary directory (bench_numba.py's cache is keyed by the
model's text only, not by gradgen's version).  Before timing, 20 steps of each row are
checked against the plain step's losses (relative 1e-12).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_numba import HandStep, moons_data  # noqa: E402

import gradgen  # noqa: E402
from gradgen.frontend.loader import load_model  # noqa: E402


def compile_module(text: str, stem: str, tmp: Path):
    src = tmp / f"{stem}.py"
    src.write_text(text)
    subprocess.run([sys.executable, "-m", "gradgen", "compile", str(src), "-o", str(tmp / "out"), "--quiet"], check=True)
    spec = importlib.util.spec_from_file_location(f"{stem}_lean", tmp / "out" / f"{stem}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    module, _ = load_model(str(src))
    return mod, [a.copy() for a in gradgen.params.read(module.model).values()]


def rows(mod, base, X, y, loss, lr):
    hand = HandStep(base, X.shape[0], loss)
    flat = gradgen.params.flat(base)
    separate = [a.copy() for a in base]
    return {
        "hand NumPy (best)": lambda: hand.step(X, y, lr),
        "gradgen loss_step (params.read)": lambda: mod.loss_step(*flat, X, y, lr),
        "gradgen loss_step (separate)": lambda: mod.loss_step(*separate, X, y, lr),
    }, hand


def check(mod, base, X, y, loss, lr):
    fns, _ = rows(mod, base, X, y, loss, lr)
    want = [fns["gradgen loss_step (separate)"]() for _ in range(20)]
    for name, f in fns.items():
        if "separate" in name:
            continue
        got = [f() for _ in range(20)]
        err = max(abs(a - b) / abs(b) for a, b in zip(got, want))
        assert err < 1e-12, f"{name}: losses differ from the plain step's by {err:.1e}"


def measure(fns, calls):
    t = {k: [] for k in fns}
    items = list(fns.items())
    clock = time.perf_counter_ns
    for i in range(calls):
        r = i % len(items)
        for name, f in items[r:] + items[:r]:
            t0 = clock()
            f()
            t[name].append(clock() - t0)
    hand = statistics.median(t["hand NumPy (best)"])
    return {k: (statistics.median(v) / 1e3, statistics.median(v) / hand) for k, v in t.items()}


def table(title, res):
    print(f"\n{title}")
    print(f"  {'row':<34} {'us/step':>9} {'x hand':>7}")
    for name, (us, r) in res.items():
        print(f"  {name:<34} {us:9.1f} {r:7.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("moons", "wide"))
    ap.add_argument("--calls", type=int, default=3000, help="calls of each row (wide: a tenth)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if args.only in (None, "moons"):
            mod, base = compile_module((ROOT / "examples" / "moons.py").read_text(), "moons", tmp)
            X, y = moons_data(100)
            check(mod, base, X, y, "svm", 0.01)
            fns, _ = rows(mod, base, X, y, "svm", 1e-3)  # small steps: the parameters stay near the start
            table("moons: B=100, 2-16-16-1, SVM + L2", measure(fns, args.calls))
        if args.only in (None, "wide"):
            text = (ROOT / "benchmarks" / "wide_mlp.py").read_text()
            text = text.replace("Y=np.zeros((1, 10))))", "Y=np.zeros((1, 10))), step=gradgen.sgd())")
            mod, base = compile_module(text, "wide_mlp", tmp)
            rs = np.random.RandomState(0)
            X = rs.uniform(0.0, 0.1, (256, 784))
            Y = np.eye(10)[rs.randint(0, 10, 256)]
            check(mod, base, X, Y, "ce", 0.1)
            fns, _ = rows(mod, base, X, Y, "ce", 1e-3)
            table("wide: B=256, 784-128-64-10, softmax cross-entropy", measure(fns, max(20, args.calls // 10)))


if __name__ == "__main__":
    main()
