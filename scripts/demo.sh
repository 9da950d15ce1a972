#!/usr/bin/env bash
# The main job on the embedded default: make the sample story's media, then process the story
# in-process into ./out (no Redis or S3). Prints where the manifest is.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python examples/thanh-hoa/make_media.py
.venv/bin/storymedia run examples/thanh-hoa/story.toml --out out
