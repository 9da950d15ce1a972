"""The station's limits: ``limits.toml`` in the presets folder overrides any default of
:class:`pipeline.probe.Limits` (photos), ``[av]`` (:class:`pipeline.avprobe.AVLimits`, clips and
audio) and ``[subtitles]`` (:class:`pipeline.subtitles.SubtitleLimits`).

Both executors read it from the same folder as the presets (``--presets``, ``STORYMEDIA_PRESETS``),
so a station sets its limits once for ``run`` and for every worker. Like a preset, a bad file stops
the start with the file and the field named: an unknown key, a value that is not a positive number.
"""

from __future__ import annotations

import tomllib
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, TypeVar

from pipeline.errors import InvalidPreset
from pipeline.presets import LIMITS_FILE, default_presets_dir
from pipeline.probe import Limits

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
