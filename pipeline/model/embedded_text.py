"""The words that travel inside every rendition (written as XMP/IPTC by render, as tags by ffmpeg)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EmbeddedText:
    """The words that travel inside every rendition."""

    caption: str = ""
    byline: str = ""
    credit: str = ""
    copyright: str = ""
    source: str = ""
    headline: str = ""
    created: str = ""
    """ISO 8601 date-time of publication (with zone)."""
    language: str = "vi"
