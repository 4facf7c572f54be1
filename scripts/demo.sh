#!/usr/bin/env bash
# The main job: compile every example into generated/, run the neuron, then
# train micrograd's moons demo with the compiled module (plot: moons.png).
set -euo pipefail
source "$(dirname "$0")/venv.sh" "examples"
.venv/bin/gradgen compile examples/*.py -o generated
.venv/bin/python examples/neuron.py
.venv/bin/python examples/moons.py --progress --plot moons.png
