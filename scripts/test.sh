#!/usr/bin/env bash
# The whole test suite: lint, types, the import contracts (pyproject.toml [tool.importlinter]),
# then pytest (unit, media, end to end, the service, the cluster) in two processes.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check pipeline workers storymedia api tests examples presets bench
.venv/bin/mypy pipeline workers storymedia api
.venv/bin/lint-imports --no-cache
# Two worker processes (pytest-xdist), each test file (or the sample story's tests) in one of them
# (tests/conftest.py): much of the suite waits on servers and worker processes, not on the CPU.
.venv/bin/python -m pytest -n 2 --no-loadscope-reorder "$@"
