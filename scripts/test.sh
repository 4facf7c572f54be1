#!/usr/bin/env bash
# The tests: generated/ must be up to date, then the whole suite.
set -euo pipefail
source "$(dirname "$0")/venv.sh" "test"
# the numba backend's tests need the optional `numba` extra: installed when the registry has it,
# and tests/test_backend_numba.py skips (it never fails) when it does not
.venv/bin/python -m pip install --quiet -e ".[test,numba]" || echo "numba did not install: the numba backend's tests will be skipped"
.venv/bin/gradgen compile examples/*.py -o generated --check
.venv/bin/python -m pytest "$@"
