"""The station's limits: ``limits.toml`` in the presets folder overrides any default of
:class:`Limits` (photos), ``[av]`` (:class:`AVLimits`, clips and
audio) and ``[subtitles]`` (:class:`pipeline.model.subtitles.SubtitleLimits`).

Both executors read it from the same folder as the presets (``--presets``, ``STORYMEDIA_PRESETS``),
so a station sets its limits once for ``run`` and for every worker. Like a preset, a bad file stops
the start with the file and the field named: an unknown key, a value that is not a positive number.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from pipeline.errors import InvalidPreset
from pipeline.model.presets import LIMITS_FILE, default_presets_dir
from pipeline.model.subtitles import SubtitleLimits


@dataclass(frozen=True)
class AVLimits:
    max_bytes: int = 20 * 1024**3
    max_duration: float = 3 * 3600.0
    max_width: int = 4096
    max_height: int = 4096
    probe_timeout: float = 60.0
    max_boxes: int = 100_000
    """Top-level boxes in an MP4/MOV. A plain file has three or four; a fragmented one two per
    fragment: a three-hour clip fragmented every quarter second has 86,400."""
    box_walk_seconds: float = 10.0
    """Time to walk those boxes (a fraction of a second on a local disk, even at the cap)."""


@dataclass(frozen=True)
class Limits:
    """Caps against hostile or accidental giant input."""

    max_image_bytes: int = 200 * 1024 * 1024
    max_image_pixels: int = 120_000_000
    """120 MP: above any camera a newsroom uses, far below a decompression bomb."""
    max_decoded_bytes: int = 512 * 1024 * 1024
    """Memory that decoding one photo in full may need: the picture in its stored mode, the
    decoder's own buffers (a progressive JPEG's coefficients, a TIFF strip, WebP/AVIF/HEIF output
    buffers) and the working copies on the way to upright 8-bit sRGB (see
    :func:`pipeline.ingest.decode.working_bytes`). 512 MiB keeps the render process of every accepted photo
    well under 1 GiB (worst measured: 619 MiB resident, 743 MiB of address space). It admits 120 MP
    baseline JPEG and 16-bit RGB PNG (4 bytes a pixel), 107 MP 16-bit or float grey (5), 76 MP
    progressive 4:2:0 JPEG (7), 67 MP for RGBA, CMYK or a photo stored sideways (8) and 33 MP WebP
    (16)."""
    max_jpeg_scans: int = 100
    """Scans (progressive passes) in one JPEG. Encoders write 1 (baseline) or about 10 (progressive;
    mozjpeg's optimised scripts a few more); each scan costs a pass over the whole picture, so a file
    of thousands decodes for minutes."""
    max_jpeg_segments: int = 4096
    """Marker segments walked in one JPEG before it is refused: real files have a few dozen."""
    image_time_limit: float = 120.0
    """Seconds the child process that decodes and renders one photo may run before it is killed."""
    image_memory_ceiling: int = 1024 * 1024 * 1024
    """Address space (RLIMIT_AS) of that child process: 1 GiB. Above it an allocation fails and the
    asset fails as out of memory (retryable), whatever the decoders did."""
    av: AVLimits = field(default_factory=AVLimits)
    """Caps for clips and audio."""
    subtitles: SubtitleLimits = field(default_factory=SubtitleLimits)
    """Caps for subtitle files (checked when the story is loaded)."""


_T = TypeVar("_T")
_TABLES = ("image", "av", "subtitles")


def _override(defaults: _T, table: Any, where: str) -> _T:
    if not isinstance(table, dict):
        raise InvalidPreset(f"{where}: must be a table of limits")
    known = {f.name: f for f in fields(defaults) if f.name not in ("av", "subtitles")}  # type: ignore[arg-type]
    changes: dict[str, Any] = {}
    for name, value in table.items():
        if name not in known:
            raise InvalidPreset(f"{where}.{name}: unknown limit (known: {', '.join(sorted(known))})")
        whole = isinstance(getattr(defaults, name), int)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0 or (
                whole and not isinstance(value, int)):
            kind = "a whole number" if whole else "a number"
            raise InvalidPreset(f"{where}.{name}: must be {kind} above 0 (got {value!r})")
        changes[name] = value
    return replace(defaults, **changes)  # type: ignore[type-var]


def load_limits(presets_dir: Path | None = None) -> Limits:
    """The defaults, with what ``<presets>/limits.toml`` sets (the defaults alone when absent)."""
    path = (presets_dir or default_presets_dir()) / LIMITS_FILE
    if not path.is_file():
        return Limits()
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidPreset(f"{path}: cannot read the limits: {exc}") from exc
    unknown = sorted(set(data) - set(_TABLES))
    if unknown:
        raise InvalidPreset(f"{path}: {unknown[0]}: unknown table (use [image], [av] or [subtitles])")
    limits = _override(Limits(), data.get("image", {}), f"{path}: image")
    return replace(limits, av=_override(limits.av, data.get("av", {}), f"{path}: av"),
                   subtitles=_override(limits.subtitles, data.get("subtitles", {}), f"{path}: subtitles"))
