"""A learner's own Module that overrides only parameters(), as micrograd teaches."""
import gradgen
from gradgen import nn
from gradgen.engine import Value


class Affine(nn.Module):
    def __init__(self, w, b):
        self.w = [Value(v) for v in w]
        self.b = Value(b)

    def __call__(self, x):
        return sum((wi * xi for wi, xi in zip(self.w, x)), self.b).tanh()

    def parameters(self):
        return self.w + [self.b]


cell = Affine([0.3, -0.8], 0.1)


@gradgen.export(example=dict(x1=1.0, x2=2.0, h=0.5))
def step(x1, x2, h):
    return cell([x1, x2]) * h + h * h
