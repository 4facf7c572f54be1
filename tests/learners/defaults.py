"""A keyword default kept in the compiled signature."""
import gradgen


@gradgen.export(example=dict(x=0.7, temperature=2.0))
def softplus(x, temperature=1.0):
    return ((x / temperature).exp() + 1).log() * temperature
