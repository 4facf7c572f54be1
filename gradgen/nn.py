"""A tiny neural-net library on `Value`s, API compatible with micrograd's `nn.py`.

`MLP(nin, nouts)` builds exactly micrograd's network: weights drawn with
`random.uniform(-1, 1)` one per input in order, bias `Value(0)` (no draw),
ReLU on every layer but the last, which is linear.  So `random.seed(s)` then
`MLP(...)` gives micrograd's numbers.

`style="lecture"` builds the lecture's variant instead: the bias is drawn
with `random.uniform(-1, 1)` after the weights, and every neuron (the last
layer's too) applies `tanh`.

`named_parameters()` gives stable dotted names in `parameters()` order,
e.g. `layers.0.neurons.3.w.1` and `layers.0.neurons.3.b`.
"""

from __future__ import annotations

import random

from gradgen.engine import Value

STYLES = ("micrograd", "lecture")


class Module:
    """micrograd's `Module`, plus `named_parameters()`.

    A subclass may override `parameters()` alone, as micrograd teaches: the
    names then come from the attributes that hold those Values (`w.0`, `b`,
    `layers.1.w.3`; a Value no attribute reaches is `p<k>`, its position).
    A subclass that overrides neither gets every Value its attributes hold,
    in attribute order (lists and tuples in order, nested Modules by their
    own `named_parameters()`).
    """

    def zero_grad(self):
        for p in self.parameters():
            p.grad = 0.0

    def parameters(self) -> list[Value]:
        return [p for _, p in self.named_parameters()]

    def named_parameters(self, prefix: str = "") -> list[tuple[str, Value]]:
        found = _walk(self, prefix)
        if type(self).parameters is Module.parameters:
            return found
        path = {}
        for name, v in found:
            path.setdefault(id(v), name)
        out, seen = [], set()
        for k, v in enumerate(self.parameters()):
            if id(v) not in seen:
                seen.add(id(v))
                out.append((path.get(id(v), f"{prefix}p{k}"), v))
        return out


def _walk(obj, prefix: str) -> list[tuple[str, Value]]:
    """(dotted attribute path, Value) for every Value reachable from `obj`'s attributes, once each."""
    out, seen = [], set()

    def visit(x, path: str, depth: int) -> None:
        if isinstance(x, Value):
            if id(x) not in seen:
                seen.add(id(x))
                out.append((path, x))
        elif isinstance(x, Module) and x is not obj:
            for name, v in x.named_parameters(path + "." if path else ""):
                visit(v, name, depth)
        elif isinstance(x, (list, tuple)) and depth < 8:
            for i, item in enumerate(x):
                visit(item, f"{path}.{i}" if path else str(i), depth + 1)

    for name, value in vars(obj).items() if hasattr(obj, "__dict__") else ():
        visit(value, prefix + name, 0)
    return out


def _check_style(style: str) -> None:
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, not {style!r}")


class Neuron(Module):
    """One neuron: `act(sum(w_i * x_i) + b)`.

    `nonlin` says whether the activation is applied; `act` is "relu" or "tanh".
    `random_bias` draws the bias from U(-1, 1) after the weights (the lecture);
    otherwise it is `Value(0)` (micrograd).
    """

    def __init__(self, nin: int, nonlin: bool = True, act: str = "relu", random_bias: bool = False):
        if act not in ("relu", "tanh"):
            raise ValueError(f"act must be 'relu' or 'tanh', not {act!r}")
        self.w = [Value(random.uniform(-1, 1)) for _ in range(nin)]
        self.b = Value(random.uniform(-1, 1)) if random_bias else Value(0)
        self.nonlin = nonlin
        self.act = act

    def __call__(self, x):
        # Same order as micrograd: b + w0*x0 + w1*x1 + ...
        out = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
        if not self.nonlin:
            return out
        return out.relu() if self.act == "relu" else out.tanh()

    def parameters(self):
        # named_parameters' Values without making their names (a wide MLP has 10^5 of them)
        if type(self).named_parameters is not Neuron.named_parameters:
            return super().parameters()
        return self.w + [self.b]

    def named_parameters(self, prefix: str = ""):
        named = [(f"{prefix}w.{i}", wi) for i, wi in enumerate(self.w)]
        return named + [(f"{prefix}b", self.b)]

    def __repr__(self):
        kind = {"relu": "ReLU", "tanh": "Tanh"}[self.act] if self.nonlin else "Linear"
        return f"{kind}Neuron({len(self.w)})"


class Layer(Module):
    def __init__(self, nin: int, nout: int, **kwargs):
        self.neurons = [Neuron(nin, **kwargs) for _ in range(nout)]

    def __call__(self, x):
        from gradgen.frontend import layers  # inside a trace, a full row records array ops

        out = layers.call(self, x)
        if out is None:
            out = [n(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out

    def parameters(self):
        if type(self).named_parameters is not Layer.named_parameters:
            return super().parameters()
        return [p for n in self.neurons for p in n.parameters()]

    def named_parameters(self, prefix: str = ""):
        return [
            item
            for j, n in enumerate(self.neurons)
            for item in n.named_parameters(f"{prefix}neurons.{j}.")
        ]

    def __repr__(self):
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(Module):
    """`MLP(nin, nouts)`: micrograd's network; `style="lecture"` for the lecture's."""

    def __init__(self, nin: int, nouts: list[int], style: str = "micrograd"):
        _check_style(style)
        self.style = style
        sz = [nin] + list(nouts)
        last = len(nouts) - 1
        if style == "micrograd":
            kw = [dict(nonlin=i != last, act="relu") for i in range(len(nouts))]
        else:
            kw = [dict(nonlin=True, act="tanh", random_bias=True) for _ in nouts]
        self.layers = [Layer(sz[i], sz[i + 1], **kw[i]) for i in range(len(nouts))]

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def parameters(self):
        if type(self).named_parameters is not MLP.named_parameters:
            return super().parameters()
        return [p for layer in self.layers for p in layer.parameters()]

    def named_parameters(self, prefix: str = ""):
        return [
            item
            for i, layer in enumerate(self.layers)
            for item in layer.named_parameters(f"{prefix}layers.{i}.")
        ]

    def __repr__(self):
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"
