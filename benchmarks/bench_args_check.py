"""The argument check's cost: moons `loss_grad` (B=100) and `_args` alone, two generated modules interleaved.

    git show ea7688a:generated/moons.py > /tmp/old_moons.py
    python benchmarks/bench_args_check.py /tmp/old_moons.py generated/moons.py

Prints the median (and min) over 31 rounds of the best of 5 x 500 steps (5 x 5000 checks).
Both modules must give bit-identical values and gradients (asserted first).
"""

import importlib.util
import statistics
import sys
import timeit

import numpy as np


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(old_path: str, new_path: str) -> None:
    old, new = load(old_path, "old_moons"), load(new_path, "new_moons")
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(s) for s in [(16, 2), (16,), (16, 16), (16,), (1, 16), (1,), (100, 2)]]
    args.append(np.sign(rng.standard_normal(100)))
    a, b = old.loss_grad(*args), new.loss_grad(*args)
    assert a[0] == b[0] and all((p == q).all() for p, q in zip(a[1], b[1]))
    runs = {
        "old step": lambda: old.loss_grad(*args),
        "new step": lambda: new.loss_grad(*args),
        "old check": lambda: old._args(old._loss_grad_args, *args),
        "new check": lambda: new._args(new._loss_grad_args, *args),
    }
    res = {k: [] for k in runs}
    for _ in range(31):
        for k, f in runs.items():
            n = 500 if "step" in k else 5000
            res[k].append(min(timeit.repeat(f, number=n, repeat=5)) / n * 1e6)
    for k, v in res.items():
        print(f"{k:10s} median {statistics.median(v):7.3f} us  (min {min(v):.3f})")


if __name__ == "__main__":
    main(*sys.argv[1:3])
