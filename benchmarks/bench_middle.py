"""The middle of the pipeline alone on the K-step scalar chain (issue #11): the passes on the
traced graph, reverse mode, the passes on the gradient graph -- CPU seconds and us a node.

    .venv/bin/python benchmarks/bench_middle.py                       # 20,000 steps, this checkout
    .venv/bin/python benchmarks/bench_middle.py --steps 200000 --repeat 1
    .venv/bin/python benchmarks/bench_middle.py --against /tmp/main  # a checkout (or a gradgen/ copy's parent)

The chain is bench_chain.py's model (`x = (x * a + b).tanh()`, 3 nodes a step), traced
once per child process; each phase then runs `--repeat` times (gc off, as in a compile) and
the median CPU time is printed.  With `--against`, children of the two checkouts alternate
(`--rounds` pairs; the machine may be shared, so compare medians of the same minutes) and
the ratio this / other is printed per phase.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import gc, json, statistics, sys, time
gc.disable()
from gradgen.frontend.loader import load_model
from gradgen.frontend.trace import trace_function
from gradgen.export import example_of, params_of
from gradgen.passes import optimize
from gradgen.autodiff.reverse import grad
from gradgen.api import differentiable_inputs
_, fns = load_model(sys.argv[1])
fn = fns[0]
fwd, _ = trace_function(fn, example=example_of(fn), params=params_of(fn))
times = {"passes (forward)": [], "reverse mode": [], "passes (gradient)": []}
for _ in range(int(sys.argv[2])):
    t0 = time.process_time(); f = optimize(fwd); t1 = time.process_time()
    g = grad(f, wrt=differentiable_inputs(f)); t2 = time.process_time()
    optimize(g); t3 = time.process_time()
    for k, v in zip(times, (t1 - t0, t2 - t1, t3 - t2)):
        times[k].append(v)
    n_fwd, n_grad = len(f.nodes), len(g.nodes)
    del g
print(json.dumps(dict(median={k: statistics.median(v) for k, v in times.items()}, n_fwd=n_fwd, n_grad=n_grad)))
"""


def run(checkout: str, model: str, repeat: int) -> dict:
    env = dict(os.environ, PYTHONPATH=checkout)
    out = subprocess.run([sys.executable, "-c", CHILD, model, str(repeat)], capture_output=True, text=True,
                         cwd=os.path.dirname(model), env=env)  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"{checkout}: failed\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each phase per child (the median)")
    ap.add_argument("--against", help="another checkout (a folder holding gradgen/): print ratios")
    ap.add_argument("--rounds", type=int, default=2, help="with --against: alternating pairs of children")
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(HERE, "benchmarks"))
    from bench_chain import MODEL

    with tempfile.TemporaryDirectory() as d:
        model = os.path.join(d, "chainmodel.py")
        with open(model, "w") as fh:
            fh.write(MODEL.format(steps=args.steps))
        pairs = []
        for _ in range(args.rounds if args.against else 1):
            this = run(HERE, model, args.repeat)
            other = run(os.path.abspath(args.against), model, args.repeat) if args.against else None
            pairs.append((this, other))
    this = pairs[0][0]
    per = {"passes (forward)": this["n_fwd"], "reverse mode": this["n_grad"] - this["n_fwd"],
           "passes (gradient)": this["n_grad"]}  # fmt: skip
    print(f"{args.steps:,} steps: {this['n_fwd']:,} forward nodes, {this['n_grad']:,} in the gradient graph")
    for phase in per:
        mine = statistics.median(t["median"][phase] for t, _ in pairs)
        line = f"  {phase:<18} {mine:7.3f} s cpu  {mine / per[phase] * 1e6:5.2f} us a node"
        if args.against:
            theirs = statistics.median(o["median"][phase] for _, o in pairs)
            line += f"   other {theirs:7.3f} s   this/other {mine / theirs:5.2f}"
        print(line)


if __name__ == "__main__":
    main()
