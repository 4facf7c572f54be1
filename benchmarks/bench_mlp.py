"""Time one SGD step of two MLPs: gradgen, PyTorch and JAX against hand-written NumPy.

    .venv/bin/python benchmarks/bench_mlp.py [--quick] [--only moons|wide]

A step is forward + backward + the SGD update of every parameter.  Workloads:

* moons: micrograd's demo (examples/moons.py): a 2-16-16-1 MLP, the SVM loss
  plus 1e-4 * L2 on the 100 make_moons points, micrograd's learning-rate
  schedule (1.0 - 0.9 * k / 100 at step k);
* wide: benchmarks/wide_mlp.py: a 784-128-64-10 MLP, softmax cross-entropy
  on one fixed random batch of 256 one-hot examples, lr 0.1.

Peers (the same network, loss and update; float64 throughout):

* engine:    the model file on gradgen Values, `.backward()`, `p.data -= lr * p.grad`
             (wide: a few examples, extrapolated to the batch);
* compiled, no re-roll: `gradgen.compile_file(path, rerolling=False)`
             (moons only: per-scalar code);
* compiled:  the re-rolled module (moons: generated/moons.py; wide: the module
             that the timed `gradgen compile` wrote, imported from its file);
* torch:     eager, parameters as leaf tensors, the update under no_grad; with
             torch's default threads and with 1 thread;
* NumPy:     written by hand (forward with @, ReLU as np.maximum, backward
             with .T @, bias gradients with .sum(0)): the baseline ("vs NumPy");
* best:      the best hand-written NumPy step ("vs best"): benchmarks/peers.py's
             HandStep, the one bench_numba.py times (preallocated buffers, `out=`,
             one fused update of a flat parameter buffer);
* numba:     `--backend numba` (if numba is installed): loss_step, one call a step,
             and loss_train, a batch's steps in one call;
* JAX:       `jax.jit` of value_and_grad plus the update, x64 (if installed);
             timed waiting for each batch's last step (asynchronous), for every
             step, and as one `lax.fori_loop` of the batch's steps (benchmarks/peers.py).

Before timing, every peer's loss and gradients at the initial parameters are
checked against the compiled module (relative 1e-9), and the moons demo is
trained for its 100 steps on the compiled module and on the engine.  Each
timed batch starts from the initial parameters (reset outside the timer) and
runs the first steps of training, right after WARM untimed steps of the same
peer (its threads awake: no sleeping between batches).  A round times one batch of every peer,
in a new (seeded) random order each round; the table gives each peer's median
per-step time over the rounds, and its ratio to hand-written NumPy as the
median over rounds of the two times in the same round (the ratios so cancel
most of a shared machine's drifts in load).  Where a peer has two rows, the
targets use its faster one.  Wide's compile is timed as a subprocess (wall
clock and peak resident memory).  The run ends with the issue's targets, PASS
or FAIL from the ratios just measured.  BENCH_DEBUG=1 prints every round.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib.util
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import gradgen  # noqa: E402
from gradgen import nn  # noqa: E402
from gradgen.frontend.loader import load_model  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from peers import HandStep, jax_step_and_train  # noqa: E402  (shared with bench_numba.py)

MOONS = "examples/moons.py"
WIDE = "benchmarks/wide_mlp.py"
WIDE_B = 256
WIDE_LR = 0.1
RTOL = 1e-9
HAND = "hand-written NumPy"
BEST = "hand NumPy (best)"
WARM = 3  # untimed steps of a peer right before its timed batch: its threads are awake
NOT_INSTALLED = "not installed (pip install -e '.[bench]')"


def moons_lr(k: int) -> float:
    return 1.0 - 0.9 * k / 100  # micrograd's demo


def wide_lr(k: int) -> float:
    return WIDE_LR


def load_file(name: str, path: Path):
    """Import a generated module from its file (no package, no sys.path entry)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- hand NumPy


def hand_moons(P, X, y):
    """SVM loss + 1e-4 * L2 of the 2-16-16-1 MLP, and its gradients: the baseline."""
    W0, b0, W1, b1, W2, b2 = P
    B = X.shape[0]
    z0 = X @ W0.T + b0
    h0 = np.maximum(z0, 0.0)
    z1 = h0 @ W1.T + b1
    h1 = np.maximum(z1, 0.0)
    score = (h1 @ W2.T + b2)[:, 0]
    margin = 1.0 - y * score
    loss = np.maximum(margin, 0.0).mean() + 1e-4 * sum(np.sum(p * p) for p in P)
    g_score = (-y * (margin > 0.0) / B)[:, None]
    g_W2 = g_score.T @ h1
    g_b2 = g_score.sum(0)
    g_z1 = (g_score @ W2) * (z1 > 0.0)
    g_W1 = g_z1.T @ h0
    g_b1 = g_z1.sum(0)
    g_z0 = (g_z1 @ W1) * (z0 > 0.0)
    g_W0 = g_z0.T @ X
    g_b0 = g_z0.sum(0)
    grads = (g_W0, g_b0, g_W1, g_b1, g_W2, g_b2)
    return loss, tuple(g + 2e-4 * p for g, p in zip(grads, P))


def hand_wide(P, X, Y):
    """Mean softmax cross-entropy of the 784-128-64-10 MLP, and its gradients."""
    W0, b0, W1, b1, W2, b2 = P
    B = X.shape[0]
    z0 = X @ W0.T + b0
    h0 = np.maximum(z0, 0.0)
    z1 = h0 @ W1.T + b1
    h1 = np.maximum(z1, 0.0)
    z2 = h1 @ W2.T + b2
    e = np.exp(z2)  # as the model writes it: no max subtracted
    s = e.sum(1)
    loss = (np.log(s) - (Y * z2).sum(1)).mean()
    g_z2 = (e / s[:, None] - Y) / B
    g_W2 = g_z2.T @ h1
    g_b2 = g_z2.sum(0)
    g_z1 = (g_z2 @ W2) * (z1 > 0.0)
    g_W1 = g_z1.T @ h0
    g_b1 = g_z1.sum(0)
    g_z0 = (g_z1 @ W1) * (z0 > 0.0)
    g_W0 = g_z0.T @ X
    g_b0 = g_z0.sum(0)
    return loss, (g_W0, g_b0, g_W1, g_b1, g_W2, g_b2)


# ---------------------------------------------------------------- torch and JAX


def torch_loss(torch, kind):
    def moons(P, X, y):
        W0, b0, W1, b1, W2, b2 = P
        h0 = torch.relu(X @ W0.T + b0)
        h1 = torch.relu(h0 @ W1.T + b1)
        score = (h1 @ W2.T + b2)[:, 0]
        return torch.relu(1.0 + -y * score).mean() + 1e-4 * sum(
            (p * p).sum() for p in P
        )

    def wide(P, X, Y):
        W0, b0, W1, b1, W2, b2 = P
        h0 = torch.relu(X @ W0.T + b0)
        h1 = torch.relu(h0 @ W1.T + b1)
        z2 = h1 @ W2.T + b2
        return (torch.log(torch.exp(z2).sum(1)) - (Y * z2).sum(1)).mean()

    return moons if kind == "moons" else wide


def jax_loss(jax, kind):
    jnp = jax.numpy
    relu = jax.nn.relu  # derivative 0 at 0, as the others

    def moons(P, X, y):
        W0, b0, W1, b1, W2, b2 = P
        h0 = relu(X @ W0.T + b0)
        h1 = relu(h0 @ W1.T + b1)
        score = (h1 @ W2.T + b2)[:, 0]
        return relu(1.0 + -y * score).mean() + 1e-4 * sum(jnp.sum(p * p) for p in P)

    def wide(P, X, Y):
        W0, b0, W1, b1, W2, b2 = P
        h0 = relu(X @ W0.T + b0)
        h1 = relu(h0 @ W1.T + b1)
        z2 = h1 @ W2.T + b2
        return (jnp.log(jnp.exp(z2).sum(1)) - (Y * z2).sum(1)).mean()

    return moons if kind == "moons" else wide


def import_jax():
    try:
        import jax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    return jax


# ---------------------------------------------------------------- peers
#
# A peer is (label, grads, start): grads(P, X, T) -> (loss, [gradient arrays])
# at the parameters P (for the check); start(P0) -> step, a fresh state at the
# parameters P0 whose step(lr) does one training step in place.


def numpy_peer(label, loss_grad, X, T):
    def grads(P):
        return loss_grad(*[p.copy() for p in P], X, T)

    def start(P0):
        P = [p.copy() for p in P0]

        def step(lr):
            loss, gs = loss_grad(*P, X, T)
            for p, g in zip(P, gs):
                p -= lr * g  # sgd, in place
            return loss

        return step

    return label, grads, start


def outside_peers(jax, workload, hand, X, y):
    """PyTorch (default threads and one), hand-written NumPy, and JAX (two ways) if installed."""
    peers = [torch_peer(workload, X, y), torch_peer(workload, X, y, threads=1), hand_peer(hand, X, y)]
    peers.append(best_peer(workload, X, y))
    peers += numba_peers(workload, X, y)
    if jax is not None:
        peers += [jax_peer(jax, workload, X, y), jax_peer(jax, workload, X, y, wait_each=True)]
        peers.append(jax_loop_peer(jax, workload, X, y))
    return peers


def numba_peers(kind, X, T):
    """`--backend numba`'s loss_step (one call a step) and loss_train (a batch in one call),
    if numba is installed: the model compiled with `step=gradgen.sgd()`."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return []
    path = ROOT / (MOONS if kind == "moons" else WIDE)
    text = path.read_text()
    if kind == "wide":
        text = text.replace("Y=np.zeros((1, 10))))", "Y=np.zeros((1, 10))), step=gradgen.sgd())")
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / path.name
        src.write_text(text)
        mod = gradgen.compile_file(str(src), backend="numba").module

    def grads(P):
        return mod.loss_grad(*[p.copy() for p in P], X, T)

    def start(P0):
        P = [p.copy() for p in P0]
        return lambda lr: mod.loss_step(*P, X, T, lr)

    def start_train(P0):
        P = [p.copy() for p in P0]
        step = lambda lr: mod.loss_step(*P, X, T, lr)  # noqa: E731
        step.batch = lambda lrs: mod.loss_train(*P, X, T, np.asarray(lrs, dtype=np.float64))
        return step

    return [("compiled, numba loss_step", grads, start), ("compiled, numba loss_train", grads, start_train)]


def best_peer(kind, X, T):
    """The best hand-written NumPy step (benchmarks/peers.py's HandStep, as bench_numba.py times it)."""
    loss = "svm" if kind == "moons" else "ce"
    hands = {}

    def hand(P):
        key = tuple(p.shape for p in P)
        if key not in hands:
            hands[key] = HandStep(P, X.shape[0], loss)
        hands[key].set(P)
        return hands[key]

    def grads(P):
        return hand(P).grads(X, T)

    def start(P0):
        h = hand(P0)
        return lambda lr: h.step(X, T, lr)

    return BEST, grads, start


def jax_loop_peer(jax, kind, X, T):
    """JAX jit: a batch's steps in one call, a `lax.fori_loop` (benchmarks/peers.py)."""
    f = jax_loss(jax, kind)
    Xj, Tj = jax.device_put(X), jax.device_put(T)
    step, train = jax_step_and_train(jax, lambda ps, X, T: f(tuple(ps), X, T), Xj, Tj)

    def grads(P):
        loss, gs = jax.value_and_grad(f)(tuple(jax.device_put(p) for p in P), Xj, Tj)
        return float(loss), [np.asarray(g) for g in gs]

    def start(P0):
        state = [[jax.device_put(p) for p in P0]]

        def batch(lrs):
            state[0], losses = train(state[0], jax.numpy.asarray(lrs))
            jax.block_until_ready(losses)
            return losses

        step_ = lambda lr: batch([lr])  # noqa: E731
        step_.batch = batch
        return step_

    return "JAX jit fori_loop", grads, start


def hand_peer(fn, X, T):
    return numpy_peer(HAND, lambda *a: fn(a[:-2], a[-2], a[-1]), X, T)


def torch_peer(kind, X, T, threads=None):
    """PyTorch eager; `threads`: torch's intra-op threads while timed (None: its default)."""
    import torch

    f = torch_loss(torch, kind)
    Xt, Tt = torch.from_numpy(X), torch.from_numpy(T)

    def leaves(P):
        return [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in P]

    def grads(P):
        default = torch.get_num_threads()
        torch.set_num_threads(threads or default)
        ps = leaves(P)
        loss = f(ps, Xt, Tt)
        loss.backward()
        torch.set_num_threads(default)
        return loss.item(), [p.grad.numpy() for p in ps]

    def start(P0):
        ps = leaves(P0)
        default = torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(threads)

        def step(lr):
            loss = f(ps, Xt, Tt)
            loss.backward()
            with torch.no_grad():
                for p in ps:
                    p -= lr * p.grad
                    p.grad = None
            return loss

        step.done = lambda: torch.set_num_threads(default)  # after the batch, untimed
        return step

    if threads is None:
        return "PyTorch eager", grads, start
    return f"PyTorch eager, {threads} thread{'s' if threads > 1 else ''}", grads, start


def jax_peer(jax, kind, X, T, wait_each=False):
    """JAX jit; dispatch is asynchronous: the timer waits for the batch's last step,
    or with `wait_each` for every step (as a loop that reads each step's loss does)."""
    f = jax_loss(jax, kind)
    Xj, Tj = jax.device_put(X), jax.device_put(T)
    value_and_grad = jax.jit(jax.value_and_grad(f))

    @jax.jit
    def train_step(P, X, T, lr):
        loss, gs = jax.value_and_grad(f)(P, X, T)
        return loss, tuple(p - lr * g for p, g in zip(P, gs))

    def grads(P):
        loss, gs = value_and_grad(tuple(jax.device_put(p) for p in P), Xj, Tj)
        return float(loss), [np.asarray(g) for g in gs]

    def start(P0):
        state = [tuple(jax.device_put(p) for p in P0), None]

        def step(lr):
            state[1], state[0] = train_step(state[0], Xj, Tj, lr)
            if wait_each:
                jax.block_until_ready(state)
            return state[1]

        def sync():
            jax.block_until_ready(state)

        step.sync = sync  # waited for at the end of each timed batch
        return step

    return ("JAX jit, waiting each step" if wait_each else "JAX jit"), grads, start


# ---------------------------------------------------------------- checks


def rel_err(a, b) -> float:
    """max |a - b| / max |b|, over one array (or number)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    return (
        float(np.max(np.abs(a - b))) / scale
        if scale
        else float(np.max(np.abs(a - b), initial=0.0))
    )


def snapshot(result):
    """(loss, [gradients]) copied: a later call may reuse the arrays a module returned."""
    loss, grads = result
    return float(loss), [np.array(g, dtype=np.float64) for g in grads]


def check(workload, label, got, ref, note="") -> bool:
    (loss, grads), (loss_ref, grads_ref) = got, ref
    e_loss = rel_err(loss, loss_ref)
    e_grad = (
        max(rel_err(g, r) for g, r in zip(grads, grads_ref))
        if len(grads) == len(grads_ref)
        else float("inf")
    )
    ok = e_loss <= RTOL and e_grad <= RTOL
    print(
        f"check {workload:<5} {label:<28} loss rel {e_loss:.1e}  gradients rel {e_grad:.1e} "
        f"(max over {len(grads_ref)} arrays){note}  {'ok' if ok else 'MISMATCH'}"
    )
    return ok


# ---------------------------------------------------------------- timing


def time_peers(starts, P0, lr, steps: int, repeat: int):
    """{peer: [seconds per step in each round]}: `repeat` rounds of a batch of `steps` steps.

    OpenBLAS's, torch's (OpenMP) and XLA's worker threads sleep when idle, and spin
    for a while after their work is done.  So each batch is preceded by WARM untimed
    steps of the same peer (its threads awake, the previous peer's done), not by a
    pause (sleeping between batches made PyTorch look 1.75x slower than hand on the
    wide MLP; warm, it is 0.92x), and each round runs the peers in a new (seeded)
    random order.  A peer with `step.batch(lrs)` (JAX's fori_loop) runs a batch in one call.
    """
    labels = list(starts)
    times = {label: [] for label in labels}
    order = random.Random(0)
    for r in range(repeat + 1):  # the first round warms up
        order.shuffle(labels)
        for label in labels:
            lrs = [lr(k) for k in range(steps)]
            warm = starts[label](P0)
            run_batch(warm, lrs[:WARM])  # untimed: threads and caches warm
            getattr(warm, "done", lambda: None)()
            step = starts[label](P0)
            t0 = time.perf_counter()
            run_batch(step, lrs)
            elapsed = time.perf_counter() - t0
            getattr(step, "done", lambda: None)()
            if r:
                times[label].append(elapsed / steps)
    if os.environ.get("BENCH_DEBUG"):
        print({label: [round(t * 1e6) for t in ts] for label, ts in times.items()})
    return times


def run_batch(step, lrs):
    if hasattr(step, "batch"):
        step.batch(lrs)
    else:
        for lr in lrs:
            step(lr)
        getattr(step, "sync", lambda: None)()


def paired(rounds, a: str, b: str) -> float:
    """Median over rounds of a's time / b's time in the same round.

    A round runs every peer once within about a second, so the ratio cancels
    most of what a shared machine's load does to both."""
    return statistics.median(x / y for x, y in zip(rounds[a], rounds[b]))


def engine_step(module, X, T, lr):
    """One SGD step on Values: (s for loss + backward, s for zero_grad + update, loss).

    zero_grad comes first, as in micrograd's demo: the gradients stay in .grad.
    """
    params = module.model.parameters()
    t0 = time.perf_counter()
    module.model.zero_grad()
    t1 = time.perf_counter()
    loss = module.loss(X, T)
    loss.backward()
    t2 = time.perf_counter()
    for p in params:
        p.data -= lr * p.grad
    t3 = time.perf_counter()
    return t2 - t1, (t1 - t0) + (t3 - t2), loss


# ---------------------------------------------------------------- workloads


def wide_data():
    rs = np.random.RandomState(0)
    # pixel-like inputs, scaled so that exp() of the logits stays finite with
    # micrograd's U(-1, 1) weights (inputs in [0, 1] overflow it in 2 steps)
    X = rs.uniform(0.0, 0.1, (WIDE_B, 784))
    Y = np.eye(10)[rs.randint(0, 10, WIDE_B)]
    return X, Y


def per_scalar_lines_estimate(macs_wide: int) -> int:
    """Lines of a --no-reroll module for the wide MLP: a line through two small ones."""
    sizes = [(16, 8, 4), (32, 8, 8)]
    points = []
    for nin, h1, h2 in sizes:
        random.seed(0)
        small = nn.MLP(nin, [h1, h2, 10])

        def ce(x, onehot, small=small):
            logits = small(x)
            s = sum(z.exp() for z in logits)
            return s.log() - sum(t * z for t, z in zip(onehot, logits))

        def loss(X, Y):
            return gradgen.mean(ce, X, Y)

        gradgen.export(
            loss, example=dict(X=np.zeros((1, nin)), Y=np.zeros((1, 10))), params=small
        )
        text = gradgen.compile_function(loss, rerolling=False).source
        points.append((nin * h1 + h1 * h2 + h2 * 10, text.count("\n")))
    (m0, l0), (m1, l1) = points
    per_mac = (l1 - l0) / (m1 - m0)
    return int(round(l0 + per_mac * (macs_wide - m0), -4))


def notes(compiled_from):
    import torch

    return {
        "compiled (re-rolled)": compiled_from,
        "PyTorch eager": f"{torch.get_num_threads()} threads (torch's default)",
        "JAX jit": "waits for the last step of each batch only",
    }


def run_moons(args, jax, results, checks):
    engine, _ = load_model(str(ROOT / MOONS))
    X, y = engine.make_data()
    P0 = list(gradgen.params.read(engine.model).values())
    compiled = load_file("_bench_generated_moons", ROOT / "generated" / "moons.py")
    t0 = time.perf_counter()
    scalar = gradgen.compile_file(str(ROOT / MOONS), rerolling=False)
    scalar_seconds = time.perf_counter() - t0
    scalar_lines = scalar.source.count("\n")

    peers = [numpy_peer("compiled, no re-roll", scalar.loss_grad, X, y)]
    peers.append(numpy_peer("compiled (re-rolled)", compiled.loss_grad, X, y))
    peers += outside_peers(jax, "moons", hand_moons, X, y)

    # the same work: every peer's loss and gradients at the initial parameters
    ref = snapshot(compiled.loss_grad(*P0, X, y))
    for label, grads, _ in peers:
        if label != "compiled (re-rolled)":  # the reference
            checks.append(check("moons", label, grads(P0), ref))
    gradgen.params.write(engine.model, P0)
    fb, upd, loss = engine_step(engine, X, y, 0.0)  # lr 0: stays at P0
    grads_e = list(gradgen.params.read_grads(engine.model).values())
    checks.append(check("moons", "engine", (loss.data, grads_e), ref))

    # micrograd's whole demo, compiled and interpreted: the same trajectory
    print(
        "moons: 100 steps of micrograd's demo on the compiled module and on the engine ...",
        flush=True,
    )
    P = [p.copy() for p in P0]
    gradgen.params.write(engine.model, P0)
    worst, engine_seconds = 0.0, []
    for k in range(100):
        if k == 99:  # the demo prints the accuracy of the scores before the last update
            acc_c = np.mean((y > 0) == (compiled.scores(*P, X) > 0))
            acc_e = np.mean(
                [(yi > 0) == (s.data > 0) for yi, s in zip(y, engine.scores(X))]
            )
        loss_c, gs = compiled.loss_grad(*P, X, y)
        for p, g in zip(P, gs):
            p -= moons_lr(k) * g
        fb, upd, loss_e = engine_step(engine, X, y, moons_lr(k))
        engine_seconds.append(fb + upd)
        worst = max(worst, abs(loss_c - loss_e.data) / abs(loss_e.data))
        if k == 0:
            step0 = loss_c
    print(
        f"moons: step 0 loss {float(step0)!r} (micrograd's demo: 0.8958441028683222); max relative loss "
        f"difference compiled vs engine over 100 steps {worst:.1e}; accuracy at step 99: compiled "
        f"{acc_c * 100:.1f}%, engine {acc_e * 100:.1f}%"
    )
    checks.append(worst <= RTOL and acc_c == acc_e)
    print(
        f"check moons 100-step run, compiled vs engine  {'ok' if checks[-1] else 'MISMATCH'}"
    )

    # the engine's time: the median step of that run (~1 s a step)
    t_engine = statistics.median(engine_seconds)

    repeat = 5 if args.quick else 21
    starts = {label: start for label, _, start in peers}
    rounds = time_peers(starts, P0, moons_lr, 100, repeat)
    medians = {label: statistics.median(ts) for label, ts in rounds.items()}
    rows = [("engine (interpreted Values)", t_engine, "median of the 100 steps above")]
    scalar_note = f"{scalar_lines:,} lines, compiled in {scalar_seconds:.1f} s"
    rows.append(
        ("compiled, no re-roll", medians.pop("compiled, no re-roll"), scalar_note)
    )
    rows += [
        (label, t, notes("generated/moons.py").get(label, ""))
        for label, t in medians.items()
    ]
    if jax is None:
        rows.append(("JAX jit", None, NOT_INSTALLED))
    results["moons"] = dict(rows=rows, rounds=rounds, repeat=repeat, steps=100)


def compile_wide(out: str):
    """`gradgen compile WIDE -o out` as a subprocess: (wall seconds, peak RSS in MiB)."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "gradgen", "compile", WIDE, "-o", out],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if done.returncode:
        sys.exit(f"gradgen compile {WIDE} failed:\n{done.stdout}{done.stderr}")
    # the largest resident set of any child waited for so far: this script's first child
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return wall, peak


def run_wide(args, jax, results, checks, compiled_wide, compile_stats):
    engine, _ = load_model(str(ROOT / WIDE))
    X, Y = wide_data()
    P0 = list(gradgen.params.read(engine.model).values())

    peers = [numpy_peer("compiled (re-rolled)", compiled_wide.loss_grad, X, Y)]
    peers += outside_peers(jax, "wide", hand_wide, X, Y)
    ref = snapshot(compiled_wide.loss_grad(*P0, X, Y))
    for label, grads, _ in peers[1:]:  # peers[0] is the reference
        checks.append(check("wide", label, grads(P0), ref))

    # the engine on a few examples (~3 s each), extrapolated to the batch:
    # (loss + backward) * B / n + (zero_grad + update)
    n = 2
    fbs, upds = [], []
    for r in range(1 if args.quick else 2):
        gradgen.params.write(engine.model, P0)
        fb, upd, loss = engine_step(engine, X[:n], Y[:n], 0.0)  # lr 0: stays at P0
        fbs.append(fb)
        upds.append(upd)
        if r == 0:
            grads_e = list(gradgen.params.read_grads(engine.model).values())
            sub = snapshot(compiled_wide.loss_grad(*P0, X[:n], Y[:n]))
            note = f" on {n} examples"
            checks.append(check("wide", "engine", (loss.data, grads_e), sub, note))
    fb, upd = statistics.median(fbs), statistics.median(upds)
    t_engine = fb * WIDE_B / n + upd

    macs = 784 * 128 + 128 * 64 + 64 * 10
    lines = per_scalar_lines_estimate(macs)

    repeat = 7 if args.quick else 25
    steps = 10
    starts = {label: start for label, _, start in peers}
    rounds = time_peers(starts, P0, wide_lr, steps, repeat)
    medians = {label: statistics.median(ts) for label, ts in rounds.items()}
    engine_note = f"extrapolated from {n} examples ({fb / n:.1f} s each) to {WIDE_B}"
    scalar_note = (
        f"n/a: per-scalar code would be ~{lines:,} lines (fit on two small MLPs)"
    )
    rows = [("engine (interpreted Values)", t_engine, engine_note)]
    rows.append(("compiled, no re-roll", None, scalar_note))
    rows += [
        (label, t, notes("written by the timed compile below").get(label, ""))
        for label, t in medians.items()
    ]
    if jax is None:
        rows.append(("JAX jit", None, NOT_INSTALLED))
    results["wide"] = dict(
        rows=rows, rounds=rounds, repeat=repeat, steps=steps, extra=compile_stats
    )


# ---------------------------------------------------------------- report


def print_table(results):
    print(
        f"| {'workload':<8} | {'peer':<28} | {'us per step':>13} | {'vs NumPy':>9} | {'vs best':>8} | note |"
    )
    print(f"|{'-' * 10}|{'-' * 30}|{'-' * 14}:|{'-' * 10}:|{'-' * 9}:|------|")
    for workload, res in results.items():
        times = dict((label, t) for label, t, _ in res["rows"])
        for label, t, note in res["rows"]:
            if t is None:
                cells = f"{'-':>13} | {'-':>9} | {'-':>8}"
            else:
                ratios = []
                for base in (HAND, BEST):
                    r = (
                        paired(res["rounds"], label, base)
                        if label in res["rounds"]
                        else t / times[base]
                    )
                    ratios.append(f"{r:.2f}x" if r < 100 else f"{r:,.0f}x")
                cells = f"{t * 1e6:13,.1f} | {ratios[0]:>9} | {ratios[1]:>8}"
            print(f"| {workload:<8} | {label:<28} | {cells} | {note} |")


def targets(results, jax):
    """[(target, measured, verdict)] for the issue's targets; x: compiled time / peer time."""

    def ratio(workload, peer):
        rounds = results[workload]["rounds"]
        # PyTorch and JAX: against the faster of their two per-step rows (not JAX's
        # fori_loop, a batch in one call: issue #12's numba targets compare with it)
        return max(
            paired(rounds, "compiled (re-rolled)", label)
            for label in rounds
            if label.startswith(peer) and "fori_loop" not in label
        )

    out = []
    for workload, bound in (("moons", 0.85), ("wide", 1.05)):
        for text, peer, limit in (
            (f"compiled step <= {bound}x hand-written NumPy", HAND, bound),
            ("compiled faster than PyTorch eager", "PyTorch eager", 1.0),
            ("compiled faster than JAX jit", "JAX jit", 1.0),
        ):
            text = f"{workload}: {text}"
            if workload not in results:
                out.append((text, "-", "not run"))
            elif peer == "JAX jit" and jax is None:
                out.append((text, "-", "n/a: JAX not installed"))
            else:
                r = ratio(workload, peer)
                ok = r <= limit if peer == HAND else r < limit
                out.append((text, f"{r:.2f}x", "PASS" if ok else "FAIL"))
    out += numba_targets(results, jax)
    extra = results["wide"]["extra"] if "wide" in results else None
    for text, key, limit, fmt in (
        ("wide: gradgen compile under 60 s", "wall", 60, "{:.1f} s"),
        ("wide: gradgen compile within 4 GiB", "peak_mib", 4096, "{:.0f} MiB"),
    ):
        if extra is None:
            out.append((text, "-", "not run"))
        else:
            out.append(
                (text, fmt.format(extra[key]), "PASS" if extra[key] < limit else "FAIL")
            )
    return out


def numba_targets(results, jax):
    """Issue #12's targets for `--backend numba` (x: numba's time / the peer's, paired by round)."""
    out = []
    step, train = "compiled, numba loss_step", "compiled, numba loss_train"
    wanted = [
        ("moons", f"numba <= 0.5x {BEST}", (step, train), BEST, 0.5),
        ("moons", "numba at least 3x faster than JAX jit (async)", (step, train), "JAX jit", 1 / 3),
        ("moons", "numba loss_train <= JAX jit fori_loop", (train,), "JAX jit fori_loop", 1.0),
        ("wide", f"numba <= 0.85x {BEST}", (step, train), BEST, 0.85),
    ]
    for workload, text, ours, peer, limit in wanted:
        text = f"{workload}: {text}"
        rounds = results.get(workload, {}).get("rounds", {})
        if workload not in results:
            out.append((text, "-", "not run"))
        elif step not in rounds:
            out.append((text, "-", "n/a: numba not installed"))
        elif peer not in rounds:
            out.append((text, "-", "n/a: JAX not installed"))
        else:
            r = min(paired(rounds, o, peer) for o in ours)
            out.append((text, f"{r:.2f}x", "PASS" if r <= limit else "FAIL"))
    return out


def blas_threads() -> str:
    try:
        import threadpoolctl
    except ImportError:
        return "NumPy BLAS threads unknown"
    info = [i for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
    return (
        ", ".join(
            f"NumPy BLAS {i['internal_api']} {i['num_threads']} threads"
            for i in info[:1]
        )
        or "no BLAS found"
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--quick", action="store_true", help="fewer repeats (noisier medians)"
    )
    p.add_argument("--only", choices=("moons", "wide"), help="run one workload")
    args = p.parse_args(argv)
    start = time.perf_counter()
    threads = blas_threads()  # before torch and JAX load their own pools

    results, checks = {}, []
    compiled_wide = compile_stats = None
    tmp = tempfile.TemporaryDirectory()
    if args.only in (None, "wide"):
        # first: the compile is this process's first child (peak memory), on a quiet box
        print(f"wide: gradgen compile {WIDE} (a subprocess) ...", flush=True)
        wall, peak = compile_wide(tmp.name)
        compiled_wide = load_file("_bench_wide_mlp", Path(tmp.name) / "wide_mlp.py")
        lines = (Path(tmp.name) / "wide_mlp.py").read_text().count("\n")
        compile_stats = dict(wall=wall, peak_mib=peak, lines=lines)

    import torch

    jax = import_jax()
    # torch and JAX bring ~700,000 Python objects; unfrozen, every full collection
    # that the engine's Value graphs trigger scans them all, and the engine looks
    # slower than it is on its own
    gc.freeze()
    if args.only in (None, "moons"):
        run_moons(args, jax, results, checks)
    if args.only in (None, "wide"):
        run_wide(args, jax, results, checks, compiled_wide, compile_stats)
    tmp.cleanup()

    print()
    jax_version = f"jax {jax.__version__}" if jax is not None else "jax not installed"
    print(
        f"# {datetime.date.today()}  Python {platform.python_version()}  numpy {np.__version__}  "
        f"torch {torch.__version__}  {jax_version}  gradgen {gradgen.__version__}  "
        f"{platform.machine()}, {os.cpu_count()} CPUs; {threads}, torch {torch.get_num_threads()} threads"
    )
    parts = [
        f"{w}: median of {r['repeat']} batches of {r['steps']} steps"
        for w, r in results.items()
    ]
    print(f"# one SGD step (forward + backward + update), float64; {'; '.join(parts)}")
    print(
        "# vs NumPy: median over the rounds of the peer's time / hand-written NumPy's "
        "in the same round (engine rows: / NumPy's median)"
    )
    print()
    print_table(results)
    if "wide" in results:
        e = results["wide"]["extra"]
        print()
        print(
            f"wide: `gradgen compile {WIDE}` (subprocess): {e['wall']:.1f} s wall, "
            f"peak RSS {e['peak_mib']:.0f} MiB, {e['lines']} lines"
        )
    print()
    print(
        "targets (from the issue), from this run's medians (x: compiled time / peer time):"
    )
    for text, value, verdict in targets(results, jax):
        print(f"  {text:<48} {value:>9}  {verdict}")
    ok = all(checks)
    print()
    verdict = "all passed" if ok else "SOME FAILED (see the check lines above)"
    print(f"checks: {verdict}; {time.perf_counter() - start:.0f} s in all")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
