"""`<name>_step` and `<name>_train`: the optimizer update after `<name>_grad` (see gradgen.optim).

The emitted code calls `<name>_grad` and updates the caller's arrays with
in-place operators (`W0 -= lr * g_W0`), so it is the same text for every
backend (NumPy arrays, torch tensors, 0-d arrays for scalar arguments) and
needs no import.  Names are chosen clear of the function's arguments.
"""

from __future__ import annotations

from gradgen.backends import lean, numba_step
from gradgen.backends.base import Emitted
from gradgen.names import Namespace
from gradgen.optim import SGD


def _num(x: float) -> str:
    return repr(float(x))


def emit_step(name: str, grad: Emitted, opt, backend) -> list[Emitted]:
    """[`<name>_step`, `<name>_train`] for the gradient function `grad` (emitted as `<name>_grad`)."""
    params = list(grad.params)
    wrt = list(grad.grads)
    reserved = set(params) | {name, name + "_grad", name + "_step", name + "_train"}
    ns = Namespace(reserved=reserved)
    lean_step = lean.applies(backend, grad, opt)
    lr = ns.create("lr")
    if lean_step or numba_step.applies(backend, grad.sched, opt):
        # the step's body is the gradient's (the lean step, numba's): its lr is clear of those names too
        lr = Namespace(reserved=reserved | lean.names_of(grad)).create("lr")
        ns = Namespace(reserved=reserved | {lr})
    state = ns.create("state") if opt.stateful else None
    value = ns.create("value")
    gs = [ns.create(f"g_{p}") for p in wrt]
    call = ", ".join(params)
    args = params + [lr] + ([state] if state else [])
    sig = list(grad.signature) + [lr] + ([state] if state else [])
    short = wrt[0] if len(wrt) == 1 else f"{wrt[0]}..{wrt[-1]}"
    doc = (
        f'    """One {opt.describe()} step on {short}, in place; returns the loss before the update.'
        + ("" if not state else f"\n\n    `{state}`: gradgen.optim's `opt.init(params)`.")
        + '\n    """'
    )
    lines = [f"def {name}_step({', '.join(sig)}):", doc]
    items = ", ".join(gs) + ("," if len(gs) == 1 else "")
    listed = ", ".join(wrt) + ("," if len(wrt) == 1 else "")
    what = " and ".join([", ".join(wrt[:-1]), wrt[-1]] if len(wrt) > 1 else wrt)
    lines += [
        "    # floats and lists cannot change in place",
        f'    if not all(hasattr(x, "__isub__") for x in ({listed})):',
        f'        raise TypeError("{name}_step updates {what} in place: pass arrays '
        '(np.array(x) for a number), not floats or lists")',
        f"    {value}, ({items}) = {name}_grad({call})",
    ]
    wd = getattr(opt, "weight_decay", 0.0)
    if wd:
        lines += [f"    {g} = {g} + {_num(wd)} * {p}" for p, g in zip(wrt, gs)]
    bufs = {}
    if state:
        for key in opt.state_keys:
            names = [ns.create(f"{'v' if key == 'exp_avg_sq' else 'm'}_{p}") for p in wrt]
            bufs[key] = names
        n = len(wrt)
        keys = " and ".join(opt.state_keys)
        check = " or ".join(f'len({state}.get("{k}", ())) != {n}' for k in opt.state_keys)
        lines += [
            f"    if not isinstance({state}, dict) or {check}:",
            f'        raise ValueError("{name}_step: {state} must be opt.init(params) of the step\'s optimizer '
            f'(a dict with {keys}: {n} arrays each)")',
        ]
        for key, names in bufs.items():
            items = ", ".join(names) + ("," if n == 1 else "")
            lines.append(f'    {items} = {state}["{key}"]')
    if isinstance(opt, SGD):
        for p, g in zip(wrt, gs):
            if opt.momentum:
                b = bufs["momentum_buffer"][wrt.index(p)]
                lines += [f"    {b} *= {_num(opt.momentum)}", f"    {b} += {g}"]
                if opt.nesterov:
                    lines.append(f"    {p} -= {lr} * ({g} + {_num(opt.momentum)} * {b})")
                else:
                    lines.append(f"    {p} -= {lr} * {b}")
            else:
                lines.append(f"    {p} -= {lr} * {g}")
    else:  # Adam, as torch.optim.Adam computes it
        b1, b2 = opt.betas
        t, c1, c2 = ns.create("t"), ns.create("step_size"), ns.create("bias2_sqrt")
        lines += [
            f'    {state}["step"] += 1',
            f'    {t} = {state}["step"]',
            f"    {c1} = {lr} / (1 - {_num(b1)} ** {t})",
            f"    {c2} = (1 - {_num(b2)} ** {t}) ** 0.5",
        ]
        for i, (p, g) in enumerate(zip(wrt, gs)):
            m, v = bufs["exp_avg"][i], bufs["exp_avg_sq"][i]
            lines += [
                f"    {m} *= {_num(b1)}",
                f"    {m} += (1 - {_num(b1)}) * {g}",
                f"    {v} *= {_num(b2)}",
                f"    {v} += (1 - {_num(b2)}) * {g} * {g}",
                f"    {p} -= {c1} * {m} / ({v} ** 0.5 / {c2} + {_num(opt.eps)})",
            ]
    lines.append(f"    return {value}")
    step = Emitted(lines, set(), set(), args, sig, wrt, backend, shapes=grad.shapes, sched=grad.sched)
    if lean_step:  # the NumPy backend's plain SGD: gradgen.backends.lean
        text = f"One {opt.describe()} step on {short}, in place; returns the loss before the update."
        step = lean.emit_lean_step(name, grad, opt, lines[2:], text, lr) or step

    lrs = "lrs" if "lrs" not in set(params) else Namespace(reserved=set(params)).create("lrs")
    targs = params + [lrs] + ([state] if state else [])
    tsig = list(grad.signature) + [lrs] + ([state] if state else [])
    inner = ", ".join(params + [lr] + ([state] if state else []))
    train = [
        f"def {name}_train({', '.join(tsig)}):",
        f'    """len({lrs}) steps of {name}_step in one call, the k-th with learning rate {lrs}[k]; '
        'returns the losses (a list)."""',
        f"    return [{name}_step({inner}) for {lr} in {lrs}]",
    ]
    return [step, Emitted(train, set(), set(), targs, tsig, wrt, backend)]


def check_step(fn, ir, opt, where) -> None:
    """One-line errors for `step=` the function cannot have (`where`: (file, line) of its def)."""
    from gradgen.errors import GradgenError
    from gradgen.optim import is_optimizer

    if not is_optimizer(opt):
        raise GradgenError(
            f"{fn.__name__}: step= takes gradgen.sgd(...) or gradgen.adam(...), not {type(opt).__name__}", *where
        )
    if ir.grad_opt is None:
        raise GradgenError(
            f"{fn.__name__}: step= needs a scalar loss (this function returns one value per example); "
            "export the loss built with gradgen.mean instead",
            *where,
        )
    if not ir.signature.wrt():
        raise GradgenError(
            f"{fn.__name__}: step= has nothing to update (no parameter arrays or scalar arguments); "
            "remove step= or use a model's parameters",
            *where,
        )
