"""The signature of a compiled function, built once by the front end.

    Signature(name="loss", inputs=(SigInput("W0", "param", (16, 2), "model"), ...,
                                   SigInput("X", "data", ("B", 2)), SigInput("y", "data", ("B",))),
              returns=())

Every input of the traced graph, in argument order (parameter arrays first,
module by module, then the function's own arguments), with:

* `kind`: "param" (a parameter array of a `gradgen.nn` module: read with
  `gradgen.params.read(module, prefix)`, gets a gradient), "data" (an array
  argument: no gradient) or "scalar" (a float argument: gets a gradient);
* `shape`: () for a scalar; symbolic dimensions are the string "B" (the
  batch axis of `gradgen.mean` / `gradgen.each`);
* `module`: for a parameter array, the model file's global that holds its
  module ("model"), else None;
* `default`: a scalar argument's default (a float), else None.

`returns` is the shape of the returned value: () for a scalar, ("B",) for a
value per example (`gradgen.each`: a forward function only).  `prefixes`
maps each module to its arrays' name prefix ("" for the only module).  The
API, `check`, the NumPy prologue and the module docstring read this instead
of re-deriving it from the graph or the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

KINDS = ("param", "data", "scalar")


@dataclass(frozen=True)
class SigInput:
    name: str
    kind: str  # "param" | "data" | "scalar"
    shape: tuple = ()
    module: str | None = None
    default: float | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"SigInput kind must be one of {KINDS}, not {self.kind!r}")


@dataclass(frozen=True)
class Signature:
    name: str
    inputs: tuple[SigInput, ...]
    returns: tuple = ()
    prefixes: tuple[tuple[str, str], ...] = field(default=())  # (module, array-name prefix)

    # -- views ---------------------------------------------------------------------
    def names(self) -> list[str]:
        return [i.name for i in self.inputs]

    def params(self) -> list[SigInput]:
        return [i for i in self.inputs if i.kind == "param"]

    def data(self) -> list[SigInput]:
        return [i for i in self.inputs if i.kind == "data"]

    def scalars(self) -> list[SigInput]:
        return [i for i in self.inputs if i.kind == "scalar"]

    def arrays(self) -> list[SigInput]:
        """The inputs passed as NumPy arrays: parameter arrays with a shape, and data arrays."""
        return [i for i in self.inputs if i.shape]

    def wrt(self) -> list[SigInput]:
        """The inputs that get a gradient: parameter arrays and scalar arguments, in order."""
        return [i for i in self.inputs if i.kind != "data"]

    def defaults(self) -> dict[str, float]:
        return {i.name: i.default for i in self.inputs if i.default is not None}

    def modules(self) -> list[str]:
        """The modules whose parameters are inputs, in argument order."""
        return list(dict.fromkeys(i.module for i in self.params()))

    def prefix(self, module: str) -> str:
        return dict(self.prefixes).get(module, "")

    @property
    def per_example(self) -> bool:
        return bool(self.returns)

    # -- text ------------------------------------------------------------------------
    def call(self) -> str:
        """`loss(W0, b0, ..., X, y)`, `softplus(x, temperature=1.0)`: as the compiled functions take them."""
        args = [i.name + ("" if i.default is None else f"={i.default!r}") for i in self.inputs]
        return f"{self.name}({', '.join(args)})"

    def renamed(self, names) -> "Signature":
        """The same signature with its inputs named `names` (as the emitter wrote them)."""
        return replace(self, inputs=tuple(replace(i, name=n) for i, n in zip(self.inputs, names)))

    def describe(self, call: bool = True) -> str:
        """The arguments in one sentence, for a docstring:

        `loss(W0, b0, W1, b1, W2, b2, X, y): W0..b2 are model's parameter arrays
        (gradgen.params.read(model)); X (B, 2) and y (B,) are the data.`  (Without `call`,
        the part after the colon.)
        """
        if not call:
            return self.describe().split(": ", 1)[1]
        parts = []
        for module in self.modules():
            names = [i.name for i in self.params() if i.module == module]
            prefix = self.prefix(module)
            if module.isascii() and module.isidentifier():
                read = f"gradgen.params.read({module}{', ' + repr(prefix) if prefix else ''})"
                whose = f"{module}'s"
            else:  # a global made through globals(): its name is not code, and is not shown
                read, whose = "gradgen.params.read", "a module's"
            if len(names) == 1:
                parts.append(f"{names[0]} is {whose} parameter array ({read})")
            else:
                listed = _and(names) if len(names) <= 3 else f"{names[0]}..{names[-1]}"
                parts.append(f"{listed} are {whose} parameter arrays ({read})")
        data = [f"{i.name} {shape_text(i.shape)}" for i in self.data()]
        if data:
            parts.append(f"{_and(data)} {'is' if len(data) == 1 else 'are'} the data")
        scalars = [i.name for i in self.scalars()]
        if scalars:
            parts.append(f"{_and(scalars)} {'is a number' if len(scalars) == 1 else 'are numbers'}")
        if not parts:
            return f"{self.call()}: no arguments."
        return f"{self.call()}: {'; '.join(parts)}."

    def gradient_note(self) -> str:
        """What `f_grad` returns, for a module docstring: one gradient per input but the data."""
        if not self.data():
            return "Gradients come back in argument order, one per argument, each with its argument's shape."
        return (
            "Gradients come back in argument order, one per parameter array and scalar argument, "
            f"each with its argument's shape; the data ({_and([i.name for i in self.data()])}) get none."
        )


def shape_text(shape: tuple) -> str:
    """`(B, 2)`, `(B,)`, `()`: a shape as Python writes a tuple, symbolic dimensions bare."""
    dims = [str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
