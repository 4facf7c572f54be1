"""Compile time and memory of a K-step scalar chain (issue #11), each compile in a fresh subprocess.

    .venv/bin/python benchmarks/bench_chain.py                    # 20,000 and 200,000 steps
    .venv/bin/python benchmarks/bench_chain.py --steps 20000 --repeat 3
    .venv/bin/python benchmarks/bench_chain.py --steps 333334     # the ~1M-node chain

The model is `def f(x, a, b): for i in range(K): x = (x * a + b).tanh(); return x`
(3 IR nodes per step).  Each run writes the model to a temporary file, compiles it
with `gradgen.api.compile_file` (trace, passes, reverse mode, emission and black:
the whole `gradgen compile`, without writing the module) in a new Python process,
and prints the wall time, the process's CPU time (user + system, imports included:
steadier than wall time on a shared machine), the peak RSS (`ru_maxrss`), the
CPU time of each phase (as announced to `gradgen.progress`) and the peak RSS so far
at the end of each phase (a phase that runs twice, "optimising": its later end).  The child imports the
gradgen of the working directory first (`-c` puts it ahead of `PYTHONPATH`), so run it
from the checkout to measure (`cd <checkout> && python .../bench_chain.py`); from outside
any checkout, `PYTHONPATH=<a checkout>` picks one.  With `--repeat N` the median of N runs.
The module is loaded (Python's `compile` and `exec` of its text) on its first use, after
the compile is measured: that CPU time is printed apart, "then loading the module".
The issue's targets are printed with PASS/FAIL: 200,000 steps within 20 s and
1.5 GiB; a 1M-node chain within 90 s and 3 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

MODEL = '''import gradgen


@gradgen.export(example=dict(x=0.5, a=0.9, b=0.1))
def chain(x, a, b):
    for i in range({steps}):
        x = (x * a + b).tanh()
    return x
'''

CHILD = r'''
import json, resource, sys, time
t_start = time.perf_counter()
from gradgen import progress, api
phases, last, peaks = [], [None, None], {}
real = progress.phase
def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
def phase(what, nodes=None):
    now = time.process_time()
    if last[0] is not None:
        phases.append((last[0], now - last[1]))
        peaks[last[0]] = peak()  # the peak RSS so far, at the end of that phase
    last[0], last[1] = what.split(" ")[0], now
    real(what, nodes)
progress.phase = phase
t0 = time.perf_counter()
mod = api.compile_file(sys.argv[1], write=False)
t1 = time.perf_counter()
phases.append((last[0], time.process_time() - last[1]))
peaks[last[0]] = peak()
merged = {}
for k, v in phases:
    merged[k] = merged.get(k, 0.0) + v
ru = resource.getrusage(resource.RUSAGE_SELF)
rss = ru.ru_maxrss / 1024  # KiB -> MiB on Linux
t2 = time.process_time()
x = mod.chain(0.5, 0.9, 0.1)  # a smoke check: it runs (the first use loads the module: Python's compile of it)
load = time.process_time() - t2
print(json.dumps(dict(wall=t1 - t0, cpu=ru.ru_utime + ru.ru_stime, import_s=t0 - t_start, rss_mib=rss, phases=merged, peaks=peaks, lines=mod.source.count("\n"), load_s=load)))
'''

TARGETS = {200_000: (20.0, 1.5 * 1024), 333_334: (90.0, 3 * 1024)}


def run_once(steps: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, f"chain{steps}.py")
        with open(path, "w") as fh:
            fh.write(MODEL.format(steps=steps))
        # cwd: the temporary folder, so that the child imports the gradgen PYTHONPATH names (or
        # the venv's), never a `gradgen/` folder in the directory the benchmark was started from
        out = subprocess.run([sys.executable, "-c", CHILD, path], capture_output=True, text=True, cwd=d)
        if out.returncode != 0:
            raise SystemExit(f"compile of {steps} steps failed:\n{out.stderr[-3000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, nargs="+", default=[20_000, 200_000], help="chain lengths (3 nodes a step)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per length; the median is printed")
    args = ap.parse_args()
    for steps in args.steps:
        runs = [run_once(steps) for _ in range(args.repeat)]
        wall = statistics.median(r["wall"] for r in runs)
        rss = statistics.median(r["rss_mib"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        phases = {k: statistics.median(r["phases"].get(k, 0.0) for r in runs) for k in runs[0]["phases"]}
        ph = "  ".join(f"{k} {v:.2f}" for k, v in phases.items())
        load = statistics.median(r["load_s"] for r in runs)
        print(f"{steps:>9,} steps ({3 * steps:,} nodes): {wall:7.2f} s (cpu {cpu:.2f} s)  peak RSS {rss:7.0f} MiB   [{ph}]  (then loading the module: {load:.2f} s cpu)")
        peaks = {k: statistics.median(r["peaks"].get(k, 0.0) for r in runs) for k in runs[0]["peaks"]}
        print("          peak RSS (MiB) at the end of: " + "  ".join(f"{k} {v:.0f}" for k, v in peaks.items()))
        if steps in TARGETS:
            ts, tm = TARGETS[steps]
            ok = wall <= ts and rss <= tm
            print(f"          target <= {ts:.0f} s within {tm:.0f} MiB: {'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
