# storymedia image: the pipeline, its system tools, the bundled presets and the pages' libraries.
#   docker compose build    (docker-compose.yml uses it for every worker, beat, Flower and the api)
#
# Reproducible: an exact Debian point release, and Python packages from requirements/runtime.txt,
# every file pinned by its sha256 and installed as wheels only (bash scripts/lock.sh writes it).
# The digest is not pinned yet (no registry access where this was written): add it with
#   docker buildx imagetools inspect debian:12.12-slim   ->   FROM debian:12.12-slim@sha256:...
# The pages' JavaScript libraries, from the npm registry exactly as package-lock.json pins them
# (npm checks each package's integrity hash); only node_modules reaches the image.
FROM node:20-bookworm-slim AS pages
WORKDIR /pages
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM debian:12.12-slim

ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# openssl: the seaweedfs-tls service of docker-compose.yml makes SeaweedFS's gRPC certificate with it
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ffmpeg libimage-exiftool-perl \
        libraqm0 libfribidi0 libharfbuzz0b fonts-dejavu-core ca-certificates openssl \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Dependencies first (a layer that changes only with the lock file), then the package itself,
# built with the locked setuptools: nothing unhashed is downloaded.
COPY requirements/runtime.txt requirements/runtime.txt
RUN python3 -m venv /opt/storymedia \
 && /opt/storymedia/bin/pip install --require-hashes --only-binary=:all: -r requirements/runtime.txt
COPY pyproject.toml README.md LICENSE ./
COPY pipeline pipeline
COPY workers workers
COPY storymedia storymedia
COPY api api
COPY presets presets
COPY --from=pages /pages/node_modules node_modules
RUN /opt/storymedia/bin/pip install --no-deps --no-build-isolation . \
 && /opt/storymedia/bin/pip check \
 && useradd --system --uid 1000 --home-dir /scratch storymedia \
 && mkdir -p /scratch && chown storymedia /scratch

ENV PATH=/opt/storymedia/bin:$PATH STORYMEDIA_PRESETS=/app/presets STORYMEDIA_SCRATCH=/scratch \
    STORYMEDIA_VENDOR_DIR=/app/node_modules
USER storymedia
CMD ["storymedia", "--help"]
