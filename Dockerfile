# storymedia worker image: the pipeline, its system tools and the bundled presets.
#   docker compose build    (docker-compose.yml uses it for every worker, beat and Flower)
FROM debian:12-slim

ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ffmpeg libimage-exiftool-perl \
        libraqm0 libfribidi0 libharfbuzz0b fonts-dejavu-core ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY pipeline pipeline
COPY workers workers
COPY presets presets
RUN python3 -m venv /opt/storymedia \
 && /opt/storymedia/bin/pip install --upgrade pip \
 && /opt/storymedia/bin/pip install ".[ops]" \
 && useradd --system --uid 1000 --home-dir /scratch storymedia \
 && mkdir -p /scratch && chown storymedia /scratch

ENV PATH=/opt/storymedia/bin:$PATH STORYMEDIA_PRESETS=/app/presets STORYMEDIA_SCRATCH=/scratch
USER storymedia
CMD ["storymedia", "--help"]
