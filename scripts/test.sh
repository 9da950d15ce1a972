#!/usr/bin/env bash
# The whole test suite: lint, types, the import contracts (pyproject.toml [tool.importlinter]),
# then pytest (unit, media, end to end).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check pipeline workers storymedia api tests examples presets bench
.venv/bin/mypy pipeline workers storymedia api
.venv/bin/lint-imports --no-cache
.venv/bin/python -m pytest "$@"
