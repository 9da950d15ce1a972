#!/usr/bin/env bash
# Set up storymedia on Debian 12 / Ubuntu 24.04: system packages (as root, or through sudo) and
# a Python virtual environment in .venv with the package installed.
#
#   bash scripts/setup.sh          # what `storymedia run` needs
#   bash scripts/setup.sh --dev    # plus test and benchmark tools
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1

# ffmpeg: video (and the sample clip); exiftool: reading metadata back in tests;
# libraqm/fribidi/harfbuzz: Vietnamese text layout in Pillow; fonts-dejavu-core: the sample media.
packages=(python3 python3-venv python3-pip ffmpeg libimage-exiftool-perl
          libraqm0 libfribidi0 libharfbuzz0b fonts-dejavu-core)
# icc-profiles-free: a real Adobe RGB profile for the colour-conversion tests;
# redis-server: the cluster tests start their own broker; docker-compose: checks docker-compose.yml
# (`docker-compose config` parses it without a Docker engine); chromium: the pages' browser tests
# (Playwright drives Debian's Chromium; no browser download).
[ "$dev" = 1 ] && packages+=(icc-profiles-free redis-server docker-compose chromium)
# Node.js and npm: the pages' JavaScript libraries come from the npm registry (package-lock.json).
command -v npm >/dev/null || packages+=(nodejs npm)

missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "setup: run as root or install sudo" >&2; exit 1; }
        sudo="sudo"
    fi
    echo "setup: installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python=python3
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "setup: Python 3.11 or newer is needed ($("$python" --version) found)" >&2
    exit 1
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
# The locked versions, each file checked against its sha256 (bash scripts/lock.sh writes the locks;
# one universal lock serves Python 3.11 and 3.12), then the package itself with the locked
# setuptools and without touching its dependencies.
lock=requirements/runtime.txt
[ "$dev" = 1 ] && lock=requirements/dev.txt
.venv/bin/python -m pip install -q --require-hashes -r "$lock"
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
.venv/bin/python -m pip check
# The pages' JavaScript libraries, exactly as package-lock.json pins them (with --dev: axe-core for
# the accessibility tests too); `storymedia serve` serves them from node_modules/.
if [ "$dev" = 1 ]; then npm ci --no-audit --no-fund --loglevel=error
else npm ci --omit=dev --no-audit --no-fund --loglevel=error; fi
echo "setup: ready ($(.venv/bin/storymedia --version), packages from $lock)"
