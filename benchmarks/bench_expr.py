"""Time one forward+backward pass three ways, and one compile of a long model.

    .venv/bin/python benchmarks/bench_expr.py [--repeat N] [--min-time SECONDS]

For the lecture's neuron and micrograd's two test expressions (`sanity_check`,
`more_ops`), the median time of ONE forward+backward:

* engine:   build `gradgen.Value` leaves, call the model function, `.backward()`;
* compiled: the generated `f_grad(...)` on floats;
* torch:    scalar float64 tensors with `requires_grad=True`, the same Python
            function, `.backward()` (eager mode, default threads).

Each is timed timeit-style: calls are batched so that a batch takes at least
`--min-time`, the batch is repeated `--repeat` times, and the table shows the
median per-call time.  Ratios are engine/compiled and torch/compiled.

The last rows time `gradgen compile benchmarks/decay_loop.py` (a 5,000-step
loop, 15,000 IR nodes) as a subprocess, wall clock including interpreter
start-up, and split one in-process build into gradgen.api.build_source's
phases (trace+passes, emit, black).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import gradgen  # noqa: E402
from gradgen import Value  # noqa: E402
from gradgen.api import build_source  # noqa: E402
from gradgen.frontend.loader import load_model  # noqa: E402

# (label, model file, function, point): the neuron at the lecture's point (b as its PyTorch saw it),
# micrograd's expressions at the points of micrograd's test_engine.py
CASES = [
    (
        "neuron",
        "examples/neuron.py",
        "neuron",
        (2.0, 0.0, -3.0, 1.0, 6.881373405456543),
    ),
    ("sanity_check", "examples/micrograd_tests.py", "sanity_check", (-4.0,)),
    ("more_ops", "examples/micrograd_tests.py", "more_ops", (-4.0, 2.0)),
]
DECAY = "benchmarks/decay_loop.py"


def per_call(fn, repeat: int, min_time: float) -> float:
    """Median seconds per call of `fn()` over `repeat` batches of at least `min_time` each."""
    timer = timeit.Timer(fn)
    number = 1
    while timer.timeit(number) < min_time:
        number *= 2
    return statistics.median(t / number for t in timer.repeat(repeat, number))


def engine_pass(fn, point):
    def run():
        leaves = [Value(x) for x in point]
        fn(*leaves).backward()

    return run


def torch_pass(fn, point):
    import torch

    def run():
        leaves = [
            torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in point
        ]
        fn(*leaves).backward()

    return run


def compiled_pass(f_grad, point):
    def run():
        f_grad(*point)

    return run


def check(label, fn, f_grad, point):
    """The three ways must agree before their times mean anything."""
    leaves = [Value(x) for x in point]
    out = fn(*leaves)
    out.backward()
    value, grads = f_grad(*point)
    assert value == out.data, label
    assert all(
        abs(a - v.grad) <= 1e-12 * max(1.0, abs(a)) for a, v in zip(grads, leaves)
    ), label


def time_expressions(repeat: int, min_time: float):
    rows = []
    modules = {}
    for label, path, name, point in CASES:
        if path not in modules:
            modules[path] = (
                gradgen.compile_file(str(ROOT / path)),
                dict((f.__name__, f) for f in load_model(str(ROOT / path))[1]),
            )
        mod, fns = modules[path]
        fn, f_grad = fns[name], getattr(mod, name + "_grad")
        check(label, fn, f_grad, point)
        t_engine = per_call(engine_pass(fn, point), repeat, min_time)
        t_compiled = per_call(compiled_pass(f_grad, point), repeat, min_time)
        t_torch = per_call(torch_pass(fn, point), repeat, min_time)
        rows.append((label, t_engine, t_compiled, t_torch))
    return rows


def time_compile(runs: int):
    walls = []
    with tempfile.TemporaryDirectory() as out:
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "gradgen", "compile", DECAY, "-o", out],
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
            walls.append(time.perf_counter() - t0)
        lines = (Path(out) / "decay_loop.py").read_text().count("\n")
    _, fns = load_model(str(ROOT / DECAY))
    _, irs, _, seconds = build_source(fns, DECAY, "generated")
    nodes = len(irs[0].forward.nodes)
    return statistics.median(walls), seconds, lines, nodes


def us(t: float) -> str:
    return f"{t * 1e6:9.1f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--repeat", type=int, default=7, help="batches per measurement (median taken)"
    )
    p.add_argument(
        "--min-time", type=float, default=0.2, help="least seconds per batch"
    )
    p.add_argument(
        "--compile-runs",
        type=int,
        default=3,
        help="subprocess compiles of decay_loop (median taken)",
    )
    args = p.parse_args(argv)

    # compile first: importing torch (for the table) slows the in-process trace a little
    wall, seconds, lines, nodes = time_compile(args.compile_runs)
    rows = time_expressions(args.repeat, args.min_time)
    import torch

    print(
        f"# {datetime.date.today()}  Python {platform.python_version()}  torch {torch.__version__}  "
        f"gradgen {gradgen.__version__}  {platform.machine()}, {os.cpu_count()} CPUs"
    )
    print(
        f"# one forward+backward, median of {args.repeat} batches of >= {args.min_time} s, microseconds per call"
    )
    print()
    print(
        f"| {'expression':<14} | {'engine us':>9} | {'compiled us':>11} | {'torch us':>9} | {'engine/compiled':>15} | {'torch/compiled':>14} |"
    )
    print(
        "|"
        + "-" * 16
        + "|"
        + "|".join("-" * (w + 1) + ":" for w in (9, 11, 9, 15, 14))
        + "|"
    )
    for label, te, tc, tt in rows:
        print(
            f"| {label:<14} | {us(te)} | {us(tc):>11} | {us(tt)} | {te / tc:>14.1f}x | {tt / tc:>13.1f}x |"
        )
    print()
    split = ", ".join(f"{k} {v:.2f} s" for k, v in seconds.items())
    print(f"| compile {DECAY} ({nodes} forward nodes -> {lines} lines) | wall |")
    print("|---|---:|")
    print(
        f"| `gradgen compile` subprocess, median of {args.compile_runs} | {wall:.2f} s |"
    )
    print(f"| in-process build_source: {split} | {sum(seconds.values()):.2f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
