"""Presets: named, versioned rendition specs, declared as data in ``presets/*.toml``.

A preset file is parsed into frozen objects when loaded; an unknown key, a bad size, format or
colour fails at load time with the file and the field named, never in the middle of a render.
Each field is documented where it is declared: :mod:`.common` (logo, caption style, loudness),
:mod:`.image`, :mod:`.video`, :mod:`.audio`; :mod:`.loader` reads the files.
"""

from __future__ import annotations

from pipeline.model.presets.audio import AudioOutput, AudioSpec
from pipeline.model.presets.common import CaptionStyle, LogoSpec, Loudness, Position
from pipeline.model.presets.image import DEFAULT_QUALITY, ImageFormat, ImageRenditionSpec
from pipeline.model.presets.loader import (
    LIMITS_FILE,
    Preset,
    default_presets_dir,
    load_preset_file,
    load_presets,
    parse_preset,
)
from pipeline.model.presets.video import (
    HlsOutput,
    HlsRung,
    Mp4Output,
    PosterOutput,
    SpriteOutput,
    VideoOutput,
    VideoSpec,
    WebVttOutput,
    XdcamOutput,
)

__all__ = ["DEFAULT_QUALITY", "LIMITS_FILE", "AudioOutput", "AudioSpec", "CaptionStyle", "HlsOutput",
           "HlsRung", "ImageFormat", "ImageRenditionSpec", "LogoSpec", "Loudness", "Mp4Output", "Position",
           "PosterOutput", "Preset", "SpriteOutput", "VideoOutput", "VideoSpec", "WebVttOutput",
           "XdcamOutput", "default_presets_dir", "load_preset_file", "load_presets", "parse_preset"]
