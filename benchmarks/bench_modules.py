"""A user's Modules compiled: re-rolled matrix code against per-element code (--no-reroll).

    python benchmarks/bench_modules.py [--rounds 7] [--calls 50] [--batch 256]

examples/residual.py (a residual block, 4-8-4) and examples/rnn_cell.py (an
RNN cell, 3 -> 8, unrolled over 4 steps), each compiled twice in this
process (gradgen.compile_file with rerolling on and off), called on a batch
of B examples; the two variants run interleaved, and the table gives the
emitted line counts and median times per loss_grad call.
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    import gradgen
    from gradgen.frontend.loader import load_model

    rng = np.random.default_rng(0)
    print(f"{'model':10} {'variant':10} {'lines':>6} {'median ms/call':>15}")
    for stem, owner, data in (
        ("residual", "block", lambda: (rng.uniform(-1, 1, (args.batch, 4)), rng.uniform(-1, 1, (args.batch, 4)))),
        ("rnn_cell", "cell", lambda: (rng.uniform(-1, 1, (args.batch, 4, 3)), rng.uniform(-1, 1, args.batch))),
    ):
        path = os.path.join(ROOT, "examples", f"{stem}.py")
        module, _ = load_model(path)
        params = list(gradgen.params.read(getattr(module, owner)).values())
        batch = data()
        variants = {}
        for name, reroll in (("reroll", True), ("per-elem", False)):
            mod = gradgen.compile_file(path, rerolling=reroll)
            lines = mod.source.count("\n")
            variants[name] = (mod.loss_grad, lines, [])
        for _ in range(args.rounds):
            for fn, _, times in variants.values():
                t0 = time.perf_counter()
                for _ in range(args.calls):
                    fn(*params, *batch)
                times.append((time.perf_counter() - t0) / args.calls * 1e3)
        for name, (_, lines, times) in variants.items():
            print(f"{stem:10} {name:10} {lines:>6} {statistics.median(times):>15.3f}")
        r = statistics.median(variants["per-elem"][2]) / statistics.median(variants["reroll"][2])
        print(f"{stem:10} {'ratio':10} {'':>6} {r:>14.1f}x")


if __name__ == "__main__":
    main()
