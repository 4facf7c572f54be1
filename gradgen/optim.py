"""Optimizers for `@gradgen.export(step=...)`: the update `<name>_step` applies in place.

    @gradgen.export(example=..., step=gradgen.sgd())             # plain SGD
    @gradgen.export(example=..., step=gradgen.sgd(momentum=0.9))  # heavy ball (nesterov=True too)
    @gradgen.export(example=..., step=gradgen.adam())             # Adam, betas (0.9, 0.999)

The generated `loss_step(*params, *data, lr)` computes the loss and its gradient
(`loss_grad`), updates the parameter arrays in place and returns the loss
*before* the update, like `loss.backward(); opt.step()` in PyTorch.  The
learning rate is an argument (schedules need no recompiling), the rest of the
update is a constant of the compiled code.

Optimizers with state (momentum, Adam) take one more argument, `state`, made by
`opt.init(params)` as optax's `opt.init` does; it is a plain dict of arrays, in
parameter order, with torch.optim's names (`momentum_buffer`; `exp_avg`,
`exp_avg_sq`, `step`), so the generated module needs no gradgen:

    opt = gradgen.adam()
    params = gradgen.params.read(model)
    state = opt.init(params)
    for k in range(100):
        loss = compiled.loss_step(*params.values(), X, y, 1e-3, state)

`<name>_train(*params, *data, lrs[, state])` runs `len(lrs)` steps in one call
and returns their losses.  The update matches torch.optim.SGD / Adam (float64)
to rounding (tests/test_step.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _zeros(p):
    if hasattr(p, "new_zeros"):  # a torch tensor
        return p.new_zeros(p.shape)
    return np.zeros_like(np.asarray(p, dtype=np.float64))


def _arrays(params):
    if isinstance(params, dict):
        return list(params.values())
    if hasattr(params, "shape"):  # one array
        return [params]
    return list(params)


@dataclass(frozen=True)
class SGD:
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0  # L2: g += weight_decay * p before the update (torch.optim.SGD's)

    state_keys = ("momentum_buffer",)

    def __post_init__(self):
        if self.momentum < 0 or self.weight_decay < 0:
            raise ValueError("sgd: momentum and weight_decay must be >= 0")
        if self.nesterov and not self.momentum:
            raise ValueError("sgd: nesterov=True needs a momentum > 0")

    @property
    def stateful(self) -> bool:
        return bool(self.momentum)

    def describe(self) -> str:
        out = "SGD"
        if self.momentum:
            out += f" with {'Nesterov ' if self.nesterov else ''}momentum {self.momentum!r}"
        if self.weight_decay:
            out += f", weight decay {self.weight_decay!r}"
        return out

    def init(self, params) -> dict:
        """The state `<name>_step` takes: {"momentum_buffer": [zeros like each parameter]} ({} without momentum)."""
        return {"momentum_buffer": [_zeros(p) for p in _arrays(params)]} if self.momentum else {}


@dataclass(frozen=True)
class Adam:
    betas: tuple = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0  # L2 (torch.optim.Adam's weight_decay, not AdamW's)

    state_keys = ("exp_avg", "exp_avg_sq")
    stateful = True

    def __post_init__(self):
        b1, b2 = self.betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1) or self.eps < 0:
            raise ValueError("adam: betas must be in [0, 1) and eps >= 0")

    def describe(self) -> str:
        out = f"Adam (betas {tuple(self.betas)!r}, eps {self.eps!r}"
        return out + (f", weight decay {self.weight_decay!r})" if self.weight_decay else ")")

    def init(self, params) -> dict:
        """{"step": 0, "exp_avg": [zeros...], "exp_avg_sq": [zeros...]}, one array per parameter, in order."""
        ps = _arrays(params)
        return {"step": 0, "exp_avg": [_zeros(p) for p in ps], "exp_avg_sq": [_zeros(p) for p in ps]}


def sgd(momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0) -> SGD:
    """Stochastic gradient descent as torch.optim.SGD (dampening 0); the lr is the step's argument."""
    return SGD(float(momentum), bool(nesterov), float(weight_decay))


def adam(betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0) -> Adam:
    """Adam as torch.optim.Adam; the lr is the step's argument."""
    return Adam(tuple(float(b) for b in betas), float(eps), float(weight_decay))


def is_optimizer(x) -> bool:
    return isinstance(x, (SGD, Adam))
