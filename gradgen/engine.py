"""The interpreted engine: micrograd's `Value`, the reference semantics of gradgen.

Everything the compiler emits is checked against this class.  It is API
compatible with micrograd (`data`, `grad`, `label`, `_op`, `_prev`,
`backward()`, the operators and `relu`), and adds `tanh`, `exp`, `log`,
`sigmoid`, `sin`, `cos` and `abs` (also as `abs(v)`).  `abs`'s derivative at
0 is taken to be 0 (`sign(0) = 0`), as PyTorch's `torch.abs` has it.  Each
op's float function is the one the IR declares (`gradgen.ir.ops`), and
tests check every registry op with a `method` against this class.
Differences from micrograd, all deliberate:

* `_prev` is a tuple in argument order (micrograd uses a set, whose order
  depends on hashes), so traversals are deterministic;
* `backward()` sorts topologically with an explicit stack, so a 200,000-node
  chain does not hit the recursion limit;
* `tanh` is `math.tanh` (micrograd's `(e**2x - 1)/(e**2x + 1)` overflows);
* `grad` starts as the float `0.0`, not the int `0`;
* operators return `NotImplemented` for operands they do not know, so other
  types (gradgen's tracer, for one) can take over through the reflected method.

Sugar is lowered to primitives exactly as micrograd does: `a - b` is
`a + (-b)`, `-a` is `a * -1`, `a / b` is `a * b**-1`.  The compiler traces
the same shapes, so compiled scalar code computes the same floats.
"""

from __future__ import annotations

import math

from gradgen import mathfn

_NUMBER = (int, float)
_PLAIN = (int, float)
# > 0 while gradgen traces a model: a Value made then is a constant of the model
# (`acc = Value(0.0)`, `sum(xs, Value(0))`), and the tracer folds it into the IR
TRACING = [0]


class Value:
    """A scalar value with a gradient, and the operation that produced it."""

    __slots__ = ("data", "grad", "label", "_backward", "_prev", "_op", "_const")

    def __new__(cls, data=0.0, _children=(), _op="", label=""):
        if type(data) not in _PLAIN and getattr(data, "__gradgen_traced__", False):
            return data  # Value(x) of a traced x is x, so `list(map(Value, row))` traces
        return object.__new__(cls)

    def __init__(self, data, _children=(), _op="", label=""):
        self.data = data
        self.grad = 0.0
        self.label = label
        self._backward = _noop
        self._prev = tuple(_children)
        self._op = _op
        # True for a number wrapped by an operator (`x + 2`), and for every Value
        # made while gradgen traces a model
        self._const = TRACING[0] > 0

    @staticmethod
    def _wrap(other):
        if isinstance(other, Value):
            return other
        if isinstance(other, _NUMBER):
            const = Value(other)
            const._const = True
            return const
        return None

    # -- primitives -------------------------------------------------------
    def __add__(self, other):
        other = Value._wrap(other)
        if other is None:
            return NotImplemented
        out = Value(self.data + other.data, (self, other), "+")

        def _backward():
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __mul__(self, other):
        other = Value._wrap(other)
        if other is None:
            return NotImplemented
        out = Value(self.data * other.data, (self, other), "*")

        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def __pow__(self, other):
        if isinstance(other, Value) or not isinstance(other, _NUMBER):
            raise TypeError("only supporting int/float powers: Value ** Value is not supported")
        out = Value(self.data**other, (self,), f"**{other}")

        def _backward():
            self.grad += (other * self.data ** (other - 1)) * out.grad

        out._backward = _backward
        return out

    def _unary(self, data, op, contribution):
        """A one-input op; `contribution(out)` is what `backward` adds to `self.grad`."""
        out = Value(data, (self,), op)

        def _backward():
            self.grad += contribution(out)

        out._backward = _backward
        return out

    def relu(self):
        return self._unary(mathfn.relu(self.data), "ReLU", lambda out: (out.data > 0) * out.grad)

    def tanh(self):
        return self._unary(
            math.tanh(self.data), "tanh", lambda out: (1.0 - out.data * out.data) * out.grad
        )

    def exp(self):
        return self._unary(math.exp(self.data), "exp", lambda out: out.data * out.grad)

    def log(self):
        return self._unary(math.log(self.data), "log", lambda out: out.grad / self.data)

    def sigmoid(self):
        return self._unary(
            mathfn.sigmoid(self.data),
            "sigmoid",
            lambda out: (out.data * (1.0 - out.data)) * out.grad,
        )

    def sin(self):
        return self._unary(math.sin(self.data), "sin", lambda out: math.cos(self.data) * out.grad)

    def cos(self):
        return self._unary(math.cos(self.data), "cos", lambda out: -math.sin(self.data) * out.grad)

    def abs(self):
        # d|x|/dx = sign(x), 0 at x = 0 (and at NaN), as torch.abs's gradient
        return self._unary(abs(self.data), "abs", lambda out: mathfn.sign(self.data) * out.grad)

    __abs__ = abs

    # -- sugar, lowered to primitives as micrograd does ------------------------
    def __neg__(self):
        return self * -1

    def __radd__(self, other):
        return self + other

    def __sub__(self, other):
        if Value._wrap(other) is None:
            return NotImplemented
        return self + (-other)

    def __rsub__(self, other):
        if Value._wrap(other) is None:
            return NotImplemented
        return other + (-self)

    def __rmul__(self, other):
        return self * other

    def __truediv__(self, other):
        if Value._wrap(other) is None:
            return NotImplemented
        return self * other**-1

    def __rtruediv__(self, other):
        if Value._wrap(other) is None:
            return NotImplemented
        return other * self**-1

    # -- reverse mode ---------------------------------------------------------
    def backward(self):
        """Set `grad` of every value this one depends on (accumulating, like micrograd)."""
        self.grad = 1.0
        for v in reversed(topological_order(self)):
            v._backward()

    def __repr__(self):
        return f"Value(data={self.data}, grad={self.grad})"


def _noop():
    pass


def topological_order(root: Value) -> list[Value]:
    """Post-order DFS from `root`, children in argument order, without recursion.

    Gives the same order as micrograd's recursive `build_topo` would with
    ordered children.
    """
    order: list[Value] = []
    visited: set[int] = set()  # ids, used only for membership: never reaches output order
    stack = [(root, iter(root._prev))]
    visited.add(id(root))
    while stack:
        node, children = stack[-1]
        for child in children:
            if id(child) not in visited:
                visited.add(id(child))
                stack.append((child, iter(child._prev)))
                break
        else:
            stack.pop()
            order.append(node)
    return order
