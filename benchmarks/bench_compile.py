"""How long gradgen takes to compile big models, and how much memory (issue #11).

    python benchmarks/bench_compile.py            # the issue's sizes (minutes)
    python benchmarks/bench_compile.py --quick    # small sizes (seconds): the same rows
    python benchmarks/bench_compile.py --only mlp-784-128-64-10

Each model is compiled in a fresh subprocess (`gradgen.api.build_source`, as
`gradgen compile` does, nothing written).  Columns: `model s`, importing
gradgen and the model file (which builds the network: 670,000 `Value`s for
784-512-512-10, seconds of plain Python before gradgen sees it); `compile s`,
`build_source` (what the targets are about); `wall s`, the whole subprocess;
and the subprocess's peak
RSS (`resource.getrusage(RUSAGE_SELF).ru_maxrss`, as RUSAGE_CHILDREN sees it
from here), the scalar nodes traced and the seconds per phase (trace, passes,
reroll, autodiff, emit, black: `api.lower`'s `phases`).  The table shows each
row's target from the issue and whether it is met; with `GRADGEN_LAYERS=0` in
the environment the layer path is off (the scalar path throughout).  When
`import jax` works, a row gives JAX jit's compile time of the same MLP loss.
Targets are for the full sizes; `--quick` prints them but marks nothing.

`micrograd-784-128-64-10` is the same loss written on micrograd's own
package (`pip install micrograd`), compiled through the foreign front end
(its layers emulated by `gradgen.frontend.foreign_layers`); its target is
3x the gradgen.nn row's compile time, compared in CPU seconds
(`time.process_time` in each child: the machine may be shared), printed
after the table as PASS or FAIL.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time

print = functools.partial(print, flush=True)  # rows appear as they finish, into a file too
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MLP_MODEL = """
import random
import numpy as np
import gradgen
from gradgen import nn

random.seed(0)
model = nn.MLP({nin}, {nouts})


def sq_err(x, yi):
    out = model(x)
    outs = out if isinstance(out, list) else [out]
    return sum((o - yi) ** 2 for o in outs)


@gradgen.export(example=dict(X=np.zeros((1, {nin})), y=np.zeros(1)))
def loss(X, y):
    return gradgen.mean(sq_err, X, y)
"""

# the same loss on micrograd's own package, through the foreign front end (issue #11's last target)
MICROGRAD_MODEL = """
import random
import numpy as np
from micrograd.engine import Value
from micrograd.nn import MLP
import gradgen

random.seed(0)
model = MLP({nin}, {nouts})


def sq_err(x, yi):
    out = model(list(map(Value, x)))
    outs = out if isinstance(out, list) else [out]
    return sum((o - yi) ** 2 for o in outs)


@gradgen.export(example=dict(X=np.zeros((1, {nin})), y=np.zeros(1)))
def loss(X, y):
    return gradgen.mean(sq_err, X, y)
"""

AFFINE_CHAIN = """
import gradgen


@gradgen.export
def chain(x, a, b):
    for _ in range({steps}):
        x = x * a + b
    return x
"""

TANH_CHAIN = """
import gradgen


@gradgen.export
def chain(x):
    for _ in range({steps}):
        x = x.tanh()
    return x
"""

# name, model source, quick source, target seconds, target MiB (None: none given);
# a target given as "3x NAME" is a ratio of compile CPU seconds to the row NAME's (run with it)
MODELS = [
    (
        "mlp-784-128-64-10",
        MLP_MODEL.format(nin=784, nouts=[128, 64, 10]),
        MLP_MODEL.format(nin=78, nouts=[12, 6, 10]),
        2,
        None,
    ),
    (
        "micrograd-784-128-64-10",
        MICROGRAD_MODEL.format(nin=784, nouts=[128, 64, 10]),
        MICROGRAD_MODEL.format(nin=78, nouts=[12, 6, 10]),
        "3x mlp-784-128-64-10",
        None,
    ),
    (
        "mlp-784-512-512-10",
        MLP_MODEL.format(nin=784, nouts=[512, 512, 10]),
        MLP_MODEL.format(nin=78, nouts=[51, 51, 10]),
        10,
        1024,
    ),
    (
        "mlp-2-1024-1024-1",
        MLP_MODEL.format(nin=2, nouts=[1024, 1024, 1]),
        MLP_MODEL.format(nin=2, nouts=[102, 102, 1]),
        30,
        2048,
    ),
    ("chain-200k-steps", AFFINE_CHAIN.format(steps=200_000), AFFINE_CHAIN.format(steps=2_000), 20, 1536),
    ("chain-1M-nodes", TANH_CHAIN.format(steps=1_000_000), TANH_CHAIN.format(steps=10_000), 90, 3072),
]

CHILD = """
import json, resource, sys, time
sys.setrecursionlimit(100000)
t0 = time.perf_counter()
from gradgen.api import build_source
from gradgen.frontend.loader import load_model
path = sys.argv[1]
_, fns = load_model(path)
t1, c1 = time.perf_counter(), time.process_time()
text, irs, stats, seconds = build_source(fns, path, None)
t2, c2 = time.perf_counter(), time.process_time()
phases = {k.removeprefix("phase:"): v for k, v in seconds.items() if k.startswith("phase:")}
phases["emit"] = seconds["emit"]
phases["black"] = seconds["black"]
print(json.dumps(dict(
    nodes=sum(len(ir.forward.nodes) for ir in irs),
    load=t1 - t0,
    build=t2 - t1,
    build_cpu=c2 - c1,
    phases=phases,
    rss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    lines=text.count("\\n"),
)))
"""

JAX_CHILD = """
import json, sys, time
import jax, jax.numpy as jnp
jax.config.update("jax_enable_x64", True)
sizes = json.loads(sys.argv[1])
key = jax.random.PRNGKey(0)
params = []
for nin, nout in zip(sizes[:-1], sizes[1:]):
    key, k = jax.random.split(key)
    params.append((jax.random.uniform(k, (nout, nin), minval=-1, maxval=1), jnp.zeros(nout)))
def loss(params, X, y):
    h = X
    for i, (W, b) in enumerate(params):
        h = h @ W.T + b
        if i < len(params) - 1:
            h = jax.nn.relu(h)
    return jnp.mean(jnp.sum((h - y[:, None]) ** 2, axis=1))
X, y = jnp.zeros((32, sizes[0])), jnp.zeros(32)
t0 = time.perf_counter()
jax.jit(jax.value_and_grad(loss)).lower(params, X, y).compile()
print(json.dumps(dict(seconds=time.perf_counter() - t0)))
"""


def run_one(name: str, source: str, tmp: str, timeout: float) -> dict:
    path = os.path.join(tmp, name.replace("-", "_") + ".py")
    with open(path, "w") as f:
        f.write(textwrap.dedent(source))
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    try:
        p = subprocess.run(
            [sys.executable, "-c", CHILD, path], capture_output=True, text=True, env=env, timeout=timeout, cwd=tmp
        )
    except subprocess.TimeoutExpired:
        return dict(error=f"over {timeout:.0f} s")
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        return dict(error=(p.stderr.strip().splitlines() or ["failed"])[-1][:100], wall=wall)
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out["wall"] = wall
    return out


def jax_row(sizes: list[int], timeout: float) -> dict | None:
    try:
        import jax  # noqa: F401
    except ImportError:
        return None
    try:
        p = subprocess.run(
            [sys.executable, "-c", JAX_CHILD, json.dumps(sizes)], capture_output=True, text=True, timeout=timeout
        )
        return json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else None
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes: the same models, a tenth as wide or long")
    ap.add_argument("--only", action="append", help="run only this model (repeatable)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per model")
    args = ap.parse_args(argv)
    layers = os.environ.get("GRADGEN_LAYERS", "1") != "0"
    print(
        f"gradgen compile benchmark ({'quick sizes' if args.quick else 'full sizes'}; layer path {'on' if layers else 'off'})"
    )
    head = (
        f"{'model':<23} {'nodes':>9} {'model s':>8} {'compile s':>9} {'wall s':>7} {'RSS MiB':>8}"
        f"  {'target':<18} {'met':<4} phases (s)"
    )
    print(head)
    print("-" * len(head))
    failed = 0
    done: dict[str, dict] = {}
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, full, quick, t_s, t_mib in MODELS:
            if args.only and name not in args.only:
                continue
            r = run_one(name, quick if args.quick else full, tmp, args.timeout)
            done[name] = r
            relative = isinstance(t_s, str)
            target = (f"<= {t_s.split()[0]} (CPU)" if relative else f"<= {t_s} s") + (f", {t_mib} MiB" if t_mib else "")
            if "error" in r:
                print(
                    f"{name:<23} {'':>9} {'':>8} {'':>9} {r.get('wall', 0):7.1f} {'':>8}  {target:<18} {'no':<4} error: {r['error']}"
                )
                failed += 1
                continue
            mib = r["rss_kib"] / 1024
            measured = True
            if relative:
                factor, other = t_s.split("x ", 1)
                base = done.get(other)
                measured = base is not None and "error" not in base
                ok = measured and r["build_cpu"] <= float(factor) * base["build_cpu"]
                if measured:
                    ratios.append((name, other, r["build_cpu"], base["build_cpu"], float(factor)))
            else:
                ok = r["build"] <= t_s and (t_mib is None or mib <= t_mib)
            met = "-" if args.quick or not measured else ("yes" if ok else "no")
            failed += met == "no"
            phases = " ".join(f"{k} {v:.2f}" for k, v in r["phases"].items())
            print(
                f"{name:<23} {r['nodes']:>9,} {r['load']:8.2f} {r['build']:9.2f} {r['wall']:7.2f} {mib:8.0f}"
                f"  {target:<18} {met:<4} {phases}"
            )
    for name, other, cpu, base, factor in ratios:
        verdict = "-" if args.quick else ("PASS" if cpu <= factor * base else "FAIL")
        print(
            f"{name} / {other}: compile CPU {cpu:.2f} s / {base:.2f} s = {cpu / base:.2f}x"
            f" (target <= {factor:g}x): {verdict}"
        )
    sizes = [78, 12, 6, 10] if args.quick else [784, 128, 64, 10]
    j = jax_row(sizes, args.timeout)
    if j is None:
        print("jax: not installed (or failed): no JAX row")
    else:
        print(f"jax jit value_and_grad, MLP {'-'.join(map(str, sizes))}: compile {j['seconds']:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
