"""The station's limits file: overrides, and refusals with the file and field named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.errors import InvalidPreset
from pipeline.ingest.limits import Limits, load_limits
from pipeline.model.presets import load_presets
from tests.conftest import PRESETS


def folder_with(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "presets"
    shutil.copytree(PRESETS, folder)
    (folder / "limits.toml").write_text(text, encoding="utf-8")
    return folder


def test_the_shipped_file_keeps_every_default_and_is_not_a_preset() -> None:
    assert load_limits(PRESETS) == Limits()
    assert "limits" not in load_presets(PRESETS)


def test_overrides_reach_each_table(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, "[image]\nmax_jpeg_scans = 20\nimage_time_limit = 30\n"
                                   "[av]\nmax_duration = 600.5\n[subtitles]\nmax_cues = 100\n")
    limits = load_limits(folder)
    assert (limits.max_jpeg_scans, limits.image_time_limit) == (20, 30)
    assert limits.av.max_duration == 600.5 and limits.av.max_boxes == Limits().av.max_boxes
    assert limits.subtitles.max_cues == 100
    assert limits.max_image_pixels == Limits().max_image_pixels


@pytest.mark.parametrize(("text", "words"), [
    ("[image]\nmax_jpeg_scan = 20\n", "image.max_jpeg_scan: unknown limit"),
    ("[image]\nmax_jpeg_scans = 0\n", "image.max_jpeg_scans: must be a whole number above 0"),
    ("[image]\nmax_jpeg_scans = 2.5\n", "image.max_jpeg_scans: must be a whole number above 0"),
    ("[av]\nmax_duration = \"long\"\n", "av.max_duration: must be a number above 0"),
    ("[av]\nmax_duration = true\n", "av.max_duration: must be a number above 0"),
    ("[image]\nav = 1\n", "image.av: unknown limit"),
    ("[video]\nmax_bytes = 1\n", "video: unknown table"),
    ("[image\n", "cannot read the limits"),
])
def test_a_bad_limit_stops_the_start_with_the_field_named(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(InvalidPreset, match="limits.toml: " + words.replace("[", r"\[")):
        load_limits(folder_with(tmp_path, text))
