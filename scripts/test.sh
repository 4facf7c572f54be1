#!/usr/bin/env bash
# The tests: generated/ must be up to date, then the whole suite.
set -euo pipefail
source "$(dirname "$0")/venv.sh" "test"
.venv/bin/gradgen compile examples/*.py -o generated --check
.venv/bin/python -m pytest "$@"
