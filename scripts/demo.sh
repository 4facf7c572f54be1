#!/usr/bin/env bash
# The main job: compile every example into generated/ and run the neuron.
set -euo pipefail
source "$(dirname "$0")/venv.sh" ""
.venv/bin/gradgen compile examples/*.py -o generated
.venv/bin/python examples/neuron.py
