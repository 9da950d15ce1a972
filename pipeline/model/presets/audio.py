"""Audio renditions of a preset: the ``[audio]`` table (Broadcast WAV, AAC, MP3)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeline.model.presets.common import Frozen, Loudness


class AudioOutput(Frozen):
    """One audio-only rendition: the programme stereo at a loudness, in a format."""

    type: Literal["bwf", "aac", "mp3"]
    """``bwf``: Broadcast WAV (PCM 24-bit 48 kHz with a bext chunk) for radio playout;
    ``aac``: AAC-LC in MP4 (.m4a) for the web; ``mp3``: MP3 for podcasts and old players."""
    name: str
    loudness: Loudness
    bitrate: int = Field(default=128, ge=32, le=320)
    """kb/s (AAC and MP3)."""


class AudioSpec(Frozen):
    """How a preset turns audio assets, and the sound of clips, into audio renditions."""

    from_clips: bool = True
    """Also make these renditions from the sound of video clips."""
    outputs: tuple[AudioOutput, ...] = Field(min_length=1)
