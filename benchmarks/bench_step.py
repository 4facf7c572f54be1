"""loss_step (export step=gradgen.sgd()) against loss_grad + a hand-written in-place SGD loop.

    python benchmarks/bench_step.py [--rounds 7] [--steps 200]

Moons (B=100, 2-16-16-1, SVM + L2), generated/moons.py; the two variants run
interleaved in one process and the table gives medians of per-step times.
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "examples"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    import moons
    import gradgen
    from generated import moons as compiled

    X, y = moons.make_data()
    base = list(gradgen.params.read(moons.model).values())

    def grad_loop(ps, n):
        for _ in range(n):
            loss, grads = compiled.loss_grad(*ps, X, y)
            for p, g in zip(ps, grads):
                p -= 0.01 * g

    def step_loop(ps, n):
        for _ in range(n):
            compiled.loss_step(*ps, X, y, 0.01)

    def train_call(ps, n):
        compiled.loss_train(*ps, X, y, [0.01] * n)

    variants = {"loss_grad + loop": grad_loop, "loss_step": step_loop, "loss_train": train_call}
    times = {k: [] for k in variants}
    for _ in range(args.rounds):
        for name, run in variants.items():
            ps = [a.copy() for a in base]
            t0 = time.perf_counter()
            run(ps, args.steps)
            times[name].append((time.perf_counter() - t0) / args.steps * 1e6)
    ref = statistics.median(times["loss_grad + loop"])
    print(f"{'variant':<20} {'us/step':>9} {'ratio':>7}")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"{name:<20} {m:9.1f} {m / ref:7.2f}")


if __name__ == "__main__":
    main()
