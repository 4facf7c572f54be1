"""Compare the emitted training step of two gradgen commits, in one run.

    .venv/bin/python benchmarks/bench_regress.py [--baseline REF] [--rounds N] [--steps K]

Compiles `examples/moons.py` (2-16-16-1, SVM + L2, B = 100) and
`benchmarks/wide_mlp.py` (784-128-64-10, softmax cross-entropy, B = 256)
twice: with the gradgen of git commit REF (default `HEAD~1`; checked out
into a temporary worktree and imported from there) and with the working
tree's.  Both modules are loaded into this process and timed interleaved: a
round runs K SGD steps (`loss_grad` plus `p -= lr * g` for every parameter
array) of each module, in a new seeded random order each round.  The table
gives each module's median per-step time and the median over rounds of the
per-round ratio new/old (which cancels most of a shared machine's drift).
Before timing, both modules' losses and gradients at the same point are
checked to agree (relative 1e-12): a speed-up that changed the numbers would
be no speed-up.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"moons": ROOT / "examples" / "moons.py", "wide": ROOT / "benchmarks" / "wide_mlp.py"}


def compile_with(src_root: Path, out: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(src_root))
    code = (
        "import sys, gradgen; assert gradgen.__file__.startswith(sys.argv[1]), gradgen.__file__; "
        "from gradgen.cli import main; sys.exit(main(sys.argv[2:]))"
    )
    cmd = [sys.executable, "-c", code, str(src_root), "compile", *map(str, MODELS.values()), "-o", str(out), "-q"]
    subprocess.run(cmd, check=True, env=env, cwd=src_root)


def load(path: Path, tag: str):
    spec = importlib.util.spec_from_file_location(f"{path.stem}_{tag}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def data(name: str, rng):
    if name == "moons":
        shapes = [(16, 2), (16,), (16, 16), (16,), (1, 16), (1,)]
        X = rng.standard_normal((100, 2))
        y = np.where(rng.random(100) < 0.5, -1.0, 1.0)
        return shapes, (X, y), 0.1
    shapes = [(128, 784), (128,), (64, 128), (64,), (10, 64), (10,)]
    X = rng.standard_normal((256, 784))
    Y = np.eye(10)[rng.integers(0, 10, 256)]
    return shapes, (X, Y), 0.1


def stepper(loss_grad, P0, D, lr):
    def run(k: int) -> float:
        P = [p.copy() for p in P0]
        t0 = time.perf_counter()
        for _ in range(k):
            _, grads = loss_grad(*P, *D)
            for p, g in zip(P, grads):
                p -= lr * g
        return (time.perf_counter() - t0) / k

    return run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", default="HEAD~1", help="the git commit to compare against (default HEAD~1)")
    ap.add_argument("--rounds", type=int, default=31)
    ap.add_argument("--steps", type=int, default=0, help="steps per timed batch (default: moons 200, wide 10)")
    ap.add_argument("--only", choices=sorted(MODELS))
    args = ap.parse_args(argv)
    rev = subprocess.run(["git", "rev-parse", "--short", args.baseline], cwd=ROOT, capture_output=True, text=True, check=True)
    base = rev.stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wt = tmp / "baseline"
        subprocess.run(["git", "worktree", "add", "-q", "--detach", str(wt), base], cwd=ROOT, check=True)
        try:
            compile_with(wt, tmp / "old")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(wt)], cwd=ROOT, check=True)
        compile_with(ROOT, tmp / "new")
        print(f"baseline {base} vs working tree; {args.rounds} interleaved rounds; numpy {np.__version__}")
        print(f"{'model':8} {'old us/step':>12} {'new us/step':>12} {'new/old':>8}  lines old -> new")
        for name, path in MODELS.items():
            if args.only and name != args.only:
                continue
            old, new = load(tmp / "old" / path.name, "old"), load(tmp / "new" / path.name, "new")
            rng = np.random.default_rng(0)
            shapes, D, lr = data(name, rng)
            P0 = [rng.standard_normal(s) * 0.1 for s in shapes]
            (v_old, g_old), (v_new, g_new) = old.loss_grad(*P0, *D), new.loss_grad(*P0, *D)
            assert np.isclose(v_old, v_new, rtol=1e-12, atol=0), (name, v_old, v_new)
            for a, b in zip(g_old, g_new):
                np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-15, err_msg=name)
            k = args.steps or (200 if name == "moons" else 10)
            runs = {"old": stepper(old.loss_grad, P0, D, lr), "new": stepper(new.loss_grad, P0, D, lr)}
            for r in runs.values():
                r(k)  # warm up
            times = {"old": [], "new": []}
            order = random.Random(1)
            for _ in range(args.rounds):
                tags = ["old", "new"]
                order.shuffle(tags)
                for t in tags:
                    times[t].append(runs[t](k))
            ratio = statistics.median(n / o for o, n in zip(times["old"], times["new"]))
            lines = [len((tmp / d / path.name).read_text().splitlines()) for d in ("old", "new")]
            med = {t: statistics.median(v) * 1e6 for t, v in times.items()}
            print(f"{name:8} {med['old']:12.1f} {med['new']:12.1f} {ratio:8.3f}  {lines[0]} -> {lines[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
