#!/usr/bin/env bash
# Write the hashed lock files that the Dockerfile and scripts/setup.sh install from:
#   requirements/runtime.txt   the package's dependencies + the ops extra (Flower) + the build backend
#   requirements/dev.txt       the same + the dev extra (tests, lint, benchmarks)
# One universal resolution for every platform and Python >= 3.11 (Debian 12's 3.11, Ubuntu 24.04's
# 3.12), every file pinned by its sha256. Versions already in a lock file are kept;
# `bash scripts/lock.sh --upgrade` (or --upgrade-package NAME) moves them. Needs uv (dev extra).
set -euo pipefail
cd "$(dirname "$0")/.."
uv=.venv/bin/uv
[ -x "$uv" ] || uv=uv
lock() {
    "$uv" pip compile pyproject.toml requirements/build.in --universal --python-version 3.11 \
        --generate-hashes --quiet --custom-compile-command "bash scripts/lock.sh" "$@"
}
lock --extra ops --output-file requirements/runtime.txt "$@"
lock --extra ops --extra dev --output-file requirements/dev.txt "$@"
